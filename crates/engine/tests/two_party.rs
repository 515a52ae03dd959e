//! Both servers on two threads over an in-memory channel, fixed seeds, the real
//! protocols (HE preprocessing, garbled circuits, OT-based Beaver squares), compared
//! with the plaintext fixed-point reference on bundled digits.

use blindfold_core::{FracBits, Prg};
use blindfold_engine::client::{reconstruct, share0_from_seed, share_input};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::share::split;
use blindfold_model::data::load_idx_dir;
use blindfold_model::engine::{argmax_ring, encode_input, run_plain_all};
use blindfold_model::load_onnx;
use blindfold_model::quant::{quantize, QOp};
use blindfold_net::MemoryChannel;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `n` digits of zoo model `name` through the two-party engine; check each
/// output against the reference: bit-exact when the program has no local
/// truncation, else within `tol` (decoded units) and with the same argmax.
fn check_network(name: &str, n: usize, tol: f64) {
    let m = load_onnx(root().join(format!("models/{name}.onnx"))).unwrap();
    let q = quantize(&m, FracBits::DEFAULT).unwrap();
    let exact = !q.nodes.iter().any(|n| n.op == QOp::Trunc);
    let mut rng = Prg::from_seed([42; 16]);
    let [s0, s1] = split(&q, &mut rng);
    let e0 = PartyEngine::new(s0).unwrap();
    let e1 = PartyEngine::new(s1).unwrap();
    let ds = load_idx_dir(&root().join("data/mnist-test-1k")).unwrap();
    let inputs: Vec<Vec<u64>> = (0..n)
        .map(|i| encode_input(&q, &ds.image_f32(i)).unwrap())
        .collect();
    let shares: Vec<_> = inputs.iter().map(|x| share_input(x, &mut rng)).collect();
    let len = q.input_shape().numel();
    let (mut c0, mut c1) = MemoryChannel::pair();
    let seeds: Vec<_> = shares.iter().map(|s| s.0).collect();
    let x1s: Vec<_> = shares.iter().map(|s| s.1.clone()).collect();
    let t1 = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut sess = e1.setup(&mut c1, &mut rng).unwrap();
        x1s.into_iter()
            .map(|x1| {
                let b = e1.offline(&mut c1, &mut sess, &mut rng).unwrap();
                e1.online(&mut c1, b, x1).unwrap().0
            })
            .collect::<Vec<_>>()
    });
    let mut rng0 = Prg::from_seed([0; 16]);
    let mut sess = e0.setup(&mut c0, &mut rng0).unwrap();
    let y0s: Vec<Vec<u64>> = seeds
        .into_iter()
        .map(|seed| {
            let b = e0.offline(&mut c0, &mut sess, &mut rng0).unwrap();
            e0.online(&mut c0, b, share0_from_seed(seed, len))
                .unwrap()
                .0
        })
        .collect();
    let y1s = t1.join().unwrap();
    let scale = (1u64 << q.output_frac().0) as f64;
    for (i, x) in inputs.iter().enumerate() {
        let want = run_plain_all(&q, x).unwrap().swap_remove(q.output);
        let got = reconstruct(&y0s[i], &y1s[i]);
        if exact {
            assert_eq!(
                got, want,
                "{name} digit {i}: secure differs from the reference"
            );
        } else {
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a.wrapping_sub(*b) as i64).unsigned_abs() as f64 / scale)
                .fold(0f64, f64::max);
            assert!(err <= tol, "{name} digit {i}: |secure - reference| = {err}");
            assert_eq!(
                argmax_ring(&got),
                argmax_ring(&want),
                "{name} digit {i}: label differs"
            );
        }
    }
}

#[test]
fn minionn_matches_reference_bit_exact() {
    check_network("minionn", 3, 0.0);
}

#[test]
fn secureml_square_network_within_truncation_error() {
    check_network("secureml", 3, 0.05);
}
