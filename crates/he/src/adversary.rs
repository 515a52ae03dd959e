//! A deviating querier, as code, so that tests can run it against the real
//! responder ([`crate::protocol::answer_query`]) and measure what it learns
//! (`tests/deviating_querier.rs`, docs/SECURITY.md). Nothing in the protocol
//! calls this module; it gives an attacker nothing it could not write itself
//! from the wire format.
//!
//! ```text
//!   deviating querier (chooses its own key)          honest responder (holds W)
//!   ───────────────────────────────────────          ──────────────────────────
//!   sk = secret_key_from_coeffs(s)   (s = 0, or any s it likes)
//!   pk = sk.public_key()                ── pk ──▶    PublicKey::from_bytes
//!   ct = encrypt_crafted(sk, m, extra)               (checks, then)
//!      c0 = -a*s + e + Δm + extra   ── query ──▶    answer_query: Σ ct·pt(W) + Δ(-T)
//!                                                         + Enc_pk(0) + flooding, mod q'
//!   response_fractions(sk, ..)      ◀─ response ──
//!      = frac(phase / Δ') per output: the part of the phase that Δ(-T) does
//!        not randomize, where `extra * W` shows through unless flooding covers it
//! ```

use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};

use crate::packing::LayerPlan;
use crate::protocol::{read_response, write_query};
use crate::rlwe::{poly_from_rows, rows_of, SecretKey, SeededCiphertext, SparseCiphertext};
use crate::{HeError, HeParams, Result};
use fhe_math::rq::Representation;

/// A secret key with the given coefficients (`n` small integers), e.g. all zero:
/// the key an honest party never draws but a deviating one may.
pub fn secret_key_from_coeffs(params: &Arc<HeParams>, coeffs: &[i64]) -> Result<SecretKey> {
    SecretKey::from_coeffs(params, coeffs)
}

/// An encryption of `m` under `sk` whose `c0` has `extra` added: `extra` holds
/// full-level RNS rows in power basis (`moduli().len()` rows of `n` residues,
/// each below its prime). With `sk` known to the querier, `extra` is noise of its
/// choosing that the responder cannot see.
pub fn encrypt_crafted<R: RngCore + CryptoRng>(
    sk: &SecretKey,
    m: &[u64],
    extra: &[u64],
    rng: &mut R,
) -> Result<SeededCiphertext> {
    let params = sk.params();
    let (n, moduli) = (params.degree(), params.moduli());
    if extra.len() != n * moduli.len() {
        return Err(HeError::Length {
            what: "crafted noise rows",
            got: extra.len(),
            expected: n * moduli.len(),
        });
    }
    let mut ct = sk.encrypt(m, rng)?;
    let mut rows = rows_of(&ct.c0);
    for (i, &p) in moduli.iter().enumerate() {
        for (x, &e) in rows[i * n..(i + 1) * n]
            .iter_mut()
            .zip(&extra[i * n..(i + 1) * n])
        {
            if e >= p {
                return Err(HeError::Unreduced {
                    what: "crafted noise rows",
                    value: e,
                    modulus: p,
                });
            }
            *x = ((*x as u128 + e as u128) % p as u128) as u64;
        }
    }
    ct.c0 = poly_from_rows(&params.ctx, rows, Representation::PowerBasis)?;
    Ok(ct)
}

/// The query message for layer `layer` made of the given ciphertexts (one per
/// input ciphertext of `plan`), as [`crate::protocol::encrypt_query`] would
/// frame honest ones.
pub fn query_message(
    params: &HeParams,
    plan: &LayerPlan,
    layer: u32,
    cts: &[SeededCiphertext],
) -> Vec<u8> {
    write_query(params, plan, layer, cts)
}

/// What the querier reads beyond its share `M`: for every output (output-shaped,
/// like [`crate::protocol::decrypt_response`]), the fractional part of the
/// decryption phase over `Δ' = q'/2^64`, in units of 2^-64. Honest products put
/// only noise there; a crafted `extra` puts `extra * W mod Δ` there, blurred by
/// the responder's flooding.
pub fn response_fractions(
    sk: &SecretKey,
    plan: &LayerPlan,
    layer: u32,
    response: &[u8],
) -> Result<Vec<u64>> {
    let cts = read_response(sk.params(), plan, layer, response)?;
    let mut out = vec![0u64; plan.shape.output_len()];
    for (ct, pos) in cts.iter().zip(plan.output_positions()) {
        for (&(_, idx), f) in pos.iter().zip(sk.sparse_fractions(ct)) {
            out[idx] = f;
        }
    }
    Ok(out)
}

/// [`response_fractions`] for one sparse ciphertext, in its positions' order
/// (also how the noise tests measure an honest response's noise: the centred
/// fraction times `Δ'`).
pub fn sparse_fractions(sk: &SecretKey, ct: &SparseCiphertext) -> Vec<u64> {
    sk.sparse_fractions(ct)
}
