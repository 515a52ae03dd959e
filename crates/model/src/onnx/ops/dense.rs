//! Fully connected layers: Gemm (`alpha`, `beta`, `transB`) and MatMul by a
//! constant matrix, both to `Dense` on a rank-1 input.

use super::OpFn;
use crate::ir::{Dense, Op};
use crate::onnx::attrs::{attr_float, attr_int};
use crate::onnx::import::{Importer, Val};
use crate::onnx::shape::shape_str;
use crate::onnx::Result;
use blindfold_core::Shape;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[("Gemm", gemm), ("MatMul", matmul)];

fn gemm(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let b = imp.const_input(node, 1, "B (weight)")?;
    let c = imp.opt_input(node, 2)?;
    if attr_int(node, "transA").unwrap_or(0) != 0 {
        return Err(imp.err(node, "transA = 1 is not supported"));
    }
    let trans_b = attr_int(node, "transB").unwrap_or(0) == 1;
    let alpha = attr_float(node, "alpha").unwrap_or(1.0);
    let beta = attr_float(node, "beta").unwrap_or(1.0);
    if b.dims.len() != 2 {
        return Err(imp.err(
            node,
            format!("weight of shape {} is not a matrix", shape_str(&b.dims)),
        ));
    }
    let (inputs, outputs) = if trans_b {
        (b.dims[1], b.dims[0])
    } else {
        (b.dims[0], b.dims[1])
    };
    if imp.shape(x).dims() != [inputs] {
        return Err(imp.err(
            node,
            format!(
                "weight of shape {} does not fit an input of shape {} (flatten first)",
                shape_str(&b.dims),
                imp.shape(x)
            ),
        ));
    }
    let weight = outputs_by_inputs(&b.floats(), inputs, outputs, trans_b, alpha);
    let bias = match c {
        None => vec![0.0; outputs],
        Some(Val::Const(c)) if c.numel() == outputs => {
            c.floats().iter().map(|v| beta * v).collect()
        }
        Some(Val::Const(c)) if c.numel() == 1 => vec![beta * c.floats()[0]; outputs],
        Some(Val::Const(c)) => {
            return Err(imp.err(
                node,
                format!("C of shape {} for {outputs} outputs", shape_str(&c.dims)),
            ))
        }
        Some(_) => return Err(imp.err(node, "C must be a constant")),
    };
    let d = Dense {
        weight,
        inputs,
        outputs,
        bias,
    };
    Ok(Val::Dyn(imp.push(
        name,
        Op::Dense(d),
        vec![x],
        Shape::new([outputs]),
    )))
}

fn matmul(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let b = imp.const_input(node, 1, "right-hand matrix")?;
    if b.dims.len() != 2 {
        return Err(imp.err(node, "the right-hand side must be a constant matrix"));
    }
    let (inputs, outputs) = (b.dims[0], b.dims[1]);
    if imp.shape(x).dims() != [inputs] {
        return Err(imp.err(
            node,
            format!(
                "matrix {} does not fit an input of shape {}",
                shape_str(&b.dims),
                imp.shape(x)
            ),
        ));
    }
    let weight = outputs_by_inputs(&b.floats(), inputs, outputs, false, 1.0);
    let d = Dense {
        weight,
        inputs,
        outputs,
        bias: vec![0.0; outputs],
    };
    Ok(Val::Dyn(imp.push(
        name,
        Op::Dense(d),
        vec![x],
        Shape::new([outputs]),
    )))
}

/// The IR's `outputs × inputs` weight layout, scaled, from ONNX's right-hand
/// matrix: `inputs × outputs`, or `outputs × inputs` when `transposed` (Gemm's
/// `transB`).
fn outputs_by_inputs(
    b: &[f32],
    inputs: usize,
    outputs: usize,
    transposed: bool,
    scale: f32,
) -> Vec<f32> {
    let mut weight = vec![0f32; inputs * outputs];
    for o in 0..outputs {
        for i in 0..inputs {
            let v = if transposed {
                b[o * inputs + i]
            } else {
                b[i * outputs + o]
            };
            weight[o * inputs + i] = scale * v;
        }
    }
    weight
}
