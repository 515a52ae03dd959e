//! `inspect` and `split` ask the same planner: what `inspect` marks unsupported,
//! `split` refuses with the same layer; what it accepts, `split` writes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn blindfold(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blindfold"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn inspect(model: &str) -> serde_json::Value {
    let out = blindfold(&["inspect", model, "--mode", "two-server", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_and_split_agree() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("planner_cli");
    let _ = std::fs::remove_dir_all(&tmp);
    let out_dir = tmp.to_str().unwrap();

    // A stand-alone channel affine map (refused until OT-preprocessed
    // element-wise products existed): both modes accept it, split writes shares.
    let r = inspect("testdata/onnx/hand_identity_constant_dropout_13.onnx");
    assert_eq!(r["mode"], "two-server");
    assert_eq!(r["supported"], true);
    assert_eq!(
        r["layers"][1]["protocol"],
        "OT-preprocessed element-wise products, 1 round"
    );
    let out = blindfold(&[
        "split",
        "testdata/onnx/hand_identity_constant_dropout_13.onnx",
        "--out",
        out_dir,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.join("party0.share").exists());
    std::fs::remove_dir_all(&tmp).unwrap();

    // Transposed convolutions have a packing now, in both secure modes.
    for mode in ["two-server", "client-server"] {
        let out = blindfold(&[
            "inspect",
            "testdata/onnx/conv_transpose_ts17.onnx",
            "--mode",
            mode,
            "--json",
        ]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["supported"], true, "{mode}");
    }

    // Accepted: every layer has a protocol, and split writes both shares.
    let r = inspect("minionn");
    assert_eq!(r["supported"], true);
    for l in r["layers"].as_array().unwrap() {
        assert!(l["protocol"].is_string(), "{l}");
    }
    let out = blindfold(&["split", "minionn", "--out", out_dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.join("party0.share").exists() && tmp.join("party1.share").exists());
}
