//! P0, the leader: pairs P1's links, sets up each session, and drives both
//! links with jobs.
//!
//! ```text
//!   offline link:  ── Job::Offline ──▶  both: engine.offline → pool.push
//!   online link:   ── Job::Have{q} ──▶  ◀── Ready | Missing     (no bundle spent)
//!                  ── Job::Online{q, seq, kind} ──▶ ◀── Ready | Missing
//!                  on Ready both: engine.online_with(bundle seq, share)
//! ```
//!
//! Online work has priority: the pool is refilled only when no query waits or
//! runs (or when it is empty). A query whose share has not reached P1 goes to
//! the back of the queue until its client's deadline; a query whose client left
//! after P1 committed runs with a zero share, so the servers stay in step.

use super::handshake::{Pairing, PeerLink};
use super::pool::Pool;
use super::session::run_session;
use super::wire::{ErrorCode, Job, JobAnswer, QueryCost, QueryId, Reply};
use super::{hex, Shared, POLL};
use crate::party::{OutputKind, Session};
use crate::Result;
use blindfold_core::Prg;
use blindfold_net::Connection;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Times P1 is asked for a query's other share before the query is dropped.
const PROBES: u8 = 2;
/// How long a query whose other share was missing waits before the next probe.
pub(super) const PROBE_GRACE: Duration = Duration::from_millis(250);

pub(super) fn leader_loop<C: Connection>(sh: &Shared<C>, links: mpsc::Receiver<PeerLink<C>>) {
    let mut rng = Prg::from_entropy();
    let mut pairing = Pairing::default();
    while !sh.stopping() {
        let link = match links.recv_timeout(POLL) {
            Ok(l) => l,
            Err(_) => {
                sh.fail_waiting(
                    ErrorCode::PeerUnavailable,
                    "the other server is not connected",
                );
                continue;
            }
        };
        // Pair only an offline and an online link from the same dial attempt.
        let Some((mut off, mut on)) = pairing.offer(link) else {
            continue;
        };
        // Until setup has checked that the dialer holds the other share of this
        // split, it is a stranger: it gets `timeout`, not the longer deadline
        // of exchanges within a session, so a silent impostor holds up pairing
        // for one timeout at most.
        if off
            .set_deadline(Some(Instant::now() + sh.cfg.timeout))
            .is_err()
        {
            continue;
        }
        let session = match sh.engine.setup(&mut off, &mut rng) {
            Ok(s) => s,
            Err(e) => {
                sh.log(&format!("peer setup failed: {e}"));
                continue;
            }
        };
        if off.set_deadline(None).is_err() || on.set_deadline(None).is_err() {
            continue;
        }
        pairing.clear();
        sh.log("session established");
        run_session(sh, off, on, session, lead_offline, lead_online);
        if !sh.stopping() {
            sh.log("peer link lost; preprocessed material dropped; waiting for the other server");
            sh.fail_waiting(ErrorCode::PeerUnavailable, "server link failed");
        }
    }
}

/// P0's offline worker: keep the pool full.
fn lead_offline<C: Connection>(
    sh: &Shared<C>,
    pool: &Pool,
    ch: &mut C,
    session: &mut Session,
    rng: &mut Prg,
) -> Result<()> {
    loop {
        if pool.stop() || sh.stopping() {
            return Ok(());
        }
        // Online work has priority: refill only when no query is waiting or
        // running, unless the pool is empty (then a query needs a bundle now).
        let queries_waiting = !sh.state().order.is_empty();
        let have = pool.len();
        if have >= sh.cfg.pool
            || (have > 0 && (queries_waiting || pool.online_busy.load(Ordering::SeqCst)))
        {
            pool.wait(Duration::from_millis(50));
            continue;
        }
        ch.set_deadline(Some(sh.cfg.peer_deadline()))?;
        ch.send_vec(Job::Offline.encode())?;
        ch.flush()?;
        let b = sh.engine.offline(ch, session, rng)?;
        pool.push(b);
        sh.ready.store(pool.len(), Ordering::SeqCst);
    }
}

/// P0's online worker: serve queries in arrival order with the oldest bundle.
fn lead_online<C: Connection>(sh: &Shared<C>, pool: &Pool, ch: &mut C) -> Result<()> {
    loop {
        let qid = {
            let mut st = sh.state();
            loop {
                if pool.stop() || sh.stopping() {
                    return Ok(());
                }
                // The first query in arrival order that is not waiting out
                // its grace period; ids whose query has gone are dropped.
                let now = Instant::now();
                let state = &mut *st;
                let pending = &state.pending;
                state.order.retain(|q| pending.contains_key(q));
                let next = st.order.iter().position(|q| {
                    st.pending
                        .get(q)
                        .is_some_and(|p| p.retry_at.is_none_or(|t| t <= now))
                });
                if let Some(i) = next {
                    if let Some(q) = st.order.remove(i) {
                        break q;
                    }
                }
                let wake = st
                    .order
                    .iter()
                    .filter_map(|q| st.pending.get(q).and_then(|p| p.retry_at))
                    .min()
                    .map_or(Duration::from_millis(50), |t| {
                        t.saturating_duration_since(now)
                            .clamp(Duration::from_millis(1), Duration::from_millis(50))
                    });
                st = sh.wait(st, wake);
            }
        };
        let t_wait = Instant::now();
        pool.online_busy.store(true, Ordering::SeqCst);
        let res = lead_one_query(sh, pool, ch, qid, t_wait);
        pool.online_busy.store(false, Ordering::SeqCst);
        pool.notify();
        if res.is_err() {
            // If the link failed before the query's share was taken, it goes back
            // to the front of the queue for the next session.
            let mut st = sh.state();
            if st.pending.contains_key(&qid) {
                st.order.push_front(qid);
            }
        }
        res?;
    }
}

fn ask<C: Connection>(ch: &mut C, job: &Job) -> Result<JobAnswer> {
    ch.send_vec(job.encode())?;
    ch.flush()?;
    Ok(JobAnswer::decode(&ch.recv()?)?)
}

fn lead_one_query<C: Connection>(
    sh: &Shared<C>,
    pool: &Pool,
    ch: &mut C,
    qid: QueryId,
    t_wait: Instant,
) -> Result<()> {
    // Does P1 hold this query's share yet? If not, the query waits out a
    // grace period aside (others go first) and is asked about once more; then
    // it is dropped. No bundle is spent on it, and a query sent to P0 alone
    // costs the online link two short probes at most.
    ch.set_deadline(Some(sh.cfg.peer_deadline()))?;
    if ask(ch, &Job::Have { query: qid })? != JobAnswer::Ready {
        let mut st = sh.state();
        let give_up = match st.pending.get_mut(&qid) {
            Some(p) if p.probes + 1 < PROBES => {
                p.probes += 1;
                p.retry_at = Some(Instant::now() + PROBE_GRACE);
                st.order.push_back(qid);
                false
            }
            Some(_) => true,
            None => false,
        };
        if give_up {
            if let Some(p) = st.pending.remove(&qid) {
                let _ = p.reply.send(Reply::error(
                    ErrorCode::MissingShare,
                    "the other server did not receive this query's share",
                ));
            }
        }
        return Ok(());
    }
    let (seq, bundle) = pool.pop(None, || sh.stopping())?;
    sh.ready.store(pool.len(), Ordering::SeqCst);
    let kind = sh
        .state()
        .pending
        .get(&qid)
        .map_or(OutputKind::Logits, |p| p.kind);
    let ack = ask(
        ch,
        &Job::Online {
            query: qid,
            seq,
            kind,
        },
    )?;
    let p = sh.take_pending(&qid);
    if ack != JobAnswer::Ready {
        if let Some(p) = p {
            let _ = p.reply.send(Reply::error(
                ErrorCode::MissingShare,
                "the other server did not receive this query's share",
            ));
        }
        // The bundle is dropped unused: material is never reused.
        return Ok(());
    }
    // P1 is committed to the online phase: run it even if our client left
    // (with a zero share), so the two servers stay in step.
    let (share, reply, arrived) = match p {
        Some(p) => (p.share, Some(p.reply), p.arrived),
        None => (
            vec![0; sh.engine.program().input_shape().numel()],
            None,
            t_wait,
        ),
    };
    let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
    let queue_ms = arrived.elapsed().as_secs_f64() * 1e3;
    let t0 = Instant::now();
    let s0 = ch.stats().total();
    let (y, _) = sh.engine.online_with(ch, bundle, share, kind)?;
    let s1 = ch.stats().total();
    let online_ms = t0.elapsed().as_secs_f64() * 1e3;
    let cost = QueryCost {
        offline_ms,
        offline_bytes,
        online_ms,
        online_bytes: s1.bytes() - s0.bytes(),
        online_rounds: s1.rounds() - s0.rounds(),
        queue_ms: (queue_ms - online_ms).max(0.0),
    };
    sh.log(&format!(
        "query {} (bundle {seq}): offline {:.1} ms {} B ahead of time; online {:.1} ms {} B",
        hex(&qid[..4]),
        cost.offline_ms,
        cost.offline_bytes,
        cost.online_ms,
        cost.online_bytes
    ));
    if let Some(r) = reply {
        let _ = r.send(Reply::Ok { cost, output: y });
    }
    Ok(())
}
