//! ONNX external data: a tensor whose bytes are in a file beside the model.
//! Well-formed references import (and compute what the same model with inline
//! weights computes); every malformed one is refused with its own error variant.

mod common;

use blindfold_model::engine::run_float;
use blindfold_model::onnx::{import_onnx, import_onnx_with_base, ExternalDataError, OnnxError};
use blindfold_model::{load_onnx, ModelError};
use common::vi;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::*;
use protobuf::{EnumOrUnknown, Message, MessageField};
use std::path::{Path, PathBuf};

const W: [f32; 8] = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, -2.0];

fn entry(k: &str, v: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = k.into();
    e.value = v.into();
    e
}

/// `y = x · W`, x of shape [1, 4], W [4, 2] from `weight`.
fn model(weight: TensorProto) -> Vec<u8> {
    let mut n = NodeProto::new();
    n.op_type = "MatMul".into();
    n.name = "mm".into();
    n.input = vec!["x".into(), "W".into()];
    n.output = vec!["y".into()];
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.node.push(n);
    g.initializer.push(weight);
    g.input.push(vi("x", &[1, 4]));
    g.output.push(vi("y", &[1, 2]));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut o = OperatorSetIdProto::new();
    o.version = 18;
    m.opset_import.push(o);
    m.graph = MessageField::some(g);
    m.write_to_bytes().unwrap()
}

fn weight_header() -> TensorProto {
    let mut t = TensorProto::new();
    t.name = "W".into();
    t.dims = vec![4, 2];
    t.data_type = 1;
    t
}

fn inline_weight() -> TensorProto {
    let mut t = weight_header();
    t.float_data = W.to_vec();
    t
}

/// W stored externally with the given `external_data` entries.
fn external_weight(entries: &[(&str, &str)]) -> TensorProto {
    let mut t = weight_header();
    t.data_location = EnumOrUnknown::new(DataLocation::EXTERNAL);
    t.external_data = entries.iter().map(|(k, v)| entry(k, v)).collect();
    t
}

/// A fresh directory holding `w.bin`: 16 bytes of padding, then W (32 bytes).
fn model_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("external_data")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0xAAu8; 16];
    for v in W {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("w.bin"), bytes).unwrap();
    dir
}

fn import_in(dir: &Path, entries: &[(&str, &str)]) -> Result<blindfold_model::Model, OnnxError> {
    import_onnx_with_base(&model(external_weight(entries)), "t", dir)
}

/// The external-data error of a failed import.
fn external_err(r: Result<blindfold_model::Model, OnnxError>) -> ExternalDataError {
    match r {
        Err(OnnxError::ExternalData { tensor, error }) => {
            assert_eq!(tensor, "W");
            error
        }
        Err(e) => panic!("not an external-data error: {e}"),
        Ok(_) => panic!("a malformed external reference was accepted"),
    }
}

#[test]
fn external_weights_compute_what_inline_weights_compute() {
    let dir = model_dir("ok");
    let inline = import_onnx(&model(inline_weight()), "t").unwrap();
    let x = [1.0f32, -2.0, 0.5, 3.0];
    let want = run_float(&inline, &x).unwrap();
    for entries in [
        vec![("location", "w.bin"), ("offset", "16"), ("length", "32")],
        // No length: the rest of the file.
        vec![("location", "w.bin"), ("offset", "16")],
        vec![("location", "./w.bin"), ("offset", "16"), ("checksum", "x")],
    ] {
        let m = import_in(&dir, &entries).unwrap();
        assert_eq!(run_float(&m, &x).unwrap(), want, "{entries:?}");
    }
    // load_onnx resolves against the model file's directory.
    let path = dir.join("m.onnx");
    std::fs::write(
        &path,
        model(external_weight(&[("location", "w.bin"), ("offset", "16")])),
    )
    .unwrap();
    assert_eq!(run_float(&load_onnx(&path).unwrap(), &x).unwrap(), want);
}

#[test]
fn bytes_only_import_refuses_external_data() {
    let bytes = model(external_weight(&[("location", "w.bin"), ("offset", "16")]));
    assert!(matches!(
        external_err(import_onnx(&bytes, "t")),
        ExternalDataError::NoBaseDirectory
    ));
}

#[test]
fn missing_file() {
    let dir = model_dir("missing");
    let e = external_err(import_in(&dir, &[("location", "nope.bin")]));
    match e {
        ExternalDataError::Io { error, .. } => {
            assert_eq!(error.kind(), std::io::ErrorKind::NotFound)
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn out_of_range_offset_and_length() {
    let dir = model_dir("range");
    for entries in [
        vec![("location", "w.bin"), ("offset", "17"), ("length", "32")],
        vec![("location", "w.bin"), ("offset", "4096"), ("length", "32")],
        vec![("location", "w.bin"), ("offset", "4096")],
        vec![
            ("location", "w.bin"),
            ("offset", "18446744073709551615"),
            ("length", "32"),
        ],
    ] {
        assert!(
            matches!(
                external_err(import_in(&dir, &entries)),
                ExternalDataError::OutOfRange { file_len: 48, .. }
            ),
            "{entries:?}"
        );
    }
}

#[test]
fn length_mismatch() {
    let dir = model_dir("length");
    for (entries, got) in [
        (
            vec![("location", "w.bin"), ("offset", "16"), ("length", "28")],
            28,
        ),
        (
            vec![("location", "w.bin"), ("offset", "0"), ("length", "48")],
            48,
        ),
        // The rest of the file from offset 0 is 48 bytes, not 32.
        (vec![("location", "w.bin")], 48),
    ] {
        match external_err(import_in(&dir, &entries)) {
            ExternalDataError::LengthMismatch { expected, got: g } => {
                assert_eq!((expected, g), (32, got), "{entries:?}")
            }
            e => panic!("{entries:?}: {e:?}"),
        }
    }
}

#[test]
fn parent_dir_components_are_refused() {
    // The file really exists one level up: refused for the path, not its absence.
    let dir = model_dir("escape").join("inner");
    std::fs::create_dir_all(&dir).unwrap();
    for loc in ["../w.bin", "inner/../../w.bin", "..\\w.bin"] {
        assert!(
            matches!(
                external_err(import_in(&dir, &[("location", loc), ("offset", "16")])),
                ExternalDataError::ParentDir { .. }
            ),
            "{loc}"
        );
    }
}

#[test]
fn absolute_paths_are_refused() {
    let dir = model_dir("absolute");
    let abs = dir.join("w.bin").canonicalize().unwrap();
    let abs = abs.to_str().unwrap();
    for loc in [abs, "/etc/passwd"] {
        assert!(
            matches!(
                external_err(import_in(&dir, &[("location", loc), ("offset", "16")])),
                ExternalDataError::AbsolutePath { .. }
            ),
            "{loc}"
        );
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_directory_are_refused() {
    let outer = model_dir("symlink");
    let dir = outer.join("inner");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(outer.join("w.bin"), dir.join("link.bin")).unwrap();
    assert!(matches!(
        external_err(import_in(
            &dir,
            &[("location", "link.bin"), ("offset", "16")]
        )),
        ExternalDataError::OutsideModelDir { .. }
    ));
    // A link that stays inside is fine.
    std::fs::copy(outer.join("w.bin"), dir.join("w.bin")).unwrap();
    std::os::unix::fs::symlink("w.bin", dir.join("inside.bin")).unwrap();
    assert!(import_in(&dir, &[("location", "inside.bin"), ("offset", "16")]).is_ok());
}

#[test]
fn malformed_entries() {
    let dir = model_dir("entries");
    type Check = fn(&ExternalDataError) -> bool;
    let cases: Vec<(Vec<(&str, &str)>, Check)> = vec![
        (vec![("offset", "16")], |e| {
            matches!(e, ExternalDataError::MissingLocation)
        }),
        (vec![("location", "w.bin"), ("offset", "-16")], |e| {
            matches!(e, ExternalDataError::BadEntry { .. })
        }),
        (vec![("location", "w.bin"), ("length", "0x20")], |e| {
            matches!(e, ExternalDataError::BadEntry { .. })
        }),
        (
            vec![
                ("location", "w.bin"),
                ("location", "v.bin"),
                ("offset", "16"),
            ],
            |e| matches!(e, ExternalDataError::BadEntry { .. }),
        ),
        (vec![("location", ""), ("offset", "16")], |e| {
            matches!(e, ExternalDataError::BadLocation { .. })
        }),
        (vec![("location", "."), ("offset", "16")], |e| {
            matches!(e, ExternalDataError::NotAFile { .. })
        }),
    ];
    for (entries, ok) in cases {
        let e = external_err(import_in(&dir, &entries));
        assert!(ok(&e), "{entries:?}: {e:?}");
    }
    // Inline data as well as an external reference.
    let mut t = external_weight(&[("location", "w.bin"), ("offset", "16")]);
    t.float_data = W.to_vec();
    assert!(matches!(
        external_err(import_onnx_with_base(&model(t), "t", &dir)),
        ExternalDataError::InlineAndExternal
    ));
    // External entries without data_location = EXTERNAL: a malformed initializer.
    let mut t = inline_weight();
    t.external_data.push(entry("location", "w.bin"));
    assert!(matches!(
        import_onnx_with_base(&model(t), "t", &dir),
        Err(OnnxError::Initializer { .. })
    ));
}

#[test]
fn load_onnx_reports_the_model_path() {
    let dir = model_dir("load");
    let path = dir.join("m.onnx");
    std::fs::write(&path, model(external_weight(&[("location", "../w.bin")]))).unwrap();
    match load_onnx(&path) {
        Err(ModelError::Onnx {
            path: p,
            error:
                OnnxError::ExternalData {
                    error: ExternalDataError::ParentDir { location },
                    ..
                },
        }) => {
            assert_eq!(p, path);
            assert_eq!(location, "../w.bin");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// A FIFO in the model's directory is refused before it is opened (opening it
/// would block until a writer appears).
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = model_dir("fifo");
    let fifo = dir.join("pipe.bin");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("mkfifo unavailable: skipped");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(external_err(import_in(&d, &[("location", "pipe.bin")])));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(ExternalDataError::NotAFile { .. }) => {}
        Ok(e) => panic!("{e:?}"),
        Err(_) => panic!("importing a FIFO blocked"),
    }
}
