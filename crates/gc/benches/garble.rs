//! Criterion benches of the garbling kernels and the ReLU protocol.
//!
//! `cargo bench -p blindfold-gc` (throughput is reported per AND gate for the
//! kernels and per ReLU for the protocol).
use blindfold_core::{FracBits, Prg};
use blindfold_gc::bench::and_heavy_circuit;
use blindfold_gc::circuit::Circuit;
use blindfold_gc::garble::{EvaluatedChunk, Evaluator, GarbledChunk, Garbler, CHUNK};
use blindfold_gc::{EvaluatorSession, Gadget, GarblerSession};
use blindfold_net::MemoryChannel;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn labels(prg: &mut Prg, n: usize) -> Vec<blindfold_core::Block> {
    (0..n).map(|_| prg.gen_block()).collect()
}

fn kernels(c: &mut Criterion, name: &str, circ: &Circuit) {
    let mut prg = Prg::from_seed([1; 16]);
    let g0 = labels(&mut prg, CHUNK * circ.n_garbler_inputs());
    let e0 = labels(&mut prg, CHUNK * circ.n_evaluator_inputs());
    let mut garbler = Garbler::new(circ, prg.gen_block());
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((CHUNK * circ.n_and()) as u64));
    group.sample_size(20);
    let mut out = GarbledChunk::default();
    group.bench_function("garble 64 instances", |b| {
        b.iter(|| {
            out.tables.clear();
            out.masks.clear();
            out.decode.clear();
            garbler.garble_chunk(0, &g0, &e0, &mut out);
        })
    });
    let mut ev = Evaluator::new(circ);
    let mut res = EvaluatedChunk::default();
    group.bench_function("evaluate 64 instances", |b| {
        b.iter(|| {
            res.bits.clear();
            res.ring.clear();
            ev.eval_chunk(0, &g0, &e0, &out.tables, &out.decode, &mut res)
                .expect("sizes match");
        })
    });
    group.finish();
}

fn bench_kernels(c: &mut Criterion) {
    kernels(c, "and-only circuit (4096 AND)", &and_heavy_circuit(4096));
    kernels(
        c,
        "relu_trunc_mask circuit",
        &Gadget::ReluTruncMask { f: FracBits(12) }.circuit(),
    );
}

fn bench_relu_protocol(c: &mut Criterion) {
    let n = 2000;
    let gadget = Gadget::ReluTruncMask { f: FracBits(12) };
    let mut group = c.benchmark_group("relu protocol (memory channel)");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function("offline+online, 2000 ReLUs", |b| {
        b.iter(|| {
            let (mut cg, mut ce) = MemoryChannel::pair();
            let y = vec![7u64; n];
            let y2 = y.clone();
            let h = std::thread::spawn(move || {
                let mut rng = Prg::from_seed([1; 16]);
                let mut s = GarblerSession::setup(&mut cg, &mut rng).expect("setup");
                let off = s.offline(&mut cg, gadget, n, &mut rng).expect("offline");
                off.online(&mut cg, &y2).expect("online")
            });
            let mut rng = Prg::from_seed([2; 16]);
            let mut s = EvaluatorSession::setup(&mut ce, &mut rng).expect("setup");
            let off = s.offline(&mut ce, gadget, n, &mut rng).expect("offline");
            let z = off.online(&mut ce, &y).expect("online");
            let r = h.join().expect("garbler");
            (r, z)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_kernels, bench_relu_protocol);
criterion_main!(benches);
