//! ONNX import (`blindfold_model::onnx`), from bytes and with external data.

use blindfold_core::FracBits;
use blindfold_model::onnx::{import_onnx, import_onnx_with_base};
use blindfold_model::Model;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The file name the external-data target writes its data part to; the seed
/// models' `location` entries name it.
pub const EXTERNAL_FILE: &str = "fuzz.data";

/// A model that imports is a validated IR; quantizing it must not panic either
/// (it may refuse, e.g. a weight too large for the fixed-point range).
fn check(model: Model) {
    model.validate().expect("an imported model validates");
    let _ = blindfold_model::quant::quantize(&model, FracBits(12));
}

/// `import_onnx`: an ONNX model from bytes (external data refused).
pub fn onnx(data: &[u8]) {
    if let Ok(model) = import_onnx(data, "fuzz") {
        check(model);
    }
}

/// The directory the external-data target's data file lives in: one per
/// target process tree, `$BLINDFOLD_FUZZ_DIR` or a fixed name in the temp dir.
fn external_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("BLINDFOLD_FUZZ_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("blindfold-fuzz-onnx-external"));
        std::fs::create_dir_all(&dir).expect("create the external-data directory");
        dir
    })
}

/// Split an input of the external-data target: a little-endian `u32` length,
/// the model (that many bytes, or what is there), then the data file.
pub fn split_external(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    Some(rest.split_at(len.min(rest.len())))
}

/// The inverse of [`split_external`] (corpus generator).
pub fn join_external(model: &[u8], file: &[u8]) -> Vec<u8> {
    let mut out = (model.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(model);
    out.extend_from_slice(file);
    out
}

/// `import_onnx_with_base`: a model whose tensors may live in
/// [`EXTERNAL_FILE`] beside it. The input holds both (see [`split_external`]);
/// the data part is written to a directory of its own before the import.
pub fn onnx_external(data: &[u8]) {
    let Some((model, file)) = split_external(data) else {
        return;
    };
    let dir = external_dir();
    std::fs::write(dir.join(EXTERNAL_FILE), file).expect("write the external-data file");
    if let Ok(model) = import_onnx_with_base(model, "fuzz", dir) {
        check(model);
    }
}
