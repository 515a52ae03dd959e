//! The per-query preprocessing of linear layers, in one or both directions.
//!
//! In the two-server deployment each party is the *encryptor* of its own random
//! input mask and the *evaluator* of the other's, with its weight share as
//! plaintext ([`Directions::BOTH`]). With one weight holder only the other
//! party encrypts and only the holder evaluates ([`Directions::only`]): the
//! messages of the missing direction are simply absent. For every linear layer
//! `l` (in order), on the wire, both directions:
//!
//! ```text
//!   P0 (R0, W0, sk0, pk1)                              P1 (R1, W1, sk1, pk0)
//!   ─────────────────────                              ─────────────────────
//!   Q0 = Enc_sk0(pack(R0))       ── Q0 (seeds, c0) ─▶  (Q1 = Enc_sk1(pack(R1)) made meanwhile)
//!                                ◀─ Q1 (seeds, c0) ──
//!   A1 = Σ Q1·pt(W0) + Δ(-T0)                          A0 = Σ Q0·pt(W1) + Δ(-T1)
//!        + Enc_pk1(0) + flood, mod q'                       + Enc_pk0(0) + flood, mod q'
//!                                ── A1 (c1, c0 @ pos) ─▶
//!                                ◀─ A0 (c1, c0 @ pos) ──
//!   M0 = Dec_sk0(A0) = L(R0;W1) - T1                   M1 = Dec_sk1(A1) = L(R1;W0) - T0
//! ```
//!
//! Result per layer: P0 holds `(R0, M0, T0)`, P1 holds `(R1, M1, T1)`, with
//! `M0 + T1 = L(R0; W1)` and `M1 + T0 = L(R1; W0)` mod 2^64. The messages strictly
//! alternate (Q0, Q1, A1, A0), so no party ever waits on a send to a peer that is
//! itself sending; the heavy work (encrypting, evaluating) overlaps between the two.
//!
//! Once per session, before any layer: each querying party sends its public key,
//! P0's first ([`HeSession::setup_directed`]).
//!
//! The I/O-free steps are [`encrypt_query`], [`answer_query`] and
//! [`decrypt_response`]; [`preprocess_directed`] (and [`preprocess`], both
//! directions) drives them over a [`Channel`].

use std::sync::Arc;
use std::time::Instant;

use blindfold_core::PartyId;
use blindfold_net::Channel;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::malformed;
use crate::packing::{LayerPlan, LinearShape};
use crate::rlwe::{
    Ciphertext, Plaintext, PublicKey, ResponseFlood, SecretKey, SeededCiphertext, SparseCiphertext,
};
use crate::wire::Reader;
use crate::{HeError, HeParams, Result};

const TAG_QUERY: u8 = 0x51;
const TAG_RESPONSE: u8 = 0x52;
const HEADER: usize = 1 + 4 + 4;

/// Bytes of a query for `plan`.
pub(crate) fn query_len(params: &HeParams, plan: &LayerPlan) -> usize {
    HEADER + plan.input_cts() * SeededCiphertext::byte_len(params)
}

/// Bytes of a response for `plan`.
pub(crate) fn response_len(params: &HeParams, plan: &LayerPlan) -> usize {
    HEADER
        + plan
            .output_positions()
            .iter()
            .map(|p| SparseCiphertext::byte_len(params, p.len()))
            .sum::<usize>()
}

fn header(tag: u8, layer: u32, count: usize, cap: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cap);
    out.push(tag);
    out.extend_from_slice(&layer.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out
}

fn read_header(
    r: &mut Reader<'_>,
    what: &'static str,
    tag: u8,
    layer: u32,
    count: usize,
) -> Result<()> {
    if r.u8()? != tag {
        return Err(malformed(what, "wrong tag"));
    }
    let got_layer = r.u32()?;
    if got_layer != layer {
        return Err(malformed(
            what,
            format!("for layer {got_layer}, expected layer {layer}"),
        ));
    }
    let got = r.u32()? as usize;
    if got != count {
        return Err(malformed(
            what,
            format!("{got} ciphertexts, expected {count}"),
        ));
    }
    Ok(())
}

/// Encryptor, step 1: encrypt the packed input mask `r` (input-shaped) of layer
/// number `layer`. Returns the query message.
pub fn encrypt_query<R: RngCore + CryptoRng>(
    sk: &SecretKey,
    plan: &LayerPlan,
    layer: u32,
    r: &[u64],
    rng: &mut R,
) -> Result<Vec<u8>> {
    // The packed copies of the mask are as secret as the mask.
    let polys = Zeroizing::new(plan.pack_input(r)?);
    let cts = polys
        .iter()
        .map(|p| sk.encrypt(p, rng))
        .collect::<Result<Vec<_>>>()?;
    Ok(write_query(sk.params(), plan, layer, &cts))
}

/// The query message of layer `layer`: header, then the ciphertexts.
pub(crate) fn write_query(
    params: &HeParams,
    plan: &LayerPlan,
    layer: u32,
    cts: &[SeededCiphertext],
) -> Vec<u8> {
    let mut out = header(TAG_QUERY, layer, cts.len(), query_len(params, plan));
    for ct in cts {
        ct.write(params, &mut out);
    }
    out
}

/// A weight share packed as plaintexts in NTT form: computed once per model and
/// reused for every query.
#[derive(Clone, Debug)]
pub struct EncodedWeights {
    plan: LayerPlan,
    pts: Vec<Plaintext>,
}

impl EncodedWeights {
    /// Pack and transform the weights `w` (OIHW for convolutions, `[c_in, c_out,
    /// kh, kw]` for transposed convolutions, `outputs × inputs` for fully
    /// connected layers) of the layer planned by `plan`.
    pub fn new(params: &HeParams, plan: &LayerPlan, w: &[u64]) -> Result<EncodedWeights> {
        if plan.n != params.degree() {
            return Err(HeError::ParameterMismatch(format!(
                "plan for degree {}, parameters of degree {}",
                plan.n,
                params.degree()
            )));
        }
        // The packed copies of the weight share are as secret as the share.
        let mut packed = plan.pack_weights(w)?;
        let pts = packed
            .iter()
            .map(|(coeffs, nnz)| Plaintext::new(params, coeffs, *nnz))
            .collect::<Result<Vec<_>>>();
        for (coeffs, _) in &mut packed {
            coeffs.zeroize();
        }
        let pts = pts?;
        Ok(EncodedWeights {
            plan: plan.clone(),
            pts,
        })
    }

    /// The plan these weights were packed for.
    pub fn plan(&self) -> &LayerPlan {
        &self.plan
    }
}

/// Evaluator: answer the peer's `query` for layer `layer` with our weight share.
/// Returns the response message and our share `T` (output-shaped, uniform;
/// zeroized on drop).
pub fn answer_query<R: RngCore + CryptoRng>(
    params: &Arc<HeParams>,
    peer_pk: &PublicKey,
    weights: &EncodedWeights,
    layer: u32,
    query: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, Zeroizing<Vec<u64>>)> {
    let plan = &weights.plan;
    const WHAT: &str = "query";
    let mut r = Reader::new(query, WHAT);
    read_header(&mut r, WHAT, TAG_QUERY, layer, plan.input_cts())?;
    let mut cts = Vec::with_capacity(plan.input_cts());
    for _ in 0..plan.input_cts() {
        cts.push(SeededCiphertext::read(params, &mut r)?);
    }
    r.finish()?;
    let cts = cts
        .iter()
        .map(|c| c.expand(params))
        .collect::<Result<Vec<Ciphertext>>>()?;

    let positions = plan.output_positions();
    let mut t = Zeroizing::new(vec![0u64; plan.shape.output_len()]);
    let mut out = header(
        TAG_RESPONSE,
        layer,
        positions.len(),
        response_len(params, plan),
    );
    for (k, pos) in positions.iter().enumerate() {
        let (tile, b) = (k / plan.blocks, k % plan.blocks);
        let mut acc = Ciphertext::zero(params);
        let mut nnz = 0;
        for g in 0..plan.groups {
            let pt = &weights.pts[g * plan.blocks + b];
            acc.mul_plain_add(&cts[tile * plan.groups + g], pt);
            nnz += pt.nnz;
        }
        // Our share T at the wanted positions (the others are never sent).
        let just: Vec<usize> = pos.iter().map(|&(p, _)| p).collect();
        let mask: Zeroizing<Vec<u64>> =
            Zeroizing::new((0..pos.len()).map(|_| rng.next_u64()).collect());
        for (&(_, idx), &v) in pos.iter().zip(mask.iter()) {
            t[idx] = v;
        }
        let flood = ResponseFlood::for_products(params, nnz, plan.groups)?;
        acc.finish_response(peer_pk, &just, &mask, &flood, rng)?
            .write(params, &mut out);
    }
    Ok((out, t))
}

/// Encryptor, step 2: decrypt the peer's response into our share `M`
/// (output-shaped, zeroized on drop): `M = L(R; W_peer) - T_peer`.
pub fn decrypt_response(
    sk: &SecretKey,
    plan: &LayerPlan,
    layer: u32,
    response: &[u8],
) -> Result<Zeroizing<Vec<u64>>> {
    let positions = plan.output_positions();
    let cts = read_response(sk.params(), plan, layer, response)?;
    let mut m = Zeroizing::new(vec![0u64; plan.shape.output_len()]);
    for (ct, pos) in cts.iter().zip(&positions) {
        let vals = Zeroizing::new(sk.decrypt_sparse(ct)?);
        for (&(_, idx), &v) in pos.iter().zip(vals.iter()) {
            m[idx] = v;
        }
    }
    Ok(m)
}

/// Parse the response message of layer `layer`: one sparse ciphertext per
/// output ciphertext of `plan`, `c0` at its wanted positions.
pub(crate) fn read_response(
    params: &Arc<HeParams>,
    plan: &LayerPlan,
    layer: u32,
    response: &[u8],
) -> Result<Vec<SparseCiphertext>> {
    const WHAT: &str = "response";
    let positions = plan.output_positions();
    let mut r = Reader::new(response, WHAT);
    read_header(&mut r, WHAT, TAG_RESPONSE, layer, positions.len())?;
    let mut cts = Vec::with_capacity(positions.len());
    for pos in &positions {
        let just: Vec<usize> = pos.iter().map(|&(p, _)| p).collect();
        cts.push(SparseCiphertext::read(params, &mut r, &just)?);
    }
    r.finish()?;
    Ok(cts)
}

/// Which directions of the preprocessing run. Party `p` *queries* when it
/// encrypts a mask for the peer's weights (so the peer must hold weights); in the
/// two-server deployment both do, in a client-server deployment only the party
/// without weights does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directions {
    queries: [bool; 2],
}

impl Directions {
    /// Both parties query (both hold weight shares).
    pub const BOTH: Directions = Directions {
        queries: [true, true],
    };

    /// `queries[p]`: whether party `p` queries.
    pub fn new(queries: [bool; 2]) -> Directions {
        Directions { queries }
    }

    /// Only `p` queries: the peer holds all the weights.
    pub fn only(p: PartyId) -> Directions {
        let mut queries = [false; 2];
        queries[p.index()] = true;
        Directions { queries }
    }

    /// Whether party `p` encrypts a mask for its peer's weights.
    pub fn queries(&self, p: PartyId) -> bool {
        self.queries[p.index()]
    }

    /// Whether party `p` answers its peer's queries with its weights.
    pub fn answers(&self, p: PartyId) -> bool {
        self.queries[p.other().index()]
    }
}

/// Keys of one session: our secret key if we query, the peer's public key if
/// we answer.
pub struct HeSession {
    params: Arc<HeParams>,
    directions: Directions,
    sk: Option<SecretKey>,
    peer_pk: Option<PublicKey>,
}

impl HeSession {
    /// Both directions: generate our keys and exchange public keys (P0 first).
    pub fn setup<C: Channel, R: RngCore + CryptoRng>(
        party: PartyId,
        ch: &mut C,
        params: &Arc<HeParams>,
        rng: &mut R,
    ) -> Result<HeSession> {
        HeSession::setup_directed(party, ch, params, Directions::BOTH, rng)
    }

    /// Set up the given directions: a querying party generates a key pair and
    /// sends its public key (P0's first); an answering party receives it.
    pub fn setup_directed<C: Channel, R: RngCore + CryptoRng>(
        party: PartyId,
        ch: &mut C,
        params: &Arc<HeParams>,
        directions: Directions,
        rng: &mut R,
    ) -> Result<HeSession> {
        let sk = if directions.queries(party) {
            Some(SecretKey::generate(params, rng)?)
        } else {
            None
        };
        let mut peer_pk = None;
        for turn in [PartyId::P0, PartyId::P1] {
            if !directions.queries(turn) {
                continue;
            }
            if turn == party {
                let sk = sk.as_ref().ok_or_else(|| no_key("secret key"))?;
                ch.send_vec(sk.public_key(rng)?.to_bytes())?;
                ch.flush()?;
            } else {
                peer_pk = Some(PublicKey::from_bytes(params, &ch.recv()?)?);
            }
        }
        Ok(HeSession {
            params: params.clone(),
            directions,
            sk,
            peer_pk,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<HeParams> {
        &self.params
    }

    /// The directions this session was set up for.
    pub fn directions(&self) -> Directions {
        self.directions
    }
}

fn no_key(what: &'static str) -> HeError {
    HeError::Malformed {
        what: "session",
        reason: format!("no {what}: the session was set up without this direction"),
    }
}

/// One party's preprocessed material for one linear layer, both directions.
/// Zeroized on drop.
#[derive(Clone, Debug, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct LayerShares {
    /// Our random input mask `R` (input-shaped).
    pub r: Vec<u64>,
    /// `M = L(R; W_peer) - T_peer` (output-shaped).
    pub m: Vec<u64>,
    /// Our `T` from the other direction (output-shaped).
    pub t: Vec<u64>,
}

/// Our half of the direction in which we query: the mask and its product.
/// Zeroized on drop.
#[derive(Clone, Debug, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MaskShares {
    /// Our random input mask `R` (input-shaped).
    pub r: Vec<u64>,
    /// `M = L(R; W_peer) - T_peer` (output-shaped).
    pub m: Vec<u64>,
}

/// One party's material for one linear layer, in the directions that run.
/// Zeroized on drop (so move parts out with `Option::take`).
#[derive(Clone, Debug, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DirectedShares {
    /// Present when we query.
    pub mask: Option<MaskShares>,
    /// Our `T` (output-shaped), present when we answer.
    pub t: Option<Vec<u64>>,
}

/// Cost of one layer as seen by one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Wall-clock milliseconds from this party's start of the layer to the end.
    pub ms: f64,
    /// Payload bytes sent plus received (frames' 4-byte headers included).
    pub bytes: u64,
}

/// One layer of [`preprocess_directed`]: its plan, and our encoded weights when
/// we answer (the peer queries).
#[derive(Clone, Copy, Debug)]
pub struct LayerJob<'a> {
    pub plan: &'a LayerPlan,
    pub weights: Option<&'a EncodedWeights>,
}

/// Run the preprocessing of every layer in `weights` (our weight shares, packed
/// once per model) for one query, both directions. Returns, per layer, our
/// shares and costs.
pub fn preprocess<C: Channel, R: RngCore + CryptoRng>(
    party: PartyId,
    ch: &mut C,
    session: &HeSession,
    weights: &[EncodedWeights],
    rng: &mut R,
) -> Result<Vec<(LayerShares, LayerCost)>> {
    let jobs: Vec<LayerJob<'_>> = weights
        .iter()
        .map(|w| LayerJob {
            plan: w.plan(),
            weights: Some(w),
        })
        .collect();
    preprocess_directed(party, ch, session, &jobs, rng)?
        .into_iter()
        .map(|(mut sh, cost)| match (sh.mask.take(), sh.t.take()) {
            (Some(mut mask), Some(t)) => Ok((
                LayerShares {
                    r: std::mem::take(&mut mask.r),
                    m: std::mem::take(&mut mask.m),
                    t,
                },
                cost,
            )),
            _ => Err(no_key("direction")),
        })
        .collect()
}

/// Run the preprocessing of `layers` in the session's directions for one query.
///
/// Per layer the messages strictly alternate: P0's query, P1's query, P0's
/// answer to P1, P1's answer to P0 — each present only when its direction runs —
/// so no party ever waits on a send to a peer that is itself sending.
pub fn preprocess_directed<C: Channel, R: RngCore + CryptoRng>(
    party: PartyId,
    ch: &mut C,
    session: &HeSession,
    layers: &[LayerJob<'_>],
    rng: &mut R,
) -> Result<Vec<(DirectedShares, LayerCost)>> {
    let params = &session.params;
    let dirs = session.directions;
    let (i_query, i_answer) = (dirs.queries(party), dirs.answers(party));
    let mut out = Vec::with_capacity(layers.len());
    const FRAME: u64 = 4;
    for (l, job) in layers.iter().enumerate() {
        let start = Instant::now();
        let layer = l as u32;
        let plan = job.plan;
        let mut bytes = 0u64;
        // Our query (if we query).
        let mut mask = None;
        let mut query = None;
        if i_query {
            let sk = session.sk.as_ref().ok_or_else(|| no_key("secret key"))?;
            let r: Zeroizing<Vec<u64>> = Zeroizing::new(
                (0..plan.shape.input_len())
                    .map(|_| rng.next_u64())
                    .collect(),
            );
            query = Some(encrypt_query(sk, plan, layer, &r, rng)?);
            mask = Some(r);
        }
        let weights = if i_answer {
            Some(job.weights.ok_or(HeError::Length {
                what: "weights of an answering party",
                got: 0,
                expected: 1,
            })?)
        } else {
            None
        };
        let answer = |peer_q: &[u8], rng: &mut R| -> Result<(Vec<u8>, Zeroizing<Vec<u64>>)> {
            let pk = session.peer_pk.as_ref().ok_or_else(|| no_key("peer key"))?;
            let w = weights.ok_or_else(|| no_key("weights"))?;
            answer_query(params, pk, w, layer, peer_q, rng)
        };
        let send = |ch: &mut C, m: Vec<u8>, bytes: &mut u64| -> Result<()> {
            *bytes += m.len() as u64 + FRAME;
            ch.send_vec(m)?;
            ch.flush()?;
            Ok(())
        };
        let recv = |ch: &mut C, bytes: &mut u64| -> Result<Vec<u8>> {
            let m = ch.recv()?;
            *bytes += m.len() as u64 + FRAME;
            Ok(m)
        };
        let (resp, t) = match party {
            PartyId::P0 => {
                if let Some(q) = query {
                    send(ch, q, &mut bytes)?;
                }
                let mut t = None;
                if i_answer {
                    let peer_q = recv(ch, &mut bytes)?;
                    let (ans, tt) = answer(&peer_q, rng)?;
                    send(ch, ans, &mut bytes)?;
                    t = Some(tt);
                }
                let resp = if i_query {
                    Some(recv(ch, &mut bytes)?)
                } else {
                    None
                };
                (resp, t)
            }
            PartyId::P1 => {
                let peer_q = if i_answer {
                    Some(recv(ch, &mut bytes)?)
                } else {
                    None
                };
                if let Some(q) = query {
                    send(ch, q, &mut bytes)?;
                }
                // Answer the peer while its answer to us is on the way.
                let ans = match &peer_q {
                    Some(q) => Some(answer(q, rng)?),
                    None => None,
                };
                let resp = if i_query {
                    Some(recv(ch, &mut bytes)?)
                } else {
                    None
                };
                let t = match ans {
                    Some((a, t)) => {
                        send(ch, a, &mut bytes)?;
                        Some(t)
                    }
                    None => None,
                };
                (resp, t)
            }
        };
        let mask = match (mask, resp) {
            (Some(mut r), Some(resp)) => {
                let sk = session.sk.as_ref().ok_or_else(|| no_key("secret key"))?;
                let mut m = decrypt_response(sk, plan, layer, &resp)?;
                Some(MaskShares {
                    r: std::mem::take(&mut *r),
                    m: std::mem::take(&mut *m),
                })
            }
            _ => None,
        };
        let t = t.map(|mut t| std::mem::take(&mut *t));
        out.push((
            DirectedShares { mask, t },
            LayerCost {
                ms: start.elapsed().as_secs_f64() * 1e3,
                bytes,
            },
        ));
    }
    Ok(out)
}

/// Plan every layer of a network for the parameters' ring degree.
pub fn plan_network(params: &HeParams, layers: &[LinearShape]) -> Result<Vec<LayerPlan>> {
    layers
        .iter()
        .map(|s| LayerPlan::new(s, params.degree()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroized_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn the_shares_are_zeroized_on_drop() {
        // Compile-time: the derive is there (a field added later must be
        // `Zeroize` too, or this stops compiling).
        zeroized_on_drop::<LayerShares>();
        zeroized_on_drop::<MaskShares>();
        zeroized_on_drop::<DirectedShares>();
        zeroized_on_drop::<crate::beaver::SquareShares>();
    }
}
