//! Throughput figures for `blindfold bench primitives`: both parties on two
//! threads over a [`MemoryChannel`](blindfold_net::MemoryChannel), fixed seeds.

use std::thread;
use std::time::Instant;

use blindfold_core::{Block, Prg};
use blindfold_net::{Channel, MemoryChannel};

use crate::{base, CotReceiver, CotSender};

/// Correlated OTs per second of the IKNP extension (base OTs excluded): the best
/// of three batches of `n` on one session, each timed from the receiver's first
/// message to the sender's acknowledgement of its last output. Use `n` of a few
/// million: small batches cannot overlap the two parties' work.
pub fn cot_per_s(n: usize) -> f64 {
    const REPS: usize = 3;
    let (mut a, mut b) = MemoryChannel::pair();
    let choices: Vec<bool> = {
        let mut p = Prg::from_seed([9; 16]);
        p.gen_u64s(n.div_ceil(64))
            .iter()
            .flat_map(|w| (0..64).map(move |k| (w >> k) & 1 == 1))
            .take(n)
            .collect()
    };
    let sender = thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let delta = rng.gen_block();
        let mut s = CotSender::setup(&mut a, delta, &mut rng).expect("bench: setup");
        let mut q = vec![Block::ZERO; n];
        for _ in 0..REPS {
            s.send_correlated_into(&mut a, &mut q)
                .expect("bench: extend");
            a.send(&[1]).expect("bench: ack");
        }
        q[n / 2]
    });
    let mut rng = Prg::from_seed([2; 16]);
    let mut r = CotReceiver::setup(&mut b, &mut rng).expect("bench: setup");
    let mut t = vec![Block::ZERO; n];
    let mut best = f64::INFINITY;
    for _ in 0..REPS {
        let start = Instant::now();
        r.receive_correlated_into(&mut b, &choices, &mut t)
            .expect("bench: extend");
        b.recv().expect("bench: ack");
        best = best.min(start.elapsed().as_secs_f64());
    }
    let q = sender.join().expect("bench: sender thread");
    std::hint::black_box((q, &t));
    n as f64 / best
}

/// Milliseconds for 128 Chou–Orlandi base OTs, both parties (median of 5).
pub fn base_ot_128_ms() -> f64 {
    let mut times: Vec<f64> = (0..5u8)
        .map(|k| {
            let (mut a, mut b) = MemoryChannel::pair();
            let start = Instant::now();
            let h = thread::spawn(move || {
                let mut rng = Prg::from_seed([k; 16]);
                base::send_random(&mut a, 128, &mut rng).expect("bench: base OT")
            });
            let mut rng = Prg::from_seed([k + 100; 16]);
            let choices: Vec<bool> = (0..128).map(|j| j % 3 == 0).collect();
            let keys = base::receive_random(&mut b, &choices, &mut rng).expect("bench: base OT");
            let pairs = h.join().expect("bench: base OT thread");
            std::hint::black_box((keys, pairs));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|x, y| x.total_cmp(y));
    times[2]
}

/// Silent OT figures: setup (IKNP bootstrap and the setup extension) and the
/// steady state of [`crate::LpnParams::EXTEND`] extensions.
#[derive(Clone, Copy, Debug)]
pub struct SilentFigures {
    /// Milliseconds and bytes (both directions) of the session setup.
    pub setup_ms: f64,
    pub setup_bytes: u64,
    /// Random OTs per second over whole extensions (best of the runs), both
    /// parties, hashing to random OTs included.
    pub rot_per_s: f64,
    /// Bytes sent per fresh OT in the steady state.
    pub bytes_per_ot: f64,
}

/// Measure [`SilentFigures`]: `reps` batches, each exactly one extension's
/// fresh OTs.
pub fn silent(reps: usize) -> SilentFigures {
    use crate::{LpnParams, SilentCotReceiver, SilentCotSender};
    let p = LpnParams::EXTEND;
    let batch = p.fresh(&p);
    let (mut a, mut b) = MemoryChannel::pair();
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let delta = Block(rng.gen_block().0 | 1);
        let mut s = SilentCotSender::setup(&mut a, delta, &mut rng).expect("bench: setup");
        a.send(&[1]).expect("bench: ack");
        a.flush().expect("bench: ack");
        // Drain the setup pool so every timed batch is one whole extension.
        let left = s.available();
        s.random(&mut a, left, &mut rng).expect("bench: drain");
        let mut keep = Block::ZERO;
        for _ in 0..reps {
            let r = s.random(&mut a, batch, &mut rng).expect("bench: extend");
            keep ^= r[batch / 2][0];
            a.send(&[1]).expect("bench: ack");
            a.flush().expect("bench: ack");
        }
        keep
    });
    let mut rng = Prg::from_seed([2; 16]);
    let mut r = SilentCotReceiver::setup(&mut b, &mut rng).expect("bench: setup");
    b.recv().expect("bench: ack");
    let setup_ms = start.elapsed().as_secs_f64() * 1e3;
    let setup_bytes = b.stats().total().bytes();
    let left = r.available();
    r.random(&mut b, left).expect("bench: drain");
    let mut best = f64::INFINITY;
    let mut bytes = 0u64;
    for _ in 0..reps {
        let b0 = b.stats().total().bytes();
        let t = Instant::now();
        let out = r.random(&mut b, batch).expect("bench: extend");
        b.recv().expect("bench: ack");
        best = best.min(t.elapsed().as_secs_f64());
        bytes = b.stats().total().bytes() - b0 - 1;
        std::hint::black_box(&out);
    }
    std::hint::black_box(sender.join().expect("bench: sender thread"));
    SilentFigures {
        setup_ms,
        setup_bytes,
        rot_per_s: batch as f64 / best,
        bytes_per_ot: bytes as f64 / batch as f64,
    }
}
