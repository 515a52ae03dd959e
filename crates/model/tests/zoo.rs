//! The bundled zoo: every model imports and validates, and the fixed-point
//! reference at the default 12 fractional bits agrees with float on at least
//! 99.9% of the 1,000 bundled test digits (for the segmentation UNet: of the
//! pixels of the 100 bundled mnist-seg canvases).

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

/// The segmentation UNet (`models/unet.onnx`, 1x64x64 -> 11x64x64 logits):
/// imports, and on the 100 bundled mnist-seg canvases the fixed-point
/// reference's per-pixel class (argmax over the 11 logits) agrees with float on
/// at least 99.9% of the 409,600 pixels, and the float mean Dice over the ten
/// digit classes stays near the figure of models/README.md.
#[test]
fn unet_fixed_point_agrees_with_float_on_bundled_canvases() {
    use blindfold_model::data::parse_idx_u8;
    let m = load_onnx(root().join("models/unet.onnx")).unwrap();
    m.validate().unwrap();
    assert_eq!(m.input_shape().dims(), &[1, 64, 64]);
    assert_eq!(m.output_shape().dims(), &[11, 64, 64]);
    let q = quantize(&m, FracBits::DEFAULT).unwrap();
    let read = |f: &str| {
        let bytes = std::fs::read(root().join("data/mnist-seg-test-100").join(f)).unwrap();
        let (dims, data) = parse_idx_u8(&bytes).unwrap();
        assert_eq!(dims, [100, 64, 64], "{f}");
        data
    };
    let (images, masks) = (read("images.idx3-ubyte"), read("masks.idx3-ubyte"));
    const PX: usize = 64 * 64;
    let class_at =
        |logits: &[f64], j: usize| argmax(&(0..11).map(|c| logits[c * PX + j]).collect::<Vec<_>>());
    let mut agree = 0;
    // Per class: |P & T|, |P|, |T| for the float prediction P and the mask T.
    let mut counts = [[0usize; 3]; 11];
    for i in 0..100 {
        let x: Vec<f32> = images[i * PX..(i + 1) * PX]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let lf = engine::run_float(&m, &x).unwrap();
        let lp = engine::decode_output(&q, &engine::run_plain(&q, &x).unwrap());
        for j in 0..PX {
            let (cf, cp, t) = (
                class_at(&lf, j),
                class_at(&lp, j),
                masks[i * PX + j] as usize,
            );
            agree += (cf == cp) as usize;
            counts[cf][1] += 1;
            counts[t][2] += 1;
            counts[t][0] += (cf == t) as usize;
        }
    }
    assert!(
        agree * 1000 >= 999 * 100 * PX,
        "unet: plain/float pixel agreement {agree}/{}",
        100 * PX
    );
    let dice: Vec<f64> = counts[1..]
        .iter()
        .filter(|c| c[1] + c[2] > 0)
        .map(|c| 2.0 * c[0] as f64 / (c[1] + c[2]) as f64)
        .collect();
    let mean = dice.iter().sum::<f64>() / dice.len() as f64;
    assert!(mean >= 0.85, "unet: float mean digit Dice {mean:.4}");
}
