//! Op handlers, one file per family. Each file exports `OPS`, a table from ONNX
//! `op_type` to the function that imports a node with a dynamic input; the
//! importer looks the node's `op_type` up in [`FAMILIES`]. (Nodes whose inputs
//! are all constant go to `fold.rs` instead.)

mod affine;
mod conv;
mod dense;
mod elementwise;
mod norm;
mod pool;
mod resize;
mod shape;
mod softmax;

use super::import::{Importer, Val};
use super::Result;
use onnx_protobuf::NodeProto;

/// Import one node: `(importer, node, name of the IR node to create)` → the
/// value bound to the node's first output.
pub(crate) type OpFn = fn(&mut Importer, &NodeProto, &str) -> Result<Val>;

/// Every family's table.
const FAMILIES: &[&[(&str, OpFn)]] = &[
    conv::OPS,
    dense::OPS,
    elementwise::OPS,
    norm::OPS,
    pool::OPS,
    resize::OPS,
    shape::OPS,
    softmax::OPS,
];

/// The handler of `op_type`, if the op is supported.
pub(crate) fn handler(op_type: &str) -> Option<OpFn> {
    FAMILIES
        .iter()
        .flat_map(|t| t.iter())
        .find(|(op, _)| *op == op_type)
        .map(|&(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_once() {
        let all: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|t| t.iter().map(|(op, _)| *op))
            .collect();
        for (k, a) in all.iter().enumerate() {
            assert!(!all[k + 1..].contains(a), "{a} is in two tables");
        }
        // The ops the importer has always accepted on dynamic inputs.
        for op in [
            "Identity",
            "Dropout",
            "Shape",
            "Conv",
            "Pad",
            "ReduceMean",
            "ConvTranspose",
            "Gemm",
            "MatMul",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Pow",
            "Relu",
            "Sign",
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "BatchNormalization",
            "Flatten",
            "Reshape",
            "Squeeze",
            "Unsqueeze",
            "Softmax",
            "LogSoftmax",
            "Concat",
            "Resize",
            "Upsample",
            "Transpose",
        ] {
            assert!(handler(op).is_some(), "{op}");
        }
        assert_eq!(all.len(), 30);
        assert!(handler("Tanh").is_none());
        assert!(handler("Constant").is_none());
    }
}
