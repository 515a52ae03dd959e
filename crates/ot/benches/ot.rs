//! `cargo bench -p blindfold-ot`: IKNP correlated OT, random OT, base OT, transpose.

use std::thread;

use blindfold_core::{Block, Prg};
use blindfold_net::{Channel, MemoryChannel};
use blindfold_ot::transpose::transpose_128xn;
use blindfold_ot::{bench, CotReceiver, CotSender};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn iknp(c: &mut Criterion) {
    let n = 1 << 20;
    let mut g = c.benchmark_group("iknp");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("cot_1M_two_threads", |b| {
        // Persistent session: setup once, extend per iteration.
        let (mut a, mut bch) = MemoryChannel::pair();
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let h = thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let delta = rng.gen_block();
            let mut s = CotSender::setup(&mut a, delta, &mut rng).unwrap();
            let mut q = vec![Block::ZERO; n];
            while rx.recv().unwrap_or(false) {
                s.send_correlated_into(&mut a, &mut q).unwrap();
                a.send(&[1]).unwrap(); // done: the timed loop waits for both parties
            }
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut r = CotReceiver::setup(&mut bch, &mut rng).unwrap();
        let choices: Vec<bool> = (0..n).map(|i| (i * 31 + 7) % 5 < 2).collect();
        let mut t = vec![Block::ZERO; n];
        b.iter(|| {
            tx.send(true).unwrap();
            r.receive_correlated_into(&mut bch, &choices, &mut t)
                .unwrap();
            bch.recv().unwrap();
        });
        tx.send(false).unwrap();
        h.join().unwrap();
    });
    g.finish();

    c.bench_function("base_ot_128", |b| b.iter(bench::base_ot_128_ms));
}

fn transpose(c: &mut Criterion) {
    let rb = (1 << 16) / 8;
    let rows: Vec<u8> = (0..128 * rb).map(|i| (i * 131 + 7) as u8).collect();
    let mut out = vec![Block::ZERO; rb * 8];
    let mut g = c.benchmark_group("transpose");
    g.throughput(Throughput::Bytes((128 * rb) as u64));
    g.bench_function("128x65536", |b| {
        b.iter(|| transpose_128xn(&rows, rb, &mut out))
    });
    g.finish();
}

criterion_group!(benches, iknp, transpose);
criterion_main!(benches);
