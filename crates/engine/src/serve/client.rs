//! The client side: ask a server what it serves; share an input between the
//! two servers and reconstruct their answer.
//!
//! ```text
//!   client ── Hello::Client ─▶ P0, P1 ◀─ ModelInfo ── (checked: parties, same split)
//!          ── Query {id, kind, Seed(seed)}   ─▶ P0
//!          ── Query {id, kind, Values(x1)}   ─▶ P1
//!          ◀─ Reply::Ok {cost, y0} ── P0 ; ◀─ Reply::Ok {cost, y1} ── P1
//!   y = y0 + y1
//! ```
//!
//! A whole query (connect, greeting, query, reply) has one deadline: three
//! times `timeout` (the servers wait up to twice their own timeout for each
//! other); connecting alone gives up after `timeout`.

use super::wire::{Hello, ModelInfo, Query, QueryCost, Reply, Share};
use crate::party::OutputKind;
use crate::{EngineError, Result};
use blindfold_core::{PartyId, Prg};
use blindfold_net::{Channel, Connection, TcpTransport, Transport};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The client's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub label: usize,
    pub scores: Vec<f64>,
    pub ring: Vec<u64>,
    /// Per-pixel classes, for a label-only query of a `[C, H, W]` output.
    pub mask: Option<Vec<u32>>,
    /// Wall-clock time of the whole query at the client.
    pub latency_ms: f64,
    /// Bytes the client sent and received.
    pub client_bytes: u64,
    /// Costs reported by P0 and P1.
    pub cost: [QueryCost; 2],
    pub info: ModelInfo,
}

fn greet<C: Connection>(ch: &mut C) -> Result<ModelInfo> {
    ch.send_vec(Hello::Client.encode())?;
    ch.flush()?;
    Ok(ModelInfo::decode(&ch.recv()?)?)
}

/// Ask a server over TCP what it serves (a connection that sends no query).
pub fn info(addr: &str, timeout: Duration) -> Result<ModelInfo> {
    info_on(&TcpTransport, addr, timeout)
}

/// Ask a server what it serves, over `transport`.
pub fn info_on<T: Transport>(transport: &T, addr: &str, timeout: Duration) -> Result<ModelInfo> {
    let deadline = Instant::now() + timeout;
    let mut ch = transport.connect(addr, deadline)?;
    ch.set_deadline(Some(deadline))?;
    greet(&mut ch)
}

/// Query two servers over TCP with one input (floats of the model's input
/// shape) for the full output.
pub fn query(servers: [&str; 2], input: &[f32], timeout: Duration) -> Result<Answer> {
    query_with(servers, input, timeout, OutputKind::Logits)
}

/// Query two servers over TCP; with [`OutputKind::Label`] the servers compute
/// the argmax in a garbled circuit and return shares of the label only (no
/// scores).
pub fn query_with(
    servers: [&str; 2],
    input: &[f32],
    timeout: Duration,
    kind: OutputKind,
) -> Result<Answer> {
    query_on(&TcpTransport, servers, input, timeout, kind)
}

/// Query two servers over `transport`. The input's sharing and the query id
/// come from the operating system's randomness, never from the caller: a
/// predictable seed would let P1 unmask the input.
pub fn query_on<T: Transport>(
    transport: &T,
    servers: [&str; 2],
    input: &[f32],
    timeout: Duration,
    kind: OutputKind,
) -> Result<Answer> {
    let t0 = Instant::now();
    let deadline = t0 + timeout.saturating_mul(3);
    let mut chs = Vec::with_capacity(2);
    let mut infos = Vec::with_capacity(2);
    for (addr, server) in servers.into_iter().zip([PartyId::P0, PartyId::P1]) {
        let mut ch = transport.connect(addr, t0 + timeout)?;
        // Over TLS, each server's certificate must be its role's: a client
        // never sends a share to a server it has not authenticated as the one
        // it expects.
        if let Some(id) = ch.peer_identity() {
            if id != ["p0", "p1"][server.index()] {
                return Err(EngineError::ServerIdentity {
                    server,
                    cert: id.to_string(),
                });
            }
        }
        ch.set_deadline(Some(deadline))?;
        infos.push(greet(&mut ch)?);
        chs.push(ch);
    }
    let (first, second) = (infos[0].party, infos[1].party);
    if (first, second) != (PartyId::P0, PartyId::P1) {
        return Err(EngineError::ServerOrder { first, second });
    }
    if infos[0].model_id != infos[1].model_id {
        return Err(EngineError::ModelMismatch);
    }
    let info = infos.swap_remove(0);
    blindfold_model::engine::check_input(info.input_len(), input)?;
    let x: Vec<u64> = input
        .iter()
        .map(|&v| blindfold_core::ring::encode(v as f64, info.frac_bits))
        .collect();
    let mut rng = Prg::from_entropy();
    let (seed, x1) = crate::sharing::share_input(&x, &mut rng);
    let id = rng.gen_seed();
    drop(rng);
    let queries = [
        Query {
            id,
            kind,
            share: Share::Seed(seed),
        },
        Query {
            id,
            kind,
            share: Share::Values(x1),
        },
    ];
    for (ch, q) in chs.iter_mut().zip(&queries) {
        ch.send_vec(q.encode())?;
        ch.flush()?;
    }
    let mut shares: Vec<Vec<u64>> = Vec::with_capacity(2);
    let mut costs = Vec::with_capacity(2);
    for (server, ch) in [PartyId::P0, PartyId::P1].into_iter().zip(chs.iter_mut()) {
        match Reply::decode(&ch.recv()?)? {
            Reply::Ok { cost, output } => {
                // Logits: every output value; label: one class per vector
                // or per pixel, the same number from both servers.
                let want = match (kind, shares.first()) {
                    (OutputKind::Logits, _) => info.output_len,
                    (OutputKind::Label, Some(s0)) => s0.len(),
                    (OutputKind::Label, None) => output.len().clamp(1, info.output_len),
                };
                if output.len() != want {
                    return Err(EngineError::OutputLength {
                        server,
                        got: output.len(),
                        want,
                    });
                }
                shares.push(output);
                costs.push(cost);
            }
            Reply::Error { code, message } => {
                return Err(EngineError::Remote {
                    server,
                    code,
                    message,
                })
            }
        }
    }
    let ring = crate::sharing::reconstruct(&shares[0], &shares[1]);
    let (label, scores, mask) = decode_output(kind, &ring, info.output_len, info.output_frac_bits)?;
    let client_bytes = chs.iter().map(|c| c.stats().total().bytes()).sum();
    let cost = [costs[0].clone(), costs[1].clone()];
    Ok(Answer {
        label,
        scores,
        ring,
        mask,
        latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        client_bytes,
        cost,
        info,
    })
}

/// Decode a reconstructed output: logits into the argmax and the decoded
/// scores; labels into one label (a vector output) or a mask (one class per
/// pixel: `output_len / pixels` classes), each checked to be in range.
pub(crate) fn decode_output(
    kind: OutputKind,
    ring: &[u64],
    output_len: usize,
    output_frac: blindfold_core::FracBits,
) -> Result<(usize, Vec<f64>, Option<Vec<u32>>)> {
    match kind {
        OutputKind::Logits => Ok((
            blindfold_model::engine::argmax_ring(ring),
            ring.iter()
                .map(|&v| blindfold_core::ring::decode(v, output_frac))
                .collect(),
            None,
        )),
        OutputKind::Label => {
            if ring.is_empty() {
                return Err(EngineError::OutputLength {
                    server: PartyId::P0,
                    got: 0,
                    want: 1,
                });
            }
            let pixels = ring.len();
            let classes = output_len / pixels;
            if let Some(&l) = ring.iter().find(|&&l| l >= classes as u64) {
                return Err(EngineError::LabelOutOfRange { label: l, classes });
            }
            if pixels == 1 {
                Ok((ring[0] as usize, Vec::new(), None))
            } else {
                Ok((
                    0,
                    Vec::new(),
                    Some(ring.iter().map(|&l| l as u32).collect()),
                ))
            }
        }
    }
}
