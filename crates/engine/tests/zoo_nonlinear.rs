//! Every zoo network with its non-linear layers forced onto each protocol:
//! garbled circuits, then OT-based comparisons on silent OT (ReLU, max-pool,
//! sign, truncation; the label circuit stays garbled). Both parties on two
//! threads over an in-memory channel, one session per network and protocol, a
//! fresh bundle per query; every output equal to the plaintext fixed-point
//! reference bit for bit. (The zoo tests in `zoo_two_party.rs` run the default,
//! the planner's per-layer choice.)

mod common;

use blindfold_core::{FracBits, Prg};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::plan::StepSpec;
use blindfold_engine::share::split;
use blindfold_model::engine::{encode_input, run_plain_all};
use blindfold_model::quant::{quantize_with, NonLinear, QuantConfig};
use common::root;

fn inputs(name: &str, len: usize, n: usize) -> Vec<Vec<f32>> {
    if name == "sok_ecg" {
        let mut rng = Prg::from_seed([9; 16]);
        return (0..n)
            .map(|_| {
                (0..len)
                    .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
                    .collect()
            })
            .collect();
    }
    let ds = common::digits();
    (0..n).map(|i| ds.image_f32(i)).collect()
}

fn check(name: &str, nonlinear: NonLinear) {
    let m = blindfold_model::load_onnx(root().join(format!("models/{name}.onnx"))).unwrap();
    let cfg = QuantConfig {
        nonlinear,
        ..QuantConfig::new(FracBits::DEFAULT)
    };
    let q = quantize_with(&m, &cfg).unwrap();
    let [s0, s1] = split(&q, &mut Prg::from_seed([3; 16]));
    let e0 = PartyEngine::new(s0).unwrap();
    let e1 = PartyEngine::new(s1).unwrap();
    // The plan uses the protocol asked for wherever it has one.
    let (ot, gc) = e0
        .plan()
        .steps()
        .iter()
        .fold((0, 0), |(o, g), s| match s.spec {
            StepSpec::Ot(_) => (o + 1, g),
            StepSpec::Gc(_) => (o, g + 1),
            _ => (o, g),
        });
    match nonlinear {
        NonLinear::Gc => assert_eq!(ot, 0, "{name}"),
        NonLinear::Ot => assert!(ot > 0 && gc == 0, "{name}: {ot} OT, {gc} garbled steps"),
        NonLinear::Auto(_) => {}
    }
    let len = q.input_shape().numel();
    let xs: Vec<Vec<u64>> = inputs(name, len, 6)
        .iter()
        .map(|x| encode_input(&q, x).unwrap())
        .collect();
    let ys = common::run_two_party(e0, e1, &xs);
    for (i, (got, x)) in ys.iter().zip(&xs).enumerate() {
        let want = run_plain_all(&q, x).unwrap().swap_remove(q.output);
        assert_eq!(got, &want, "{name} {nonlinear:?} input {i}");
    }
}

macro_rules! both {
    ($($t:ident: $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                check($name, NonLinear::Ot);
                check($name, NonLinear::Gc);
            }
        )*
    };
}

both! {
    minionn: "minionn",
    deepsecure: "deepsecure",
    ppml_b: "ppml_b",
    ppml_c: "ppml_c",
    secureml: "secureml",
    sok_ecg: "sok_ecg",
    bnn: "bnn",
}
