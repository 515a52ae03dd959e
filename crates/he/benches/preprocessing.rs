//! Criterion: one query's homomorphic preprocessing (both directions, two
//! threads, in-memory channel) for SecureML and MiniONN, plus the RLWE steps.
use blindfold_core::Prg;
use blindfold_he::bench::{bench, zoo_layers};
use blindfold_he::ResponseFlood;
use blindfold_he::{HeParams, Plaintext, SecretKey};
use criterion::{criterion_group, criterion_main, Criterion};

fn networks(c: &mut Criterion) {
    let mut g = c.benchmark_group("preprocessing");
    g.sample_size(10);
    for name in ["secureml", "minionn"] {
        let layers = zoo_layers(name).expect("zoo network");
        g.bench_function(name, |b| b.iter(|| bench(&layers, 1).expect("bench")));
    }
    g.finish();
}

fn steps(c: &mut Criterion) {
    let params = HeParams::new().expect("params");
    let mut rng = Prg::from_seed([1; 16]);
    let sk = SecretKey::generate(&params, &mut rng).expect("sk");
    let pk = sk.public_key(&mut rng).expect("pk");
    let m = rng.gen_u64s(8192);
    let pt = Plaintext::new(&params, &rng.gen_u64s(8192), 8192).expect("pt");
    let ct = sk.encrypt(&m, &mut rng).expect("enc");
    let full = ct.expand(&params).expect("expand");
    let pos: Vec<usize> = (0..8192).step_by(8).collect();
    let t = rng.gen_u64s(pos.len());
    let mut g = c.benchmark_group("rlwe");
    g.bench_function("encrypt", |b| {
        b.iter(|| sk.encrypt(&m, &mut rng).expect("enc"))
    });
    g.bench_function("expand", |b| b.iter(|| ct.expand(&params).expect("expand")));
    g.bench_function("mul_plain", |b| b.iter(|| full.mul_plain(&pt)));
    let flood = ResponseFlood::for_products(&params, 8192, 1).expect("flood");
    g.bench_function("finish_response", |b| {
        b.iter(|| {
            full.mul_plain(&pt)
                .finish_response(&pk, &pos, &t, &flood, &mut rng)
                .expect("finish")
        })
    });
    g.finish();
}

criterion_group!(benches, networks, steps);
criterion_main!(benches);
