//! P1, the follower: dials P0, sets up each session, and answers P0's jobs.
//!
//! ```text
//!   offline link:  Job::Offline         → engine.offline → pool.push
//!   online link:   Job::Have{q}         → Ready if q's share arrives within 50 ms
//!                  Job::Online{q,seq,k} → pop bundle seq (it is consumed either
//!                                         way); Ready and run, or Missing
//! ```

use super::handshake::dial;
use super::pool::Pool;
use super::session::{recv_job, run_session};
use super::wire::{ErrorCode, Job, JobAnswer, QueryCost, QueryId, Reply};
use super::Shared;
use crate::party::Session;
use crate::{EngineError, Result};
use blindfold_core::Prg;
use blindfold_net::{Connection, Transport};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long P1 waits for a client's share before answering a probe (the
/// client sends to P0 first, so P1's share is usually microseconds behind;
/// a share that is later gets P0's second probe after its grace period).
const HAVE_WAIT: Duration = Duration::from_millis(5);
/// How long P1 waits, once committed to a query, for a share the probe saw.
const TAKE_WAIT: Duration = Duration::from_millis(50);

pub(super) fn follower_loop<T: Transport>(sh: &Shared<T::Conn>, transport: &T, peer: &str) {
    let mut rng = Prg::from_entropy();
    while !sh.stopping() {
        let attempt = rng.gen_seed();
        let (mut off, on) = match dial(transport, peer, attempt, sh.engine.pairing_key(), &mut rng)
        {
            Ok(links) => links,
            Err(e) => {
                if matches!(
                    e,
                    EngineError::PairingRefused(_) | EngineError::WrongIdentity { .. }
                ) {
                    sh.log(&format!("peer refused: {e}"));
                }
                sh.fail_waiting(
                    ErrorCode::PeerUnavailable,
                    "the other server is not reachable",
                );
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if off.set_deadline(Some(sh.cfg.peer_deadline())).is_err() {
            continue;
        }
        let session = match sh.engine.setup(&mut off, &mut rng) {
            Ok(s) => s,
            Err(e) => {
                sh.log(&format!("peer setup failed: {e}"));
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if off.set_deadline(None).is_err() {
            continue;
        }
        sh.log("session established");
        run_session(sh, off, on, session, follow_offline, follow_online);
        if !sh.stopping() {
            sh.log("peer link lost; preprocessed material dropped; reconnecting");
            sh.fail_waiting(ErrorCode::PeerUnavailable, "server link failed");
        }
    }
}

fn follow_offline<C: Connection>(
    sh: &Shared<C>,
    pool: &Pool,
    ch: &mut C,
    session: &mut Session,
    rng: &mut Prg,
) -> Result<()> {
    while let Some(job) = recv_job(sh, pool, ch)? {
        if job != Job::Offline {
            return Err(EngineError::UnexpectedMessage {
                what: "job",
                place: "the offline link",
            });
        }
        let b = sh.engine.offline(ch, session, rng)?;
        pool.push(b);
        sh.ready.store(pool.len(), Ordering::SeqCst);
    }
    Ok(())
}

fn answer<C: Connection>(ch: &mut C, a: JobAnswer) -> Result<()> {
    ch.send_vec(a.encode())?;
    ch.flush()?;
    Ok(())
}

/// Whether the share of `qid` arrives within [`HAVE_WAIT`].
fn have<C: Connection>(sh: &Shared<C>, qid: &QueryId) -> bool {
    let deadline = Instant::now() + HAVE_WAIT;
    let mut st = sh.state();
    while Instant::now() < deadline {
        if st.pending.contains_key(qid) {
            return true;
        }
        st = sh.wait(st, Duration::from_millis(1));
    }
    st.pending.contains_key(qid)
}

fn follow_online<C: Connection>(sh: &Shared<C>, pool: &Pool, ch: &mut C) -> Result<()> {
    while let Some(job) = recv_job(sh, pool, ch)? {
        let (qid, seq, kind) = match job {
            Job::Have { query } => {
                let a = if have(sh, &query) {
                    JobAnswer::Ready
                } else {
                    JobAnswer::Missing
                };
                answer(ch, a)?;
                continue;
            }
            Job::Online { query, seq, kind } => (query, seq, kind),
            Job::Offline => {
                return Err(EngineError::UnexpectedMessage {
                    what: "offline job",
                    place: "the online link",
                })
            }
        };
        // The probe said we hold the share; wait briefly in case it was taken by
        // an expiring client in between.
        let deadline = Instant::now() + TAKE_WAIT;
        let mut p = None;
        while Instant::now() < deadline && !pool.stop() {
            if let Some(x) = sh.take_pending(&qid) {
                p = Some(x);
                break;
            }
            let st = sh.state();
            drop(sh.wait(st, Duration::from_millis(20)));
        }
        // The leader's bundle `seq` is our next one; it is consumed either way.
        let (_, bundle) = match pool.pop(Some(seq), || sh.stopping()) {
            Ok(b) => b,
            Err(e) => {
                if let Some(p) = p {
                    let _ = p.reply.send(Reply::error(
                        ErrorCode::Internal,
                        format!("server error: {e}"),
                    ));
                }
                return Err(e);
            }
        };
        sh.ready.store(pool.len(), Ordering::SeqCst);
        let p = match p {
            Some(p) if p.kind == kind => p,
            other => {
                if let Some(p) = other {
                    let _ = p.reply.send(Reply::error(
                        ErrorCode::BadInput,
                        "the two servers were asked for different kinds of answer",
                    ));
                }
                answer(ch, JobAnswer::Missing)?;
                continue;
            }
        };
        answer(ch, JobAnswer::Ready)?;
        let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
        let t0 = Instant::now();
        let s0 = ch.stats().total();
        let (y, _) = sh.engine.online_with(ch, bundle, p.share, kind)?;
        let s1 = ch.stats().total();
        let cost = QueryCost {
            offline_ms,
            offline_bytes,
            online_ms: t0.elapsed().as_secs_f64() * 1e3,
            online_bytes: s1.bytes() - s0.bytes(),
            online_rounds: s1.rounds() - s0.rounds(),
            queue_ms: 0.0,
        };
        let _ = p.reply.send(Reply::Ok { cost, output: y });
    }
    Ok(())
}
