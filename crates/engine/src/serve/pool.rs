//! One session's bundles, in production order: filled by the offline worker,
//! drained by the online worker, dropped with the session.
//!
//! Each bundle gets the next sequence number when it is pushed. Both servers
//! produce bundles in the same order on their offline link, so P0's bundle `k`
//! and P1's bundle `k` are the two halves of one preprocessing run; P0 names
//! `k` with each online job and P1 refuses any other
//! ([`EngineError::BundleSequence`]).

use super::lock;
use crate::party::Bundle;
use crate::{EngineError, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Bundles {
    queue: VecDeque<(u64, Bundle)>,
    /// Sequence number of the next bundle produced.
    produced: u64,
}

/// One session's shared state between its two worker threads.
pub(super) struct Pool {
    bundles: Mutex<Bundles>,
    cv: Condvar,
    /// Set when either worker stops: both stop and the bundles are dropped.
    broken: AtomicBool,
    /// P0: a query's online phase is running.
    pub online_busy: AtomicBool,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            bundles: Mutex::new(Bundles::default()),
            cv: Condvar::new(),
            broken: AtomicBool::new(false),
            online_busy: AtomicBool::new(false),
        }
    }

    /// The session is closing.
    pub fn stop(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Close the session: wakes every waiter.
    pub fn close(&self) {
        self.broken.store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }

    /// Wake the offline worker (an online phase ended).
    pub fn notify(&self) {
        self.cv.notify_all();
    }

    pub fn push(&self, b: Bundle) {
        let mut p = lock(&self.bundles);
        let seq = p.produced;
        p.produced += 1;
        p.queue.push_back((seq, b));
        self.cv.notify_all();
    }

    /// The oldest bundle, waiting for it while the session lives and
    /// `stopping()` is false. With `want`, its sequence number must match.
    pub fn pop(&self, want: Option<u64>, stopping: impl Fn() -> bool) -> Result<(u64, Bundle)> {
        let mut p = lock(&self.bundles);
        loop {
            if self.stop() || stopping() {
                return Err(EngineError::SessionClosed);
            }
            if let Some(&(seq, _)) = p.queue.front() {
                match want {
                    Some(w) if seq != w => {
                        return Err(EngineError::BundleSequence {
                            expected: w,
                            got: seq,
                        })
                    }
                    _ => {
                        if let Some(b) = p.queue.pop_front() {
                            return Ok(b);
                        }
                    }
                }
            }
            p = self
                .cv
                .wait_timeout(p, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wait up to `t` for a change (a push, a pop's end, a stop).
    pub fn wait(&self, t: Duration) {
        let p = lock(&self.bundles);
        let _ = self.cv.wait_timeout(p, t);
    }

    pub fn len(&self) -> usize {
        lock(&self.bundles).queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::party::PartyEngine;
    use blindfold_core::{FracBits, Prg};
    use blindfold_net::MemoryChannel;

    /// Two real bundles of P0 (both parties over an in-memory channel).
    fn bundles() -> Vec<Bundle> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = blindfold_model::load_onnx(root.join("models/ppml_b.onnx")).unwrap();
        let q = blindfold_model::quant::quantize(&m, FracBits::DEFAULT).unwrap();
        let [s0, s1] = crate::share::split(&q, &mut Prg::from_seed([1; 16]));
        let (e0, e1) = (PartyEngine::new(s0).unwrap(), PartyEngine::new(s1).unwrap());
        let (mut c0, mut c1) = MemoryChannel::pair();
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([2; 16]);
            let mut s = e1.setup(&mut c1, &mut rng).unwrap();
            for _ in 0..2 {
                e1.offline(&mut c1, &mut s, &mut rng).unwrap();
            }
        });
        let mut rng = Prg::from_seed([3; 16]);
        let mut s = e0.setup(&mut c0, &mut rng).unwrap();
        let b = (0..2)
            .map(|_| e0.offline(&mut c0, &mut s, &mut rng).unwrap())
            .collect();
        t.join().unwrap();
        b
    }

    #[test]
    fn bundles_pop_in_order_and_the_sequence_is_checked() {
        let pool = Pool::new();
        for b in bundles() {
            pool.push(b);
        }
        assert_eq!(pool.len(), 2);
        assert!(matches!(
            pool.pop(Some(1), || false),
            Err(EngineError::BundleSequence {
                expected: 1,
                got: 0
            })
        ));
        assert_eq!(pool.pop(Some(0), || false).unwrap().0, 0);
        assert_eq!(pool.pop(None, || false).unwrap().0, 1);
        // Empty: a stopping server or a closed session ends the wait.
        assert!(matches!(
            pool.pop(None, || true),
            Err(EngineError::SessionClosed)
        ));
        pool.close();
        assert!(pool.stop());
        assert!(matches!(
            pool.pop(None, || false),
            Err(EngineError::SessionClosed)
        ));
    }
}
