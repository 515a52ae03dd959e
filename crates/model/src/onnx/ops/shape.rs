//! Ops that only move data: Shape (of a known tensor, a constant), Flatten,
//! Reshape, Squeeze, Unsqueeze, Transpose (of size-1 axes only, a reshape), and
//! Concat along the channel axis.

use super::OpFn;
use crate::ir::Op;
use crate::onnx::attrs::{
    attr_int, attr_ints, clamp_index, normalize_axes, normalize_axis, normalize_split,
};
use crate::onnx::import::{Importer, Val};
use crate::onnx::shape::{resolve_reshape, squeeze, strip_batch, unsqueeze};
use crate::onnx::tensor::Const;
use crate::onnx::Result;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[
    ("Shape", shape),
    ("Flatten", flatten),
    ("Reshape", reshape),
    ("Squeeze", squeeze_op),
    ("Unsqueeze", unsqueeze_op),
    ("Transpose", transpose),
    ("Concat", concat),
];

/// The shape of a dynamic value is known at import: a constant.
fn shape(imp: &mut Importer, node: &NodeProto, _name: &str) -> Result<Val> {
    let id = imp.dyn_input(node, 0)?;
    let full: Vec<i64> = imp.full_dims(id).iter().map(|&d| d as i64).collect();
    let len = full.len();
    let r = len as i64;
    let start = clamp_index(attr_int(node, "start").unwrap_or(0), len, 0, r) as usize;
    let end = clamp_index(attr_int(node, "end").unwrap_or(r), len, 0, r) as usize;
    Ok(Val::Const(Const::vec_i(
        full[start..end.max(start)].to_vec(),
    )))
}

fn flatten(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let full = imp.full_dims(x);
    let axis = normalize_split(attr_int(node, "axis").unwrap_or(1), full.len())
        .map_err(|e| imp.err(node, e))?;
    let outer: usize = full[..axis].iter().product();
    let inner: usize = full[axis..].iter().product();
    if outer != 1 {
        return Err(imp.err(node, "flattening into the batch dimension is not supported"));
    }
    Ok(Val::Dyn(imp.reshape_to(name, x, vec![inner])))
}

fn reshape(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let target = imp.const_input(node, 1, "shape")?.ints();
    let full = imp.full_dims(x);
    let allowzero = attr_int(node, "allowzero").unwrap_or(0) == 1;
    let d = resolve_reshape(&full, &target, allowzero).map_err(|r| imp.err(node, r))?;
    let ours = strip_batch(&d).map_err(|r| imp.err(node, r))?;
    Ok(Val::Dyn(imp.reshape_to(name, x, ours)))
}

fn squeeze_op(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    squeeze_unsqueeze(imp, node, name, squeeze)
}

fn unsqueeze_op(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    squeeze_unsqueeze(imp, node, name, unsqueeze)
}

/// `squeeze` or `unsqueeze` of ONNX-level dims by axes.
type DimsFn = fn(&[usize], &[i64]) -> std::result::Result<Vec<usize>, String>;

fn squeeze_unsqueeze(imp: &mut Importer, node: &NodeProto, name: &str, f: DimsFn) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let axes = imp.axes(node)?;
    let d = f(&imp.full_dims(x), &axes).map_err(|r| imp.err(node, r))?;
    let ours = strip_batch(&d).map_err(|r| imp.err(node, r))?;
    Ok(Val::Dyn(imp.reshape_to(name, x, ours)))
}

/// A transpose that moves only size-1 axes is a reshape; others are refused.
fn transpose(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let full = imp.full_dims(x);
    let r = full.len();
    let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..r as i64).rev().collect());
    if normalize_axes(&perm, r).is_err() || perm.iter().any(|&p| p < 0) {
        return Err(imp.err(
            node,
            format!("perm {perm:?} is not a permutation of {r} axes"),
        ));
    }
    let trivial: Vec<i64> = (0..r as i64).collect();
    let moved: Vec<usize> = perm
        .iter()
        .filter_map(|&p| full.get(p as usize).copied())
        .collect();
    let non1_order: Vec<i64> = perm
        .iter()
        .copied()
        .filter(|&p| full.get(p as usize).copied().unwrap_or(1) != 1)
        .collect();
    let sorted = non1_order.windows(2).all(|w| w[0] < w[1]);
    if perm.len() != r || !(perm == trivial || sorted) {
        return Err(imp.err(node, "transposing data axes is not supported"));
    }
    let ours = strip_batch(&moved).map_err(|r| imp.err(node, r))?;
    Ok(Val::Dyn(imp.reshape_to(name, x, ours)))
}

fn concat(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let mut ids = Vec::new();
    for k in 0..node.input.len() {
        ids.push(imp.dyn_input(node, k)?);
    }
    let first = *ids
        .first()
        .ok_or_else(|| imp.err(node, "concat of nothing"))?;
    let r = imp.full_dims(first).len();
    let axis = attr_int(node, "axis").ok_or_else(|| imp.err(node, "missing axis"))?;
    if normalize_axis(axis, r) != Ok(1) {
        return Err(imp.err(
            node,
            format!("concatenation along axis {axis} (only the channel axis 1 is supported)"),
        ));
    }
    Ok(Val::Dyn(imp.push_inferred(node, name, Op::Concat, ids)?))
}
