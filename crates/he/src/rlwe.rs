//! RLWE with plaintext modulus `t = 2^64` and coefficient encoding.
//!
//! ```text
//!   encryptor (holds sk)                          evaluator (holds plaintext w)
//!   ────────────────────                          ─────────────────────────────
//!   pk = (b = -a_pk*s + e, seed_pk) ── once ───▶  PublicKey::from_bytes
//!   ct = (c0 = -a*s + e + Δm, seed_a) ────────▶   SeededCiphertext::expand
//!                                                  acc = Σ ct_g * w_g    (NTT domain)
//!                                                  acc += Δ(-T)          (add_plain)
//!                                                  acc += Enc_pk(0) + flood (rerandomize)
//!                                                  acc -> mod q' = p0*p1  (mod_switch)
//!   m' = Decrypt(c0 at the useful positions, c1)  ◀──── (c0 at positions, c1)
//! ```
//!
//! `Δm` means `round(q * m / 2^64)` coefficient-wise ([`crate::params::Codec`]),
//! so that a product with an integer plaintext keeps an error of only `ε * w`.
//! Decryption of `x = c0 + c1*s` is `round(2^64 * x / q) mod 2^64`, exact while the
//! noise stays below `q / 2^65`.

use std::sync::Arc;

use blindfold_core::{Prg, Seed};
use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::checks;
use crate::error::malformed;
use crate::params::{residue_bits, ERROR_BOUND, ERROR_VARIANCE, FLOOD_MARGIN_BITS};
use crate::wire::{packed_len, write_rows, Reader};
use crate::{HeError, HeParams, Result};
use blindfold_core::rng09::Rng09;

/// Wire tag of a public key.
const TAG_PUBLIC_KEY: u8 = 0x50;

/// Build a polynomial from full RNS rows (`L * n` values, each below its prime).
pub(crate) fn poly_from_rows(
    ctx: &Arc<Context>,
    rows: Vec<u64>,
    repr: Representation,
) -> Result<Poly> {
    Ok(Poly::try_convert_from(rows, ctx, false, repr)?)
}

/// The RNS rows of a polynomial, row-major.
pub(crate) fn rows_of(p: &Poly) -> Vec<u64> {
    let c = p.coefficients();
    match c.as_slice() {
        Some(s) => s.to_vec(),
        None => c.iter().copied().collect(),
    }
}

/// A uniform polynomial expanded from a 16-byte seed with the AES-CTR PRG,
/// directly in NTT representation (the NTT of a uniform polynomial is uniform).
/// Rejection sampling per prime: draw `bits(p)` bits, keep values below `p`.
pub(crate) fn uniform_from_seed(ctx: &Arc<Context>, n: usize, seed: Seed) -> Result<Poly> {
    let mut prg = Prg::from_seed(seed);
    let mut rows = Vec::with_capacity(n * ctx.moduli().len());
    let mut buf = vec![0u64; n];
    for &p in ctx.moduli() {
        let mask = (1u64 << residue_bits(p)) - 1;
        let mut filled = 0;
        while filled < n {
            let want = n - filled;
            let draws = want + want / 64 + 8;
            buf.resize(draws, 0);
            for (b, v) in buf.iter_mut().zip(prg.gen_u64s(draws)) {
                *b = v & mask;
            }
            for &v in buf.iter().filter(|&&v| v < p) {
                if filled == n {
                    break;
                }
                rows.push(v);
                filled += 1;
            }
        }
    }
    poly_from_rows(ctx, rows, Representation::Ntt)
}

/// Uniform ternary coefficients in {-1, 0, 1}.
fn ternary_coeffs<R: RngCore + CryptoRng>(n: usize, rng: &mut R) -> Zeroizing<Vec<i64>> {
    let mut coeffs = Zeroizing::new(Vec::<i64>::with_capacity(n));
    while coeffs.len() < n {
        let mut word = rng.next_u64();
        for _ in 0..32 {
            let two = word & 3;
            word >>= 2;
            if two < 3 && coeffs.len() < n {
                coeffs.push(two as i64 - 1);
            }
        }
        word.zeroize();
    }
    coeffs
}

/// A uniform ternary polynomial (coefficients in {-1, 0, 1}) in power basis.
pub(crate) fn ternary<R: RngCore + CryptoRng>(
    ctx: &Arc<Context>,
    n: usize,
    rng: &mut R,
) -> Result<Poly> {
    let coeffs = ternary_coeffs(n, rng);
    Ok(Poly::try_convert_from(
        coeffs.as_slice(),
        ctx,
        false,
        Representation::PowerBasis,
    )?)
}

/// A fresh error polynomial (centred binomial, variance 10) in power basis.
pub(crate) fn error_poly<R: RngCore + CryptoRng>(ctx: &Arc<Context>, rng: &mut R) -> Result<Poly> {
    Ok(Poly::small(
        ctx,
        Representation::PowerBasis,
        ERROR_VARIANCE,
        &mut Rng09(rng),
    )?)
}

/// `count` samples of the centred binomial distribution of variance 10
/// (`popcount` of 20 bits minus `popcount` of 20 bits), as `fhe-math`'s
/// `Poly::small(.., 10, ..)` draws them; for coefficient subsets.
pub(crate) fn cbd10<R: RngCore + CryptoRng>(count: usize, rng: &mut R) -> Zeroizing<Vec<i64>> {
    let mut bytes = Zeroizing::new(vec![0u8; 8 * count]);
    rng.fill_bytes(&mut bytes);
    Zeroizing::new(
        bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                let w = u64::from_le_bytes(w);
                (w & 0xf_ffff).count_ones() as i64 - ((w >> 20) & 0xf_ffff).count_ones() as i64
            })
            .collect(),
    )
}

/// `count` values uniform on `[0, bound)` (`bound >= 1`), by rejection from the
/// smallest power of two above `bound - 1`: exact, no modular bias.
fn uniform_below<R: RngCore + CryptoRng>(
    bound: u64,
    count: usize,
    rng: &mut R,
) -> Zeroizing<Vec<u64>> {
    let bits = 64 - (bound.max(2) - 1).leading_zeros();
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Zeroizing::new(Vec::with_capacity(count));
    while out.len() < count {
        let v = rng.next_u64() & mask;
        if v < bound {
            out.push(v);
        }
    }
    out
}

/// `v mod p` for a small signed `v` (|v| < p).
#[inline]
fn small_mod(v: i64, p: u64) -> u64 {
    if v >= 0 {
        v as u64
    } else {
        p - v.unsigned_abs()
    }
}

/// A secret key: a ternary `s`, kept in NTT form at the full and response levels.
/// Zeroized on drop.
pub struct SecretKey {
    params: Arc<HeParams>,
    s: Poly,
    s_resp: Poly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.s.zeroize();
        self.s_resp.zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A public key `(b, a) = (-a*s + e, a)` with `a` expanded from a seed.
#[derive(Clone, Debug)]
pub struct PublicKey {
    params: Arc<HeParams>,
    seed: Seed,
    b: Poly,
    a: Poly,
}

/// A ciphertext `(c0, c1)` with `c0 + c1*s = Δm + e`, at the full or the response
/// level, both components in the same representation.
#[derive(Clone, Debug)]
pub struct Ciphertext {
    pub(crate) c0: Poly,
    pub(crate) c1: Poly,
}

/// A fresh secret-key ciphertext whose uniform half is a 16-byte seed: what the
/// encryptor sends (c0 in power basis at the full level).
#[derive(Clone, Debug)]
pub struct SeededCiphertext {
    pub(crate) seed: Seed,
    pub(crate) c0: Poly,
}

/// A plaintext polynomial with small signed coefficients (a weight share, lifted
/// to `(-2^63, 2^63]`), kept in NTT form with Shoup precomputation for fast
/// products. `nnz` is the number of (public) positions that may be non-zero; it
/// determines the product's noise bound and so the flooding noise. Zeroized on
/// drop (it is the weight share in another form).
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) poly: Poly,
    pub(crate) nnz: usize,
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.poly.zeroize();
    }
}

impl SecretKey {
    /// Draw a ternary secret.
    pub fn generate<R: RngCore + CryptoRng>(
        params: &Arc<HeParams>,
        rng: &mut R,
    ) -> Result<SecretKey> {
        let coeffs = ternary_coeffs(params.n, rng);
        Self::from_coeffs(params, &coeffs)
    }

    /// A key with the given small coefficients (`n` of them). The protocol only
    /// uses [`generate`](Self::generate); this is how a deviating querier would
    /// pick its own secret ([`crate::adversary`]).
    pub(crate) fn from_coeffs(params: &Arc<HeParams>, coeffs: &[i64]) -> Result<SecretKey> {
        if coeffs.len() != params.n {
            return Err(HeError::Length {
                what: "secret key",
                got: coeffs.len(),
                expected: params.n,
            });
        }
        let mut s = Poly::try_convert_from(coeffs, &params.ctx, false, Representation::PowerBasis)?;
        let mut s_resp =
            Poly::try_convert_from(coeffs, &params.ctx_resp, false, Representation::PowerBasis)?;
        s.change_representation(Representation::Ntt);
        s_resp.change_representation(Representation::Ntt);
        Ok(SecretKey {
            params: params.clone(),
            s,
            s_resp,
        })
    }

    /// The parameters this key lives in.
    pub fn params(&self) -> &Arc<HeParams> {
        &self.params
    }

    /// A public key for this secret (fresh `a` seed and error).
    pub fn public_key<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<PublicKey> {
        let mut seed = [0u8; 16];
        rng.fill_bytes(&mut seed);
        let a = uniform_from_seed(&self.params.ctx, self.params.n, seed)?;
        let mut e = error_poly(&self.params.ctx, rng)?;
        e.change_representation(Representation::Ntt);
        let mut b = &a * &self.s;
        b = -b;
        b += &e;
        e.zeroize();
        Ok(PublicKey {
            params: self.params.clone(),
            seed,
            b,
            a,
        })
    }

    /// Encrypt `m` (at most `n` coefficients of `Z_2^64`, the rest zero) under
    /// the secret key; the uniform half is a fresh seed drawn from `rng`.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        m: &[u64],
        rng: &mut R,
    ) -> Result<SeededCiphertext> {
        let params = &self.params;
        let n = params.n;
        if m.len() > n {
            return Err(HeError::Length {
                what: "plaintext",
                got: m.len(),
                expected: n,
            });
        }
        let mut seed = [0u8; 16];
        rng.fill_bytes(&mut seed);
        let a = uniform_from_seed(&params.ctx, params.n, seed)?;
        let mut as_ = &a * &self.s;
        as_.change_representation(Representation::PowerBasis);
        let mut rows = rows_of(&as_);
        as_.zeroize();
        let e = cbd10(n, rng);
        let codec = &params.codec;
        for (i, qi) in codec.q.iter().enumerate() {
            let p = **qi;
            let row = &mut rows[i * n..(i + 1) * n];
            for (j, x) in row.iter_mut().enumerate() {
                let dm = m.get(j).map_or(0, |&mj| codec.encode_one(i, mj));
                // c0 = -a*s + e + Δm
                *x = qi.add(qi.sub(small_mod(e[j], p), *x), dm);
            }
        }
        let c0 = poly_from_rows(&params.ctx, rows, Representation::PowerBasis)?;
        Ok(SeededCiphertext { seed, c0 })
    }

    /// `c0 + c1*s` in power basis, as RNS rows, at the ciphertext's level.
    fn phase(&self, ct: &Ciphertext) -> Result<(Zeroizing<Vec<u64>>, usize)> {
        let nprimes = ct.c0.ctx().moduli().len();
        let s = if nprimes == self.params.ctx.moduli().len() {
            &self.s
        } else if nprimes == self.params.ctx_resp.moduli().len() {
            &self.s_resp
        } else {
            return Err(HeError::ParameterMismatch(format!(
                "ciphertext with {nprimes} primes"
            )));
        };
        // c1*s (with c0 and c1 public, it gives s away) and the phase: zeroized.
        let mut c1s = ct.c1.clone();
        c1s.change_representation(Representation::Ntt);
        c1s *= s;
        c1s.change_representation(Representation::PowerBasis);
        let mut c0 = ct.c0.clone();
        c0.change_representation(Representation::PowerBasis);
        c1s += &c0;
        let x = Zeroizing::new(rows_of(&c1s));
        c1s.zeroize();
        Ok((x, nprimes))
    }

    /// Decrypt all `n` coefficients.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<u64>> {
        let (x, nprimes) = self.phase(ct)?;
        let codec = self.params.codec_for(nprimes)?;
        let n = self.params.n;
        Ok((0..n).map(|j| codec.decode_at(&x, n, j)).collect())
    }

    /// The phase `c0 + c1*s` of a sparse response at its positions: response-level
    /// RNS rows, `n` wide, zero away from the positions.
    pub(crate) fn sparse_phase(&self, ct: &SparseCiphertext) -> Zeroizing<Vec<u64>> {
        let n = self.params.n;
        let codec = &self.params.codec_resp;
        let mut c1s = ct.c1.clone();
        c1s.change_representation(Representation::Ntt);
        c1s *= &self.s_resp;
        c1s.change_representation(Representation::PowerBasis);
        let x = Zeroizing::new(rows_of(&c1s));
        c1s.zeroize();
        let k = ct.positions.len();
        let mut phase = Zeroizing::new(vec![0u64; codec.len() * n]);
        for (idx, &j) in ct.positions.iter().enumerate() {
            for (i, qi) in codec.q.iter().enumerate() {
                phase[i * n + j] = qi.add(x[i * n + j], ct.c0_rows[i * k + idx]);
            }
        }
        phase
    }

    /// Decrypt a response that carries `c0` only at `positions`.
    pub fn decrypt_sparse(&self, ct: &SparseCiphertext) -> Result<Vec<u64>> {
        let n = self.params.n;
        let codec = &self.params.codec_resp;
        let phase = self.sparse_phase(ct);
        Ok(ct
            .positions
            .iter()
            .map(|&j| codec.decode_at(&phase, n, j))
            .collect())
    }

    /// The fractional parts of `phase / Δ'` at a sparse response's positions, in
    /// units of 2^-64 (see [`crate::adversary::response_fractions`]).
    pub(crate) fn sparse_fractions(&self, ct: &SparseCiphertext) -> Vec<u64> {
        let n = self.params.n;
        let codec = &self.params.codec_resp;
        let phase = self.sparse_phase(ct);
        ct.positions
            .iter()
            .map(|&j| codec.fraction_at(&phase, n, j))
            .collect()
    }

    /// `log2` of the largest noise coefficient of `ct` when it encrypts `m`
    /// (exact, big-integer; for tests and diagnostics).
    pub fn noise_log2(&self, ct: &Ciphertext, m: &[u64]) -> Result<f64> {
        let (x, nprimes) = self.phase(ct)?;
        let codec = self.params.codec_for(nprimes)?;
        let n = self.params.n;
        let mut worst = 0f64;
        for j in 0..n {
            let mj = m.get(j).copied().unwrap_or(0);
            worst = worst.max(codec.noise_log2_at(&x, n, j, mj));
        }
        Ok(worst)
    }
}

impl PublicKey {
    /// Serialize: tag, degree, the moduli, the seed of `a`, then `b` (power basis).
    pub fn to_bytes(&self) -> Vec<u8> {
        let moduli = self.params.moduli();
        let mut out = Vec::with_capacity(self.byte_len());
        out.push(TAG_PUBLIC_KEY);
        out.extend_from_slice(&(self.params.n as u32).to_le_bytes());
        out.push(moduli.len() as u8);
        for &p in moduli {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out.extend_from_slice(&self.seed);
        let mut b = self.b.clone();
        b.change_representation(Representation::PowerBasis);
        write_rows(&mut out, &rows_of(&b), self.params.n, moduli);
        out
    }

    /// Length of [`to_bytes`](Self::to_bytes).
    pub fn byte_len(&self) -> usize {
        let moduli = self.params.moduli();
        1 + 4 + 1 + 8 * moduli.len() + 16 + packed_len(self.params.n, moduli)
    }

    /// Parse and validate a peer's public key against our parameters: layout,
    /// reduced residues, and `checks::public_key` (a `b` spread as an RLWE
    /// sample's is, not the key of the zero secret or of a secret `±X^i`).
    pub fn from_bytes(params: &Arc<HeParams>, bytes: &[u8]) -> Result<PublicKey> {
        const WHAT: &str = "public key";
        let mut r = Reader::new(bytes, WHAT);
        if r.u8()? != TAG_PUBLIC_KEY {
            return Err(malformed(WHAT, "wrong tag"));
        }
        let n = r.u32()? as usize;
        if n != params.n {
            return Err(HeError::ParameterMismatch(format!(
                "peer ring degree {n}, ours {}",
                params.n
            )));
        }
        let count = r.u8()? as usize;
        if count != params.moduli().len() {
            return Err(HeError::ParameterMismatch(format!(
                "peer has {count} primes, we have {}",
                params.moduli().len()
            )));
        }
        for &p in params.moduli() {
            if r.u64()? != p {
                return Err(HeError::ParameterMismatch("different moduli".into()));
            }
        }
        let seed = r.seed()?;
        let rows = r.rows(params.n, params.moduli())?;
        r.finish()?;
        let a = uniform_from_seed(&params.ctx, params.n, seed)?;
        let mut a_rows = a.clone();
        a_rows.change_representation(Representation::PowerBasis);
        checks::public_key(&params.codec, &rows, &rows_of(&a_rows), params.n)?;
        let mut b = poly_from_rows(&params.ctx, rows, Representation::PowerBasis)?;
        b.change_representation(Representation::Ntt);
        Ok(PublicKey {
            params: params.clone(),
            seed,
            b,
            a,
        })
    }

    /// An encryption of zero: `(b*u + e0, a*u + e1)` in NTT form, full level.
    pub fn encrypt_zero<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<Ciphertext> {
        let ctx = &self.params.ctx;
        let mut u = ternary(ctx, self.params.n, rng)?;
        u.change_representation(Representation::Ntt);
        let mut e0 = error_poly(ctx, rng)?;
        let mut e1 = error_poly(ctx, rng)?;
        e0.change_representation(Representation::Ntt);
        e1.change_representation(Representation::Ntt);
        let mut c0 = &self.b * &u;
        c0 += &e0;
        let mut c1 = &self.a * &u;
        c1 += &e1;
        u.zeroize();
        e0.zeroize();
        e1.zeroize();
        Ok(Ciphertext { c0, c1 })
    }
}

impl SeededCiphertext {
    /// Bytes on the wire: the seed and `c0` at the full level.
    pub fn byte_len(params: &HeParams) -> usize {
        16 + packed_len(params.n, params.moduli())
    }

    /// Append the wire form to `out`.
    pub fn write(&self, params: &HeParams, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seed);
        write_rows(out, &rows_of(&self.c0), params.n, params.moduli());
    }

    /// Read a peer's ciphertext, refusing a `c0` that is not spread as a fresh
    /// encryption's is (`checks::spread`).
    pub(crate) fn read(params: &Arc<HeParams>, r: &mut Reader<'_>) -> Result<SeededCiphertext> {
        let seed = r.seed()?;
        let rows = r.rows(params.n, params.moduli())?;
        checks::spread(&params.codec, &rows, params.n, r.what())?;
        let c0 = poly_from_rows(&params.ctx, rows, Representation::PowerBasis)?;
        Ok(SeededCiphertext { seed, c0 })
    }

    /// Parse one seeded ciphertext that makes up the whole of `bytes`.
    pub fn from_bytes(params: &Arc<HeParams>, bytes: &[u8]) -> Result<SeededCiphertext> {
        let mut r = Reader::new(bytes, "ciphertext");
        let ct = Self::read(params, &mut r)?;
        r.finish()?;
        Ok(ct)
    }

    /// The full ciphertext, in NTT form, ready for products.
    pub fn expand(&self, params: &HeParams) -> Result<Ciphertext> {
        let mut c0 = self.c0.clone();
        c0.change_representation(Representation::Ntt);
        let c1 = uniform_from_seed(&params.ctx, params.n, self.seed)?;
        Ok(Ciphertext { c0, c1 })
    }
}

impl Plaintext {
    /// Encode ring elements `w` (at most `n`; read as signed, two's complement)
    /// as a plaintext polynomial with `nnz` public non-zero positions.
    pub fn new(params: &HeParams, w: &[u64], nnz: usize) -> Result<Plaintext> {
        let n = params.n;
        if w.len() > n {
            return Err(HeError::Length {
                what: "plaintext",
                got: w.len(),
                expected: n,
            });
        }
        let moduli = params.moduli();
        // Moved into the polynomial below (which the NTT then overwrites in place).
        let mut rows2 = vec![0u64; moduli.len() * n];
        for (i, &p) in moduli.iter().enumerate() {
            let p128 = p as i128;
            for (o, &wj) in rows2[i * n..].iter_mut().zip(w) {
                *o = (wj as i64 as i128).rem_euclid(p128) as u64;
            }
        }
        let mut poly = poly_from_rows(&params.ctx, rows2, Representation::PowerBasis)?;
        poly.change_representation(Representation::NttShoup);
        Ok(Plaintext {
            poly,
            nnz: nnz.min(n),
        })
    }
}

/// Flooding exponent: flooding noise is uniform in `[-2^k, 2^k)` with
/// `2^k >= 2^40 * B`, `B = nnz * 2^63 * (ERROR_BOUND + 1/2) + terms` the worst-case
/// noise of a sum of `terms` products with plaintexts of `nnz` non-zero
/// positions in total.
pub fn flood_bits(nnz_total: usize, terms: usize) -> u32 {
    let bound =
        (nnz_total.max(1) as f64) * 2f64.powi(63) * (ERROR_BOUND as f64 + 0.5) + terms as f64 + 2.0;
    bound.log2().ceil() as u32 + FLOOD_MARGIN_BITS
}

/// The flooding of a response, added at the response level after switching:
/// uniform on the `2h` integers `[-h, h)`, with `h` as large as the decryption
/// budget allows once the honest worst case is paid for.
///
/// Why as large as possible: a querier that chose its own key can make the
/// phase of its query anything, so `(phase * W) mod Δ'` — the part of the
/// response that `Δ(-T)` does not randomize — can be anything; only flooding
/// that covers almost the whole period `Δ'` hides it. With `L = 2h` values,
/// the response's coefficient `j` is, for fixed everything else, uniform on
/// `2^64 · L` of the `q'` residues (one arc of `L` per `T_j`), so it carries at
/// most `log2(Δ'/L)` bits, and the responses for any two weight shares are at
/// statistical distance at most `(Δ' - L + 2)/L` per coefficient
/// ([`distance_bound`](Self::distance_bound)), for any query the responder
/// accepts. The honest worst case (docs/he.md, noise table) is what is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFlood {
    half_width: u64,
}

/// Units of safety margin left below the decryption budget at `q'` (covers the
/// decoder's fixed-point error, `< 4 * 2^-64 * Δ'`, many times over).
const RESPONSE_MARGIN: u64 = 64;

impl ResponseFlood {
    /// The flooding for a sum of `terms` products with plaintexts of
    /// `nnz_total` non-zero positions in total, plus `Δ(-T)` and a public-key
    /// encryption of zero, switched to `q'`: `h = floor(Δ'/2) - ceil(B') -
    /// margin`, `B'` the honest worst-case noise after switching
    /// ([`honest_bound`](Self::honest_bound)).
    pub fn for_products(params: &HeParams, nnz_total: usize, terms: usize) -> Result<Self> {
        let q_resp: u128 = params
            .response_moduli()
            .iter()
            .try_fold(1u128, |a, &p| a.checked_mul(p as u128))
            .ok_or_else(|| HeError::ParameterMismatch("response modulus above 2^128".into()))?;
        let budget = q_resp >> 65;
        let honest = Self::honest_bound(params, nnz_total, terms).ceil();
        let need = honest as u128 + RESPONSE_MARGIN as u128;
        if !honest.is_finite() || need >= budget || budget - need > u64::MAX as u128 / 2 {
            return Err(HeError::Shape(format!(
                "honest response noise 2^{:.1} does not fit the budget 2^{:.1}",
                honest.log2(),
                (budget as f64).log2()
            )));
        }
        Ok(ResponseFlood {
            half_width: (budget - need) as u64,
        })
    }

    /// The honest worst-case noise of a response at `q'`, before flooding:
    /// `(B + (2n+1)·B_e) / D + 1/2 + n/2`, with `B = nnz·2^63·(B_e + 1/2) + terms + 2`
    /// the products' bound at `q` (`|w| <= 2^63`, fresh error `|e| <= B_e = 20`),
    /// `(2n+1)·B_e` the encryption of zero's (`e·u + e0 + e1·s`), `D = q/q'`, and
    /// the rounding of switching: `1/2` on `c0`, `1/2` per coefficient of `c1`
    /// times a ternary key (`||s||_1 <= n`).
    pub fn honest_bound(params: &HeParams, nnz_total: usize, terms: usize) -> f64 {
        let n = params.n as f64;
        let be = ERROR_BOUND as f64;
        let product = (nnz_total.max(1) as f64) * 2f64.powi(63) * (be + 0.5) + terms as f64 + 2.0;
        let zero = (2.0 * n + 1.0) * be;
        (product + zero) / params.switch.divisor() as f64 + 0.5 + n / 2.0
    }

    /// `h`: the flooding is uniform on `[-h, h)`.
    pub fn half_width(&self) -> u64 {
        self.half_width
    }

    /// Bound on the statistical distance, per returned coefficient, between
    /// the responses for any two weight shares, whatever the query:
    /// `(Δ' - 2h + 2) / 2h`.
    pub fn distance_bound(&self, params: &HeParams) -> f64 {
        let delta = params
            .response_moduli()
            .iter()
            .map(|&p| p as f64)
            .product::<f64>()
            / 2f64.powi(64);
        let l = 2.0 * self.half_width as f64;
        (delta - l + 2.0) / l
    }
}

fn check_flood(params: &HeParams, flood_bits: u32) -> Result<()> {
    if flood_bits > 126 || flood_bits as f64 + 66.0 > params.log_q() {
        return Err(HeError::Shape(format!(
            "flooding noise of 2^{flood_bits} exceeds the noise budget"
        )));
    }
    Ok(())
}

impl Ciphertext {
    /// `self * w`, NTT domain (both inputs at the full level; `self` in NTT form).
    pub fn mul_plain(&self, w: &Plaintext) -> Ciphertext {
        let mut c0 = self.c0.clone();
        c0 *= &w.poly;
        let mut c1 = self.c1.clone();
        c1 *= &w.poly;
        Ciphertext { c0, c1 }
    }

    /// `self += ct * w` (NTT domain).
    pub fn mul_plain_add(&mut self, ct: &Ciphertext, w: &Plaintext) {
        let p = ct.mul_plain(w);
        self.c0 += &p.c0;
        self.c1 += &p.c1;
    }

    /// `self += other` (same level and representation).
    pub fn add_assign(&mut self, other: &Ciphertext) {
        self.c0 += &other.c0;
        self.c1 += &other.c1;
    }

    /// A zero ciphertext at the full level in NTT form.
    pub fn zero(params: &HeParams) -> Ciphertext {
        Ciphertext {
            c0: Poly::zero(&params.ctx, Representation::Ntt),
            c1: Poly::zero(&params.ctx, Representation::Ntt),
        }
    }

    /// Add the plaintext `Δm` (`round(q*m/t)`); `m.len() <= n`.
    pub fn add_plain(&mut self, params: &HeParams, m: &[u64]) -> Result<()> {
        let n = params.n;
        if m.len() > n {
            return Err(HeError::Length {
                what: "plaintext",
                got: m.len(),
                expected: n,
            });
        }
        let ctx = self.c0.ctx().clone();
        let codec = params.codec_for(ctx.moduli().len())?;
        let repr = *self.c0.representation();
        let mut rows = vec![0u64; codec.len() * n];
        codec.encode_into(m, n, &mut rows, false);
        let mut dm = poly_from_rows(&ctx, rows, Representation::PowerBasis)?;
        dm.change_representation(repr);
        self.c0 += &dm;
        Ok(())
    }

    /// Circuit privacy: add a fresh public-key encryption of zero (re-randomizes
    /// `c1`) and flooding noise uniform in `[-2^k, 2^k)` (hides the product's
    /// noise `w * e`), then leave the ciphertext in power basis at the full level.
    pub fn rerandomize<R: RngCore + CryptoRng>(
        &mut self,
        pk: &PublicKey,
        flood_bits: u32,
        rng: &mut R,
    ) -> Result<()> {
        let params = &pk.params;
        check_flood(params, flood_bits)?;
        let mut z = pk.encrypt_zero(rng)?;
        self.c0.change_representation(Representation::Ntt);
        self.c1.change_representation(Representation::Ntt);
        self.c0 += &z.c0;
        self.c1 += &z.c1;
        // Knowing the encryption of zero would let the querier take it off again.
        z.c0.zeroize();
        z.c1.zeroize();
        self.c0.change_representation(Representation::PowerBasis);
        self.c1.change_representation(Representation::PowerBasis);
        let n = params.n;
        let ctx = &params.ctx;
        let moduli = &params.codec.q;
        // v = x - 2^k with x uniform in [0, 2^(k+1)).
        let span_mask: u128 = if flood_bits + 1 >= 128 {
            u128::MAX
        } else {
            (1u128 << (flood_bits + 1)) - 1
        };
        let offset: Vec<u64> = moduli
            .iter()
            .map(|qi| qi.reduce_u128(1u128 << flood_bits))
            .collect();
        let mut rows = Zeroizing::new(vec![0u64; moduli.len() * n]);
        let mut words = Zeroizing::new(vec![0u8; 16 * n]);
        rng.fill_bytes(&mut words);
        for j in 0..n {
            let mut b = [0u8; 16];
            b.copy_from_slice(&words[16 * j..16 * j + 16]);
            let x = u128::from_le_bytes(b) & span_mask;
            for (i, qi) in moduli.iter().enumerate() {
                rows[i * n + j] = qi.sub(qi.reduce_u128(x), offset[i]);
            }
        }
        let mut flood = poly_from_rows(ctx, rows.to_vec(), Representation::PowerBasis)?;
        self.c0 += &flood;
        flood.zeroize();
        Ok(())
    }

    /// The evaluator's last step, fused for speed: with `self` the accumulated
    /// product (full level, NTT form), add `Δ(-t)` at `positions`, re-randomize
    /// with a fresh public-key encryption of zero, switch down to the response
    /// modulus, keep `c0` only at `positions` and flood it there with `flood`
    /// (uniform on `[-h, h)` at the response level). `c0` is computed only where
    /// it is sent.
    pub fn finish_response<R: RngCore + CryptoRng>(
        self,
        pk: &PublicKey,
        positions: &[usize],
        t: &[u64],
        flood: &ResponseFlood,
        rng: &mut R,
    ) -> Result<SparseCiphertext> {
        let params = &pk.params;
        let n = params.n;
        let ctx = &params.ctx;
        if t.len() != positions.len() {
            return Err(HeError::Length {
                what: "mask",
                got: t.len(),
                expected: positions.len(),
            });
        }
        if let Some(&bad) = positions.iter().find(|&&j| j >= n) {
            return Err(HeError::Length {
                what: "position",
                got: bad,
                expected: n,
            });
        }
        let Ciphertext { mut c0, mut c1 } = self;
        c0.change_representation(Representation::Ntt);
        c1.change_representation(Representation::Ntt);
        // Encryption of zero: (b*u, a*u) here, its errors e0, e1 below.
        let mut u = ternary(ctx, n, rng)?;
        u.change_representation(Representation::Ntt);
        let mut bu = &pk.b * &u;
        c0 += &bu;
        bu.zeroize();
        let mut au = &pk.a * &u;
        c1 += &au;
        au.zeroize();
        u.zeroize();
        c0.change_representation(Representation::PowerBasis);
        c1.change_representation(Representation::PowerBasis);
        let moduli = &params.codec.q;
        let sw = &params.switch;
        let keep = params.ctx_resp.moduli().len();

        // The unflooded product (partial sums of W at unsent positions) and the
        // re-randomization: zeroized once copied into rows.
        let mut x1 = rows_of(&c1);
        c1.zeroize();
        let e1 = cbd10(n, rng);
        for (i, qi) in moduli.iter().enumerate() {
            let p = **qi;
            for (x, &e) in x1[i * n..(i + 1) * n].iter_mut().zip(e1.iter()) {
                *x = qi.add(*x, small_mod(e, p));
            }
        }
        let mut c1_rows = vec![0u64; keep * n];
        for j in 0..n {
            sw.switch_at(&x1, n, j, &mut c1_rows, n, j);
        }
        x1.zeroize();

        let mut x0 = rows_of(&c0);
        c0.zeroize();
        let k = positions.len();
        let e0 = cbd10(k, rng);
        let codec = &params.codec;
        let mut c0_rows = vec![0u64; keep * k];
        for (idx, &j) in positions.iter().enumerate() {
            for (i, qi) in moduli.iter().enumerate() {
                let p = **qi;
                let mut v = x0[i * n + j];
                v = qi.add(v, small_mod(e0[idx], p));
                v = qi.sub(v, codec.encode_one(i, t[idx]));
                x0[i * n + j] = v;
            }
            sw.switch_at(&x0, n, j, &mut c0_rows, k, idx);
        }
        x0.zeroize();
        let noise = uniform_below(2 * flood.half_width, k, rng);
        let kept = &params.codec_resp.q;
        for (idx, &f) in noise.iter().enumerate() {
            let f = f as i128 - flood.half_width as i128;
            for (i, qi) in kept.iter().enumerate() {
                let p = **qi;
                let fv = f.rem_euclid(p as i128) as u64;
                c0_rows[i * k + idx] = qi.add(c0_rows[i * k + idx], fv);
            }
        }
        Ok(SparseCiphertext {
            c0_rows,
            c1: poly_from_rows(&params.ctx_resp, c1_rows, Representation::PowerBasis)?,
            positions: positions.to_vec(),
        })
    }

    /// Switch a full-level ciphertext (power basis) down to the response modulus.
    pub fn mod_switch_to_response(&mut self, params: &HeParams) -> Result<()> {
        self.c0.change_representation(Representation::PowerBasis);
        self.c1.change_representation(Representation::PowerBasis);
        self.c0.switch_down_to(&params.ctx_resp)?;
        self.c1.switch_down_to(&params.ctx_resp)?;
        Ok(())
    }

    /// Keep `c0` only at `positions` (response level, power basis).
    pub fn sparsify(&self, positions: &[usize]) -> Result<SparseCiphertext> {
        let n = self.c0.coefficients().ncols();
        let moduli = self.c0.ctx().moduli();
        if *self.c0.representation() != Representation::PowerBasis {
            return Err(HeError::ParameterMismatch(
                "sparsify needs power basis".into(),
            ));
        }
        let rows = rows_of(&self.c0);
        let k = positions.len();
        let mut c0_rows = vec![0u64; moduli.len() * k];
        for i in 0..moduli.len() {
            for (idx, &j) in positions.iter().enumerate() {
                if j >= n {
                    return Err(HeError::Length {
                        what: "position",
                        got: j,
                        expected: n,
                    });
                }
                c0_rows[i * k + idx] = rows[i * n + j];
            }
        }
        Ok(SparseCiphertext {
            c0_rows,
            c1: self.c1.clone(),
            positions: positions.to_vec(),
        })
    }

    /// The second component (for tests of circuit privacy).
    pub fn c1_rows(&self) -> Vec<u64> {
        let mut c1 = self.c1.clone();
        c1.change_representation(Representation::PowerBasis);
        rows_of(&c1)
    }
}

/// A response ciphertext at the response level: `c1` in full, `c0` only at the
/// positions the receiver will decrypt (public, from the packing plan).
#[derive(Clone, Debug)]
pub struct SparseCiphertext {
    pub(crate) c0_rows: Vec<u64>,
    pub(crate) c1: Poly,
    pub(crate) positions: Vec<usize>,
}

impl SparseCiphertext {
    /// Wire bytes for `k` positions.
    pub fn byte_len(params: &HeParams, k: usize) -> usize {
        packed_len(params.n, params.response_moduli()) + packed_len(k, params.response_moduli())
    }

    /// Append the wire form: `c1` (n residues per prime), then `c0` at the positions.
    pub fn write(&self, params: &HeParams, out: &mut Vec<u8>) {
        let moduli = params.response_moduli();
        write_rows(out, &rows_of(&self.c1), params.n, moduli);
        write_rows(out, &self.c0_rows, self.positions.len(), moduli);
    }

    pub(crate) fn read(
        params: &Arc<HeParams>,
        r: &mut Reader<'_>,
        positions: &[usize],
    ) -> Result<SparseCiphertext> {
        let moduli = params.response_moduli();
        let c1_rows = r.rows(params.n, moduli)?;
        let c0_rows = r.rows(positions.len(), moduli)?;
        if positions.iter().any(|&j| j >= params.n) {
            return Err(HeError::Length {
                what: "position",
                got: positions.iter().copied().max().unwrap_or(0),
                expected: params.n,
            });
        }
        let c1 = poly_from_rows(&params.ctx_resp, c1_rows, Representation::PowerBasis)?;
        Ok(SparseCiphertext {
            c0_rows,
            c1,
            positions: positions.to_vec(),
        })
    }

    /// Parse one sparse ciphertext that makes up the whole of `bytes`.
    pub fn from_bytes(
        params: &Arc<HeParams>,
        bytes: &[u8],
        positions: &[usize],
    ) -> Result<SparseCiphertext> {
        let mut r = Reader::new(bytes, "response ciphertext");
        let ct = Self::read(params, &mut r, positions)?;
        r.finish()?;
        Ok(ct)
    }
}

/// The weight-recovery attack on an unprotected product, for tests: given the
/// returned `c1` (full level, power-basis rows) and the encryptor's own `ct`,
/// compute `c1 / a` and return it if it is a polynomial with coefficients below
/// 2^32 (i.e. the attack recovered a plausible plaintext), else `None`.
#[doc(hidden)]
pub fn divide_by_c1_for_tests(
    params: &HeParams,
    ct: &Ciphertext,
    c1_rows: Vec<u64>,
) -> Result<Option<Vec<u64>>> {
    let n = params.n;
    let mut c1 = poly_from_rows(&params.ctx, c1_rows, Representation::PowerBasis)?;
    c1.change_representation(Representation::Ntt);
    let mut a = ct.c1.clone();
    a.change_representation(Representation::Ntt);
    let a_rows = rows_of(&a);
    let mut inv = vec![0u64; a_rows.len()];
    for (i, qi) in params.codec.q.iter().enumerate() {
        for j in 0..n {
            match qi.inv(a_rows[i * n + j]) {
                Some(v) => inv[i * n + j] = v,
                None => return Ok(None),
            }
        }
    }
    let inv = poly_from_rows(&params.ctx, inv, Representation::Ntt)?;
    c1 *= &inv;
    c1.change_representation(Representation::PowerBasis);
    let rows = rows_of(&c1);
    let mut out = Vec::with_capacity(n);
    for j in 0..n {
        let v = rows[j];
        if v >= 1 << 32 || (1..params.codec.len()).any(|i| rows[i * n + j] != v) {
            return Ok(None);
        }
        out.push(v);
    }
    Ok(Some(out))
}
