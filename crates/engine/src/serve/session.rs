//! One session between the servers: the offline worker on its own thread, the
//! online worker on the caller's; when either stops (error, panic, shutdown),
//! both do and the pool is dropped.

use super::pool::Pool;
use super::wire::Job;
use super::{Shared, POLL};
use crate::party::Session;
use crate::Result;
use blindfold_core::Prg;
use blindfold_net::{Connection, NetError};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(super) type OfflineWorker<C> =
    fn(&Shared<C>, &Pool, &mut C, &mut Session, &mut Prg) -> Result<()>;
pub(super) type OnlineWorker<C> = fn(&Shared<C>, &Pool, &mut C) -> Result<()>;

/// Run one session to its end.
pub(super) fn run_session<C: Connection>(
    sh: &Shared<C>,
    mut off: C,
    mut on: C,
    mut session: Session,
    offline: OfflineWorker<C>,
    online: OnlineWorker<C>,
) {
    let pool = Pool::new();
    let mut off_rng = Prg::from_entropy();
    /// Stops the session when dropped, so a worker that errs or panics always
    /// takes its partner down with it (never a half-alive session).
    struct StopOnDrop<'a, C: Connection>(&'a Pool, &'a Shared<C>);
    impl<C: Connection> Drop for StopOnDrop<'_, C> {
        fn drop(&mut self) {
            self.0.close();
            self.1.cv.notify_all();
        }
    }
    std::thread::scope(|sc| {
        let p = &pool;
        let worker = sc.spawn(move || {
            let _stop = StopOnDrop(p, sh);
            if let Err(e) = offline(sh, p, &mut off, &mut session, &mut off_rng) {
                if !p.stop() {
                    sh.log(&format!("offline link: {e}"));
                }
            }
        });
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _stop = StopOnDrop(p, sh);
            online(sh, p, &mut on)
        }));
        match res {
            Ok(Err(e)) if !p.stop() => sh.log(&format!("online link: {e}")),
            Err(_) => sh.log("online worker panicked; session dropped"),
            _ => {}
        }
        if worker.join().is_err() {
            sh.log("offline worker panicked; session dropped");
        }
    });
    sh.ready.store(0, Ordering::SeqCst);
}

/// P1: receive the next job, polling so a closing session or server is
/// noticed. The job's whole exchange then gets one peer deadline.
pub(super) fn recv_job<C: Connection>(
    sh: &Shared<C>,
    pool: &Pool,
    ch: &mut C,
) -> Result<Option<Job>> {
    loop {
        if pool.stop() || sh.stopping() {
            return Ok(None);
        }
        ch.set_deadline(Some(Instant::now() + POLL))?;
        match ch.recv() {
            Ok(j) => {
                // A peer that stalls mid-protocol ends the session, not the server.
                ch.set_deadline(Some(sh.cfg.peer_deadline()))?;
                return Ok(Some(Job::decode(&j)?));
            }
            Err(NetError::Timeout) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
