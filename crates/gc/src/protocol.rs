//! The vectorised two-party gadget API the engine calls.
//!
//! A batch evaluates one [`Gadget`] `f` of arity `k` on `n` elements. Element `i`
//! has inputs `x_ij = y0_ij + y1_ij` (`j < k`), `y0` held by the garbler G, `y1` by
//! the evaluator E. At the end G holds `r_i` (uniform, its output share) and E holds
//! `z_i = f(x_i) - r_i`, so `r_i + z_i = f(x_i) mod 2^64`.
//!
//! ```text
//!  G (garbler)                                       E (evaluator)
//!  ───────────                                       ─────────────
//!  setup, once per session: 128 base OTs; IKNP Δ = free-XOR Δ (lsb 1)
//!
//!  offline (inputs unknown)                          picks K_ij uniform
//!    q = COT zero-labels of K's bits  ◀── IKNP u ──  labels of K's bits
//!    picks a label seed sA
//!    header: gate index g0, n          ──────────▶
//!    garbles n instances of f in chunks of 64, drawing r_i while garbling
//!    the output projection gates;
//!    tables, ≤ TABLE_MSG bytes/message ──────────▶   stores them
//!
//!  online (inputs known)
//!                                      ◀──────────   D_ij = y1_ij - K_ij
//!    a_ij = y0_ij + D_ij
//!    active labels of a (n·k·64)       ──────────▶   evaluates f on a + K, decodes
//!  output r_i                                        output z_i = f(a + K) - r_i
//! ```
//!
//! The re-sharing trick (DESIGN section 3): E's real input is unknown offline, so
//! its circuit input is the random `K`, whose labels it gets by correlated OT with
//! G's `Δ` (the OT's `q_i` *are* the zero-labels), and online it tells G the
//! difference `D = y1 - K`, uniform to G. G's online input is `a = y0 + D`; the
//! circuit adds `a + K = y0 + y1` back. Online cost: one message each way, `8·k`
//! bytes up and `1024·k` bytes of labels down per element.
//!
//! G's mask `r` is not a circuit input: the circuit's ring output is garbled as
//! projection gates (see [`crate::circuit`]) whose rows carry `w - r_t`, so `r` costs
//! no AND gate and no input labels. G's labels for `a` are expanded from a private
//! seed `sA` and regenerated online rather than stored.
//!
//! A gadget may read fewer than 64 bits per value and add *local parts* to the
//! output shares ([`Gadget::input_bits`], [`Gadget::garbler_local`],
//! [`Gadget::evaluator_local`]): exact truncation garbles only the borrow of the
//! low `f` bits and keeps the rest of the SecureML local shares. The messages are
//! the same, with `input_bits` labels and OTs per value instead of 64.
//!
//! Offline material is consumed by value by `online`, so it is used exactly once;
//! the AND-gate index (the hash tweak) only grows within a session.

use crate::circuit::Circuit;
use crate::gadgets::Gadget;
use crate::garble::{EvaluatedChunk, Evaluator, GarbledChunk, Garbler, CHUNK};
use crate::hash::LabelExpander;
use crate::{GcError, Result};
use blindfold_core::Block;
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// Garbled tables per message: whole chunks, about this many bytes.
pub const TABLE_MSG: usize = 1 << 20;
/// Instances whose online labels travel in one message.
pub const LABEL_GROUP: usize = 8 * CHUNK;
/// Instances per round of correlated OT: `k ×` whole IKNP messages.
const COT_GROUP: usize = blindfold_ot::CHUNK / WORD;

const HEADER_BYTES: usize = 16;
const WORD: usize = 64;

fn table_msg_chunks(c: &Circuit) -> usize {
    (TABLE_MSG / (CHUNK * c.table_bytes().max(1))).max(1)
}

fn bit(v: u64, i: usize) -> bool {
    (v >> i) & 1 == 1
}

/// The garbler's side of a session: the IKNP sender whose `Δ` is the free-XOR
/// offset, and the next unused AND-gate index.
pub struct GarblerSession {
    cot: CotSender,
    next_gate: u64,
}

impl GarblerSession {
    /// Run the base OTs (one flight each way) with a fresh `Δ` (lsb 1).
    pub fn setup(ch: &mut impl Channel, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self> {
        let mut d = Zeroizing::new([0u8; 16]);
        rng.fill_bytes(&mut *d);
        let delta = Zeroizing::new(Block(u128::from_le_bytes(*d) | 1));
        Ok(GarblerSession {
            cot: CotSender::setup(ch, *delta, rng)?,
            next_gate: 0,
        })
    }

    /// From an existing IKNP sender whose `Δ` has lsb 1 (the engine may share one).
    pub fn from_cot(cot: CotSender) -> Result<Self> {
        if !cot.delta().lsb() {
            return Err(GcError::Mismatch {
                what: "lsb of the OT offset",
                expected: 1,
                got: 0,
            });
        }
        Ok(GarblerSession { cot, next_gate: 0 })
    }

    /// Offline phase for `n` elements of `gadget` (see the module diagram).
    pub fn offline(
        &mut self,
        ch: &mut impl Channel,
        gadget: Gadget,
        n: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<GarblerOffline> {
        let circuit = gadget.circuit();
        let k = gadget.arity();
        let n_tw = (circuit.n_and() + circuit.n_proj()) as u64;
        let gate0 = self.next_gate;
        self.next_gate = (n as u64)
            .checked_mul(n_tw)
            .and_then(|g| g.checked_add(gate0))
            .filter(|&g| g < u64::MAX / 2)
            .ok_or(GcError::Exhausted)?;
        // Secrets held in locals are wrapped so an early return wipes them too.
        let delta = Zeroizing::new(self.cot.delta());
        let mut seed_a = Zeroizing::new([0u8; 16]);
        rng.fill_bytes(&mut *seed_a);

        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(&gate0.to_le_bytes());
        header.extend_from_slice(&(n as u64).to_le_bytes());
        ch.send_vec(header)?;
        ch.flush()?;

        let mut garbler = Garbler::new(&circuit, *delta);
        let mut exp_a = LabelExpander::new(*seed_a);
        let ka = k * gadget.input_bits();
        let mut g0 = Zeroizing::new(vec![Block::ZERO; CHUNK * ka]);
        // Zero-labels of E's inputs K are the COT's q_i, obtained group by group
        // (whole IKNP messages) so that E computes the next group's OT matrix while
        // G garbles the current one.
        let mut q = Zeroizing::new(vec![Block::ZERO; COT_GROUP.min(n) * ka]);
        let per_msg = table_msg_chunks(&circuit);
        let msg_cap = per_msg * CHUNK * circuit.table_bytes();
        let mut out = GarbledChunk {
            tables: Vec::with_capacity(msg_cap),
            decode: Vec::new(),
            masks: Vec::with_capacity(n),
        };
        let mut pending = 0usize; // chunks in `out.tables`
        for group in (0..n).step_by(COT_GROUP) {
            let gb = COT_GROUP.min(n - group);
            self.cot.send_correlated_into(ch, &mut q[..gb * ka])?;
            for first in (group..group + gb).step_by(CHUNK) {
                // Within a chunk every label vector is slot-major: wire t of the
                // chunk's instance i is entry t·b + i.
                let b = CHUNK.min(n - first);
                let qi = (first - group) * ka;
                exp_a.expand((first * ka) as u64, &mut g0[..b * ka]);
                garbler.garble_chunk(
                    gate0 + first as u64 * n_tw,
                    &g0[..b * ka],
                    &q[qi..qi + b * ka],
                    &mut out,
                );
                pending += 1;
                if pending == per_msg {
                    pending = 0;
                    ch.send_vec(std::mem::replace(
                        &mut out.tables,
                        Vec::with_capacity(msg_cap),
                    ))?;
                }
            }
        }
        if !out.tables.is_empty() {
            ch.send_vec(std::mem::take(&mut out.tables))?;
        }
        ch.flush()?;
        debug_assert_eq!(out.masks.len(), n);
        Ok(GarblerOffline {
            gadget,
            n,
            delta: *delta,
            seed_a: *seed_a,
            r: std::mem::take(&mut out.masks),
        })
    }
}

/// The garbler's material for one batch, consumed by [`GarblerOffline::online`].
/// `Δ`, the label seed and the masks are zeroized on drop (the gadget and the
/// batch size are public).
pub struct GarblerOffline {
    gadget: Gadget,
    n: usize,
    delta: Block,
    seed_a: [u8; 16],
    r: Vec<u64>,
}

impl Zeroize for GarblerOffline {
    fn zeroize(&mut self) {
        self.delta.zeroize();
        self.seed_a.zeroize();
        self.r.zeroize();
    }
}

impl Drop for GarblerOffline {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl GarblerOffline {
    pub fn gadget(&self) -> Gadget {
        self.gadget
    }
    /// The garbler's masks `r`, already known offline: the output shares
    /// [`GarblerOffline::online`] returns, before a gadget's local part
    /// ([`Gadget::garbler_local`], zero except for truncation) is added.
    pub fn output_shares(&self) -> &[u64] {
        &self.r
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Online phase: `y0` holds `n × k` values, element-major. Returns the
    /// garbler's output shares `r` plus the gadget's local part (one per element).
    pub fn online(mut self, ch: &mut impl Channel, y0: &[u64]) -> Result<Vec<u64>> {
        let k = self.gadget.arity();
        let n = self.n;
        if y0.len() != n * k {
            return Err(GcError::Length {
                what: "garbler's online inputs",
                expected: n * k,
                got: y0.len(),
            });
        }
        let d = ch.recv_u64s(n * k)?;
        let mut exp_a = LabelExpander::new(self.seed_a);
        let bits = self.gadget.input_bits();
        let ka = k * bits;
        let mut lab = Zeroizing::new(vec![Block::ZERO; CHUNK * ka]);
        for group in (0..n).step_by(LABEL_GROUP) {
            let gb = LABEL_GROUP.min(n - group);
            let mut msg = Vec::with_capacity(gb * ka * 16);
            for first in (group..group + gb).step_by(CHUNK) {
                // The chunk's labels in the order they were garbled: slot-major.
                let b = CHUNK.min(n - first);
                let lab = &mut lab[..b * ka];
                exp_a.expand((first * ka) as u64, lab);
                for (s, row) in lab.chunks_exact(b).enumerate() {
                    let (j, t) = (s / bits, s % bits);
                    for (i, l) in row.iter().enumerate() {
                        let e = (first + i) * k + j;
                        let a = y0[e].wrapping_add(d[e]);
                        msg.extend_from_slice(&(*l ^ self.delta.and_bit(bit(a, t))).to_bytes());
                    }
                }
            }
            ch.send_vec(msg)?;
        }
        ch.flush()?;
        let mut out = std::mem::take(&mut self.r);
        let mut a = Zeroizing::new(vec![0u64; k]);
        for (i, o) in out.iter_mut().enumerate() {
            for (j, v) in a.iter_mut().enumerate() {
                *v = y0[i * k + j].wrapping_add(d[i * k + j]);
            }
            *o = o.wrapping_add(self.gadget.garbler_local(&a));
        }
        Ok(out)
    }
}

/// The evaluator's side of a session: the IKNP receiver.
pub struct EvaluatorSession {
    cot: CotReceiver,
}

impl EvaluatorSession {
    /// Run the base OTs (one flight each way).
    pub fn setup(ch: &mut impl Channel, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self> {
        Ok(EvaluatorSession {
            cot: CotReceiver::setup(ch, rng)?,
        })
    }

    /// From an existing IKNP receiver paired with the garbler's sender.
    pub fn from_cot(cot: CotReceiver) -> Self {
        EvaluatorSession { cot }
    }

    /// Offline phase for `n` elements of `gadget` (see the module diagram).
    pub fn offline(
        &mut self,
        ch: &mut impl Channel,
        gadget: Gadget,
        n: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<EvaluatorOffline> {
        let circuit = gadget.circuit();
        let k = gadget.arity();
        let header = ch.recv_exact(HEADER_BYTES)?;
        let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let gate0 = word(0);
        let peer_n = word(8);
        if peer_n != n as u64 {
            return Err(GcError::Mismatch {
                what: "batch size",
                expected: n as u64,
                got: peer_n,
            });
        }
        // The peer's tweak range must not overflow before we evaluate with it.
        (n as u64)
            .checked_mul((circuit.n_and() + circuit.n_proj()) as u64)
            .and_then(|g| g.checked_add(gate0))
            .filter(|&g| g < u64::MAX / 2)
            .ok_or(GcError::Exhausted)?;
        let mut kv = Zeroizing::new((0..n * k).map(|_| rng.next_u64()).collect::<Vec<u64>>());
        // Choice bits in the garbling order: per chunk, slot-major.
        let bits = gadget.input_bits();
        let mut choices = Zeroizing::new(Vec::with_capacity(n * k * bits));
        for first in (0..n).step_by(CHUNK) {
            let b = CHUNK.min(n - first);
            for j in 0..k {
                for t in 0..bits {
                    choices.extend(
                        (first..first + b).map(|i| bit(gadget.evaluator_input(kv[i * k + j]), t)),
                    );
                }
            }
        }
        // The same OT groups as the garbler's (`COT_GROUP` elements, `ka` OTs
        // each): the two ends must extend the same counts in the same order,
        // whatever `ka` is (a truncation reads `f` bits per value, not 64).
        let ka = k * bits;
        let mut k_labels = Zeroizing::new(Vec::with_capacity(n * ka));
        for group in (0..n).step_by(COT_GROUP) {
            let gb = COT_GROUP.min(n - group);
            let part = Zeroizing::new(
                self.cot
                    .receive_correlated(ch, &choices[group * ka..(group + gb) * ka])?,
            );
            k_labels.extend_from_slice(&part);
        }
        drop(choices);

        // Tables: whole chunks per message, ending exactly at the total.
        let chunk_bytes = CHUNK * circuit.table_bytes();
        let total = n * circuit.table_bytes();
        let mut tables = Vec::new();
        let mut got = 0usize;
        while got < total {
            let m = ch.recv()?;
            let end = got + m.len();
            if m.is_empty() || end > total || (end < total && m.len() % chunk_bytes != 0) {
                return Err(GcError::Length {
                    what: "garbled-table message",
                    expected: chunk_bytes.min(total - got),
                    got: m.len(),
                });
            }
            got = end;
            tables.push(m);
        }
        Ok(EvaluatorOffline {
            gadget,
            circuit,
            n,
            gate0,
            k: std::mem::take(&mut *kv),
            k_labels: std::mem::take(&mut *k_labels),
            tables,
        })
    }
}

/// The evaluator's material for one batch, consumed by
/// [`EvaluatorOffline::online`]. Its random inputs `K` and their labels are
/// zeroized on drop; the garbled tables (sent in the clear) and the circuit are
/// public.
pub struct EvaluatorOffline {
    gadget: Gadget,
    circuit: Circuit,
    n: usize,
    gate0: u64,
    k: Vec<u64>,
    k_labels: Vec<Block>,
    tables: Vec<Vec<u8>>,
}

impl Zeroize for EvaluatorOffline {
    fn zeroize(&mut self) {
        self.k.zeroize();
        self.k_labels.zeroize();
    }
}

impl Drop for EvaluatorOffline {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl EvaluatorOffline {
    pub fn gadget(&self) -> Gadget {
        self.gadget
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Bytes of garbled tables held.
    pub fn table_bytes(&self) -> usize {
        self.tables.iter().map(Vec::len).sum()
    }

    /// Online phase: `y1` holds `n × k` values, element-major. Returns the masked
    /// outputs `f(y0 + y1) - r`, one per element.
    pub fn online(self, ch: &mut impl Channel, y1: &[u64]) -> Result<Vec<u64>> {
        let k = self.gadget.arity();
        let n = self.n;
        if y1.len() != n * k {
            return Err(GcError::Length {
                what: "evaluator's online inputs",
                expected: n * k,
                got: y1.len(),
            });
        }
        let d: Vec<u64> = y1
            .iter()
            .zip(&self.k)
            .map(|(y, kk)| y.wrapping_sub(*kk))
            .collect();
        ch.send_u64s(&d)?;
        ch.flush()?;

        let c = &self.circuit;
        let n_tw = (c.n_and() + c.n_proj()) as u64;
        let ka = k * self.gadget.input_bits();
        // All of the garbler's labels (one flight of LABEL_GROUP-sized messages).
        let mut la = Zeroizing::new(Vec::with_capacity(n * ka));
        for group in (0..n).step_by(LABEL_GROUP) {
            let gb = LABEL_GROUP.min(n - group);
            la.extend(ch.recv_blocks(gb * ka)?);
        }
        // Locate each chunk's tables (chunks never straddle messages).
        let probe = Evaluator::new(c);
        let mut chunks: Vec<(usize, usize, &[u8])> = Vec::with_capacity(n.div_ceil(CHUNK));
        let mut msgs = self.tables.iter();
        let mut cur: &[u8] = &[];
        for group in (0..n).step_by(LABEL_GROUP) {
            let gb = LABEL_GROUP.min(n - group);
            for first in (group..group + gb).step_by(CHUNK) {
                let b = CHUNK.min(group + gb - first);
                let need = probe.table_bytes(b);
                if cur.is_empty() && need > 0 {
                    cur = msgs.next().ok_or(GcError::Truncated)?;
                }
                if cur.len() < need {
                    return Err(GcError::Truncated);
                }
                let (tab, rest) = cur.split_at(need);
                cur = rest;
                chunks.push((first, b, tab));
            }
        }
        // Evaluate the chunks on up to EVAL_THREADS threads, each a contiguous
        // range, and join the outputs in order.
        let eval_range = |range: &[(usize, usize, &[u8])]| -> Result<Vec<u64>> {
            let mut ev = Evaluator::new(c);
            let mut res = EvaluatedChunk {
                bits: Vec::new(),
                ring: Vec::with_capacity(range.len() * CHUNK),
            };
            for &(first, b, tab) in range {
                ev.eval_chunk(
                    self.gate0 + first as u64 * n_tw,
                    &la[first * ka..(first + b) * ka],
                    &self.k_labels[first * ka..(first + b) * ka],
                    tab,
                    &[],
                    &mut res,
                )?;
            }
            Ok(std::mem::take(&mut res.ring))
        };
        let threads = eval_threads()
            .min(chunks.len().div_ceil(MIN_CHUNKS_PER_THREAD))
            .max(1);
        let local = |mut z: Vec<u64>| {
            for (i, v) in z.iter_mut().enumerate() {
                *v = v.wrapping_add(self.gadget.evaluator_local(&self.k[i * k..(i + 1) * k]));
            }
            z
        };
        if threads == 1 {
            return eval_range(&chunks).map(local);
        }
        let per = chunks.len().div_ceil(threads);
        let parts: Vec<Result<Vec<u64>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = chunks
                .chunks(per)
                .map(|r| sc.spawn(move || eval_range(r)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut out = Vec::with_capacity(n);
        for p in parts {
            out.extend(p?);
        }
        Ok(local(out))
    }
}

/// Chunks below which a batch is evaluated on one thread.
const MIN_CHUNKS_PER_THREAD: usize = 8;

/// Threads for evaluating a large batch online: the machine's parallelism, at
/// most 4 (the garbler is idle while the evaluator works, so its core is free).
fn eval_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::{FracBits, Prg};
    use blindfold_net::MemoryChannel;

    /// Both parties on two threads over a memory channel with fixed seeds; returns
    /// `(r, z)`.
    fn run(gadget: Gadget, y0: Vec<u64>, y1: Vec<u64>, batches: usize) -> Vec<(u64, u64)> {
        let n = y0.len() / gadget.arity();
        let (mut cg, mut ce) = MemoryChannel::pair();
        let k = gadget.arity();
        let (y0c, y1c) = (y0.clone(), y1.clone());
        let g = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let mut s = GarblerSession::setup(&mut cg, &mut rng).unwrap();
            let mut rs = Vec::new();
            for _ in 0..batches {
                let off = s.offline(&mut cg, gadget, n, &mut rng).unwrap();
                rs.extend(off.online(&mut cg, &y0c).unwrap());
            }
            rs
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut s = EvaluatorSession::setup(&mut ce, &mut rng).unwrap();
        let mut zs = Vec::new();
        for _ in 0..batches {
            let off = s.offline(&mut ce, gadget, n, &mut rng).unwrap();
            zs.extend(off.online(&mut ce, &y1c).unwrap());
        }
        let rs = g.join().unwrap();
        assert_eq!(rs.len(), n * batches);
        for (e, (r, z)) in rs.iter().zip(&zs).enumerate() {
            let i = e % n;
            let x: Vec<u64> = (0..k)
                .map(|j| y0[i * k + j].wrapping_add(y1[i * k + j]))
                .collect();
            assert_eq!(
                r.wrapping_add(*z),
                gadget.plain(&x),
                "{gadget:?} element {i}"
            );
        }
        rs.into_iter().zip(zs).collect()
    }

    fn shares(n: usize, seed: u8, gen: impl Fn(&mut Prg) -> u64) -> (Vec<u64>, Vec<u64>) {
        let mut p = Prg::from_seed([seed; 16]);
        let x: Vec<u64> = (0..n).map(|_| gen(&mut p)).collect();
        let y1: Vec<u64> = (0..n).map(|_| p.gen_u64()).collect();
        let y0 = x.iter().zip(&y1).map(|(x, y)| x.wrapping_sub(*y)).collect();
        (y0, y1)
    }

    fn small(p: &mut Prg) -> u64 {
        ((p.gen_u64() % 2_000_001) as i64 - 1_000_000) as u64
    }

    #[test]
    fn every_gadget_two_threads() {
        let f = FracBits(12);
        let n = 150; // more than two chunks, last one partial
        for (g, seed) in [
            (Gadget::ReluTruncMask { f }, 5u8),
            (Gadget::MaxPoolReluTruncMask { k: 4, f }, 6),
            (Gadget::MaxPoolTruncMask { k: 4, f }, 11),
            (Gadget::SignMask { width: 64 }, 7),
            (Gadget::SignMask { width: 21 }, 12),
            (Gadget::ThresholdSignMask, 8),
            (Gadget::ArgmaxMask { k: 10 }, 9),
            (Gadget::TruncMask { f }, 10),
        ] {
            let (y0, y1) = shares(n * g.arity(), seed, small);
            run(g, y0, y1, 1);
        }
    }

    /// More elements than one OT group (`COT_GROUP`), for gadgets reading 64
    /// bits and fewer (`TruncMask` reads `f`): the garbler's and the
    /// evaluator's OT extensions must line up group by group.
    #[test]
    fn batches_beyond_one_ot_group() {
        let f = FracBits(12);
        let n = 2 * COT_GROUP + 77;
        for (g, seed) in [
            (Gadget::TruncMask { f }, 21u8),
            (Gadget::ReluTruncMask { f }, 22),
        ] {
            let (y0, y1) = shares(n * g.arity(), seed, small);
            run(g, y0, y1, 1);
        }
    }

    #[test]
    fn edge_values_two_threads() {
        let f = FracBits(12);
        let edges: Vec<u64> = [0i64, 1, -1, 4095, 4096, -4096, -4097, i64::MAX, i64::MIN]
            .iter()
            .map(|&v| v as u64)
            .collect();
        let mut p = Prg::from_seed([13; 16]);
        let split = |x: &[u64], p: &mut Prg| {
            let y1: Vec<u64> = x.iter().map(|_| p.gen_u64()).collect();
            let y0: Vec<u64> = x.iter().zip(&y1).map(|(x, y)| x.wrapping_sub(*y)).collect();
            (y0, y1)
        };
        for g in [Gadget::ReluTruncMask { f }, Gadget::SignMask { width: 64 }] {
            let (y0, y1) = split(&edges, &mut p);
            run(g, y0, y1, 1);
        }
        // Every ordered pair of edges: ties, extremes.
        let pairs: Vec<u64> = edges
            .iter()
            .flat_map(|&a| edges.iter().flat_map(move |&b| [a, b]))
            .collect();
        for g in [
            Gadget::ThresholdSignMask,
            Gadget::ArgmaxMask { k: 2 },
            Gadget::MaxPoolReluTruncMask { k: 2, f },
            Gadget::MaxPoolTruncMask { k: 2, f },
        ] {
            let (y0, y1) = split(&pairs, &mut p);
            run(g, y0, y1, 1);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Random gadget, random batch size and values, garbled across two threads.
        #[test]
        fn garbled_gadgets_match_plain(
            which in 0usize..7,
            k in 1usize..6,
            f in 0u32..20,
            n in 1usize..140,
            seed in proptest::prelude::any::<u8>(),
        ) {
            let g = match which {
                0 => Gadget::ReluTruncMask { f: FracBits(f) },
                1 => Gadget::MaxPoolReluTruncMask { k, f: FracBits(f) },
                2 => Gadget::SignMask { width: 64 },
                3 => Gadget::ThresholdSignMask,
                4 => Gadget::TruncMask { f: FracBits(f.max(1)) },
                5 => Gadget::MaxPoolTruncMask { k, f: FracBits(f) },
                _ => Gadget::ArgmaxMask { k },
            };
            // Truncation is exact unless the shares wrap (probability |x|/2^64):
            // only values of fixed-point size for it.
            let wide = !matches!(g, Gadget::TruncMask { .. });
            let (y0, y1) = shares(n * g.arity(), seed, |p| {
                if wide && p.gen_u64() % 3 == 0 { p.gen_u64() } else { small(p) }
            });
            run(g, y0, y1, 1);
        }
    }

    /// Exact truncation on values at a fixed-point scale (every low-bit pattern,
    /// both signs), and what it costs on the wire per value: IKNP for the
    /// evaluator's `f` bits and `f` AND tables offline, `D` and `f` labels online.
    #[test]
    fn exact_truncation_two_threads_and_its_bytes() {
        let f = FracBits(12);
        let g = Gadget::TruncMask { f };
        let x: Vec<u64> = (0..1000i64)
            .map(|i| ((i - 500) * 4093 + (i % 7) * 1_000_000_000) as u64)
            .collect();
        let mut p = Prg::from_seed([21; 16]);
        let y1: Vec<u64> = x.iter().map(|_| p.gen_u64()).collect();
        let y0: Vec<u64> = x.iter().zip(&y1).map(|(x, y)| x.wrapping_sub(*y)).collect();
        let n = x.len();
        let (mut cg, mut ce) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let mut s = GarblerSession::setup(&mut cg, &mut rng).unwrap();
            let off = s.offline(&mut cg, g, n, &mut rng).unwrap();
            off.online(&mut cg, &y0).unwrap()
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut s = EvaluatorSession::setup(&mut ce, &mut rng).unwrap();
        let b0 = ce.stats().total().bytes();
        let off = s.offline(&mut ce, g, n, &mut rng).unwrap();
        let b1 = ce.stats().total().bytes();
        let z = off.online(&mut ce, &y1).unwrap();
        let b2 = ce.stats().total().bytes();
        let r = h.join().unwrap();
        for i in 0..n {
            assert_eq!(
                r[i].wrapping_add(z[i]),
                g.plain(&x[i..i + 1]),
                "element {i}"
            );
        }
        let (offline, online) = ((b1 - b0) as f64 / n as f64, (b2 - b1) as f64 / n as f64);
        eprintln!(
            "exact truncation, f = 12: {offline:.1} B offline + {online:.1} B online per value"
        );
        // 12 × 16 (OT) + 12 × 32 + 8 (tables); 8 + 12 × 16 (D, labels); plus framing.
        assert!((584.0..600.0).contains(&offline), "offline {offline}");
        assert!((200.0..205.0).contains(&online), "online {online}");
    }

    /// The offline material's secrets are gone after `zeroize` (what `Drop`
    /// runs): `Δ`, the label seed and the masks on the garbler's side, `K` and
    /// its labels on the evaluator's.
    #[test]
    fn offline_material_zeroizes() {
        let g = Gadget::ReluTruncMask { f: FracBits(12) };
        let (mut cg, mut ce) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let mut s = GarblerSession::setup(&mut cg, &mut rng).unwrap();
            let mut off = s.offline(&mut cg, g, 70, &mut rng).unwrap();
            assert!(off.delta != Block::ZERO && off.seed_a != [0; 16] && off.r.len() == 70);
            off.zeroize();
            assert_eq!(off.delta, Block::ZERO);
            assert_eq!(off.seed_a, [0; 16]);
            assert!(off.r.is_empty());
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut s = EvaluatorSession::setup(&mut ce, &mut rng).unwrap();
        let mut off = s.offline(&mut ce, g, 70, &mut rng).unwrap();
        assert!(off.k.len() == 70 && off.k_labels.len() == 70 * 64);
        off.zeroize();
        assert!(off.k.is_empty() && off.k_labels.is_empty());
        h.join().unwrap();
    }

    #[test]
    fn mismatched_batch_size_is_an_error() {
        let gadget = Gadget::SignMask { width: 64 };
        let (mut cg, mut ce) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let mut s = GarblerSession::setup(&mut cg, &mut rng).unwrap();
            let _ = s.offline(&mut cg, gadget, 10, &mut rng);
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut s = EvaluatorSession::setup(&mut ce, &mut rng).unwrap();
        // The COT sizes differ too; whichever check fires first, it is an error.
        assert!(s.offline(&mut ce, gadget, 11, &mut rng).is_err());
        drop(ce);
        h.join().unwrap();
    }

    #[test]
    fn empty_batch() {
        run(Gadget::SignMask { width: 64 }, vec![], vec![], 2);
    }

    #[test]
    fn several_ot_groups_with_arity_three() {
        let g = Gadget::MaxPoolReluTruncMask {
            k: 3,
            f: FracBits(8),
        };
        let (y0, y1) = shares(1030 * 3, 17, small);
        run(g, y0, y1, 1);
    }

    #[test]
    fn several_batches_and_large_values() {
        let (y0, y1) = shares(1100, 11, |p| p.gen_u64());
        let out = run(Gadget::ReluTruncMask { f: FracBits(12) }, y0, y1, 2);
        // Fresh masks per batch.
        assert_ne!(out[0].0, out[1100].0);
    }

    #[test]
    fn truncated_or_garbage_tables_are_errors() {
        use blindfold_net::Channel as _;
        let gadget = Gadget::ReluTruncMask { f: FracBits(12) };
        for cut in [1usize, 32, 100_000] {
            let (mut cg, mut ce) = MemoryChannel::pair();
            let h = std::thread::spawn(move || {
                let mut rng = Prg::from_seed([1; 16]);
                let mut s = GarblerSession::setup(&mut cg, &mut rng).unwrap();
                // Play the garbler by hand up to the tables, then send a bad message.
                let mut h = vec![0u8; 16];
                h[8..16].copy_from_slice(&100u64.to_le_bytes());
                cg.send(&h).unwrap();
                cg.flush().unwrap();
                let q = s.cot.send_correlated(&mut cg, 100 * 64).unwrap();
                drop(q);
                let total = 100 * gadget.circuit().table_bytes();
                cg.send(&vec![7u8; total - cut]).unwrap();
                cg.flush().unwrap();
                cg
            });
            let mut rng = Prg::from_seed([2; 16]);
            let mut s = EvaluatorSession::setup(&mut ce, &mut rng).unwrap();
            let r = s.offline(&mut ce, gadget, 100, &mut rng);
            assert!(r.is_err(), "cut {cut}");
            drop(h.join().unwrap());
        }
    }
}
