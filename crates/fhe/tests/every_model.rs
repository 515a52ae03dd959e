//! Every ONNX model of the test vectors (`testdata/onnx`, exported by
//! torch.onnx.export with both exporters and several opsets, and hand-built
//! ones) that FHE lowering accepts runs in both layouts and decrypts to the
//! exact integer reference; a model it refuses is refused with the layer
//! named. Release build (`--ignored`, as `.ci/run` runs the slow FHE tests).

use blindfold_core::Prg;
use blindfold_fhe::files::{self, Server, ServerKeys};
use blindfold_fhe::{FheError, FheModel, FheQuant, Layout, Progress};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn every_model() -> Vec<PathBuf> {
    let mut out = vec![];
    for dir in ["testdata/onnx", "testdata/onnx/extra"] {
        let Ok(rd) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "onnx") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Keys, two inputs in [0, 1], one evaluation, decryption: exact or a panic.
fn run_exact(name: &str, fm: &FheModel) {
    let server = Server::new(fm.clone()).unwrap();
    let mut rng = Prg::from_seed([9; 16]);
    let (client, _secret, eval) = files::generate(&fm.profile(), &mut rng).unwrap();
    let (keys, _, _) = ServerKeys::from_bytes(&eval).unwrap();
    let len = fm.program.input_len();
    let xs: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..len)
                .map(|_| (rng.gen_u64() % 1001) as f32 / 1000.0)
                .collect()
        })
        .collect();
    let q = client.encrypt(&xs, &mut rng).unwrap();
    let r = server.evaluate(&keys, &q, &Progress::none()).unwrap();
    let (outs, budget) = client.decrypt(&r).unwrap();
    assert!(budget > 0, "{name}: no noise budget left");
    for (i, x) in xs.iter().enumerate() {
        let want = fm.program.run(&fm.program.encode_input(x).unwrap());
        assert_eq!(outs[i], want, "{name} {} input {i}", fm.layout().name());
    }
}

#[test]
#[ignore = "slow in a debug build: cargo test --release -p blindfold-fhe --test every_model -- --ignored"]
fn every_accepted_test_vector_is_exact_in_both_layouts() {
    let (mut ran, mut refused, mut loaded) = (vec![], vec![], 0);
    for p in every_model() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let m = match blindfold_model::load_onnx(&p) {
            Ok(m) => m,
            Err(_) => continue, // malformed on purpose (the model crate's tests)
        };
        loaded += 1;
        for layout in [Layout::Batch, Layout::Latency] {
            match FheModel::new(&m, FheQuant::default(), layout) {
                Ok(fm) => {
                    run_exact(&name, &fm);
                    ran.push(format!("{name} {}", layout.name()));
                }
                Err(e) => {
                    let text = e.to_string();
                    // A refusal names the layer it refuses.
                    assert!(
                        matches!(
                            e,
                            FheError::Lower(_) | FheError::NoParams(_) | FheError::Params(_)
                        ) && text.contains("layer "),
                        "{name} {}: {e:?}",
                        layout.name()
                    );
                    refused.push(format!("{name} {}: {text}", layout.name()));
                }
            }
        }
    }
    eprintln!("ran exactly: {}", ran.len());
    for r in &ran {
        eprintln!("  {r}");
    }
    eprintln!("refused: {}", refused.len());
    for r in &refused {
        eprintln!("  {r}");
    }
    // 77 test vectors load; 20 of them are polynomial (x², average pooling,
    // linear layers), each in both layouts. A loader or lowering regression
    // shows here as fewer.
    assert!(loaded >= 77, "only {loaded} test vectors load");
    assert!(ran.len() >= 40, "only {} runs", ran.len());
}
