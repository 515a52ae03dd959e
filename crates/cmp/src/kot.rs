//! 1-of-2^m oblivious transfer of `w`-bit messages from `m` random OTs
//! (Naor-Pinkas style): the receiver holds `(c_l, p_l^{c_l})`, the sender
//! `(p_l^0, p_l^1)` for `l < m`. To receive index `v` the receiver sends
//! `d = v ⊕ c`; the sender masks message `j` with `⊕_l F(p_l^{(j ⊕ d)_l}, j)`,
//! which the receiver can compute only for `j = v` (every other `j` needs
//! some `p_l^{1 - c_l}`). `F(p, j)` is slot `j` of the pad when all `2^m`
//! messages fit its 128 bits (distinct `j` read disjoint bits), else the
//! tweakable hash `H(p, j)` truncated to `w` bits.

use blindfold_ot::hash::Tccr;
use blindfold_ot::Block;

use crate::bits::{packed_len, BitReader, BitWriter};
use crate::{CmpError, Result};

fn mask(w: u32) -> u64 {
    if w == 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// How message `j` is masked under pad `p`.
fn pad_bits(hash: &Tccr, p: Block, j: usize, m: u32, w: u32) -> u64 {
    if (w as usize) << m <= 128 {
        ((p.0 >> (w as usize * j)) as u64) & mask(w)
    } else {
        (hash.hash(p, j as u64).0 as u64) & mask(w)
    }
}

/// Receiver, first flight: the corrections `d_i = v_i ⊕ c_i` for OTs of `m`
/// bits each, `choices` holding `m` bits per OT (bit `l` of OT `i` at
/// `i·m + l`).
pub fn corrections(vs: &[u64], m: u32, choices: &[bool]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity_bits(vs.len() * m as usize);
    for (i, &v) in vs.iter().enumerate() {
        let mut c = 0u64;
        for l in 0..m as usize {
            c |= (choices[i * m as usize + l] as u64) << l;
        }
        w.put(v ^ c, m);
    }
    w.finish()
}

/// Sender: the `2^m` masked messages of each OT, `msg(i, j)` giving message `j`
/// of OT `i` (low `w` bits used).
pub fn send(
    hash: &Tccr,
    d: &[u8],
    n: usize,
    m: u32,
    w: u32,
    pads: &[[Block; 2]],
    mut msg: impl FnMut(usize, usize) -> u64,
) -> Result<Vec<u8>> {
    if d.len() != packed_len(n, m) {
        return Err(CmpError::BadMessage {
            what: "OT corrections",
            expected: packed_len(n, m),
            got: d.len(),
        });
    }
    let mut rd = BitReader::new(d);
    let mut out = BitWriter::with_capacity_bits((n * (w as usize)) << m);
    let mu = m as usize;
    let slots = 1usize << m;
    let hashed = (w as usize) << m > 128;
    // Hashed masks: H(p_l^{(j ⊕ d)_l}, j) for every (i, j, l), in one batch.
    let mut masks = Vec::new();
    let mut ds = Vec::with_capacity(n);
    for _ in 0..n {
        ds.push(rd.get(m) as usize);
    }
    if hashed {
        let mut xs = Vec::with_capacity(n * slots * mu);
        let mut tw = Vec::with_capacity(n * slots * mu);
        for (i, &di) in ds.iter().enumerate() {
            let p = &pads[i * mu..(i + 1) * mu];
            for j in 0..slots {
                for (l, pl) in p.iter().enumerate() {
                    xs.push(pl[((j ^ di) >> l) & 1]);
                    tw.push(j as u64);
                }
            }
        }
        masks = vec![Block::ZERO; xs.len()];
        hash.hash_tweaked(&xs, &tw, &mut masks);
        zeroize::Zeroize::zeroize(&mut xs);
    }
    for (i, &di) in ds.iter().enumerate() {
        let p = &pads[i * mu..(i + 1) * mu];
        for j in 0..slots {
            let mut x = msg(i, j);
            if hashed {
                for l in 0..mu {
                    x ^= (masks[(i * slots + j) * mu + l].0 as u64) & mask(w);
                }
            } else {
                let sel = j ^ di;
                for (l, pl) in p.iter().enumerate() {
                    x ^= pad_bits(hash, pl[(sel >> l) & 1], j, m, w);
                }
            }
            out.put(x, w);
        }
    }
    zeroize::Zeroize::zeroize(&mut masks);
    Ok(out.finish())
}

/// Receiver, after the sender's flight: message `v_i` of each OT.
pub fn receive(
    hash: &Tccr,
    cts: &[u8],
    vs: &[u64],
    m: u32,
    w: u32,
    pads: &[Block],
) -> Result<Vec<u64>> {
    let n = vs.len();
    let expected = packed_len(n << m, w);
    if cts.len() != expected {
        return Err(CmpError::BadMessage {
            what: "OT messages",
            expected,
            got: cts.len(),
        });
    }
    let mu = m as usize;
    let per = (w as usize) << m;
    let hashed = per > 128;
    let mut masks = Vec::new();
    if hashed {
        let xs: Vec<Block> = pads[..n * mu].to_vec();
        let tw: Vec<u64> = vs
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, mu))
            .collect();
        masks = vec![Block::ZERO; xs.len()];
        hash.hash_tweaked(&xs, &tw, &mut masks);
    }
    let mut out = Vec::with_capacity(n);
    for (i, &v) in vs.iter().enumerate() {
        // Jump to message v of OT i (offsets in bits; whole-byte starts are
        // not guaranteed, so read through).
        let bit = i * per + v as usize * w as usize;
        let mut rd = BitReader::new(&cts[bit / 8..]);
        rd.get((bit % 8) as u32);
        let mut x = rd.get(w);
        if hashed {
            for l in 0..mu {
                x ^= (masks[i * mu + l].0 as u64) & mask(w);
            }
        } else {
            for pl in &pads[i * mu..(i + 1) * mu] {
                x ^= pad_bits(hash, *pl, v as usize, m, w);
            }
        }
        out.push(x);
    }
    Ok(out)
}
