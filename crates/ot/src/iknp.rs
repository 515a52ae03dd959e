//! IKNP OT extension (Ishai–Kilian–Nissim–Petrank 2003), semi-honest, with the
//! sender's base-OT choices set to a caller-chosen global offset `Δ`.
//!
//! ```text
//!  CotSender (Δ)                                     CotReceiver (choices b)
//!  setup:   base OT receiver, choices Δ_j  ◀──────▶  base OT sender, seeds (k_j^0, k_j^1)
//!           PRG_j = AES-CTR(k_j^{Δ_j})               PRG_j^0, PRG_j^1 (state kept across
//!                                                     extensions: counters never restart)
//!  extend m OTs (m padded to a multiple of 128), per chunk of ≤ CHUNK:
//!                                                    t^0_j = PRG_j^0(m), t^1_j = PRG_j^1(m)
//!           ◀───────── u_j = t^0_j ⊕ t^1_j ⊕ b, j = 0..127 ──────────  (16 bytes per OT)
//!  q_j = PRG_j(m) ⊕ Δ_j·u_j = t^0_j ⊕ Δ_j·b
//!  q_i = row i of transpose(q)                       t_i = row i of transpose(t^0)
//!                                  t_i = q_i ⊕ b_i·Δ
//!  random OT:  m0_i = H(q_i, i), m1_i = H(q_i ⊕ Δ, i)       m_{b_i} = H(t_i, i)
//!  chosen OT:  ───── (x0_i ⊕ m0_i, x1_i ⊕ m1_i) ─────▶      x_{b_i} = c_{b_i} ⊕ m_{b_i}
//!  u64 COT:    r_i = lo64(m0_i), ── d_i = lo64(m1_i) − r_i − x_i ──▶  y_i = lo64(m_{b_i}) − b_i·d_i
//!                                                                    = r_i + b_i·x_i
//! ```
//!
//! `i` is the OT's index in the session (it keeps counting over extensions), so
//! hash tweaks never repeat. Chunks flow from receiver to sender without waiting,
//! so the two parties work in parallel and a million OTs never need one giant
//! matrix.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::hash::Tccr;
use crate::transpose::transpose_128xn;
use crate::{base, check_len, Block, Channel, OtError, Result};

/// OTs per extension chunk (one message of `16 * CHUNK` bytes).
pub const CHUNK: usize = 1 << 16;

/// Number of base OTs (the security parameter).
const KAPPA: usize = 128;
const PRG_BATCH: usize = 32;

/// AES-128-CTR stream of one matrix column; the counter survives extensions.
/// The key schedule (the base-OT key) is zeroized on drop by the `aes` crate's
/// `zeroize` feature.
struct ColumnPrg {
    aes: Aes128,
    ctr: u128,
}

impl ColumnPrg {
    fn new(seed: Block) -> ColumnPrg {
        ColumnPrg {
            aes: Aes128::new(GenericArray::from_slice(&seed.to_bytes())),
            ctr: 0,
        }
    }

    /// Fill `out` (a multiple of 16 bytes) with the next keystream bytes.
    fn fill(&mut self, out: &mut [u8]) {
        debug_assert_eq!(out.len() % 16, 0);
        let mut blocks = [GenericArray::default(); PRG_BATCH];
        for chunk in out.chunks_mut(16 * PRG_BATCH) {
            let n = chunk.len() / 16;
            for b in blocks[..n].iter_mut() {
                *b = GenericArray::from(self.ctr.to_le_bytes());
                self.ctr = self.ctr.wrapping_add(1);
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for (dst, b) in chunk.chunks_exact_mut(16).zip(&blocks[..n]) {
                dst.copy_from_slice(b);
            }
        }
        for b in blocks.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }
}

fn padded(m: usize) -> usize {
    m.div_ceil(KAPPA) * KAPPA
}

fn pack_bits(bits: &[bool], bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    for (o, c) in out.iter_mut().zip(bits.chunks(8)) {
        let mut v = 0u8;
        for (k, &b) in c.iter().enumerate() {
            v |= (b as u8) << k;
        }
        *o = v;
    }
    out
}

/// Transpose into `out` (length `m`), through `scratch` when `m` is not padded.
fn transpose_into(matrix: &[u8], rb: usize, out: &mut [Block], scratch: &mut Vec<Block>) {
    if out.len() == rb * 8 {
        transpose_128xn(matrix, rb, out);
    } else {
        scratch.resize(rb * 8, Block::ZERO);
        transpose_128xn(matrix, rb, scratch);
        out.copy_from_slice(&scratch[..out.len()]);
    }
}

/// The IKNP sender: holds `Δ`, obtains `q_i` (the receiver gets `q_i ⊕ b_i·Δ`).
pub struct CotSender {
    delta: Block,
    cols: Vec<ColumnPrg>,
    index: u64,
    hash: Tccr,
    matrix: Vec<u8>,
    scratch: Vec<Block>,
}

/// Zeroizes `Δ`, the extension matrix and the transpose scratch (the `q_i` of
/// a partial chunk). The column PRGs zeroize their own key schedules; the OT
/// index and the hash key are public.
impl Zeroize for CotSender {
    fn zeroize(&mut self) {
        self.delta.zeroize();
        self.matrix.zeroize();
        self.scratch.zeroize();
    }
}

impl Drop for CotSender {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl CotSender {
    /// Base OTs over `ch` (this side is the base-OT *receiver*, choosing the bits
    /// of `delta`). One flight each way.
    pub fn setup(
        ch: &mut impl Channel,
        delta: Block,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CotSender> {
        let choices: Zeroizing<Vec<bool>> =
            Zeroizing::new((0..KAPPA).map(|j| (delta.0 >> j) & 1 == 1).collect());
        let keys = Zeroizing::new(base::receive_random(ch, &choices, rng)?);
        CotSender::from_base_keys(delta, &keys)
    }

    /// From base-OT outputs `k_j^{Δ_j}`, `j < 128`, however obtained.
    pub fn from_base_keys(delta: Block, keys: &[Block]) -> Result<CotSender> {
        if keys.len() != KAPPA {
            return Err(OtError::InvalidArgument(
                "IKNP needs exactly 128 base OT keys",
            ));
        }
        Ok(CotSender {
            delta,
            cols: keys.iter().map(|&k| ColumnPrg::new(k)).collect(),
            index: 0,
            hash: Tccr::new(),
            matrix: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The global offset.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// OTs produced so far on this session (the next OT's hash tweak).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// I/O-free extension step: from the receiver's message `u` for `out.len()`
    /// OTs, write `q_i` to `out`.
    pub fn extend_core(&mut self, u: &[u8], out: &mut [Block]) -> Result<()> {
        let m = out.len();
        let rb = padded(m) / 8;
        check_len("IKNP extension matrix", u, KAPPA * rb)?;
        self.matrix.resize(KAPPA * rb, 0);
        for (j, ((row, uj), prg)) in self
            .matrix
            .chunks_exact_mut(rb)
            .zip(u.chunks_exact(rb))
            .zip(self.cols.iter_mut())
            .enumerate()
        {
            prg.fill(row);
            // Constant time in the bit of Δ.
            let mask = 0u8.wrapping_sub(((self.delta.0 >> j) & 1) as u8);
            for (r, &x) in row.iter_mut().zip(uj) {
                *r ^= x & mask;
            }
        }
        transpose_into(&self.matrix, rb, out, &mut self.scratch);
        self.index += m as u64;
        Ok(())
    }

    /// Correlated OT: fill `out` with `q_i`; the receiver gets `q_i ⊕ b_i·Δ`.
    pub fn send_correlated_into(&mut self, ch: &mut impl Channel, out: &mut [Block]) -> Result<()> {
        for chunk in out.chunks_mut(CHUNK) {
            let u = ch.recv()?;
            self.extend_core(&u, chunk)?;
        }
        Ok(())
    }

    /// Correlated OT: `n` blocks `q_i` (the zero labels, when `Δ` is the free-XOR
    /// offset; the receiver holds the label of its choice bit).
    pub fn send_correlated(&mut self, ch: &mut impl Channel, n: usize) -> Result<Vec<Block>> {
        let mut q = vec![Block::ZERO; n];
        self.send_correlated_into(ch, &mut q)?;
        Ok(q)
    }

    /// Random OT: `n` pairs `(m0_i, m1_i)`; the receiver gets `m_{b_i}`. `Δ`
    /// must be secret and (all but known bits) uniform.
    pub fn send_random(&mut self, ch: &mut impl Channel, n: usize) -> Result<Vec<(Block, Block)>> {
        let (h0, h1) = self.random_halves(ch, n)?;
        Ok(h0.into_iter().zip(h1).collect())
    }

    fn random_halves(
        &mut self,
        ch: &mut impl Channel,
        n: usize,
    ) -> Result<(Vec<Block>, Vec<Block>)> {
        let tweak0 = self.index;
        let mut q = Zeroizing::new(self.send_correlated(ch, n)?);
        let mut h0 = vec![Block::ZERO; n];
        let mut h1 = vec![Block::ZERO; n];
        self.hash.hash_many(&q, tweak0, &mut h0);
        for x in q.iter_mut() {
            *x ^= self.delta;
        }
        self.hash.hash_many(&q, tweak0, &mut h1);
        Ok((h0, h1))
    }

    /// Chosen-message OT: the receiver learns `msgs[i].b_i` and nothing else.
    /// Two flights (receiver → sender, sender → receiver).
    pub fn send_chosen(&mut self, ch: &mut impl Channel, msgs: &[(Block, Block)]) -> Result<()> {
        let (h0, h1) = self.random_halves(ch, msgs.len())?;
        let (h0, h1) = (Zeroizing::new(h0), Zeroizing::new(h1));
        let mut ct = Vec::with_capacity(32 * msgs.len());
        for ((&(x0, x1), a), b) in msgs.iter().zip(h0.iter()).zip(h1.iter()) {
            ct.extend_from_slice(&(x0 ^ *a).to_bytes());
            ct.extend_from_slice(&(x1 ^ *b).to_bytes());
        }
        ch.send_vec(ct)?;
        ch.flush()?;
        Ok(())
    }

    /// Additively correlated OT over `Z_2^64` (Gilboa): for each `x_i` the sender
    /// gets a uniform `r_i` and the receiver `r_i + b_i·x_i` (wrapping). Two
    /// flights; 16 + 8 bytes per OT.
    ///
    /// A Gilboa product `a·b` with `a` held here and `b` bitwise there: call with
    /// `x_k = a << k` for `k < 64` and the receiver's bits `b_k`; then
    /// `Σ_k (receiver output_k) − Σ_k r_k = a·b`.
    pub fn send_correlated_u64(&mut self, ch: &mut impl Channel, xs: &[u64]) -> Result<Vec<u64>> {
        let (h0, h1) = self.random_halves(ch, xs.len())?;
        let (h0, h1) = (Zeroizing::new(h0), Zeroizing::new(h1));
        let mut r = Vec::with_capacity(xs.len());
        let mut d = Vec::with_capacity(xs.len());
        for ((&x, a), b) in xs.iter().zip(h0.iter()).zip(h1.iter()) {
            let ri = a.0 as u64;
            r.push(ri);
            d.push((b.0 as u64).wrapping_sub(ri).wrapping_sub(x));
        }
        ch.send_u64s(&d)?;
        ch.flush()?;
        Ok(r)
    }
}

/// The IKNP receiver: with choice bits `b_i`, obtains `t_i = q_i ⊕ b_i·Δ`.
pub struct CotReceiver {
    cols: Vec<(ColumnPrg, ColumnPrg)>,
    index: u64,
    hash: Tccr,
    matrix: Vec<u8>,
    row: Vec<u8>,
    scratch: Vec<Block>,
}

/// Zeroizes the extension matrix (`t^0`), the row buffer and the transpose
/// scratch. The column PRGs (both base-OT keys of each column) zeroize their own
/// key schedules; the OT index and the hash key are public.
impl Zeroize for CotReceiver {
    fn zeroize(&mut self) {
        self.matrix.zeroize();
        self.row.zeroize();
        self.scratch.zeroize();
    }
}

impl Drop for CotReceiver {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl CotReceiver {
    /// Base OTs over `ch` (this side is the base-OT *sender*). One flight each way.
    pub fn setup(
        ch: &mut impl Channel,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CotReceiver> {
        let keys = Zeroizing::new(base::send_random(ch, KAPPA, rng)?);
        CotReceiver::from_base_keys(&keys)
    }

    /// From base-OT outputs `(k_j^0, k_j^1)`, `j < 128`, however obtained.
    pub fn from_base_keys(keys: &[(Block, Block)]) -> Result<CotReceiver> {
        if keys.len() != KAPPA {
            return Err(OtError::InvalidArgument(
                "IKNP needs exactly 128 base OT key pairs",
            ));
        }
        Ok(CotReceiver {
            cols: keys
                .iter()
                .map(|&(k0, k1)| (ColumnPrg::new(k0), ColumnPrg::new(k1)))
                .collect(),
            index: 0,
            hash: Tccr::new(),
            matrix: Vec::new(),
            row: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// OTs produced so far on this session.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// I/O-free extension step: for `choices` (one per OT, `out.len()` of them)
    /// write `t_i` to `out` and return the message `u` for the sender.
    pub fn extend_core(&mut self, choices: &[bool], out: &mut [Block]) -> Result<Vec<u8>> {
        if choices.len() != out.len() {
            return Err(OtError::InvalidArgument(
                "choices and output differ in length",
            ));
        }
        let rb = padded(out.len()) / 8;
        let mut r = pack_bits(choices, rb);
        let mut u = vec![0u8; KAPPA * rb];
        self.matrix.resize(KAPPA * rb, 0);
        self.row.resize(rb, 0);
        for ((t0, uj), (p0, p1)) in self
            .matrix
            .chunks_exact_mut(rb)
            .zip(u.chunks_exact_mut(rb))
            .zip(self.cols.iter_mut())
        {
            p0.fill(t0);
            p1.fill(uj);
            for ((x, &a), &b) in uj.iter_mut().zip(t0.iter()).zip(&r) {
                *x ^= a ^ b;
            }
        }
        transpose_into(&self.matrix, rb, out, &mut self.scratch);
        self.index += out.len() as u64;
        r.zeroize();
        Ok(u)
    }

    /// Correlated OT: fill `out` with `t_i = q_i ⊕ b_i·Δ`.
    pub fn receive_correlated_into(
        &mut self,
        ch: &mut impl Channel,
        choices: &[bool],
        out: &mut [Block],
    ) -> Result<()> {
        if choices.len() != out.len() {
            return Err(OtError::InvalidArgument(
                "choices and output differ in length",
            ));
        }
        for (c, o) in choices.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let u = self.extend_core(c, o)?;
            ch.send_vec(u)?;
            ch.flush()?;
        }
        Ok(())
    }

    /// Correlated OT: `t_i = q_i ⊕ b_i·Δ` for each choice bit.
    pub fn receive_correlated(
        &mut self,
        ch: &mut impl Channel,
        choices: &[bool],
    ) -> Result<Vec<Block>> {
        let mut t = vec![Block::ZERO; choices.len()];
        self.receive_correlated_into(ch, choices, &mut t)?;
        Ok(t)
    }

    /// Random OT: `m_{b_i}` for each choice bit.
    pub fn receive_random(
        &mut self,
        ch: &mut impl Channel,
        choices: &[bool],
    ) -> Result<Vec<Block>> {
        let tweak0 = self.index;
        let t = Zeroizing::new(self.receive_correlated(ch, choices)?);
        let mut h = vec![Block::ZERO; t.len()];
        self.hash.hash_many(&t, tweak0, &mut h);
        Ok(h)
    }

    /// Chosen-message OT: `x_{b_i}` of the sender's pairs.
    pub fn receive_chosen(
        &mut self,
        ch: &mut impl Channel,
        choices: &[bool],
    ) -> Result<Vec<Block>> {
        let h = Zeroizing::new(self.receive_random(ch, choices)?);
        let ct = ch.recv()?;
        check_len("chosen OT ciphertexts", &ct, 32 * choices.len())?;
        Ok(ct
            .chunks_exact(32)
            .zip(h.iter())
            .zip(choices)
            .map(|((c, k), &b)| {
                let mut w = [0u8; 16];
                w.copy_from_slice(&c[16 * b as usize..16 * b as usize + 16]);
                Block::from_bytes(w) ^ *k
            })
            .collect())
    }

    /// Additively correlated OT over `Z_2^64`: `r_i + b_i·x_i` (see
    /// [`CotSender::send_correlated_u64`]).
    pub fn receive_correlated_u64(
        &mut self,
        ch: &mut impl Channel,
        choices: &[bool],
    ) -> Result<Vec<u64>> {
        let h = Zeroizing::new(self.receive_random(ch, choices)?);
        let d = ch.recv_u64s(choices.len())?;
        Ok(h.iter()
            .zip(d)
            .zip(choices)
            .map(|((k, di), &b)| (k.0 as u64).wrapping_sub(di & 0u64.wrapping_sub(b as u64)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender and receiver from fixed base keys, one extension of 200 OTs
    /// (not a multiple of 128, so the transpose scratch is used too).
    fn extended() -> (CotSender, CotReceiver) {
        let delta = Block(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        let pairs: Vec<(Block, Block)> = (0..KAPPA as u128)
            .map(|j| (Block(j * 3 + 1), Block(j * 5 + 2)))
            .collect();
        let chosen: Vec<Block> = pairs
            .iter()
            .enumerate()
            .map(|(j, &(k0, k1))| if (delta.0 >> j) & 1 == 1 { k1 } else { k0 })
            .collect();
        let mut s = CotSender::from_base_keys(delta, &chosen).unwrap();
        let mut r = CotReceiver::from_base_keys(&pairs).unwrap();
        let choices: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let mut t = vec![Block::ZERO; 200];
        let u = r.extend_core(&choices, &mut t).unwrap();
        let mut q = vec![Block::ZERO; 200];
        s.extend_core(&u, &mut q).unwrap();
        for i in 0..200 {
            assert_eq!(t[i], q[i] ^ delta.and_bit(choices[i]));
        }
        (s, r)
    }

    #[test]
    fn explicit_zeroize_leaves_no_secret_state() {
        let (mut s, mut r) = extended();
        assert!(!s.matrix.is_empty() && !s.scratch.is_empty());
        assert!(!r.matrix.is_empty() && !r.scratch.is_empty());
        s.zeroize();
        r.zeroize();
        assert_eq!(s.delta, Block::ZERO);
        assert!(s.matrix.is_empty() && s.scratch.is_empty());
        assert!(r.matrix.is_empty() && r.row.is_empty() && r.scratch.is_empty());
        // Zeroizing clears the buffers, it does not free them: their whole
        // capacity was overwritten (zeroize's `Vec` contract), so reuse is safe.
        assert!(s.matrix.capacity() > 0);
    }
}
