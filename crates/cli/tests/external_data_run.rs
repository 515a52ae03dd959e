//! `blindfold run` on a model exported by `torch.onnx.export(dynamo=True,
//! external_data=True)`: the weights live in `NAME.onnx.data` beside the model.
//! The float output must match onnxruntime's (stored when the vector was made),
//! and the model copied alone elsewhere must fail with a clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

const NAME: &str = "conv_relu_linear_dynamo18_external";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/onnx")
}

fn run(model: &Path, input: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blindfold"))
        .args(["run", "--mode", "float", "--json"])
        .arg(model)
        .arg(input)
        .output()
        .unwrap()
}

#[test]
fn run_matches_onnxruntime_on_a_model_with_external_data() {
    let dir = vectors();
    let model = dir.join(format!("{NAME}.onnx"));
    assert!(dir.join(format!("{NAME}.onnx.data")).exists());
    let out = run(&model, &dir.join(format!("{NAME}.input.npy")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f64> = v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let bytes = std::fs::read(dir.join(format!("{NAME}.output.npy"))).unwrap();
    let (_, want) = blindfold_model::data::parse_npy(&bytes).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - *w as f64).abs() < 1e-4,
            "{got:?} vs onnxruntime {want:?}"
        );
    }

    // The model file without its data file: a clear error, no panic.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("external_alone");
    std::fs::create_dir_all(&tmp).unwrap();
    let alone = tmp.join(format!("{NAME}.onnx"));
    std::fs::copy(&model, &alone).unwrap();
    let _ = std::fs::remove_file(tmp.join(format!("{NAME}.onnx.data")));
    let out = run(&alone, &dir.join(format!("{NAME}.input.npy")));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".onnx.data"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
