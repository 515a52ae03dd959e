//! Softmax and LogSoftmax: accepted only as the graph's last op, over the
//! features of a flat output; dropped and recorded (`Model::final_activation`).

use super::OpFn;
use crate::ir::FinalActivation;
use crate::onnx::attrs::{attr_int, normalize_axis};
use crate::onnx::import::{Importer, Val};
use crate::onnx::Result;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[("Softmax", softmax), ("LogSoftmax", log_softmax)];

fn softmax(imp: &mut Importer, node: &NodeProto, _name: &str) -> Result<Val> {
    final_activation(imp, node, FinalActivation::Softmax)
}

fn log_softmax(imp: &mut Importer, node: &NodeProto, _name: &str) -> Result<Val> {
    final_activation(imp, node, FinalActivation::LogSoftmax)
}

fn final_activation(imp: &mut Importer, node: &NodeProto, act: FinalActivation) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let out = imp.out_name(node)?;
    if !imp.graph_outputs.contains(&out) {
        return Err(imp.err(
            node,
            "softmax is only supported as the last operation (it is dropped; argmax is unchanged)",
        ));
    }
    let rank = imp.full_dims(x).len();
    let default_axis = if imp.opset >= 13 { -1 } else { 1 };
    let axis = normalize_axis(attr_int(node, "axis").unwrap_or(default_axis), rank);
    if imp.shape(x).rank() != 1 || axis != Ok(1) {
        return Err(imp.err(node, "softmax must be over the features of a flat output"));
    }
    imp.final_activation = Some(act);
    Ok(Val::Dyn(x))
}
