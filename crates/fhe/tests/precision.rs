//! The precision table of docs/fhe.md: accuracy of the integer reference on
//! the 1,000 bundled digits for input = weight bits 4..8, the plaintext range
//! and the batch layout's primes; it asserts that the default precision keeps
//! accuracy within half a point of float. Slow in a test build (the reference
//! on 1,000 digits per setting), so `.ci/run` runs it in release:
//! `cargo test --release -p blindfold-fhe --test precision -- --ignored --nocapture`.

use blindfold_fhe::{FheModel, FheProgram, FheQuant, Layout};
use blindfold_model::engine::{argmax, run_float};

#[test]
#[ignore]
fn precision_table() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let ds = blindfold_model::data::load_idx_dir(std::path::Path::new(&format!(
        "{root}/data/mnist-test-1k"
    )))
    .unwrap();
    for name in ["secureml", "cryptonets", "sok_mnist", "ppml_a"] {
        let m = blindfold_model::load_onnx(format!("{root}/models/{name}.onnx")).unwrap();
        let correct = |f: &dyn Fn(&[f32]) -> usize| {
            (0..ds.len())
                .filter(|&i| f(&ds.image_f32(i)) == ds.labels[i] as usize)
                .count()
        };
        let float = correct(&|x| argmax(&run_float(&m, x).unwrap()));
        let mut line = format!("{name}: float {:.1}%", float as f64 / 10.0);
        for bits in 4u32..=8 {
            let q = FheQuant {
                input_bits: bits,
                weight_bits: bits,
                input_range: (0.0, 1.0),
            };
            let p = FheProgram::lower(&m, q).unwrap();
            let ok = correct(&|x| argmax(&p.run(&p.encode_input(x).unwrap())));
            if bits == FheQuant::default().input_bits {
                // the defaults keep accuracy: within half a point of float,
                // with parameters that fit the batch layout
                assert!(ok + 5 >= float, "{name}: {ok} vs float {float} of 1000");
                assert!(
                    FheModel::from_program(p.clone(), Layout::Batch).is_ok(),
                    "{name}"
                );
            }
            let primes = FheModel::from_program(p.clone(), Layout::Batch)
                .map(|f| {
                    format!(
                        "{} x {} bits",
                        f.params.plaintext.len(),
                        f.params.plaintext_bits()[0]
                    )
                })
                .unwrap_or_else(|e| e.to_string());
            line += &format!(
                " | {bits}: {:.1}% (range {} bits, {primes})",
                ok as f64 / 10.0,
                p.range_bits()
            );
        }
        eprintln!("{line}");
    }
}
