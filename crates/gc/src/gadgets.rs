//! 64-bit word arithmetic on circuits and the fused gadgets of the engine.
//!
//! Words are little-endian bit vectors ([`Word`]: bit 0 first), read as two's
//! complement. Every gadget here is a function of `k` ring values, each given as
//! two additive shares:
//!
//! * garbler inputs: `a_0 .. a_{k-1}` (64 bits each);
//! * evaluator inputs: `K_0 .. K_{k-1}` (64 bits each);
//! * the circuit computes `x_j = a_j + K_j` and has one *ring output*
//!   `f(x_0, .., x_{k-1})` (see [`crate::circuit`]): garbled, the evaluator learns
//!   `f(x) - r` and the garbler `r`, with `r` drawn by the garbler while garbling
//!   the output's projection gates. The mask costs no AND gate.
//!
//! In the protocol (`crate::protocol`) `K_j` is the evaluator's random offline
//! value and `a_j = y0_j + (y1_j - K_j)`, so `x_j = y0_j + y1_j`.
//!
//! [`Gadget::plain`] is the integer semantics each circuit is tested against.

use crate::circuit::{Bit, Builder, Circuit, Owner};
use blindfold_core::FracBits;

/// A word: little-endian bits.
pub type Word = Vec<Bit>;

/// Ring width.
pub const W: usize = 64;

/// The constant `v` as an `n`-bit word.
pub fn const_word(v: u64, n: usize) -> Word {
    (0..n).map(|i| Bit::constant((v >> i) & 1 == 1)).collect()
}

/// Clear bits of a `u64` (little-endian), for the plaintext back end.
pub fn to_bits(v: u64) -> Vec<bool> {
    (0..W).map(|i| (v >> i) & 1 == 1).collect()
}

/// A `u64` from little-endian bits (at most 64).
pub fn from_bits(bits: &[bool]) -> u64 {
    bits.iter()
        .enumerate()
        .fold(0u64, |acc, (i, &b)| acc | ((b as u64) << i))
}

impl Builder {
    /// Ripple-carry `a + b + cin` over `a.len()` bits; returns the sum and the carry
    /// out if `want_carry` (one AND per bit, minus one when the carry out is not
    /// wanted).
    fn add_carry(&mut self, a: &[Bit], b: &[Bit], cin: Bit, want_carry: bool) -> (Word, Bit) {
        assert_eq!(a.len(), b.len());
        let n = a.len();
        let mut c = cin;
        let mut sum = Vec::with_capacity(n);
        for i in 0..n {
            let axc = self.xor(a[i], c);
            let bxc = self.xor(b[i], c);
            let s = self.xor(axc, b[i]);
            sum.push(s);
            if i + 1 < n || want_carry {
                // c' = MAJ(a, b, c) = c ^ ((a ^ c) & (b ^ c))
                let t = self.and(axc, bxc);
                c = self.xor(c, t);
            }
        }
        (sum, c)
    }

    /// `a + b mod 2^n` (`n - 1` ANDs).
    pub fn add_words(&mut self, a: &[Bit], b: &[Bit]) -> Word {
        self.add_carry(a, b, Bit::Zero, false).0
    }

    /// `a - b mod 2^n = a + !b + 1` (`n - 1` ANDs).
    pub fn sub_words(&mut self, a: &[Bit], b: &[Bit]) -> Word {
        let nb: Word = b.iter().map(|&x| self.not(x)).collect();
        self.add_carry(a, &nb, Bit::One, false).0
    }

    /// Signed `a >= b` (`n` ANDs): the carry out of `a + !b + 1` with the sign bits
    /// flipped (which turns the signed order into the unsigned one).
    pub fn ge_signed(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        let n = a.len();
        let mut a2 = a.to_vec();
        a2[n - 1] = self.not(a[n - 1]);
        let nb: Word = b
            .iter()
            .enumerate()
            .map(|(i, &x)| if i == n - 1 { x } else { self.not(x) })
            .collect();
        // Carries only: c' = c ^ ((a ^ c) & (b ^ c)).
        let mut c = Bit::One;
        for i in 0..n {
            let axc = self.xor(a2[i], c);
            let bxc = self.xor(nb[i], c);
            let t = self.and(axc, bxc);
            c = self.xor(c, t);
        }
        c
    }

    /// Signed `a < b` (`n` ANDs).
    pub fn lt_signed(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        let ge = self.ge_signed(a, b);
        self.not(ge)
    }

    /// Bitwise `if s { t } else { e }` (one AND per bit that is not constant-equal).
    pub fn mux_words(&mut self, s: Bit, t: &[Bit], e: &[Bit]) -> Word {
        t.iter().zip(e).map(|(&x, &y)| self.mux(s, x, y)).collect()
    }

    /// Arithmetic shift right by `f`: wiring only.
    pub fn ashr(&self, a: &[Bit], f: usize) -> Word {
        let n = a.len();
        (0..n).map(|i| a[(i + f).min(n - 1)]).collect()
    }
}

/// `a + K` as the circuit sees a shared value.
fn reconstruct(b: &mut Builder, a: &[Bit], k: &[Bit]) -> Word {
    b.add_words(a, k)
}

/// The non-linear functions of the engine, each evaluated on `k` shared inputs and
/// masked by the garbler's `r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gadget {
    /// `relu(x >>a f) - r`.
    ReluTruncMask { f: FracBits },
    /// `relu(max_j (x_j >>a f)) - r` over a window of `k >= 1` values.
    MaxPoolReluTruncMask { k: usize, f: FracBits },
    /// `sign(x) - r` with `sign(x) = +1` if `x >= 0` (so `sign(0) = +1`), else `-1`.
    SignMask,
    /// `(x >= tau ? +1 : -1) - r`; inputs `[x, tau]`, signed comparison.
    ThresholdSignMask,
    /// `argmax_j x_j - r` over `k >= 1` values (signed; the first maximum wins).
    ArgmaxMask { k: usize },
}

impl Gadget {
    /// Number of shared ring inputs per element.
    pub fn arity(&self) -> usize {
        match *self {
            Gadget::ReluTruncMask { .. } | Gadget::SignMask => 1,
            Gadget::ThresholdSignMask => 2,
            Gadget::MaxPoolReluTruncMask { k, .. } | Gadget::ArgmaxMask { k } => k,
        }
    }

    /// Integer semantics of the unmasked function on reconstructed inputs.
    ///
    /// # Panics
    /// If `x.len() != self.arity()`.
    pub fn plain(&self, x: &[u64]) -> u64 {
        assert_eq!(x.len(), self.arity(), "gadget arity");
        let s = |v: u64| v as i64;
        match *self {
            Gadget::ReluTruncMask { f } => (s(x[0]) >> f.0).max(0) as u64,
            Gadget::MaxPoolReluTruncMask { f, .. } => {
                x.iter().map(|&v| s(v) >> f.0).max().expect("k >= 1").max(0) as u64
            }
            Gadget::SignMask => {
                if s(x[0]) >= 0 {
                    1
                } else {
                    u64::MAX
                }
            }
            Gadget::ThresholdSignMask => {
                if s(x[0]) >= s(x[1]) {
                    1
                } else {
                    u64::MAX
                }
            }
            Gadget::ArgmaxMask { .. } => {
                let mut best = 0;
                for j in 1..x.len() {
                    if s(x[j]) > s(x[best]) {
                        best = j;
                    }
                }
                best as u64
            }
        }
    }

    /// Build the circuit (inputs and the ring output as in the module docs).
    ///
    /// # Panics
    /// On a zero arity or `f >= 63` (a configuration error, not peer data).
    pub fn circuit(&self) -> Circuit {
        let k = self.arity();
        assert!(k >= 1, "gadget needs at least one input");
        let mut b = Builder::new();
        let a: Vec<Word> = (0..k).map(|_| b.inputs(Owner::Garbler, W)).collect();
        let kk: Vec<Word> = (0..k).map(|_| b.inputs(Owner::Evaluator, W)).collect();
        let out = match *self {
            Gadget::ReluTruncMask { f } => {
                let f = f.0 as usize;
                assert!(f < W - 1, "too many fractional bits");
                let x = reconstruct(&mut b, &a[0], &kk[0]);
                relu_of_shifted(&mut b, &x[f..])
            }
            Gadget::MaxPoolReluTruncMask { f, .. } => {
                let f = f.0 as usize;
                assert!(f < W - 1, "too many fractional bits");
                // Shift first (monotone, free), then compare on the W - f
                // significant bits only: the rest are copies of the sign.
                let mut m: Word = Vec::new();
                for j in 0..k {
                    let x = reconstruct(&mut b, &a[j], &kk[j]);
                    let z = x[f..].to_vec();
                    m = if j == 0 {
                        z
                    } else {
                        let keep = b.ge_signed(&m, &z);
                        b.mux_words(keep, &m, &z)
                    };
                }
                relu_of_shifted(&mut b, &m)
            }
            Gadget::SignMask => {
                let x = reconstruct(&mut b, &a[0], &kk[0]);
                let nonneg = b.not(x[W - 1]);
                b.output_ring(&[(nonneg, u64::MAX, 1)]);
                return b.finish();
            }
            Gadget::ThresholdSignMask => {
                let x = reconstruct(&mut b, &a[0], &kk[0]);
                let tau = reconstruct(&mut b, &a[1], &kk[1]);
                let ge = b.ge_signed(&x, &tau);
                b.output_ring(&[(ge, u64::MAX, 1)]);
                return b.finish();
            }
            Gadget::ArgmaxMask { k } => {
                let idx_bits = (usize::BITS - (k - 1).leading_zeros()) as usize;
                let mut m = reconstruct(&mut b, &a[0], &kk[0]);
                let mut idx = const_word(0, idx_bits);
                for j in 1..k {
                    let x = reconstruct(&mut b, &a[j], &kk[j]);
                    let gt = b.lt_signed(&m, &x);
                    if j + 1 < k {
                        m = b.mux_words(gt, &x, &m);
                    }
                    idx = b.mux_words(gt, &const_word(j as u64, idx_bits), &idx);
                }
                idx
            }
        };
        b.output_word(&out);
        b.finish()
    }
}

/// `relu` of a value given by its significant bits `z` (sign last), zero-extended to
/// 64 bits: `z_i AND NOT sign` for the bits below the sign, zero above. The sign bit
/// itself is `sign AND NOT sign = 0`, so it costs nothing.
fn relu_of_shifted(b: &mut Builder, z: &[Bit]) -> Word {
    let sign = z[z.len() - 1];
    let pos = b.not(sign);
    let mut out: Word = z[..z.len() - 1]
        .iter()
        .map(|&bit| b.and(bit, pos))
        .collect();
    out.resize(W, Bit::Zero);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run_plain(g: &Gadget, a: &[u64], k: &[u64]) -> u64 {
        let c = g.circuit();
        let gi: Vec<bool> = a.iter().flat_map(|&v| to_bits(v)).collect();
        let ei: Vec<bool> = k.iter().flat_map(|&v| to_bits(v)).collect();
        let out = c.eval_plain_ring(&gi, &ei);
        assert_eq!(out.len(), 1);
        out[0]
    }

    /// Values biased toward the interesting places: near zero, near the extremes.
    fn ring() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (-70_000i64..70_000).prop_map(|v| v as u64),
            (0u64..4).prop_map(|v| v.wrapping_add(i64::MAX as u64 - 1)),
        ]
    }

    fn check(g: Gadget, x: Vec<u64>, k: Vec<u64>) {
        // a = x - K, so the circuit reconstructs x exactly.
        let a: Vec<u64> = x.iter().zip(&k).map(|(x, k)| x.wrapping_sub(*k)).collect();
        assert_eq!(run_plain(&g, &a, &k), g.plain(&x), "{g:?} x={x:?}");
    }

    proptest! {
        #[test]
        fn relu(x in ring(), k in any::<u64>(), f in 0u32..20) {
            check(Gadget::ReluTruncMask { f: FracBits(f) }, vec![x], vec![k]);
        }

        #[test]
        fn maxpool(x in prop::collection::vec(ring(), 1..6), f in 0u32..16, seed in any::<u64>()) {
            let k: Vec<u64> = (0..x.len() as u64).map(|i| seed.wrapping_mul(i + 7)).collect();
            check(Gadget::MaxPoolReluTruncMask { k: x.len(), f: FracBits(f) }, x, k);
        }

        #[test]
        fn sign(x in ring(), k in any::<u64>()) {
            check(Gadget::SignMask, vec![x], vec![k]);
        }

        #[test]
        fn threshold(x in ring(), t in ring(), k in any::<u64>()) {
            check(Gadget::ThresholdSignMask, vec![x, t], vec![k, k ^ 0x55]);
        }

        #[test]
        fn argmax(x in prop::collection::vec(ring(), 1..11), seed in any::<u64>()) {
            let k: Vec<u64> = (0..x.len() as u64).map(|i| seed.rotate_left(i as u32 * 5)).collect();
            check(Gadget::ArgmaxMask { k: x.len() }, x, k);
        }
    }

    #[test]
    fn edge_cases() {
        let f = FracBits(12);
        for x in [0u64, 1, 4095, 4096, u64::MAX, 1 << 63, (1 << 63) - 1] {
            check(Gadget::ReluTruncMask { f }, vec![x], vec![12345]);
            check(Gadget::SignMask, vec![x], vec![7]);
        }
        assert_eq!(Gadget::SignMask.plain(&[0]), 1, "sign(0) = +1");
        check(Gadget::ThresholdSignMask, vec![5, 5], vec![1, 2]);
        assert_eq!(Gadget::ThresholdSignMask.plain(&[5, 5]), 1);
        assert_eq!(
            Gadget::ArgmaxMask { k: 3 }.plain(&[4, 9, 9]),
            1,
            "first maximum"
        );
        check(Gadget::ArgmaxMask { k: 3 }, vec![4, 9, 9], vec![1, 2, 3]);
    }

    #[test]
    fn gate_counts_within_budget() {
        let relu = Gadget::ReluTruncMask { f: FracBits(12) }.circuit().counts();
        assert!(relu.and <= 200, "relu uses {} ANDs", relu.and);
        for g in [
            Gadget::ReluTruncMask { f: FracBits(12) },
            Gadget::MaxPoolReluTruncMask {
                k: 4,
                f: FracBits(12),
            },
            Gadget::SignMask,
            Gadget::ThresholdSignMask,
            Gadget::ArgmaxMask { k: 10 },
        ] {
            let c = g.circuit().counts();
            println!("{g:?}: {c:?}");
        }
    }
}
