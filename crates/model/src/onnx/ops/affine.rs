//! Per-channel affine maps (`y = scale[c] * x + shift[c]`): what BatchNormalization
//! and Add/Sub/Mul/Div by a constant become, folded into the producing linear
//! layer when it has no other consumer, else a `ChannelAffine` node.

use crate::ir::{ChannelAffine, Op, ValueId};
use crate::onnx::import::Importer;
use crate::onnx::shape::shape_str;
use crate::onnx::tensor::Const;
use crate::onnx::Result;
use onnx_protobuf::NodeProto;

/// Per-channel coefficients of a constant broadcast against `x`: a scalar, or
/// a tensor that varies only along the channel axis.
pub(crate) fn per_channel(
    imp: &Importer,
    node: &NodeProto,
    x: ValueId,
    c: &Const,
) -> Result<Vec<f32>> {
    let full = imp.full_dims(x);
    let ch = full[1];
    let v = c.floats();
    if c.numel() == 1 {
        return Ok(vec![v[0]; ch]);
    }
    if c.dims.len() > full.len() {
        return Err(imp.err(node, "constant has more axes than the tensor"));
    }
    let off = full.len() - c.dims.len();
    for (k, &d) in c.dims.iter().enumerate() {
        let axis = k + off;
        let ok = if axis == 1 { d == ch || d == 1 } else { d == 1 };
        if !ok {
            return Err(imp.err(
                node,
                format!(
                    "constant of shape {} is not per-channel for a tensor of shape {}",
                    shape_str(&c.dims),
                    shape_str(&full)
                ),
            ));
        }
    }
    if c.numel() != ch {
        return Ok(vec![v[0]; ch]);
    }
    Ok(v)
}

/// `y = scale[c] * x + shift[c]`, folded into the producer when possible: not
/// into a binarized layer (weights all `±1`), whose batch normalization stays a
/// `ChannelAffine` so quantization keeps the weights binary.
pub(crate) fn affine(
    imp: &mut Importer,
    name: &str,
    x: ValueId,
    scale: Vec<f32>,
    shift: Vec<f32>,
) -> ValueId {
    if imp.foldable(x) && !imp.node_mut(x).op.is_binary_layer() {
        let n = imp.node_mut(x);
        match &mut n.op {
            Op::Conv(c) => {
                let per = c.c_in * c.kh * c.kw;
                for (co, (s, t)) in scale.iter().zip(&shift).enumerate() {
                    for w in &mut c.weight[co * per..(co + 1) * per] {
                        *w *= s;
                    }
                    c.bias[co] = c.bias[co] * s + t;
                }
                return x;
            }
            Op::ConvTranspose(c) => {
                let per = c.kh * c.kw;
                for ci in 0..c.c_in {
                    for (co, s) in scale.iter().enumerate() {
                        let base = (ci * c.c_out + co) * per;
                        for w in &mut c.weight[base..base + per] {
                            *w *= s;
                        }
                    }
                }
                for (co, (s, t)) in scale.iter().zip(&shift).enumerate() {
                    c.bias[co] = c.bias[co] * s + t;
                }
                return x;
            }
            Op::Dense(d) => {
                for (o, (s, t)) in scale.iter().zip(&shift).enumerate() {
                    for w in &mut d.weight[o * d.inputs..(o + 1) * d.inputs] {
                        *w *= s;
                    }
                    d.bias[o] = d.bias[o] * s + t;
                }
                return x;
            }
            Op::ChannelAffine(a) => {
                for (k, (s, t)) in scale.iter().zip(&shift).enumerate() {
                    a.scale[k] *= s;
                    a.shift[k] = a.shift[k] * s + t;
                }
                return x;
            }
            _ => {}
        }
    }
    let s = imp.shape(x).clone();
    imp.push(
        name,
        Op::ChannelAffine(ChannelAffine { scale, shift }),
        vec![x],
        s,
    )
}
