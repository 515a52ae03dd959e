//! One connection at a server: the greeting decides whether it is a client or
//! (at P0) one of P1's peer links.
//!
//! ```text
//!   conn ── Hello ──▶ Link (P0 only): handed to the leader for pairing
//!                     Client: ◀── ModelInfo ── ; ── Query ──▶ ; queued;
//!                             ◀── Reply ── when a worker answers (or the wait ends)
//! ```
//!
//! The greeting-to-query exchange has one deadline (`timeout`), so a client that
//! sends half a frame and falls silent is dropped on time.

use super::handshake::PeerLink;
use super::wire::{ErrorCode, Hello, ModelInfo, Query, Reply, Share};
use super::{hex, lock, Pending, Shared};
use crate::party::OutputKind;
use crate::{EngineError, Result};
use blindfold_core::PartyId;
use blindfold_net::{Connection, DEFAULT_MAX_FRAME};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

/// The largest frame a stranger may send before its greeting says what it is.
const GREETING_FRAME: usize = 256;
/// The largest frame of a client's query besides its share's values.
const QUERY_OVERHEAD: usize = 64;

pub(super) fn handle_connection<C: Connection>(sh: &Shared<C>, mut ch: C) -> Result<()> {
    ch.set_deadline(Some(Instant::now() + sh.cfg.timeout))?;
    ch.set_max_frame(GREETING_FRAME);
    let hello = Hello::decode(&ch.recv()?)?;
    match hello {
        Hello::Link { kind, attempt } => {
            if sh.engine.party() != PartyId::P0 {
                return Err(EngineError::UnexpectedMessage {
                    what: "peer-link greeting",
                    place: "party 1",
                });
            }
            expect_identity(&ch, "peer link", "p1")?;
            // Still under the greeting's deadline and frame limit: a stranger
            // never gets further than this.
            super::pairing::verify_p1(
                &mut ch,
                sh.engine.pairing_key(),
                kind,
                &attempt,
                &mut blindfold_core::Prg::from_entropy(),
            )?;
            ch.set_max_frame(DEFAULT_MAX_FRAME);
            sh.log(&format!("peer link ({kind:?}) from {}", ch.peer()));
            // The deadline stays until the session is set up (a silent impostor
            // cannot block pairing); the leader replaces it.
            if let Some(tx) = lock(&sh.links).as_ref() {
                if tx.try_send(PeerLink { kind, attempt, ch }).is_err() {
                    sh.log("link greeting dropped: too many waiting");
                }
            }
            Ok(())
        }
        Hello::CsClient => {
            reply(
                &mut ch,
                &Reply::error(
                    ErrorCode::BadRequest,
                    "this server runs two-server mode; query it without --mode client-server",
                ),
            )?;
            Err(EngineError::UnexpectedMessage {
                what: "client-server greeting",
                place: "a two-server server",
            })
        }
        Hello::Client => {
            expect_identity(&ch, "client greeting", "client")?;
            ch.set_max_frame(DEFAULT_MAX_FRAME);
            serve_client(sh, ch, false)
        }
    }
}

/// A browser's connection (the WebSocket listener): client queries only. A
/// browser has no certificate, so its connection proves no role; what it may
/// do is what any client may: send one query share and read one answer.
pub(super) fn handle_browser<C: Connection, D: Connection>(
    sh: &Shared<C>,
    mut ch: D,
) -> Result<()> {
    ch.set_deadline(Some(Instant::now() + sh.cfg.timeout))?;
    ch.set_max_frame(GREETING_FRAME);
    match Hello::decode(&ch.recv()?)? {
        Hello::Client => {
            ch.set_max_frame(DEFAULT_MAX_FRAME);
            serve_client(sh, ch, true)
        }
        _ => {
            reply(
                &mut ch,
                &Reply::error(
                    ErrorCode::BadRequest,
                    "the browser port takes client queries only",
                ),
            )?;
            Err(EngineError::UnexpectedMessage {
                what: "a greeting other than a client's",
                place: "the browser port",
            })
        }
    }
}

/// Over TLS, the connection's certificate must be of the role its greeting
/// claims (without TLS there is no identity to check).
fn expect_identity<C: Connection>(ch: &C, what: &'static str, want: &'static str) -> Result<()> {
    match ch.peer_identity() {
        None => Ok(()),
        Some(id) if id == want => Ok(()),
        Some(id) => Err(EngineError::WrongIdentity {
            what,
            got: Some(id.to_string()),
            want,
        }),
    }
}

fn model_info<C: Connection>(sh: &Shared<C>) -> ModelInfo {
    let q = sh.engine.program();
    ModelInfo {
        name: q.name.clone(),
        party: sh.engine.party(),
        model_id: hex(&sh.engine.model_id()),
        input_shape: q.input_shape().dims().to_vec(),
        frac_bits: q.frac,
        output_frac_bits: q.output_frac(),
        output_len: q.output_shape().numel(),
        ready: sh.ready.load(Ordering::SeqCst),
    }
}

fn reply<C: Connection>(ch: &mut C, r: &Reply) -> Result<()> {
    ch.send_vec(r.encode())?;
    ch.flush()?;
    Ok(())
}

/// Check a query against this server's model; the share it contributes.
fn admit<C: Connection>(sh: &Shared<C>, q: Query) -> std::result::Result<Vec<u64>, Reply> {
    let len = sh.engine.program().input_shape().numel();
    if q.kind == OutputKind::Logits && sh.cfg.label_only {
        return Err(Reply::error(
            ErrorCode::BadInput,
            "this server answers labels only (query with --label-only)",
        ));
    }
    if q.kind == OutputKind::Label && !sh.engine.supports_label() {
        return Err(Reply::error(
            ErrorCode::BadInput,
            "this model's output is not a vector; ask for the full output",
        ));
    }
    match (sh.engine.party(), q.share) {
        (PartyId::P0, Share::Seed(seed)) => Ok(crate::sharing::share0_from_seed(seed, len)),
        (PartyId::P1, Share::Values(v)) if v.len() == len => Ok(v),
        (PartyId::P1, Share::Values(v)) => Err(Reply::error(
            ErrorCode::BadInput,
            format!("input share has {} values, the model takes {len}", v.len()),
        )),
        (PartyId::P0, Share::Values(_)) => Err(Reply::error(
            ErrorCode::BadInput,
            "party 0 takes the 16-byte seed of the input share, not its values",
        )),
        (PartyId::P1, Share::Seed(_)) => Err(Reply::error(
            ErrorCode::BadInput,
            "party 1 takes the masked input values, not a seed",
        )),
    }
}

/// One client's query; `browser`: it came through the browser listener, whose
/// queries wait within their own share of the pending limit.
fn serve_client<C: Connection, D: Connection>(
    sh: &Shared<C>,
    mut ch: D,
    browser: bool,
) -> Result<()> {
    reply_info(sh, &mut ch)?;
    // A query is at most its share's values and a few fields.
    let values = sh.engine.program().input_shape().numel();
    ch.set_max_frame(values.saturating_mul(8).saturating_add(QUERY_OVERHEAD));
    let msg = ch.recv();
    ch.set_max_frame(DEFAULT_MAX_FRAME);
    let q = match Query::decode(&msg?) {
        Ok(q) => q,
        Err(e) => {
            reply(&mut ch, &Reply::error(ErrorCode::BadRequest, e.to_string()))?;
            return Err(e.into());
        }
    };
    let (qid, kind) = (q.id, q.kind);
    let share = match admit(sh, q) {
        Ok(s) => s,
        Err(r) => {
            if let Reply::Error { message, .. } = &r {
                sh.log(&format!("query {} refused: {message}", hex(&qid[..4])));
            }
            return reply(&mut ch, &r);
        }
    };
    let (tx, rx) = mpsc::channel();
    let source = super::source_of(&ch.peer());
    {
        let mut st = sh.state();
        if st.pending.contains_key(&qid) {
            drop(st);
            return reply(
                &mut ch,
                &Reply::error(ErrorCode::BadRequest, "duplicate query id"),
            );
        }
        // Per source and per port: a browser behind the same address as a
        // client with a certificate does not use up that client's share.
        let from_source = st
            .pending
            .values()
            .filter(|p| p.source == source && p.browser == browser)
            .count();
        // Browsers and the main port each have their own budget, so a flood
        // of unauthenticated queries never refuses an authenticated one.
        let same_port = st.pending.values().filter(|p| p.browser == browser).count();
        let limit = if browser {
            super::browser_share(sh.cfg.max_pending)
        } else {
            sh.cfg.max_pending
        };
        if same_port >= limit || from_source >= sh.cfg.max_pending_per_source {
            drop(st);
            sh.log(&format!("query from {source} refused: too many waiting"));
            return reply(
                &mut ch,
                &Reply::error(
                    ErrorCode::Busy,
                    "this server holds as many queries as it accepts; try again later",
                ),
            );
        }
        st.pending.insert(
            qid,
            Pending {
                share,
                kind,
                reply: tx,
                arrived: Instant::now(),
                source,
                probes: 0,
                retry_at: None,
                browser,
            },
        );
        if sh.engine.party() == PartyId::P0 {
            st.order.push_back(qid);
        }
    }
    sh.cv.notify_all();
    // Wait for the worker (bounded: queue + offline + online).
    let res = rx.recv_timeout(sh.cfg.timeout.saturating_mul(2));
    // Whatever happened, the query is no longer pending.
    sh.take_pending(&qid);
    let r = match res {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Reply::error(ErrorCode::Expired, "timed out waiting for the other server")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Reply::error(
            ErrorCode::PeerUnavailable,
            "the link between the servers failed during this query; try again",
        ),
    };
    reply(&mut ch, &r)
}

fn reply_info<C: Connection, D: Connection>(sh: &Shared<C>, ch: &mut D) -> Result<()> {
    ch.send_vec(model_info(sh).encode())?;
    ch.flush()?;
    Ok(())
}
