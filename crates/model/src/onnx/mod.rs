//! ONNX import: protobuf (through the `onnx-protobuf` crate) to the validated
//! [`Model`] IR.
//!
//! The importer walks the graph once in topological order. Every ONNX value is
//! either a *constant* (initializers, `Constant` nodes and anything computed from
//! constants only, such as the `Shape → Gather → Concat` chains exporters emit for
//! reshapes) or a *dynamic* value that depends on the input and becomes a node of
//! the IR. Constant subgraphs are folded; batch normalization, per-channel scales
//! and bias additions are folded into the preceding linear layer when it has no
//! other consumer. Shapes are inferred for every node and checked against what the
//! file declares. Anything unsupported is an error naming the node, the op and the
//! opset.
//!
//! ONNX tensors carry a batch dimension; the IR does not. The importer assumes a
//! batch of one: the input's first dimension must be 1 or symbolic.
//!
//! Layout: `import.rs` holds the importer state and the walk; `ops/` one file per
//! op family, each with a table from `op_type` to its handler; `fold.rs` the
//! constant folder (same shape of table); `tensor.rs` and `external.rs` decode
//! `TensorProto`s (inline or external data); `attrs.rs` the attribute accessors and
//! the one axis normaliser; `shape.rs` pure shape arithmetic. See
//! `docs/ARCHITECTURE.md` (Import) for how to add an op.
//!
//! # External data
//!
//! A tensor with `data_location = EXTERNAL` names a file beside the model
//! (`location`, optional `offset` and `length`). [`import_onnx_with_base`] and
//! [`crate::load_onnx`] resolve it inside the model's directory only; the
//! bytes-only [`import_onnx`] refuses such tensors with
//! [`ExternalDataError::NoBaseDirectory`]. See [`ExternalDataError`] for the rules.

mod attrs;
mod external;
mod fold;
mod import;
mod ops;
mod shape;
mod tensor;

pub use external::{ExternalDataError, MAX_EXTERNAL_BYTES};

use crate::ir::Model;
use onnx_protobuf::{Message, ModelProto};
use std::path::Path;

/// Largest ONNX file accepted.
pub const MAX_ONNX_BYTES: usize = 1 << 30;
/// Largest tensor (elements) accepted.
const MAX_TENSOR_ELEMS: usize = 1 << 28;
/// Most elements all constant folding of one model may produce together
/// (16 Mi: shape arithmetic needs a few dozen, casting or scaling weights as
/// many as the weights). Without it a few kilobytes of `ConstantOfShape`,
/// broadcasting `Mul`s and `Concat`s asked for tens of gigabytes; at 2^26 they
/// still took 1 GB and 2 s (found by fuzzing, `fuzz/corpus/onnx/regress-*`).
const MAX_FOLDED_ELEMS: usize = 1 << 24;
/// Largest dimension, kernel, stride or padding accepted in any attribute.
const MAX_DIM: usize = 1 << 24;

/// An import failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    #[error("not a valid ONNX protobuf file: {0}")]
    Decode(String),
    #[error("ONNX file of {0} bytes exceeds the {MAX_ONNX_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the ONNX model has no graph")]
    NoGraph,
    #[error("the ONNX model imports no default-domain opset")]
    NoOpset,
    #[error("unsupported default-domain opset {0} (supported: 7 to 21)")]
    OpsetRange(i64),
    #[error("graph input: {0}")]
    Input(String),
    #[error("graph output: {0}")]
    Output(String),
    #[error("initializer {name}: {reason}")]
    Initializer { name: String, reason: String },
    /// The external data of tensor `tensor` (an initializer, or a `Constant`
    /// node's value) could not be used.
    #[error("tensor '{tensor}': {error}")]
    ExternalData {
        tensor: String,
        #[source]
        error: ExternalDataError,
    },
    #[error("node '{node}' (op {op}, opset {opset}): {reason}")]
    Node {
        node: String,
        op: String,
        opset: i64,
        reason: String,
    },
    /// (Boxed: keeps the error small.)
    #[error("imported graph is inconsistent: {0}")]
    Invalid(Box<crate::ir::InvalidModel>),
}

type Result<T> = std::result::Result<T, OnnxError>;

/// Parse and import an ONNX model from bytes. A tensor whose data lives in an
/// external file is refused ([`ExternalDataError::NoBaseDirectory`]); use
/// [`import_onnx_with_base`] or [`crate::load_onnx`] for such models.
pub fn import_onnx(bytes: &[u8], name: &str) -> Result<Model> {
    import(bytes, name, None)
}

/// Parse and import an ONNX model from bytes, reading external tensor data from
/// files inside `base_dir` (the directory the model file was in).
pub fn import_onnx_with_base(bytes: &[u8], name: &str, base_dir: &Path) -> Result<Model> {
    import(bytes, name, Some(base_dir))
}

fn import(bytes: &[u8], name: &str, base_dir: Option<&Path>) -> Result<Model> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(OnnxError::TooLarge(bytes.len()));
    }
    let proto =
        ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let external = base_dir.map(external::ExternalDir::new);
    import::Importer::new(&proto, name, external)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_decode_error() {
        let e = import_onnx(&[0xff, 0xff, 0xff, 0x07, 1, 2, 3], "x").unwrap_err();
        assert!(
            matches!(e, OnnxError::Decode(_) | OnnxError::NoGraph),
            "{e}"
        );
    }
}
