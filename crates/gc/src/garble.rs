//! Half-gates garbling (Zahur, Rosulek, Evans 2015) with free-XOR and
//! point-and-permute, I/O-free.
//!
//! Who does what: the garbler holds a global offset `Δ` (lsb 1) and, for every
//! input wire, a zero-label `W0` (the one-label is `W0 ⊕ Δ`). [`Garbler`] walks the
//! circuit and appends, per AND gate, a 32-byte table `(T_G, T_E)`; XOR and NOT are
//! free. The evaluator, holding one *active* label per input wire, walks the same
//! circuit with [`Evaluator`], consuming the tables in the same order, and ends with
//! one active label per output; `lsb(label) ⊕ d` is the output bit, where `d` is the
//! lsb of the output's zero-label, the *decoding bit* the garbler sends.
//!
//! Ring outputs (see [`crate::circuit`]) are garbled after the gates as one-input
//! *projection gates*: for a term `(b ? w1 : w0)` on a wire with labels `W_0`,
//! `W_1 = W_0 ⊕ Δ`, let `k_v = H(W_v, j) + w_v` (H truncated to its low 64 bits) and
//! let `W_z` be the label with lsb 0. The garbler's share is `r_t = k_z` and it sends
//! one 64-bit row `k_{1-z} - r_t` (row reduction: the lsb-0 row is implicitly
//! zero). The evaluator holding `W` computes `m = row·lsb(W) - H(W, j)`, which is
//! `w_v - r_t`. The garbler keeps `Σ r_t`, the evaluator gets `value - Σ r_t`.
//!
//! Vectorised: both walk the circuit over a chunk of up to [`CHUNK`] independent
//! instances at once (gate-major, instance-minor), so every AND gate turns into one
//! batch of `4 × chunk` (garbler) or `2 × chunk` (evaluator) hashes, each batch two
//! passes of fixed-key AES ([`FixedKeyHash::tccr`]).
//! Table bytes of a chunk are laid out gate by gate (ANDs, then projections),
//! instance by instance. Every AND gate and projection of every instance has an
//! index `g` unique within one `Δ` (the caller passes the chunk's first index,
//! `gate0`; instance `i`'s gate `t` is `gate0 + i·(n_and + n_proj) + t`, ANDs first)
//! and uses the tweaks `2g` and `2g + 1`.

use crate::circuit::{Circuit, Op, OutBit};
use crate::hash::{from_aes, to_aes, AesBlock, FixedKeyHash};
use crate::{GcError, Result};
use blindfold_core::Block;
use zeroize::Zeroize;

/// Instances garbled side by side.
pub const CHUNK: usize = 64;
/// Bytes of one half-gates table.
pub const AND_TABLE_BYTES: usize = 32;
/// Bytes of one projection gate (one 64-bit row; the other is implicit).
pub const PROJ_TABLE_BYTES: usize = 8;

/// What garbling chunks produces, appended chunk after chunk. The masks (the
/// garbler's output shares) and decoding bits are zeroized on drop; the tables
/// are sent to the evaluator anyway. Take the masks out with `std::mem::take`.
#[derive(Debug, Default)]
pub struct GarbledChunk {
    /// Garbled tables (AND gates, then projection gates, per chunk).
    pub tables: Vec<u8>,
    /// Decoding bits of the bit outputs, instance-major.
    pub decode: Vec<bool>,
    /// The garbler's share `r` of each ring output, instance-major.
    pub masks: Vec<u64>,
}

impl Drop for GarbledChunk {
    fn drop(&mut self) {
        self.masks.zeroize();
        self.decode.zeroize();
    }
}

/// What evaluating chunks produces, appended chunk after chunk; zeroized on
/// drop (take the outputs out with `std::mem::take`).
#[derive(Debug, Default)]
pub struct EvaluatedChunk {
    /// Decoded bit outputs, instance-major.
    pub bits: Vec<bool>,
    /// The evaluator's share `value - r` of each ring output, instance-major.
    pub ring: Vec<u64>,
}

impl Drop for EvaluatedChunk {
    fn drop(&mut self) {
        self.bits.zeroize();
        self.ring.zeroize();
    }
}

#[inline(always)]
fn sel(x: u128, bit: u128) -> u128 {
    x & 0u128.wrapping_sub(bit & 1)
}

/// The garbler's walk over chunks of instances. `Δ`, the slot storage (every
/// wire's zero-label of the last chunk) and the hash buffer are zeroized on drop.
pub struct Garbler<'c> {
    circuit: &'c Circuit,
    delta: u128,
    hash: FixedKeyHash,
    slots: Vec<u128>,
    /// Hash inputs and outputs of one gate row (4 per instance).
    buf: Vec<AesBlock>,
}

impl Zeroize for Garbler<'_> {
    fn zeroize(&mut self) {
        self.delta.zeroize();
        self.slots.zeroize();
        for b in self.buf.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }
}

impl Drop for Garbler<'_> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<'c> Garbler<'c> {
    /// A garbler with global offset `delta`; its lsb is forced to 1.
    pub fn new(circuit: &'c Circuit, delta: Block) -> Garbler<'c> {
        let delta = delta.0 | 1;
        Garbler {
            circuit,
            delta,
            hash: FixedKeyHash::new(),
            slots: vec![0; circuit.n_slots() * CHUNK],
            buf: vec![AesBlock::default(); 4 * CHUNK],
        }
    }

    pub fn delta(&self) -> Block {
        Block(self.delta)
    }

    /// Garble a chunk of `b <= CHUNK` instances whose first AND gate has session-wide
    /// index `gate0` (gate `t` of instance `i` has index `gate0 + i·(n_and + n_proj) + t` and
    /// tweaks twice that, plus one; the caller never reuses an index under one `Δ`). `g0` and `e0` hold the
    /// zero-labels of the garbler's and evaluator's inputs, slot-major (the `b`
    /// labels of input wire 0, then of wire 1, ...: `n_garbler_inputs × b` and
    /// `n_evaluator_inputs × b`). Appends
    /// `b × n_and × 32` table bytes to `tables` and `b × n_outputs` decoding bits
    /// (instance-major) to `out.decode`, then garbles the ring outputs' projection
    /// gates (8 table bytes each, after the AND tables of the chunk), appending the
    /// garbler's share `r` of each ring output (instance-major) to `out.masks`.
    pub fn garble_chunk(&mut self, gate0: u64, g0: &[Block], e0: &[Block], out: &mut GarbledChunk) {
        let GarbledChunk {
            tables,
            decode,
            masks,
        } = out;
        let c = self.circuit;
        let (ng, ne) = (c.n_garbler_inputs(), c.n_evaluator_inputs());
        let b = g0
            .len()
            .checked_div(ng)
            .unwrap_or_else(|| e0.len().checked_div(ne).unwrap_or(0));
        assert!(b <= CHUNK && g0.len() == b * ng && e0.len() == b * ne);
        let Garbler {
            slots: s,
            buf,
            hash,
            delta: d,
            ..
        } = self;
        let d = *d;
        load_inputs(s, g0, e0, b);
        let n_and = c.n_and() as u64;
        tables.reserve(b * c.table_bytes());
        let n_tw = (c.n_and() + c.n_proj()) as u64;
        let mut t = 0u64;
        let mut row = [0u8; AND_TABLE_BYTES * CHUNK];
        let (mut ra, mut rb, mut ro) = ([0u128; CHUNK], [0u128; CHUNK], [0u128; CHUNK]);
        for op in c.ops() {
            match *op {
                Op::Xor(x, y, o) => xor_rows(s, x, y, o, b),
                Op::Not(x, o) => not_rows(s, x, o, d, b),
                Op::And(x, y, o) => {
                    let (x, y, o) = (x as usize * CHUNK, y as usize * CHUNK, o as usize * CHUNK);
                    ra[..b].copy_from_slice(&s[x..x + b]);
                    rb[..b].copy_from_slice(&s[y..y + b]);
                    for ((q, &a0), &b0) in buf.chunks_exact_mut(4).zip(&ra[..b]).zip(&rb[..b]) {
                        q.copy_from_slice(&[a0, a0 ^ d, b0, b0 ^ d].map(to_aes));
                    }
                    // Instance i's gate uses tweak j_i for the first input's two
                    // labels and j_i + 1 for the second's.
                    let (j0, step) = (2 * (gate0 + t), 2 * n_tw);
                    hash.tccr(&mut buf[..4 * b], |k| {
                        j0 + (k / 4) as u64 * step + ((k / 2) & 1) as u64
                    });
                    for ((((q, &a0), &b0), w), tab) in buf
                        .chunks_exact(4)
                        .zip(&ra[..b])
                        .zip(&rb[..b])
                        .zip(ro.iter_mut())
                        .zip(row.chunks_exact_mut(AND_TABLE_BYTES))
                    {
                        let [h0, h1, h2, h3] = [&q[0], &q[1], &q[2], &q[3]].map(from_aes);
                        let (pa, pb) = (a0 & 1, b0 & 1);
                        let tg = h0 ^ h1 ^ sel(d, pb);
                        let wg = h0 ^ sel(tg, pa);
                        let te = h2 ^ h3 ^ a0;
                        let we = h2 ^ sel(te ^ a0, pb);
                        *w = wg ^ we;
                        tab[..16].copy_from_slice(&tg.to_le_bytes());
                        tab[16..].copy_from_slice(&te.to_le_bytes());
                    }
                    s[o..o + b].copy_from_slice(&ro[..b]);
                    tables.extend_from_slice(&row[..AND_TABLE_BYTES * b]);
                    t += 1;
                }
            }
        }
        for i in 0..b {
            for o in c.output_bits() {
                decode.push(match *o {
                    OutBit::Const(v) => v,
                    OutBit::Slot(x) => s[x as usize * CHUNK + i] & 1 == 1,
                });
            }
        }
        // Projection gates of the ring outputs.
        let n_ring = c.ring_outputs().len();
        let m0 = masks.len();
        masks.resize(m0 + b * n_ring, 0);
        let mut p = n_and;
        for (o, terms) in c.ring_outputs().iter().enumerate() {
            for term in terms {
                let OutBit::Slot(x) = term.bit else { continue };
                let x = x as usize * CHUNK;
                for (q, &w) in buf.chunks_exact_mut(2).zip(&s[x..x + b]) {
                    q.copy_from_slice(&[w, w ^ d].map(to_aes));
                }
                let (j0, step) = (2 * (gate0 + p), 2 * n_tw);
                hash.tccr(&mut buf[..2 * b], |k| j0 + (k / 2) as u64 * step);
                for (i, ((q, &w), tab)) in buf
                    .chunks_exact(2)
                    .zip(&s[x..x + b])
                    .zip(row.chunks_exact_mut(PROJ_TABLE_BYTES))
                    .enumerate()
                {
                    let (h0, h1) = (from_aes(&q[0]) as u64, from_aes(&q[1]) as u64);
                    // Row reduction: the label with lsb 0 opens the implicit row 0,
                    // so r_t is chosen to make that row zero; the other label's row
                    // is sent. Label `W0` has lsb `p`.
                    let (k0, k1) = (h0.wrapping_add(term.w0), h1.wrapping_add(term.w1));
                    let flip = 0u64.wrapping_sub((w & 1) as u64);
                    let rt = k0 ^ ((k0 ^ k1) & flip); // key of the lsb-0 label
                    let other = k1 ^ ((k0 ^ k1) & flip); // key of the lsb-1 label
                    tab.copy_from_slice(&other.wrapping_sub(rt).to_le_bytes());
                    let m = &mut masks[m0 + i * n_ring + o];
                    *m = m.wrapping_add(rt);
                }
                tables.extend_from_slice(&row[..PROJ_TABLE_BYTES * b]);
                p += 1;
            }
        }
    }

    /// Zero-labels of the outputs of the last garbled chunk (instance `i` of it),
    /// for tests that check labels rather than bits.
    pub fn output_zero_labels(&self, i: usize) -> Vec<Option<Block>> {
        self.circuit
            .output_bits()
            .iter()
            .map(|o| match *o {
                OutBit::Const(_) => None,
                OutBit::Slot(x) => Some(Block(self.slots[x as usize * CHUNK + i])),
            })
            .collect()
    }
}

/// The evaluator's walk over chunks of instances. The slot storage (active
/// labels of the last chunk) and the hash buffer are zeroized on drop.
pub struct Evaluator<'c> {
    circuit: &'c Circuit,
    hash: FixedKeyHash,
    slots: Vec<u128>,
    /// Hash inputs and outputs of one gate row (2 per instance).
    buf: Vec<AesBlock>,
}

impl Zeroize for Evaluator<'_> {
    fn zeroize(&mut self) {
        self.slots.zeroize();
        for b in self.buf.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }
}

impl Drop for Evaluator<'_> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<'c> Evaluator<'c> {
    pub fn new(circuit: &'c Circuit) -> Evaluator<'c> {
        Evaluator {
            circuit,
            hash: FixedKeyHash::new(),
            slots: vec![0; circuit.n_slots() * CHUNK],
            buf: vec![AesBlock::default(); 2 * CHUNK],
        }
    }

    /// Bytes of tables a chunk of `b` instances consumes.
    pub fn table_bytes(&self, b: usize) -> usize {
        b * self.circuit.table_bytes()
    }

    /// Evaluate a chunk of `b` instances (first AND gate index `gate0`, as in
    /// [`Garbler::garble_chunk`]) from active input labels
    /// (slot-major, as in [`Garbler::garble_chunk`]) and exactly
    /// [`Evaluator::table_bytes`]`(b)` table bytes; appends the output bits, decoded
    /// with `decode` (`b × n_outputs`, instance-major), to `out.bits` and the
    /// evaluator's shares of the ring outputs to `out.ring`.
    pub fn eval_chunk(
        &mut self,
        gate0: u64,
        g: &[Block],
        e: &[Block],
        tables: &[u8],
        decode: &[bool],
        out: &mut EvaluatedChunk,
    ) -> Result<()> {
        let c = self.circuit;
        let (ng, ne, no) = (c.n_garbler_inputs(), c.n_evaluator_inputs(), c.n_outputs());
        let b = g
            .len()
            .checked_div(ng)
            .unwrap_or_else(|| e.len().checked_div(ne).unwrap_or(0));
        if b > CHUNK || g.len() != b * ng || e.len() != b * ne || decode.len() != b * no {
            return Err(GcError::Length {
                what: "evaluator chunk inputs",
                expected: b * (ng + ne + no),
                got: g.len() + e.len() + decode.len(),
            });
        }
        if tables.len() != self.table_bytes(b) {
            return Err(GcError::Length {
                what: "garbled tables of a chunk",
                expected: self.table_bytes(b),
                got: tables.len(),
            });
        }
        let Evaluator {
            slots: s,
            buf,
            hash,
            ..
        } = self;
        load_inputs(s, g, e, b);
        let n_and = c.n_and() as u64;
        let n_tw = (c.n_and() + c.n_proj()) as u64;
        let mut t = 0u64;
        let (mut ra, mut rb, mut ro) = ([0u128; CHUNK], [0u128; CHUNK], [0u128; CHUNK]);
        // Lengths were checked above: exactly one row of b tables per gate.
        let (and_tables, proj_tables) = tables.split_at(c.n_and() * AND_TABLE_BYTES * b);
        let mut rows = and_tables.chunks_exact(AND_TABLE_BYTES * b);
        for op in c.ops() {
            match *op {
                Op::Xor(x, y, o) => xor_rows(s, x, y, o, b),
                Op::Not(x, o) => {
                    if x != o {
                        let (x, o) = (x as usize * CHUNK, o as usize * CHUNK);
                        s.copy_within(x..x + b, o);
                    }
                }
                Op::And(x, y, o) => {
                    let (x, y, o) = (x as usize * CHUNK, y as usize * CHUNK, o as usize * CHUNK);
                    ra[..b].copy_from_slice(&s[x..x + b]);
                    rb[..b].copy_from_slice(&s[y..y + b]);
                    for ((q, &a), &bb) in buf.chunks_exact_mut(2).zip(&ra[..b]).zip(&rb[..b]) {
                        q.copy_from_slice(&[a, bb].map(to_aes));
                    }
                    let (j0, step) = (2 * (gate0 + t), 2 * n_tw);
                    hash.tccr(&mut buf[..2 * b], |k| {
                        j0 + (k / 2) as u64 * step + (k & 1) as u64
                    });
                    let row = rows.next().ok_or(GcError::Truncated)?;
                    for ((((q, &a), &bb), w), tab) in buf
                        .chunks_exact(2)
                        .zip(&ra[..b])
                        .zip(&rb[..b])
                        .zip(ro.iter_mut())
                        .zip(row.chunks_exact(AND_TABLE_BYTES))
                    {
                        let tg = u128::from_le_bytes(tab[..16].try_into().expect("16 bytes"));
                        let te = u128::from_le_bytes(tab[16..].try_into().expect("16 bytes"));
                        let (ha, hb) = (from_aes(&q[0]), from_aes(&q[1]));
                        *w = ha ^ sel(tg, a) ^ hb ^ sel(te ^ a, bb);
                    }
                    s[o..o + b].copy_from_slice(&ro[..b]);
                    t += 1;
                }
            }
        }
        for i in 0..b {
            for (k, o) in c.output_bits().iter().enumerate() {
                let d = decode[i * no + k];
                out.bits.push(match *o {
                    OutBit::Const(v) => v,
                    OutBit::Slot(x) => (s[x as usize * CHUNK + i] & 1 == 1) ^ d,
                });
            }
        }
        // Projection gates of the ring outputs.
        let n_ring = c.ring_outputs().len();
        let m0 = out.ring.len();
        out.ring.resize(m0 + b * n_ring, 0);
        let mut prow = proj_tables.chunks_exact(PROJ_TABLE_BYTES * b);
        let mut p = n_and;
        for (o, terms) in c.ring_outputs().iter().enumerate() {
            for term in terms {
                let x = match term.bit {
                    OutBit::Const(v) => {
                        let w = if v { term.w1 } else { term.w0 };
                        for i in 0..b {
                            let m = &mut out.ring[m0 + i * n_ring + o];
                            *m = m.wrapping_add(w);
                        }
                        continue;
                    }
                    OutBit::Slot(x) => x as usize * CHUNK,
                };
                for (q, &w) in buf.iter_mut().zip(&s[x..x + b]) {
                    *q = to_aes(w);
                }
                let (j0, step) = (2 * (gate0 + p), 2 * n_tw);
                hash.tccr(&mut buf[..b], |k| j0 + k as u64 * step);
                let row = prow.next().ok_or(GcError::Truncated)?;
                for (i, ((q, &w), tab)) in buf
                    .iter()
                    .zip(&s[x..x + b])
                    .zip(row.chunks_exact(PROJ_TABLE_BYTES))
                    .enumerate()
                {
                    let h = from_aes(q) as u64;
                    // lsb 0: the implicit zero row; lsb 1: the sent row.
                    let ct = u64::from_le_bytes(tab.try_into().expect("8 bytes"))
                        & 0u64.wrapping_sub((w & 1) as u64);
                    let m = &mut out.ring[m0 + i * n_ring + o];
                    *m = m.wrapping_add(ct.wrapping_sub(h));
                }
                p += 1;
            }
        }
        Ok(())
    }
}

/// Copy slot-major input labels (`b` per input wire) into the slot rows.
fn load_inputs(s: &mut [u128], g: &[Block], e: &[Block], b: usize) {
    for (row, src) in s
        .chunks_exact_mut(CHUNK)
        .zip(g.chunks_exact(b).chain(e.chunks_exact(b)))
    {
        for (d, l) in row.iter_mut().zip(src) {
            *d = l.0;
        }
    }
}

/// Row `d` (mutable) and row `r` (shared) of the slot storage, `d != r`.
#[inline(always)]
fn two_rows(s: &mut [u128], d: usize, r: usize, b: usize) -> (&mut [u128], &[u128]) {
    if d < r {
        let (lo, hi) = s.split_at_mut(r);
        (&mut lo[d..d + b], &hi[..b])
    } else {
        let (lo, hi) = s.split_at_mut(d);
        (&mut hi[..b], &lo[r..r + b])
    }
}

/// `row o = row x ^ row y` over `b` instances (`o` may equal `x` or `y`; `x != y`
/// because the builder folds `w ^ w`).
#[inline(always)]
fn xor_rows(s: &mut [u128], x: u32, y: u32, o: u32, b: usize) {
    let (src, dst) = if o == x {
        (y, o)
    } else if o == y {
        (x, o)
    } else {
        let (x, o) = (x as usize * CHUNK, o as usize * CHUNK);
        s.copy_within(x..x + b, o);
        (y, o as u32 / CHUNK as u32)
    };
    let (d, r) = two_rows(s, dst as usize * CHUNK, src as usize * CHUNK, b);
    for (a, c) in d.iter_mut().zip(r) {
        *a ^= c;
    }
}

/// `row o = row x ^ d` over `b` instances (the garbler's NOT).
#[inline(always)]
fn not_rows(s: &mut [u128], x: u32, o: u32, d: u128, b: usize) {
    let (x, o) = (x as usize * CHUNK, o as usize * CHUNK);
    if x != o {
        s.copy_within(x..x + b, o);
    }
    for a in s[o..o + b].iter_mut() {
        *a ^= d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::{Bit, Builder, Owner};
    use blindfold_core::Prg;

    #[test]
    fn garbled_equals_plain_on_a_random_circuit() {
        let mut prg = Prg::from_seed([3; 16]);
        let mut bld = Builder::new();
        let mut wires = bld.inputs(Owner::Garbler, 8);
        wires.extend(bld.inputs(Owner::Evaluator, 8));
        for k in 0..300 {
            let r = prg.gen_u64() as usize;
            let (a, b) = (wires[r % wires.len()], wires[(r >> 20) % wires.len()]);
            let w = match k % 3 {
                0 => bld.and(a, b),
                1 => bld.xor(a, b),
                _ => bld.not(a),
            };
            wires.push(w);
        }
        let outs: Vec<_> = wires[wires.len() - 40..].to_vec();
        bld.outputs(&outs);
        bld.output_word(&wires[wires.len() - 70..wires.len() - 6]);
        bld.output_ring(&[
            (wires[20], 5, 9),
            (Bit::One, 3, 1000),
            (wires[30], u64::MAX, 1),
        ]);
        let c = bld.finish();
        let delta = prg.gen_block();
        let mut g = Garbler::new(&c, delta);
        let d = g.delta().0;
        let b = 37;
        let g0: Vec<Block> = (0..b * 8).map(|_| prg.gen_block()).collect();
        let e0: Vec<Block> = (0..b * 8).map(|_| prg.gen_block()).collect();
        let gx: Vec<bool> = (0..b * 8).map(|_| prg.gen_u64() & 1 == 1).collect();
        let ex: Vec<bool> = (0..b * 8).map(|_| prg.gen_u64() & 1 == 1).collect();
        let mut gc = GarbledChunk::default();
        g.garble_chunk(5, &g0, &e0, &mut gc);
        let (tables, decode) = (&gc.tables, &gc.decode);
        let ga: Vec<Block> = g0
            .iter()
            .zip(&gx)
            .map(|(l, &x)| Block(l.0 ^ sel(d, x as u128)))
            .collect();
        let ea: Vec<Block> = e0
            .iter()
            .zip(&ex)
            .map(|(l, &x)| Block(l.0 ^ sel(d, x as u128)))
            .collect();
        let mut ev = Evaluator::new(&c);
        let mut out = EvaluatedChunk::default();
        ev.eval_chunk(5, &ga, &ea, tables, decode, &mut out)
            .unwrap();
        let no = c.n_outputs();
        for i in 0..b {
            // Slot-major inputs: wire k of instance i is at k * b + i.
            let gi: Vec<bool> = (0..8).map(|k| gx[k * b + i]).collect();
            let ei: Vec<bool> = (0..8).map(|k| ex[k * b + i]).collect();
            let want = c.eval_plain(&gi, &ei);
            assert_eq!(&out.bits[i * no..(i + 1) * no], &want[..], "instance {i}");
            let ring = c.eval_plain_ring(&gi, &ei);
            for (o, v) in ring.iter().enumerate() {
                let (r, z) = (gc.masks[i * 2 + o], out.ring[i * 2 + o]);
                assert_eq!(r.wrapping_add(z), *v, "ring output {o} of instance {i}");
            }
        }
        // Zeroizing (what Drop runs) wipes Δ and every label held.
        g.zeroize();
        assert_eq!(g.delta, 0);
        assert!(g.slots.is_empty() && g.buf.iter().all(|b| b.iter().all(|&x| x == 0)));
        let mut ev2 = Evaluator::new(&c);
        let mut out3 = EvaluatedChunk::default();
        ev2.eval_chunk(5, &ga, &ea, tables, decode, &mut out3)
            .unwrap();
        assert!(ev2.slots.iter().any(|&l| l != 0));
        ev2.zeroize();
        assert!(ev2.slots.is_empty() && ev2.buf.iter().all(|b| b.iter().all(|&x| x == 0)));
        // Truncated tables are an error, not a panic.
        let mut out2 = EvaluatedChunk::default();
        assert!(ev
            .eval_chunk(5, &ga, &ea, &tables[..tables.len() - 1], decode, &mut out2)
            .is_err());
    }
}
