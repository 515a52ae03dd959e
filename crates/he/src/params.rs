//! Parameters of the RLWE scheme and the exact RNS encoder / decoder for the
//! plaintext modulus `t = 2^64`.
//!
//! * ring `R = Z[X]/(X^n + 1)`, `n = 8192`;
//! * ciphertext modulus `q = p0 * p1 * p2 * p3` (about 2^200), all primes
//!   `= 1 mod 2n` (NTT-friendly) and below 2^62; responses are switched down to
//!   `q' = p0 * p1` (the two 60-bit primes, about 2^120) before they are sent back;
//! * ternary secret, error from a centred binomial distribution of variance 10
//!   (|e| <= 20); responses flooded at `q'` with all of the decryption budget the
//!   honest worst case leaves (`rlwe::ResponseFlood`).
//!
//! docs/he.md derives the security level and the noise budget.

use std::sync::Arc;

use fhe_math::rq::Context;
use fhe_math::zq::Modulus;
use num_bigint::BigUint;

use crate::{HeError, Result};

/// Ring degree `n`.
pub const RING_DEGREE: usize = 8192;

/// The RNS primes of `q`, in the order in which modulus switching keeps them:
/// the first [`RESPONSE_PRIMES`] (two 60-bit primes) form the response modulus
/// `q'`, the last two (40-bit) are dropped before a response is sent.
/// Each is the largest prime below its predecessor (or below 2^60 / 2^40) that is
/// `= 1 mod 2^14` (see `tests::moduli_are_ntt_friendly_primes`).
///
/// Why `q' ≈ 2^120` and not 2^80: a querier can put arbitrary noise under its own
/// key, and what it reads of the weights is bounded only by how much of the
/// period `Δ' = q'/2^64` the flooding covers; the honest worst case after
/// switching is about `n/2` (rounding times a ternary key) whatever `q'` is, so
/// the uncovered part is `≈ n/Δ'`: 1/8 at 2^80, `2^-43` at 2^120 (docs/he.md).
pub const MODULI: [u64; 4] = [
    1_152_921_504_606_830_593,
    1_152_921_504_606_748_673,
    1_099_511_480_321,
    1_099_510_890_497,
];

/// Number of primes kept in a response ciphertext.
pub const RESPONSE_PRIMES: usize = 2;

/// Variance of the centred binomial error distribution (`fhe-math`'s
/// `Poly::small`); coefficients lie in `[-2 * 10, 2 * 10]`.
pub const ERROR_VARIANCE: usize = 10;

/// Largest absolute value of a fresh error coefficient.
pub const ERROR_BOUND: u64 = 2 * ERROR_VARIANCE as u64;

/// Flooding noise of the step-by-step path (`Ciphertext::rerandomize`) is this
/// many bits above the product's noise bound. The protocol's fused path floods at
/// the response level instead (`rlwe::ResponseFlood`).
pub const FLOOD_MARGIN_BITS: u32 = 40;

/// Parameters shared by both parties: the RNS contexts at the full and at the
/// response level, and the encoders for `t = 2^64` at each.
#[derive(Debug)]
pub struct HeParams {
    pub(crate) n: usize,
    pub(crate) ctx: Arc<Context>,
    pub(crate) ctx_resp: Arc<Context>,
    pub(crate) codec: Codec,
    pub(crate) codec_resp: Codec,
    pub(crate) switch: Switch,
}

impl HeParams {
    /// The default (and, for 128-bit security, the only supported) parameter set.
    pub fn new() -> Result<Arc<HeParams>> {
        Self::custom(RING_DEGREE, &MODULI, RESPONSE_PRIMES)
    }

    /// A custom parameter set (tests with other moduli). Security and the noise
    /// budget are the caller's responsibility.
    pub fn custom(degree: usize, moduli: &[u64], response_primes: usize) -> Result<Arc<HeParams>> {
        if response_primes == 0 || response_primes > moduli.len() {
            return Err(HeError::ParameterMismatch(format!(
                "{response_primes} response primes out of {}",
                moduli.len()
            )));
        }
        let ctx = Context::new_arc(moduli, degree)?;
        let ctx_resp = ctx.context_at_level(moduli.len() - response_primes)?;
        let codec = Codec::new(ctx.moduli())?;
        let codec_resp = Codec::new(ctx_resp.moduli())?;
        let switch = Switch::new(moduli, response_primes)?;
        Ok(Arc::new(HeParams {
            n: degree,
            ctx,
            ctx_resp,
            codec,
            codec_resp,
            switch,
        }))
    }

    /// Ring degree.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// The primes of the full modulus `q`.
    pub fn moduli(&self) -> &[u64] {
        self.ctx.moduli()
    }

    /// The primes of the response modulus `q'`.
    pub fn response_moduli(&self) -> &[u64] {
        self.ctx_resp.moduli()
    }

    /// `log2 q`.
    pub fn log_q(&self) -> f64 {
        self.moduli().iter().map(|&p| (p as f64).log2()).sum()
    }

    /// `log2 q'`.
    pub fn log_q_response(&self) -> f64 {
        self.response_moduli()
            .iter()
            .map(|&p| (p as f64).log2())
            .sum()
    }

    pub(crate) fn codec_for(&self, level_len: usize) -> Result<&Codec> {
        if level_len == self.codec.q.len() {
            Ok(&self.codec)
        } else if level_len == self.codec_resp.q.len() {
            Ok(&self.codec_resp)
        } else {
            Err(HeError::ParameterMismatch(format!(
                "no encoder for {level_len} primes"
            )))
        }
    }
}

/// Modulus switching from `q` to `q' = q / D` (the first primes kept, `D` the
/// product of the one or two dropped primes): `x' = round(x / D)` coefficient-wise,
/// computed as `(x - r) / D` with `r = x mod D` centred, by CRT on the dropped limbs.
#[derive(Debug)]
pub(crate) struct Switch {
    keep: Vec<Modulus>,
    dropped: Vec<u64>,
    /// `P^{-1} mod Q` for the two dropped primes `P, Q` (unused with one).
    p_inv_mod_q: u64,
    /// Arithmetic modulo the last dropped prime.
    q_last: Modulus,
    d: u128,
    /// `D^{-1} mod p_i` for the kept primes.
    d_inv: Vec<u64>,
}

impl Switch {
    fn new(moduli: &[u64], keep: usize) -> Result<Switch> {
        let dropped = moduli[keep..].to_vec();
        if dropped.is_empty() || dropped.len() > 2 {
            return Err(HeError::ParameterMismatch(format!(
                "modulus switching drops 1 or 2 primes, not {}",
                dropped.len()
            )));
        }
        let d: u128 = dropped.iter().map(|&p| p as u128).product();
        let keep_m: Vec<Modulus> = moduli[..keep]
            .iter()
            .map(|&p| Modulus::new(p))
            .collect::<std::result::Result<_, _>>()?;
        let mut d_inv = Vec::new();
        for m in &keep_m {
            let dm = m.reduce_u128(d);
            d_inv.push(
                m.inv(dm)
                    .ok_or_else(|| HeError::ParameterMismatch("moduli not coprime".into()))?,
            );
        }
        let p_inv_mod_q = if dropped.len() == 2 {
            let mq = Modulus::new(dropped[1])?;
            mq.inv(mq.reduce(dropped[0]))
                .ok_or_else(|| HeError::ParameterMismatch("moduli not coprime".into()))?
        } else {
            0
        };
        let q_last = Modulus::new(*dropped.last().unwrap_or(&3))?;
        Ok(Switch {
            keep: keep_m,
            dropped,
            p_inv_mod_q,
            q_last,
            d,
            d_inv,
        })
    }

    /// `D = q / q'`, the product of the dropped primes.
    pub(crate) fn divisor(&self) -> u128 {
        self.d
    }

    /// Switch coefficient `j` of the full-level rows `x` (`n` per prime) and
    /// write its kept limbs to `out[i * stride + k]`.
    #[inline]
    pub(crate) fn switch_at(
        &self,
        x: &[u64],
        n: usize,
        j: usize,
        out: &mut [u64],
        stride: usize,
        k: usize,
    ) {
        let kn = self.keep.len();
        let a = x[kn * n + j];
        let r: u128 = if self.dropped.len() == 2 {
            let (pp, qq) = (self.dropped[0], self.dropped[1]);
            let b = x[(kn + 1) * n + j];
            // (b - a) mod Q, then times P^{-1} mod Q.
            let mq = &self.q_last;
            let h = mq.mul(mq.sub(b, mq.reduce(a)), self.p_inv_mod_q);
            debug_assert!(h < qq);
            a as u128 + pp as u128 * h as u128
        } else {
            a as u128
        };
        let carry = (r > self.d / 2) as u64;
        for (i, m) in self.keep.iter().enumerate() {
            let r_i = m.reduce_u128(r);
            let v = m.mul(m.sub(x[i * n + j], r_i), self.d_inv[i]);
            out[i * stride + k] = m.add(v, carry);
        }
    }
}

/// Shoup's constant `floor(b * 2^64 / p)` for multiplications by `b < p`.
pub(crate) fn shoup(b: u64, p: u64) -> u64 {
    (((b as u128) << 64) / p as u128) as u64
}

/// `a * b mod p` in `[0, 2p)` for any `a < 2^64`, `b < p < 2^62`, with `b_shoup =
/// shoup(b, p)` (Shoup's modular multiplication, without the final correction).
#[inline]
pub(crate) fn mul_shoup_lazy(a: u64, b: u64, b_shoup: u64, p: u64) -> u64 {
    let quot = ((a as u128 * b_shoup as u128) >> 64) as u64;
    a.wrapping_mul(b).wrapping_sub(quot.wrapping_mul(p))
}

/// Bits needed to write any residue modulo `p`.
pub(crate) fn residue_bits(p: u64) -> u32 {
    64 - (p - 1).leading_zeros()
}

/// Exact conversions between `Z_2^64` and `Z_q` in RNS form:
/// `encode(m) = round(q * m / 2^64) mod q` and `decode(x) = round(2^64 * x / q) mod 2^64`.
#[derive(Debug)]
pub(crate) struct Codec {
    pub(crate) q: Vec<Modulus>,
    /// `floor(q / 2^64) mod p_i`, with its Shoup constant.
    delta_hi: Vec<u64>,
    delta_hi_shoup: Vec<u64>,
    /// Shoup constant of 1 (`floor(2^64 / p_i)`): reduces any u64 to [0, 2 p_i).
    one_shoup: Vec<u64>,
    /// `q mod 2^64`.
    q_lo: u64,
    /// `(q / p_i)^{-1} mod p_i`.
    qhat_inv: Vec<u64>,
    /// `floor(2^64 / p_i)`.
    int_part: Vec<u64>,
    /// `frac(2^64 / p_i) * 2^128` as (high, low) 64-bit words.
    frac: Vec<(u64, u64)>,
    /// `q` and `q / p_i`, for noise measurement only.
    q_big: BigUint,
    qhat_big: Vec<BigUint>,
}

impl Codec {
    fn new(moduli: &[u64]) -> Result<Codec> {
        let q: Vec<Modulus> = moduli
            .iter()
            .map(|&p| Modulus::new(p))
            .collect::<std::result::Result<_, _>>()?;
        let q_lo = moduli.iter().fold(1u64, |a, &p| a.wrapping_mul(p));
        let mut delta_hi = Vec::new();
        let mut qhat_inv = Vec::new();
        let mut int_part = Vec::new();
        let mut frac = Vec::new();
        let mut qhat_big = Vec::new();
        let q_big = moduli
            .iter()
            .fold(BigUint::from(1u64), |a, &p| a * BigUint::from(p));
        for (i, (m, &p)) in q.iter().zip(moduli).enumerate() {
            // 2^64 mod p, and its inverse.
            let two64 = ((1u128 << 64) % p as u128) as u64;
            let inv_two64 = m
                .inv(two64)
                .ok_or_else(|| HeError::ParameterMismatch(format!("{p} is not prime")))?;
            // floor(q / 2^64) = (q - q_lo) / 2^64; q = 0 mod p.
            delta_hi.push(m.mul(m.neg(m.reduce(q_lo)), inv_two64));
            let qhat = moduli
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(1u64, |a, (_, &pj)| m.mul(a, m.reduce(pj)));
            qhat_inv.push(
                m.inv(qhat)
                    .ok_or_else(|| HeError::ParameterMismatch("moduli not coprime".into()))?,
            );
            qhat_big.push(&q_big / BigUint::from(p));
            int_part.push(((1u128 << 64) / p as u128) as u64);
            let r0 = two64 as u128;
            let hi = (r0 << 64) / p as u128;
            let rem = (r0 << 64) % p as u128;
            let lo = (rem << 64) / p as u128;
            frac.push((hi as u64, lo as u64));
        }
        let delta_hi_shoup = delta_hi
            .iter()
            .zip(moduli)
            .map(|(&d, &p)| shoup(d, p))
            .collect();
        let one_shoup = moduli.iter().map(|&p| shoup(1, p)).collect();
        Ok(Codec {
            q,
            delta_hi,
            delta_hi_shoup,
            one_shoup,
            q_lo,
            qhat_inv,
            int_part,
            frac,
            q_big,
            qhat_big,
        })
    }

    /// Number of primes.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// `round(q * m / 2^64) mod p_i` for every message coefficient, written into
    /// the RNS rows `out` (row `i` is `out[i * n .. (i + 1) * n]`), added to
    /// what is there when `add` is set. `m.len() <= n`; missing coefficients are 0.
    pub(crate) fn encode_into(&self, m: &[u64], n: usize, out: &mut [u64], add: bool) {
        for (i, qi) in self.q.iter().enumerate() {
            let row = &mut out[i * n..(i + 1) * n];
            for (o, &mj) in row.iter_mut().zip(m) {
                let v = self.encode_one(i, mj);
                *o = if add { qi.add(*o, v) } else { v };
            }
            if !add {
                for o in row.iter_mut().skip(m.len()) {
                    *o = 0;
                }
            }
        }
    }

    /// `round(q * m / 2^64) mod p_i`: `floor(q/2^64) * m + round((q mod 2^64) * m / 2^64)`.
    #[inline]
    pub(crate) fn encode_one(&self, i: usize, m: u64) -> u64 {
        let p = *self.q[i];
        let low = ((self.q_lo as u128 * m as u128 + (1u128 << 63)) >> 64) as u64;
        let a = mul_shoup_lazy(m, self.delta_hi[i], self.delta_hi_shoup[i], p);
        let b = mul_shoup_lazy(low, 1, self.one_shoup[i], p);
        let mut v = a + b; // < 4p < 2^64
        if v >= 2 * p {
            v -= 2 * p;
        }
        if v >= p {
            v -= p;
        }
        v
    }

    /// `2^64 * x / q mod 2^64` for coefficient `j` of the RNS rows `x`, as its
    /// integer part (mod 2^64) and the sum of the terms' fractional parts in
    /// units of 2^-64 (at most `len()` units, so its carry is added by the caller).
    #[inline]
    fn split_at(&self, x: &[u64], n: usize, j: usize) -> (u64, u128) {
        let mut int = 0u64;
        let mut frac_acc = 0u128;
        for (i, qi) in self.q.iter().enumerate() {
            let y = qi.mul(x[i * n + j], self.qhat_inv[i]);
            int = int.wrapping_add(y.wrapping_mul(self.int_part[i]));
            let (fh, fl) = self.frac[i];
            let s = y as u128 * fh as u128 + ((y as u128 * fl as u128) >> 64);
            int = int.wrapping_add((s >> 64) as u64);
            frac_acc += s as u64 as u128;
        }
        (int, frac_acc)
    }

    /// `round(2^64 * x / q) mod 2^64` for coefficient `j` of the RNS rows `x`.
    #[inline]
    pub(crate) fn decode_at(&self, x: &[u64], n: usize, j: usize) -> u64 {
        let (int, frac_acc) = self.split_at(x, n, j);
        int.wrapping_add(((frac_acc + (1u128 << 63)) >> 64) as u64)
    }

    /// The fractional part of `2^64 * x / q` (that is, of `x / Δ`) for
    /// coefficient `j`, in units of 2^-64: where `x` sits between two multiples of
    /// `Δ = q / 2^64`. Error below `4 * 2^-64` (the fixed-point error of
    /// [`decode_at`](Self::decode_at)).
    #[inline]
    pub(crate) fn fraction_at(&self, x: &[u64], n: usize, j: usize) -> u64 {
        self.split_at(x, n, j).1 as u64
    }

    /// `log2 |x_j - encode(m_j)|` (centred mod q), or 0 for no noise. Exact
    /// (big-integer CRT); for tests and diagnostics.
    pub(crate) fn noise_log2_at(&self, x: &[u64], n: usize, j: usize, m: u64) -> f64 {
        let mut enc = vec![0u64; self.len()];
        let mut tmp = vec![0u64; self.len()];
        // encode one coefficient into a 1-wide layout.
        self.encode_into(&[m], 1, &mut tmp, false);
        for (i, qi) in self.q.iter().enumerate() {
            enc[i] = qi.sub(x[i * n + j], tmp[i]);
        }
        let mut v = BigUint::from(0u64);
        for (i, qi) in self.q.iter().enumerate() {
            let y = qi.mul(enc[i], self.qhat_inv[i]);
            v += &self.qhat_big[i] * BigUint::from(y);
        }
        v %= &self.q_big;
        let half = &self.q_big >> 1usize;
        let mag = if v > half { &self.q_big - &v } else { v };
        if mag.bits() == 0 {
            0.0
        } else {
            let bits = mag.bits();
            let top = if bits > 60 {
                (&mag >> (bits - 60) as usize)
                    .to_u64_digits()
                    .first()
                    .copied()
                    .unwrap_or(0)
            } else {
                mag.to_u64_digits().first().copied().unwrap_or(0)
            };
            let shift = bits.saturating_sub(60) as f64;
            (top as f64).log2() + shift
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
            if n.is_multiple_of(p) {
                return n == p;
            }
        }
        let (mut d, mut s) = (n - 1, 0);
        while d.is_multiple_of(2) {
            d /= 2;
            s += 1;
        }
        let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
        'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
            let mut x = 1u64;
            let (mut base, mut e) = (a, d);
            while e > 0 {
                if e & 1 == 1 {
                    x = mulmod(x, base);
                }
                base = mulmod(base, base);
                e >>= 1;
            }
            if x == 1 || x == n - 1 {
                continue;
            }
            for _ in 1..s {
                x = mulmod(x, x);
                if x == n - 1 {
                    continue 'witness;
                }
            }
            return false;
        }
        true
    }

    #[test]
    fn moduli_are_ntt_friendly_primes() {
        for &p in &MODULI {
            assert!(is_prime(p), "{p}");
            assert_eq!(p % (2 * RING_DEGREE as u64), 1);
            assert!(p < 1 << 62);
        }
        let params = HeParams::new().unwrap();
        assert!(params.log_q() <= 218.0, "HE standard bound for n = 8192");
        assert!((params.log_q() - 200.0).abs() < 0.01);
        assert!((params.log_q_response() - 120.0).abs() < 0.01);
    }

    #[test]
    fn encode_decode_roundtrip_and_scale() {
        let params = HeParams::new().unwrap();
        for codec in [&params.codec, &params.codec_resp] {
            let ms = [
                0u64,
                1,
                2,
                u64::MAX,
                1 << 63,
                (1 << 63) - 1,
                0x1234_5678_9abc_def0,
            ];
            let n = ms.len();
            let mut rows = vec![0u64; codec.len() * n];
            codec.encode_into(&ms, n, &mut rows, false);
            for (j, &m) in ms.iter().enumerate() {
                assert_eq!(codec.decode_at(&rows, n, j), m);
                assert_eq!(codec.noise_log2_at(&rows, n, j, m), 0.0);
            }
            // Adding a small noise keeps decoding exact and is measured.
            let mut noisy = rows.clone();
            for (i, qi) in codec.q.iter().enumerate() {
                noisy[i * n + 3] = qi.add(noisy[i * n + 3], 1 << 10);
            }
            assert_eq!(codec.decode_at(&noisy, n, 3), u64::MAX);
            assert!((codec.noise_log2_at(&noisy, n, 3, u64::MAX) - 10.0).abs() < 1e-9);
        }
    }
}
