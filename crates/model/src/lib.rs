//! # blindfold-model
//!
//! Everything about a model that is not cryptography:
//!
//! * [`ir`]: the validated model IR every engine walks;
//! * [`onnx`]: import of `torch.onnx.export` output into the IR;
//! * [`quant`]: quantization to `Z_2^64` fixed point, the program the secure
//!   engines execute;
//! * [`engine`]: the float (`f64`) and fixed-point reference (`plain`) engines;
//! * [`kernels`]: layer kernels shared by all engines;
//! * [`data`]: IDX datasets (class labels or per-pixel masks), `.npy` and PNG inputs;
//! * [`segment`]: per-pixel argmax of `[C, H, W]` outputs and Dice scores;
//! * [`picture`]: masks and images as PNG pictures, side-by-side sheets.
//!
//! ```no_run
//! use blindfold_model::{load_onnx, quant::quantize, engine};
//! use blindfold_core::FracBits;
//! let model = load_onnx("models/minionn.onnx").unwrap();
//! let q = quantize(&model, FracBits::DEFAULT).unwrap();
//! let x = vec![0.0f32; model.input_shape().numel()];
//! let logits = engine::decode_output(&q, &engine::run_plain(&q, &x).unwrap());
//! println!("label {}", engine::argmax(&logits));
//! ```
#![deny(unsafe_code)]

pub mod data;
pub mod engine;
pub mod ir;
pub mod kernels;
pub mod onnx;
pub mod picture;
pub mod quant;
pub mod segment;
pub mod summary;

pub use ir::Model;
pub use quant::QModel;

use std::path::{Path, PathBuf};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Onnx {
        path: PathBuf,
        error: onnx::OnnxError,
    },
    #[error(transparent)]
    Quant(#[from] quant::QuantError),
    #[error("input has {got} values, the model expects {expected}")]
    InputSize { expected: usize, got: usize },
    #[error("input value {value} at index {index} is not finite or exceeds 1e6 in magnitude")]
    InputValue { index: usize, value: f32 },
    #[error("{path}: {error}")]
    Data {
        path: PathBuf,
        #[source]
        error: data::DataError,
    },
    #[error(transparent)]
    Segment(#[from] segment::SegmentError),
}

/// Read and import an ONNX file; the model is named after the file stem.
/// Tensors stored as ONNX external data are read from files in the model's
/// directory (see [`onnx::ExternalDataError`] for the rules).
pub fn load_onnx(path: impl AsRef<Path>) -> Result<Model, ModelError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|error| ModelError::Io {
        path: path.into(),
        error,
    })?;
    if meta.len() as usize > onnx::MAX_ONNX_BYTES {
        return Err(ModelError::Onnx {
            path: path.into(),
            error: onnx::OnnxError::TooLarge(meta.len() as usize),
        });
    }
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io {
        path: path.into(),
        error,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    // External tensor data is resolved inside the model's own directory.
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    onnx::import_onnx_with_base(&bytes, &name, base).map_err(|error| ModelError::Onnx {
        path: path.into(),
        error,
    })
}
