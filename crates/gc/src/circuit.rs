//! Boolean circuits: one description, several back ends.
//!
//! A [`Builder`] records XOR, AND and NOT gates over [`Bit`]s (constants are folded
//! away while building, so a finished circuit never contains a constant gate) and
//! [`Builder::finish`] compiles them into a [`Circuit`]: a straight-line program
//! over a small set of *slots* (wire storage reused once a wire is dead), with
//! inputs owned by the garbler or by the evaluator, and two kinds of output:
//!
//! * *bit outputs*, which the evaluator decodes with the garbler's decoding bits;
//! * *ring outputs* (arithmetic projections): a word `Σ_t (b_t ? w1_t : w0_t)` over
//!   bits `b_t` with public weights. Garbled, each term is a one-input gate whose
//!   rows give `w_b - r_t` to the holder of the wire's label (one row is implicit,
//!   one is sent), so the evaluator ends with `value - r` and the garbler with
//!   `r = Σ r_t`: the arithmetic masking costs 8 bytes and 2 (garbler) / 1
//!   (evaluator) AES calls per term instead of a 63-AND subtractor.
//!
//! The same [`Circuit`] is run by the plaintext evaluator ([`Circuit::eval_plain`]),
//! the gate counter ([`Circuit::counts`]), the half-gates garbler and the evaluator
//! (`crate::garble`). No I/O happens here.

use serde::{Deserialize, Serialize};

/// A bit while building: a constant or a wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bit {
    Zero,
    One,
    Wire(u32),
}

impl Bit {
    /// The constant `b`.
    pub fn constant(b: bool) -> Bit {
        if b {
            Bit::One
        } else {
            Bit::Zero
        }
    }
}

/// Who supplies an input wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    Garbler,
    Evaluator,
}

#[derive(Clone, Copy, Debug)]
enum RawGate {
    Xor(u32, u32),
    And(u32, u32),
    Not(u32),
}

/// Records a circuit. Wires are numbered in creation order; inputs first come,
/// first numbered, then one wire per gate.
#[derive(Debug, Default)]
pub struct Builder {
    /// Per wire: `None` for an input, `Some(gate)` otherwise.
    defs: Vec<Option<RawGate>>,
    garbler_inputs: Vec<u32>,
    evaluator_inputs: Vec<u32>,
    outputs: Vec<Bit>,
    ring_outputs: Vec<Vec<(Bit, u64, u64)>>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    fn push(&mut self, def: Option<RawGate>) -> Bit {
        let id = u32::try_from(self.defs.len()).expect("circuit exceeds 2^32 wires");
        self.defs.push(def);
        Bit::Wire(id)
    }

    /// A fresh input bit owned by `owner`.
    pub fn input(&mut self, owner: Owner) -> Bit {
        let b = self.push(None);
        let Bit::Wire(id) = b else { unreachable!() };
        match owner {
            Owner::Garbler => self.garbler_inputs.push(id),
            Owner::Evaluator => self.evaluator_inputs.push(id),
        }
        b
    }

    /// `n` fresh input bits owned by `owner` (little-endian when read as a word).
    pub fn inputs(&mut self, owner: Owner, n: usize) -> Vec<Bit> {
        (0..n).map(|_| self.input(owner)).collect()
    }

    /// `a XOR b` (free under free-XOR).
    pub fn xor(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Zero, x) | (x, Bit::Zero) => x,
            (Bit::One, x) | (x, Bit::One) => self.not(x),
            (Bit::Wire(x), Bit::Wire(y)) if x == y => Bit::Zero,
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Some(RawGate::Xor(x, y))),
        }
    }

    /// `a AND b` (one half-gates table unless a constant folds it away).
    pub fn and(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Zero, _) | (_, Bit::Zero) => Bit::Zero,
            (Bit::One, x) | (x, Bit::One) => x,
            (Bit::Wire(x), Bit::Wire(y)) if x == y => a,
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Some(RawGate::And(x, y))),
        }
    }

    /// `NOT a` (free: the garbler flips the label's meaning).
    pub fn not(&mut self, a: Bit) -> Bit {
        match a {
            Bit::Zero => Bit::One,
            Bit::One => Bit::Zero,
            Bit::Wire(x) => {
                // NOT NOT x = x
                if let Some(RawGate::Not(y)) = self.defs[x as usize] {
                    Bit::Wire(y)
                } else {
                    self.push(Some(RawGate::Not(x)))
                }
            }
        }
    }

    /// `a OR b = NOT(NOT a AND NOT b)` (one AND).
    pub fn or(&mut self, a: Bit, b: Bit) -> Bit {
        let na = self.not(a);
        let nb = self.not(b);
        let t = self.and(na, nb);
        self.not(t)
    }

    /// `if s { t } else { e }` with one AND: `e ^ (s & (t ^ e))`.
    pub fn mux(&mut self, s: Bit, t: Bit, e: Bit) -> Bit {
        let d = self.xor(t, e);
        let m = self.and(s, d);
        self.xor(e, m)
    }

    /// Mark `b` as the next output.
    pub fn output(&mut self, b: Bit) {
        self.outputs.push(b);
    }

    /// Mark every bit of `bs` as an output, in order.
    pub fn outputs(&mut self, bs: &[Bit]) {
        self.outputs.extend_from_slice(bs);
    }

    /// Add a ring output: `Σ_t (b_t ? w1_t : w0_t) mod 2^64` over `terms`
    /// `(b_t, w0_t, w1_t)`.
    pub fn output_ring(&mut self, terms: &[(Bit, u64, u64)]) {
        self.ring_outputs.push(terms.to_vec());
    }

    /// A ring output holding the word `bits` (little-endian, weights `2^i`).
    pub fn output_word(&mut self, bits: &[Bit]) {
        let terms: Vec<_> = bits
            .iter()
            .enumerate()
            .map(|(i, &b)| (b, 0u64, 1u64 << i))
            .collect();
        self.output_ring(&terms);
    }

    /// Compile: drop gates no output depends on, and assign storage slots, reusing a
    /// slot once its wire has no later reader.
    pub fn finish(self) -> Circuit {
        let n = self.defs.len();
        // Liveness: which wires some output depends on.
        let mut live = vec![false; n];
        let ring_bits: Vec<Bit> = self.ring_outputs.iter().flatten().map(|t| t.0).collect();
        for o in self.outputs.iter().chain(&ring_bits) {
            if let Bit::Wire(w) = o {
                live[*w as usize] = true;
            }
        }
        for w in (0..n).rev() {
            if !live[w] {
                continue;
            }
            match self.defs[w] {
                Some(RawGate::Xor(a, b)) | Some(RawGate::And(a, b)) => {
                    live[a as usize] = true;
                    live[b as usize] = true;
                }
                Some(RawGate::Not(a)) => live[a as usize] = true,
                None => {}
            }
        }
        // Last reader of each wire (gate index = wire id); outputs live forever.
        const FOREVER: usize = usize::MAX;
        let mut last_use = vec![0usize; n];
        for (w, def) in self.defs.iter().enumerate() {
            if !live[w] {
                continue;
            }
            match *def {
                Some(RawGate::Xor(a, b)) | Some(RawGate::And(a, b)) => {
                    last_use[a as usize] = last_use[a as usize].max(w);
                    last_use[b as usize] = last_use[b as usize].max(w);
                }
                Some(RawGate::Not(a)) => last_use[a as usize] = last_use[a as usize].max(w),
                None => {}
            }
        }
        for o in self.outputs.iter().chain(&ring_bits) {
            if let Bit::Wire(w) = o {
                last_use[*w as usize] = FOREVER;
            }
        }
        // Inputs get the first slots, in owner order: garbler then evaluator.
        let mut slot_of = vec![u32::MAX; n];
        let mut next_slot = 0u32;
        for &w in self.garbler_inputs.iter().chain(&self.evaluator_inputs) {
            slot_of[w as usize] = next_slot;
            next_slot += 1;
        }
        let mut free: Vec<u32> = Vec::new();
        // Slots whose wire dies at gate w, released after gate w has read them.
        let mut dying: Vec<Vec<u32>> = vec![Vec::new(); n];
        for w in 0..n {
            if self.defs[w].is_none() && last_use[w] != FOREVER && last_use[w] > 0 {
                dying[last_use[w]].push(slot_of[w]);
            }
        }
        let mut ops = Vec::new();
        let (mut n_and, mut n_xor, mut n_not) = (0usize, 0usize, 0usize);
        for w in 0..n {
            let Some(g) = self.defs[w] else { continue };
            if !live[w] {
                continue;
            }
            // Read operands before releasing their slots, so an operand's slot may be
            // reused for this gate's output (operands are read before the write).
            let op = match g {
                RawGate::Xor(a, b) => {
                    n_xor += 1;
                    Op::Xor(slot_of[a as usize], slot_of[b as usize], 0)
                }
                RawGate::And(a, b) => {
                    n_and += 1;
                    Op::And(slot_of[a as usize], slot_of[b as usize], 0)
                }
                RawGate::Not(a) => {
                    n_not += 1;
                    Op::Not(slot_of[a as usize], 0)
                }
            };
            free.append(&mut dying[w]);
            let out = free.pop().unwrap_or_else(|| {
                next_slot += 1;
                next_slot - 1
            });
            slot_of[w] = out;
            if last_use[w] != FOREVER {
                if last_use[w] == 0 {
                    // Never read (cannot happen for a live non-output wire).
                    free.push(out);
                } else {
                    dying[last_use[w]].push(out);
                }
            }
            ops.push(match op {
                Op::Xor(a, b, _) => Op::Xor(a, b, out),
                Op::And(a, b, _) => Op::And(a, b, out),
                Op::Not(a, _) => Op::Not(a, out),
            });
        }
        let out_bit = |o: &Bit| match o {
            Bit::Zero => OutBit::Const(false),
            Bit::One => OutBit::Const(true),
            Bit::Wire(w) => OutBit::Slot(slot_of[*w as usize]),
        };
        let outputs = self.outputs.iter().map(out_bit).collect();
        let ring_outputs: Vec<Vec<Term>> = self
            .ring_outputs
            .iter()
            .map(|ts| {
                ts.iter()
                    .map(|&(b, w0, w1)| Term {
                        bit: out_bit(&b),
                        w0,
                        w1,
                    })
                    .collect()
            })
            .collect();
        let n_proj = ring_outputs
            .iter()
            .flatten()
            .filter(|t| matches!(t.bit, OutBit::Slot(_)))
            .count();
        Circuit {
            n_garbler_inputs: self.garbler_inputs.len(),
            n_evaluator_inputs: self.evaluator_inputs.len(),
            n_slots: next_slot as usize,
            ops,
            outputs,
            ring_outputs,
            n_proj,
            n_and,
            n_xor,
            n_not,
        }
    }
}

/// One compiled gate over slots: operands, then the output slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Xor(u32, u32, u32),
    And(u32, u32, u32),
    Not(u32, u32),
}

/// An output: a constant or the content of a slot at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutBit {
    Const(bool),
    Slot(u32),
}

/// One term of a ring output: `bit ? w1 : w0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    pub bit: OutBit,
    pub w0: u64,
    pub w1: u64,
}

/// A compiled circuit. Slots `0..n_garbler_inputs` hold the garbler's inputs, the
/// next `n_evaluator_inputs` slots the evaluator's.
#[derive(Clone, Debug)]
pub struct Circuit {
    n_garbler_inputs: usize,
    n_evaluator_inputs: usize,
    n_slots: usize,
    ops: Vec<Op>,
    outputs: Vec<OutBit>,
    ring_outputs: Vec<Vec<Term>>,
    n_proj: usize,
    n_and: usize,
    n_xor: usize,
    n_not: usize,
}

/// Gate counts of a circuit (what the cost reports quote).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCounts {
    pub and: usize,
    pub xor: usize,
    pub not: usize,
    /// Projection gates of the ring outputs (one per non-constant term).
    pub proj: usize,
    /// Garbled-table bytes per instance: 32 per AND, 8 per projection.
    pub table_bytes: usize,
    /// AND depth: the largest number of AND gates on an input-to-output path.
    pub and_depth: usize,
    pub garbler_inputs: usize,
    pub evaluator_inputs: usize,
    pub outputs: usize,
}

impl Circuit {
    pub fn n_garbler_inputs(&self) -> usize {
        self.n_garbler_inputs
    }
    pub fn n_evaluator_inputs(&self) -> usize {
        self.n_evaluator_inputs
    }
    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }
    pub fn n_and(&self) -> usize {
        self.n_and
    }
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
    pub fn output_bits(&self) -> &[OutBit] {
        &self.outputs
    }
    /// Ring outputs (terms of each).
    pub fn ring_outputs(&self) -> &[Vec<Term>] {
        &self.ring_outputs
    }
    /// Number of projection gates (non-constant ring-output terms).
    pub fn n_proj(&self) -> usize {
        self.n_proj
    }
    /// Garbled-table bytes of one instance.
    pub fn table_bytes(&self) -> usize {
        32 * self.n_and + 8 * self.n_proj
    }

    /// Plaintext back end for ring outputs: the unmasked values.
    pub fn eval_plain_ring(&self, garbler: &[bool], evaluator: &[bool]) -> Vec<u64> {
        let s = self.run_plain(garbler, evaluator);
        self.ring_outputs
            .iter()
            .map(|ts| {
                ts.iter().fold(0u64, |acc, t| {
                    let b = match t.bit {
                        OutBit::Const(c) => c,
                        OutBit::Slot(x) => s[x as usize],
                    };
                    acc.wrapping_add(if b { t.w1 } else { t.w0 })
                })
            })
            .collect()
    }

    /// Plaintext back end: evaluate on clear bits.
    ///
    /// # Panics
    /// If the input lengths do not match the circuit (a local programming error).
    pub fn eval_plain(&self, garbler: &[bool], evaluator: &[bool]) -> Vec<bool> {
        let s = self.run_plain(garbler, evaluator);
        self.outputs
            .iter()
            .map(|o| match *o {
                OutBit::Const(c) => c,
                OutBit::Slot(x) => s[x as usize],
            })
            .collect()
    }

    fn run_plain(&self, garbler: &[bool], evaluator: &[bool]) -> Vec<bool> {
        assert_eq!(garbler.len(), self.n_garbler_inputs, "garbler input length");
        assert_eq!(
            evaluator.len(),
            self.n_evaluator_inputs,
            "evaluator input length"
        );
        let mut s = vec![false; self.n_slots];
        s[..garbler.len()].copy_from_slice(garbler);
        s[garbler.len()..garbler.len() + evaluator.len()].copy_from_slice(evaluator);
        for op in &self.ops {
            match *op {
                Op::Xor(a, b, o) => s[o as usize] = s[a as usize] ^ s[b as usize],
                Op::And(a, b, o) => s[o as usize] = s[a as usize] & s[b as usize],
                Op::Not(a, o) => s[o as usize] = !s[a as usize],
            }
        }
        s
    }

    /// Counting back end: gate counts and AND depth.
    pub fn counts(&self) -> GateCounts {
        let mut depth = vec![0usize; self.n_slots];
        let mut max_depth = 0;
        for op in &self.ops {
            let (d, o) = match *op {
                Op::Xor(a, b, o) => (depth[a as usize].max(depth[b as usize]), o),
                Op::And(a, b, o) => (depth[a as usize].max(depth[b as usize]) + 1, o),
                Op::Not(a, o) => (depth[a as usize], o),
            };
            depth[o as usize] = d;
            max_depth = max_depth.max(d);
        }
        GateCounts {
            and: self.n_and,
            xor: self.n_xor,
            not: self.n_not,
            proj: self.n_proj,
            table_bytes: self.table_bytes(),
            and_depth: max_depth,
            garbler_inputs: self.n_garbler_inputs,
            evaluator_inputs: self.n_evaluator_inputs,
            outputs: self.outputs.len() + self.ring_outputs.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_fold_and_slots_are_reused() {
        let mut b = Builder::new();
        let x = b.input(Owner::Garbler);
        let y = b.input(Owner::Evaluator);
        assert_eq!(b.and(x, Bit::Zero), Bit::Zero);
        assert_eq!(b.xor(x, Bit::Zero), x);
        assert_eq!(b.xor(x, x), Bit::Zero);
        let nx = b.not(x);
        assert_eq!(b.not(nx), x);
        let mut acc = b.and(x, y);
        for _ in 0..100 {
            let t = b.xor(acc, x);
            acc = b.and(t, y);
        }
        b.output(acc);
        b.output(Bit::One);
        let c = b.finish();
        assert!(c.n_slots() < 10, "slots reused: {}", c.n_slots());
        assert_eq!(c.counts().and, 101);
        assert_eq!(c.counts().and_depth, 101);
        for (gx, ey) in [(false, false), (false, true), (true, false), (true, true)] {
            let out = c.eval_plain(&[gx], &[ey]);
            assert_eq!(out, vec![gx & ey, true]);
        }
    }
}
