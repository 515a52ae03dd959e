//! Both layouts on the zoo's square-activation networks: encrypt, evaluate,
//! decrypt with real keys, and compare with the exact integer reference.

use blindfold_core::Prg;
use blindfold_fhe::files::{self, Server, ServerKeys};
use blindfold_fhe::{FheModel, FheQuant, Layout, Progress};
use blindfold_model::data::load_idx_dir;
use std::path::PathBuf;
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn inputs(len: usize, count: usize) -> Vec<Vec<f32>> {
    if len == 784 {
        let d = load_idx_dir(&root().join("data/mnist-test-1k")).unwrap();
        (0..count).map(|i| d.image_f32(i)).collect()
    } else {
        let mut prg = Prg::from_seed([3; 16]);
        (0..count)
            .map(|_| {
                (0..len)
                    .map(|_| (prg.gen_u64() % 1001) as f32 / 1000.0)
                    .collect()
            })
            .collect()
    }
}

/// Run `count` inputs of zoo model `name` in `layout`; returns the budget left.
pub fn run(name: &str, layout: Layout, count: usize) -> i64 {
    let m = blindfold_model::load_onnx(root().join(format!("models/{name}.onnx"))).unwrap();
    let t0 = Instant::now();
    let fm = FheModel::new(&m, FheQuant::default(), layout).unwrap();
    eprintln!(
        "{name} {}: {} (range {} bits, depth {}) planned in {:?}",
        layout.name(),
        fm.params.describe(),
        fm.program.range_bits(),
        fm.program.depth(),
        t0.elapsed()
    );
    let server = Server::new(fm.clone()).unwrap();
    let profile = fm.profile();
    let mut rng = Prg::from_seed([7; 16]);
    let t0 = Instant::now();
    let (client, _secret, eval) = files::generate(&profile, &mut rng).unwrap();
    eprintln!("  keygen {:?}, eval key {} bytes", t0.elapsed(), eval.len());
    let (keys, _, _) = ServerKeys::from_bytes(&eval).unwrap();
    let xs = inputs(fm.program.input_len(), count);
    let t0 = Instant::now();
    let q = client.encrypt(&xs, &mut rng).unwrap();
    eprintln!("  encrypt {:?}, {} bytes", t0.elapsed(), q.len());
    let t0 = Instant::now();
    let r = server.evaluate(&keys, &q, &Progress::none()).unwrap();
    eprintln!("  evaluate {:?}, result {} bytes", t0.elapsed(), r.len());
    let (outs, budget) = client.decrypt(&r).unwrap();
    eprintln!(
        "  noise budget left {budget} bits (estimate said {} of {})",
        fm.params.noise_estimate,
        fm.params.log_q()
    );
    assert_eq!(outs.len(), count);
    for (i, x) in xs.iter().enumerate() {
        let want = fm.program.run(&fm.program.encode_input(x).unwrap());
        assert_eq!(outs[i], want, "{name} {} input {i}", layout.name());
    }
    assert!(budget > 0);
    budget
}

#[test]
fn sok_ecg_both_layouts() {
    run("sok_ecg", Layout::Batch, 16);
    run("sok_ecg", Layout::Latency, 2);
}

#[test]
fn ppml_a_both_layouts() {
    run("ppml_a", Layout::Latency, 2);
    run("ppml_a", Layout::Batch, 8);
}

#[test]
fn sok_mnist_both_layouts() {
    run("sok_mnist", Layout::Latency, 2);
    run("sok_mnist", Layout::Batch, 8);
}

/// Slow (minutes in a test build): `.ci/run` runs it in release, as does
/// `scripts/fhe-zoo.sh`.
#[test]
#[ignore]
fn secureml_both_layouts() {
    run("secureml", Layout::Latency, 1);
    run("secureml", Layout::Batch, 4);
}

/// Slow (minutes in a test build): `.ci/run` runs it in release, as does
/// `scripts/fhe-zoo.sh`.
#[test]
#[ignore]
fn cryptonets_both_layouts() {
    run("cryptonets", Layout::Latency, 1);
    run("cryptonets", Layout::Batch, 4);
}
