//! Cheap checks on what a querier sends the responder: its public key (once per
//! session, [`crate::PublicKey::from_bytes`]) and the `c0` of every query
//! ciphertext ([`crate::SeededCiphertext`]'s reader).
//!
//! ```text
//!   querier                                   responder
//!   pk = (b, seed(a)) ─────────────────────▶  spread(b); no ±X^i with b ± X^i·a near 0
//!   query: (seed, c0) per ciphertext ──────▶  spread(c0)
//!                                             any failure: HeError::NotUniform, no answer
//! ```
//!
//! An honest `b = -a*s + e` and an honest `c0 = -a*s + e + Δm` are RLWE samples,
//! uniform modulo `q` to anyone without `s`. For uniform `x` the fraction
//! `u = frac(x / Δ) = (2^64·x mod q) / q` is exactly uniform on the grid `i/q`
//! (`2^64` is a unit mod the odd `q`), whatever `m` is. So the statistics below,
//! computed on the `u_j`, refuse an honest peer with the probability they refuse
//! uniform values (plus an RLWE distinguishing advantage, since they are
//! efficient tests): docs/he.md derives the bounds. A key of the zero secret
//! (`b = e`) or a query made under it (`c0 = e + Δm + extra`) has nearly every
//! `u_j` near 0, and fails. A querier that knows any other secret `s` of its
//! choosing sends values that are as uniform as honest ones and passes: these
//! checks refuse degenerate material, they cannot see noise hidden under `a*s`
//! (the response flooding is what bounds that, see `rlwe::ResponseFlood`).

use crate::error::UniformityCheck;
use crate::params::Codec;
use crate::{HeError, Result};

/// A fraction is "near a multiple of Δ" when `|u| < 2^-NEAR_BITS` (centred):
/// probability `2^(1 - NEAR_BITS)` for a uniform value.
const NEAR_BITS: u32 = 20;

/// Most coefficients near a multiple of Δ an honest polynomial may show.
pub(crate) const NEAR_MAX: usize = 15;

/// The fraction's top bits that pick its bucket (16 buckets).
const BUCKET_BITS: u32 = 4;

/// Whether `u` (a fraction in units of 2^-64) is within `2^-NEAR_BITS` of 0 mod 1.
#[inline]
fn is_near(u: u64) -> bool {
    let w = 1u64 << (64 - NEAR_BITS);
    u.wrapping_add(w) < 2 * w
}

/// The bucket counts an honest polynomial of `n` coefficients shows: within
/// `[3/8, 13/8]` of the mean `n / 16`.
/// Rings smaller than this skip the balance test (tests and fuzzing only).
const BALANCE_MIN_N: usize = 4096;

pub(crate) fn balance_range(n: usize) -> (usize, usize) {
    let mean = n >> BUCKET_BITS;
    (mean * 3 / 8, mean * 13 / 8)
}

fn refuse(
    what: &'static str,
    check: UniformityCheck,
    observed: usize,
    allowed: (usize, usize),
) -> HeError {
    HeError::NotUniform {
        what,
        check,
        observed,
        allowed,
    }
}

/// Refuse `rows` (full-level RNS rows of `n` coefficients, power basis) unless
/// their fractions over Δ are spread as uniform values' are: at most
/// [`NEAR_MAX`] near a multiple of Δ, and every sixteenth of `[0, Δ)` holding a
/// count in [`balance_range`].
pub(crate) fn spread(codec: &Codec, rows: &[u64], n: usize, what: &'static str) -> Result<()> {
    let mut near = 0usize;
    let mut buckets = [0usize; 1 << BUCKET_BITS];
    for j in 0..n {
        let u = codec.fraction_at(rows, n, j);
        near += is_near(u) as usize;
        buckets[(u >> (64 - BUCKET_BITS)) as usize] += 1;
    }
    if near > NEAR_MAX {
        return Err(refuse(
            what,
            UniformityCheck::NearDeltaMultiples,
            near,
            (0, NEAR_MAX),
        ));
    }
    // The balance test is sound only for many coefficients (its false-refusal
    // bound is computed for n = 8192); the small rings of tests and fuzzing
    // (n < 4096, never a deployment's) skip it.
    if n < BALANCE_MIN_N {
        return Ok(());
    }
    let (lo, hi) = balance_range(n);
    let (min, max) = buckets
        .iter()
        .fold((n, 0), |(lo_c, hi_c), &c| (lo_c.min(c), hi_c.max(c)));
    if max > hi {
        return Err(refuse(what, UniformityCheck::Unbalanced, max, (lo, hi)));
    }
    if min < lo {
        return Err(refuse(what, UniformityCheck::Unbalanced, min, (lo, hi)));
    }
    Ok(())
}

/// Refuse a public key `(b, a)` (full-level power-basis rows) whose `b` is not
/// spread ([`spread`]), or that belongs to a secret `±X^i`: then
/// `b ∓ (±X^i·a)` is the small error. Coefficient 0 of `X^i·a` is `a_0` for
/// `i = 0` and `-a_{n-i}` otherwise, so one pass over `a` finds the (almost
/// never more than zero) candidates, and each is checked in full.
pub(crate) fn public_key(codec: &Codec, b: &[u64], a: &[u64], n: usize) -> Result<()> {
    const WHAT: &str = "public key";
    spread(codec, b, n, WHAT)?;
    let l = codec.len();
    let mut one = vec![0u64; l];
    let mut full = vec![0u64; l * n];
    for i in 0..n {
        for plus in [true, false] {
            // t = b + σ·X^i·a at coefficient 0, σ = ±1.
            let (k, neg) = if i == 0 { (0, false) } else { (n - i, true) };
            for (r, qi) in codec.q.iter().enumerate() {
                let ak = a[r * n + k];
                one[r] = if plus != neg {
                    qi.add(b[r * n], ak)
                } else {
                    qi.sub(b[r * n], ak)
                };
            }
            if !is_near(codec.fraction_at(&one, 1, 0)) {
                continue;
            }
            // (X^i·a)_j = a_{j-i} for j >= i, -a_{j-i+n} below.
            for (r, qi) in codec.q.iter().enumerate() {
                for j in 0..n {
                    let (src, wrap) = if j >= i {
                        (j - i, false)
                    } else {
                        (j + n - i, true)
                    };
                    let v = a[r * n + src];
                    full[r * n + j] = if plus != wrap {
                        qi.add(b[r * n + j], v)
                    } else {
                        qi.sub(b[r * n + j], v)
                    };
                }
            }
            let near = (0..n)
                .filter(|&j| is_near(codec.fraction_at(&full, n, j)))
                .count();
            if near > NEAR_MAX {
                return Err(refuse(
                    WHAT,
                    UniformityCheck::MonomialSecret,
                    near,
                    (0, NEAR_MAX),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeParams;
    use blindfold_core::Prg;

    fn uniform_rows(params: &HeParams, rng: &mut Prg) -> Vec<u64> {
        let n = params.n;
        let mut rows = Vec::with_capacity(n * params.moduli().len());
        for &p in params.moduli() {
            rows.extend(rng.gen_u64s(n).into_iter().map(|v| v % p));
        }
        rows
    }

    /// Write the small integer `v` at coefficient `j` of every row.
    fn set_small(params: &HeParams, rows: &mut [u64], j: usize, v: i64) {
        let n = params.n;
        for (i, &p) in params.moduli().iter().enumerate() {
            rows[i * n + j] = if v >= 0 {
                v as u64
            } else {
                p - v.unsigned_abs()
            };
        }
    }

    #[test]
    fn uniform_values_pass_and_small_ones_are_refused() {
        let params = HeParams::new().unwrap();
        let (n, codec) = (params.n, &params.codec);
        let mut rng = Prg::from_seed([40; 16]);
        for _ in 0..20 {
            spread(codec, &uniform_rows(&params, &mut rng), n, "t").unwrap();
        }
        // NEAR_MAX small coefficients pass, one more is refused.
        let mut rows = uniform_rows(&params, &mut rng);
        for j in 0..NEAR_MAX {
            set_small(&params, &mut rows, 7 * j, (j as i64 % 41) - 20);
        }
        spread(codec, &rows, n, "t").unwrap();
        set_small(&params, &mut rows, 7 * NEAR_MAX, 3);
        assert!(matches!(
            spread(codec, &rows, n, "t"),
            Err(HeError::NotUniform {
                check: UniformityCheck::NearDeltaMultiples,
                observed: 16,
                ..
            })
        ));
        // Every coefficient the same uniform value: its fraction fills one bucket.
        let mut rows = uniform_rows(&params, &mut rng);
        for i in 0..params.moduli().len() {
            let v = rows[i * n];
            rows[i * n..(i + 1) * n].fill(v);
        }
        assert!(matches!(
            spread(codec, &rows, n, "t"),
            Err(HeError::NotUniform {
                check: UniformityCheck::Unbalanced,
                observed: 8192,
                ..
            })
        ));
        assert_eq!(balance_range(8192), (192, 832));
    }

    #[test]
    fn keys_of_monomial_secrets_are_refused() {
        let params = HeParams::new().unwrap();
        let (n, codec) = (params.n, &params.codec);
        let mut rng = Prg::from_seed([41; 16]);
        let a = uniform_rows(&params, &mut rng);
        // Honest-looking b: uniform.
        public_key(codec, &uniform_rows(&params, &mut rng), &a, n).unwrap();
        // b = -σ X^i a + e for a few (σ, i).
        for (sigma, i) in [(1i64, 0usize), (-1, 0), (1, 1), (-1, 77), (1, n - 1)] {
            let mut b = vec![0u64; a.len()];
            for (r, qi) in codec.q.iter().enumerate() {
                for j in 0..n {
                    let (src, wrap) = if j >= i {
                        (j - i, false)
                    } else {
                        (j + n - i, true)
                    };
                    let v = a[r * n + src];
                    // X^i a at j is ±v; b = -σ·that + e_j.
                    let xa = if wrap { qi.neg(v) } else { v };
                    let e = ((j * 7) % 41) as i64 - 20;
                    let e = if e >= 0 {
                        e as u64
                    } else {
                        **qi - e.unsigned_abs()
                    };
                    b[r * n + j] = if sigma == 1 {
                        qi.add(qi.neg(xa), e)
                    } else {
                        qi.add(xa, e)
                    };
                }
            }
            assert!(
                matches!(
                    public_key(codec, &b, &a, n),
                    Err(HeError::NotUniform {
                        check: UniformityCheck::MonomialSecret,
                        ..
                    })
                ),
                "secret {sigma} X^{i}"
            );
        }
    }
}
