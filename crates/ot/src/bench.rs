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
