//! The bundled zoo: every model imports and validates, and the fixed-point
//! reference at the default 12 fractional bits agrees with float on at least
//! 99.9% of the 1,000 bundled test digits.

use blindfold_core::FracBits;
use blindfold_model::data::load_idx_dir;
use blindfold_model::engine::{self, argmax};
use blindfold_model::load_onnx;
use blindfold_model::quant::quantize;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const MNIST_MODELS: &[&str] = &[
    "secureml",
    "cryptonets",
    "deepsecure",
    "minionn",
    "sok_mnist",
    "ppml_a",
    "ppml_b",
    "ppml_c",
];

#[test]
fn every_zoo_model_imports() {
    for name in MNIST_MODELS.iter().chain(&["sok_ecg"]) {
        let m = load_onnx(root().join(format!("models/{name}.onnx")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        m.validate().unwrap();
        quantize(&m, FracBits::DEFAULT).unwrap();
    }
    let ecg = load_onnx(root().join("models/sok_ecg.onnx")).unwrap();
    assert_eq!(ecg.input_shape().dims(), &[180]);
    assert_eq!(ecg.output_shape().dims(), &[16]);
}

#[test]
fn fixed_point_agrees_with_float_on_bundled_digits() {
    let ds = load_idx_dir(&root().join("data/mnist-test-1k")).unwrap();
    assert_eq!(ds.len(), 1000);
    for name in MNIST_MODELS {
        let m = load_onnx(root().join(format!("models/{name}.onnx"))).unwrap();
        let q = quantize(&m, FracBits::DEFAULT).unwrap();
        let (mut agree, mut correct) = (0, 0);
        for i in 0..ds.len() {
            let x = ds.image_f32(i);
            let lf = argmax(&engine::run_float(&m, &x).unwrap());
            let lp = argmax(&engine::decode_output(
                &q,
                &engine::run_plain(&q, &x).unwrap(),
            ));
            agree += (lf == lp) as usize;
            correct += (lf == ds.labels[i] as usize) as usize;
        }
        assert!(agree >= 999, "{name}: plain/float agreement {agree}/1000");
        if *name == "minionn" {
            assert!(correct >= 975, "minionn float accuracy {correct}/1000");
        }
    }
}
