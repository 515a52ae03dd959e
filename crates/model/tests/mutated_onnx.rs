//! Randomly mutated ONNX files (bit flips, overwritten bytes, cuts, splices) never
//! panic the importer, the quantizer or the engines: every outcome is a model or a
//! clear error. Fixed seed, a few thousand cases.

use blindfold_core::{FracBits, Prg};
use blindfold_model::engine::{run_float, run_plain};
use blindfold_model::onnx::import_onnx;
use blindfold_model::quant::quantize;
use rand_core::RngCore;
use std::path::Path;

fn mutate(base: &[u8], rng: &mut Prg) -> Vec<u8> {
    let mut b = base.to_vec();
    let r = rng.next_u32();
    let pos = |rng: &mut Prg, len: usize| (rng.next_u64() as usize) % len.max(1);
    match r % 5 {
        0 => {
            for _ in 0..1 + r % 8 {
                let i = pos(rng, b.len());
                b[i] ^= 1 << (rng.next_u32() % 8);
            }
        }
        1 => {
            for _ in 0..1 + r % 4 {
                let i = pos(rng, b.len());
                b[i] = rng.next_u32() as u8;
            }
        }
        2 => {
            let i = pos(rng, b.len());
            b.truncate(i);
        }
        3 => {
            let i = pos(rng, b.len());
            let j = pos(rng, b.len());
            let chunk: Vec<u8> = b[i.min(j)..i.max(j)].iter().take(64).copied().collect();
            let k = pos(rng, b.len());
            b.splice(k..k, chunk);
        }
        _ => {
            // Varint-sized fields: write a large varint somewhere.
            let i = pos(rng, b.len());
            let big = [0xff, 0xff, 0xff, 0xff, 0x0f];
            for (o, v) in big.iter().enumerate() {
                if i + o < b.len() {
                    b[i + o] = *v;
                }
            }
        }
    }
    b
}

#[test]
fn mutated_files_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = [
        "models/minionn.onnx",
        "models/ppml_c.onnx",
        "testdata/onnx/tiny_unet_ts17.onnx",
        "testdata/onnx/pad_conv_ts13.onnx",
        "testdata/onnx/conv_bn_relu_gap_dynamo18.onnx",
        "testdata/onnx/upsample_concat_dynamo18.onnx",
    ];
    let mut rng = Prg::from_seed([77; 16]);
    let mut imported = 0;
    for f in files {
        let base = std::fs::read(root.join(f)).unwrap();
        for case in 0..400 {
            let bytes = mutate(&base, &mut rng);
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(m) = import_onnx(&bytes, "fuzz") {
                    let x = vec![0.5f32; m.input_shape().numel().min(1 << 20)];
                    if x.len() == m.input_shape().numel() {
                        let _ = run_float(&m, &x);
                        if let Ok(q) = quantize(&m, FracBits::DEFAULT) {
                            let _ = run_plain(&q, &x);
                        }
                    }
                    return true;
                }
                false
            });
            match outcome {
                Ok(ok) => imported += ok as usize,
                Err(_) => panic!("{f}, mutation {case}: panicked"),
            }
        }
    }
    // Some mutations hit only weights and must still import.
    assert!(imported > 0);
}
