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
//! One gadget is cheaper than that: [`Gadget::TruncMask`] (exact truncation of a
//! value no other circuit takes) does most of its work locally. `x = a - K'` with
//! `K' = -K`, so `x >>a f = (a >>l f) - (K' >>l f) - [a mod 2^f < K' mod 2^f]`
//! whenever `a - K'` does not wrap around the ring (as integers `a - K' = x`;
//! it wraps with probability `|x| / 2^64` over the evaluator's uniform `K`). The
//! first two terms are the SecureML local shares; the circuit computes only the
//! borrow of the low `f` bits (`f` AND gates on `f` input bits per party) and
//! outputs `-borrow` masked. Its *local parts* ([`Gadget::garbler_local`],
//! [`Gadget::evaluator_local`]) are added to the shares online.
//!
//! [`Gadget::plain`] is the integer semantics each circuit is tested against
//! ([`Gadget::from_shares`] for the whole computation on shares).

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

    /// Unsigned `a >= b` (`n` ANDs): the carry out of `a + !b + 1`.
    pub fn ge_unsigned(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        let mut c = Bit::One;
        for (&x, &y) in a.iter().zip(b) {
            let ny = self.not(y);
            let axc = self.xor(x, c);
            let bxc = self.xor(ny, c);
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
    /// `max_j (x_j >>a f) - r` over a window of `k >= 1` values (no ReLU): the
    /// result is sign-extended from the `W - f` significant bits.
    MaxPoolTruncMask { k: usize, f: FracBits },
    /// `sign(x) - r` with `sign(x) = +1` if `x >= 0` (so `sign(0) = +1`), else `-1`,
    /// `x` read as a signed `width`-bit number (`2 <= width <= 64`): the circuit
    /// takes only the low `width` bits of each share, exact whenever the value
    /// lies in `[-2^(width-1), 2^(width-1))` (its low bits then determine it).
    SignMask { width: u32 },
    /// `(x >= tau ? +1 : -1) - r`; inputs `[x, tau]`, signed comparison.
    ThresholdSignMask,
    /// `argmax_j x_j - r` over `k >= 1` values (signed; the first maximum wins).
    ArgmaxMask { k: usize },
    /// `(x >>a f) - r` for `1 <= f < 63`: a truncation whose value enters no other
    /// circuit. Exact unless the shares wrap (probability `|x| / 2^64`, then off by
    /// `2^(64-f)`); the circuit sees only the low `f` bits (module docs).
    TruncMask { f: FracBits },
}

impl Gadget {
    /// Number of shared ring inputs per element.
    pub fn arity(&self) -> usize {
        match *self {
            Gadget::ReluTruncMask { .. } | Gadget::SignMask { .. } | Gadget::TruncMask { .. } => 1,
            Gadget::ThresholdSignMask => 2,
            Gadget::MaxPoolReluTruncMask { k, .. }
            | Gadget::MaxPoolTruncMask { k, .. }
            | Gadget::ArgmaxMask { k } => k,
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
            Gadget::MaxPoolTruncMask { f, .. } => {
                x.iter().map(|&v| s(v) >> f.0).max().expect("k >= 1") as u64
            }
            Gadget::SignMask { width } => {
                let sh = W as u32 - width;
                if (s(x[0] << sh) >> sh) >= 0 {
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
            Gadget::TruncMask { f } => (s(x[0]) >> f.0) as u64,
        }
    }

    /// Circuit input bits per shared value: 64, `f` for [`Gadget::TruncMask`],
    /// `width` for [`Gadget::SignMask`].
    pub fn input_bits(&self) -> usize {
        match *self {
            Gadget::TruncMask { f } => f.0 as usize,
            Gadget::SignMask { width } => width as usize,
            Gadget::ReluTruncMask { .. }
            | Gadget::MaxPoolReluTruncMask { .. }
            | Gadget::MaxPoolTruncMask { .. }
            | Gadget::ThresholdSignMask
            | Gadget::ArgmaxMask { .. } => W,
        }
    }

    /// The value whose low [`Self::input_bits`] bits the evaluator feeds the
    /// circuit for its share `K` of one input: `K`, or `-K` for
    /// [`Gadget::TruncMask`].
    pub fn evaluator_input(&self, k: u64) -> u64 {
        match *self {
            Gadget::TruncMask { .. } => k.wrapping_neg(),
            Gadget::ReluTruncMask { .. }
            | Gadget::MaxPoolReluTruncMask { .. }
            | Gadget::MaxPoolTruncMask { .. }
            | Gadget::SignMask { .. }
            | Gadget::ThresholdSignMask
            | Gadget::ArgmaxMask { .. } => k,
        }
    }

    /// What the garbler adds to its output share, from its circuit inputs `a` (one
    /// element): `a >>l f` for [`Gadget::TruncMask`], else 0.
    pub fn garbler_local(&self, a: &[u64]) -> u64 {
        match *self {
            Gadget::TruncMask { f } => blindfold_core::ring::trunc_share_p0(a[0], f),
            Gadget::ReluTruncMask { .. }
            | Gadget::MaxPoolReluTruncMask { .. }
            | Gadget::MaxPoolTruncMask { .. }
            | Gadget::SignMask { .. }
            | Gadget::ThresholdSignMask
            | Gadget::ArgmaxMask { .. } => 0,
        }
    }

    /// What the evaluator adds to its output share, from its shares `K` (one
    /// element): `-((-K) >>l f)` for [`Gadget::TruncMask`], else 0.
    pub fn evaluator_local(&self, k: &[u64]) -> u64 {
        match *self {
            Gadget::TruncMask { f } => blindfold_core::ring::trunc_share_p1(k[0], f),
            Gadget::ReluTruncMask { .. }
            | Gadget::MaxPoolReluTruncMask { .. }
            | Gadget::MaxPoolTruncMask { .. }
            | Gadget::SignMask { .. }
            | Gadget::ThresholdSignMask
            | Gadget::ArgmaxMask { .. } => 0,
        }
    }

    /// What the protocol computes from the garbler's inputs `a` and the evaluator's
    /// shares `K` of one element (`x = a + K`): the local parts plus the circuit's
    /// ring output, evaluated in plaintext. Equals [`Self::plain`]`(a + K)`, for
    /// [`Gadget::TruncMask`] unless the shares wrap.
    pub fn from_shares(&self, a: &[u64], k: &[u64]) -> u64 {
        let bits = self.input_bits();
        let take = |v: u64| (0..bits).map(move |i| (v >> i) & 1 == 1);
        let gi: Vec<bool> = a.iter().flat_map(|&v| take(v)).collect();
        let ei: Vec<bool> = k
            .iter()
            .flat_map(|&v| take(self.evaluator_input(v)))
            .collect();
        let ring = self.circuit().eval_plain_ring(&gi, &ei);
        ring[0]
            .wrapping_add(self.garbler_local(a))
            .wrapping_add(self.evaluator_local(k))
    }

    /// Build the circuit (inputs and the ring output as in the module docs).
    ///
    /// # Panics
    /// On a zero arity or `f >= 63` (a configuration error, not peer data).
    pub fn circuit(&self) -> Circuit {
        let k = self.arity();
        assert!(k >= 1, "gadget needs at least one input");
        let mut b = Builder::new();
        let bits = self.input_bits();
        let a: Vec<Word> = (0..k).map(|_| b.inputs(Owner::Garbler, bits)).collect();
        let kk: Vec<Word> = (0..k).map(|_| b.inputs(Owner::Evaluator, bits)).collect();
        let out = match *self {
            Gadget::ReluTruncMask { f } => {
                let f = f.0 as usize;
                assert!(f < W - 1, "too many fractional bits");
                let x = reconstruct(&mut b, &a[0], &kk[0]);
                relu_of_shifted(&mut b, &x[f..])
            }
            Gadget::MaxPoolReluTruncMask { f, .. } => {
                let m = window_max_shifted(&mut b, &a, &kk, f);
                relu_of_shifted(&mut b, &m)
            }
            Gadget::MaxPoolTruncMask { f, .. } => {
                let mut m = window_max_shifted(&mut b, &a, &kk, f);
                // Sign-extend the W - f significant bits: wires, no gates.
                let sign = m[m.len() - 1];
                m.resize(W, sign);
                m
            }
            Gadget::SignMask { width } => {
                assert!((2..=W as u32).contains(&width), "sign width 2..=64");
                let x = reconstruct(&mut b, &a[0], &kk[0]);
                let nonneg = b.not(x[width as usize - 1]);
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
            Gadget::TruncMask { f } => {
                assert!((1..W as u32 - 1).contains(&f.0), "truncation by 1..63 bits");
                // Inputs: the low f bits of a and of K' = -K. Output -[a_lo < K'_lo].
                let no_borrow = b.ge_unsigned(&a[0], &kk[0]);
                b.output_ring(&[(no_borrow, u64::MAX, 0)]);
                return b.finish();
            }
        };
        b.output_word(&out);
        b.finish()
    }
}

/// The maximum of a window of reconstructed values `a_j + K_j`, each shifted
/// right by `f` first (monotone, free), then compared on the `W - f`
/// significant bits only (the rest are copies of the sign); sign last.
fn window_max_shifted(b: &mut Builder, a: &[Word], kk: &[Word], f: FracBits) -> Word {
    let f = f.0 as usize;
    assert!(f < W - 1, "too many fractional bits");
    let mut m: Word = Vec::new();
    for (j, (aj, kj)) in a.iter().zip(kk).enumerate() {
        let x = reconstruct(b, aj, kj);
        let z = x[f..].to_vec();
        m = if j == 0 {
            z
        } else {
            let keep = b.ge_signed(&m, &z);
            b.mux_words(keep, &m, &z)
        };
    }
    m
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
        assert_eq!(g.circuit().ring_outputs().len(), 1);
        g.from_shares(a, k)
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
            check(Gadget::MaxPoolReluTruncMask { k: x.len(), f: FracBits(f) }, x.clone(), k.clone());
            check(Gadget::MaxPoolTruncMask { k: x.len(), f: FracBits(f) }, x, k);
        }

        #[test]
        fn sign(x in ring(), k in any::<u64>()) {
            check(Gadget::SignMask { width: 64 }, vec![x], vec![k]);
        }

        /// A narrow sign reads only the low `width` bits and is exact on values
        /// in its signed range, whatever the shares.
        #[test]
        fn narrow_sign(width in 2u32..64, v in any::<i64>(), k in any::<u64>()) {
            // v's low `width` bits, sign-extended: in [-2^(w-1), 2^(w-1)).
            let sh = 64 - width;
            let x = (v << sh) >> sh;
            let g = Gadget::SignMask { width };
            check(g, vec![x as u64], vec![k]);
            prop_assert_eq!(g.plain(&[x as u64]), if x >= 0 { 1 } else { u64::MAX });
            prop_assert_eq!(g.circuit().counts().and, width as usize - 1);
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

    proptest! {
        /// Exact whenever `a - K'` does not wrap (as integers it equals `x`);
        /// off by exactly `±2^(64-f)` when it does.
        #[test]
        fn trunc(x in ring(), k in any::<u64>(), f in 1u32..40) {
            let g = Gadget::TruncMask { f: FracBits(f) };
            let a = x.wrapping_sub(k);
            let kp = k.wrapping_neg();
            let got = run_plain(&g, &[a], &[k]);
            let want = g.plain(&[x]);
            if a as i128 - kp as i128 == x as i64 as i128 {
                prop_assert_eq!(got, want, "x={} k={} f={}", x, k, f);
            } else {
                let off = got.wrapping_sub(want);
                prop_assert!(off == 1u64 << (64 - f) || off == (1u64 << (64 - f)).wrapping_neg());
            }
        }
    }

    #[test]
    fn trunc_is_exact_on_fixed_point_values_and_rounds_nothing_up() {
        // Every low-bit pattern, both signs, several share splits (none wrapping:
        // that needs K within |x| of 0): the SecureML local shares alone are one
        // too large whenever x's dropped bits exceed those of -K.
        let f = FracBits(12);
        let g = Gadget::TruncMask { f };
        let mut local_off = 0;
        for (i, base) in [0i64, 5 << 12, -(7 << 12), 123_456_789].iter().enumerate() {
            for low in [0i64, 1, 2047, 4095] {
                for k in [
                    0xdead_beef_1234_5678u64,
                    0x1234_5678_9abc_def0,
                    1 << 63,
                    u64::MAX / 3,
                    0x0000_0001_0000_0fff,
                ] {
                    let x = (base + low * if i == 2 { -1 } else { 1 }) as u64;
                    let a = x.wrapping_sub(k);
                    let kp = k.wrapping_neg();
                    assert_eq!(a as i128 - kp as i128, x as i64 as i128, "no wrap");
                    assert_eq!(g.from_shares(&[a], &[k]), g.plain(&[x]), "x={x} k={k}");
                    let local = blindfold_core::ring::trunc_share_p0(a, f)
                        .wrapping_add(blindfold_core::ring::trunc_share_p1(k, f));
                    local_off += (local != g.plain(&[x])) as usize;
                }
            }
        }
        assert!(local_off > 0, "the local shares alone do round");
        assert_eq!(g.circuit().counts().and, 12, "one AND per dropped bit");
    }

    #[test]
    fn edge_cases() {
        let f = FracBits(12);
        for x in [0u64, 1, 4095, 4096, u64::MAX, 1 << 63, (1 << 63) - 1] {
            check(Gadget::ReluTruncMask { f }, vec![x], vec![12345]);
            check(Gadget::SignMask { width: 64 }, vec![x], vec![7]);
        }
        assert_eq!(
            Gadget::SignMask { width: 64 }.plain(&[0]),
            1,
            "sign(0) = +1"
        );
        assert_eq!(Gadget::SignMask { width: 8 }.plain(&[0]), 1, "sign(0) = +1");
        assert_eq!(Gadget::SignMask { width: 8 }.plain(&[127]), 1);
        assert_eq!(
            Gadget::SignMask { width: 8 }.plain(&[128]),
            u64::MAX,
            "wraps"
        );
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
            Gadget::SignMask { width: 64 },
            Gadget::SignMask { width: 20 },
            Gadget::ThresholdSignMask,
            Gadget::ArgmaxMask { k: 10 },
            Gadget::TruncMask { f: FracBits(12) },
        ] {
            let c = g.circuit().counts();
            println!("{g:?}: {c:?}");
        }
    }
}
