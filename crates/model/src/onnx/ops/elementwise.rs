//! Element-wise ops: Identity/Dropout (pass-through), Add/Sub/Mul/Div (between
//! two computed tensors, or by a per-channel constant), Pow(x, 2), Relu, Sign.

use super::affine::{affine, per_channel};
use super::OpFn;
use crate::ir::Op;
use crate::onnx::import::{Importer, Val};
use crate::onnx::tensor::{Const, ConstData};
use crate::onnx::Result;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[
    ("Identity", pass_through),
    ("Dropout", pass_through),
    ("Add", add),
    ("Sub", sub),
    ("Mul", mul),
    ("Div", div),
    ("Pow", pow),
    ("Relu", relu),
    ("Sign", sign),
];

/// Identity, and Dropout in inference (its mask output must be unused).
fn pass_through(imp: &mut Importer, node: &NodeProto, _name: &str) -> Result<Val> {
    imp.input(node, 0)
}

fn add(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    add_sub(imp, node, name, false)
}

fn sub(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    add_sub(imp, node, name, true)
}

fn add_sub(imp: &mut Importer, node: &NodeProto, name: &str, sub: bool) -> Result<Val> {
    let a = imp.input(node, 0)?;
    let b = imp.input(node, 1)?;
    let const_first = matches!(a, Val::Const(_));
    match (a, b) {
        (Val::Dyn(x), Val::Dyn(y)) => {
            if sub {
                return Err(imp.err(node, "subtracting two computed tensors is not supported"));
            }
            if imp.shape(x) != imp.shape(y) {
                return Err(imp.err(
                    node,
                    format!(
                        "add of shapes {} and {} (broadcasting is not supported)",
                        imp.shape(x),
                        imp.shape(y)
                    ),
                ));
            }
            let s = imp.shape(x).clone();
            Ok(Val::Dyn(imp.push(name, Op::Add, vec![x, y], s)))
        }
        (Val::Dyn(x), Val::Const(c)) | (Val::Const(c), Val::Dyn(x)) => {
            let shift = per_channel(imp, node, x, &c)?;
            let (scale, shift) = if sub && const_first {
                (vec![-1.0; shift.len()], shift)
            } else if sub {
                (vec![1.0; shift.len()], shift.iter().map(|v| -v).collect())
            } else {
                (vec![1.0; shift.len()], shift)
            };
            Ok(Val::Dyn(affine(imp, name, x, scale, shift)))
        }
        _ => Err(imp.err(node, "constant inputs only")),
    }
}

fn mul(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let a = imp.input(node, 0)?;
    let b = imp.input(node, 1)?;
    match (a, b) {
        (Val::Dyn(x), Val::Dyn(y)) if x == y => {
            let s = imp.shape(x).clone();
            Ok(Val::Dyn(imp.push(name, Op::Square, vec![x], s)))
        }
        (Val::Dyn(_), Val::Dyn(_)) => Err(imp.err(
            node,
            "only x * x (square) is supported between computed tensors",
        )),
        (Val::Dyn(x), Val::Const(c)) | (Val::Const(c), Val::Dyn(x)) => {
            let scale = per_channel(imp, node, x, &c)?;
            let zero = vec![0.0; scale.len()];
            Ok(Val::Dyn(affine(imp, name, x, scale, zero)))
        }
        _ => Err(imp.err(node, "constant inputs only")),
    }
}

/// Division by a per-channel constant: multiplication by its reciprocal.
fn div(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let c = imp.const_input(node, 1, "divisor")?;
    let recip: Vec<f32> = c.floats().iter().map(|&v| 1.0 / v).collect();
    if recip.iter().any(|v| !v.is_finite()) {
        return Err(imp.err(node, "division by zero"));
    }
    let c = Const {
        dims: c.dims.clone(),
        data: ConstData::F(recip),
    };
    let scale = per_channel(imp, node, x, &c)?;
    let zero = vec![0.0; scale.len()];
    Ok(Val::Dyn(affine(imp, name, x, scale, zero)))
}

/// `x ** 2` only (the square).
fn pow(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let e = imp.const_input(node, 1, "exponent")?;
    if e.numel() != 1 || e.floats()[0] != 2.0 {
        return Err(imp.err(node, "only the exponent 2 (square) is supported"));
    }
    let s = imp.shape(x).clone();
    Ok(Val::Dyn(imp.push(name, Op::Square, vec![x], s)))
}

fn relu(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    unary(imp, node, name, Op::Relu)
}

fn sign(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    unary(imp, node, name, Op::Sign)
}

fn unary(imp: &mut Importer, node: &NodeProto, name: &str, op: Op) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let s = imp.shape(x).clone();
    Ok(Val::Dyn(imp.push(name, op, vec![x], s)))
}
