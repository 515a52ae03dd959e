//! Malformed ONNX files give clear errors naming what is wrong, never panics.

use blindfold_model::onnx::{import_onnx, OnnxError};
use onnx_protobuf::{Message, ModelProto};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minionn() -> (Vec<u8>, ModelProto) {
    let bytes = std::fs::read(root().join("models/minionn.onnx")).unwrap();
    let proto = ModelProto::parse_from_bytes(&bytes).unwrap();
    (bytes, proto)
}

fn import(p: &ModelProto) -> Result<blindfold_model::Model, OnnxError> {
    import_onnx(&p.write_to_bytes().unwrap(), "t")
}

#[test]
fn truncated_file() {
    let (bytes, _) = minionn();
    for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = import_onnx(&bytes[..cut], "t").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.is_empty(), "cut at {cut}");
    }
    let e = import_onnx(&bytes[..bytes.len() / 2], "t").unwrap_err();
    assert!(
        matches!(
            e,
            OnnxError::Decode(_)
                | OnnxError::NoGraph
                | OnnxError::Initializer { .. }
                | OnnxError::Node { .. }
                | OnnxError::Output(_)
        ),
        "{e}"
    );
}

#[test]
fn garbage_and_empty() {
    assert!(import_onnx(b"", "t").is_err());
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(import_onnx(&junk, "t").is_err());
}

#[test]
fn unsupported_op_names_node_op_and_opset() {
    let (_, mut p) = minionn();
    let g = p.graph.as_mut().unwrap();
    let relu = g.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.op_type = "Tanh".into();
    let name = relu.name.clone();
    let e = import(&p).unwrap_err().to_string();
    assert!(
        e.contains("Tanh") && e.contains(&name) && e.contains("opset 13"),
        "{e}"
    );
}

#[test]
fn missing_initializer() {
    let (_, mut p) = minionn();
    let g = p.graph.as_mut().unwrap();
    let w = g.node.iter().find(|n| n.op_type == "Gemm").unwrap().input[1].clone();
    g.initializer.retain(|t| t.name != w);
    let e = import(&p).unwrap_err().to_string();
    assert!(e.contains(&w) && e.contains("Gemm"), "{e}");
}

#[test]
fn shape_mismatch() {
    let (_, mut p) = minionn();
    let g = p.graph.as_mut().unwrap();
    let w = g.node.iter().find(|n| n.op_type == "Gemm").unwrap().input[1].clone();
    let t = g.initializer.iter_mut().find(|t| t.name == w).unwrap();
    // 100 x 256 weight declared as 100 x 128 (and the data cut to match).
    t.dims = vec![100, 128];
    let keep = 100 * 128 * 4;
    if !t.raw_data.is_empty() {
        t.raw_data.truncate(keep);
    } else {
        t.float_data.truncate(100 * 128);
    }
    let e = import(&p).unwrap_err().to_string();
    assert!(e.contains("Gemm") && e.contains("does not fit"), "{e}");
}

#[test]
fn initializer_data_disagreeing_with_dims() {
    let (_, mut p) = minionn();
    let g = p.graph.as_mut().unwrap();
    let t = &mut g.initializer[0];
    t.dims.push(7);
    let e = import(&p).unwrap_err().to_string();
    assert!(e.contains("initializer"), "{e}");
}

#[test]
fn unknown_opset_and_missing_graph() {
    let (_, mut p) = minionn();
    p.opset_import[0].version = 99;
    assert!(matches!(import(&p).unwrap_err(), OnnxError::OpsetRange(99)));
    let (_, mut p) = minionn();
    p.graph.clear();
    assert!(matches!(import(&p).unwrap_err(), OnnxError::NoGraph));
}

#[test]
fn committed_malformed_files() {
    // Files made by training/make_test_vectors.py, if present.
    let dir = root().join("testdata/onnx/malformed");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "onnx") {
            let bytes = std::fs::read(&p).unwrap();
            let r = import_onnx(&bytes, "t");
            assert!(r.is_err(), "{} imported", p.display());
            n += 1;
        }
    }
    assert!(n > 0 || !dir.exists());
}
