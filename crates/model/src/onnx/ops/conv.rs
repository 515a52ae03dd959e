//! Convolutions: Conv and ConvTranspose (2-D, group 1, dilation 1), and Pad,
//! which is only accepted as a zero spatial padding merged into the Conv that
//! consumes it.

use super::OpFn;
use crate::ir::{Conv, ConvTranspose, Op};
use crate::onnx::attrs::{
    attr_float, attr_int, attr_ints, attr_str, explicit_pads, normalize_axes, pair, window_pads,
};
use crate::onnx::import::{Importer, Val};
use crate::onnx::shape::shape_str;
use crate::onnx::{Result, MAX_DIM};
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
    ("Pad", pad),
];

/// Refuse grouped and dilated kernels (`what` names the op in the message).
fn plain_kernel(imp: &Importer, node: &NodeProto, grouped: &str, dilated: &str) -> Result<()> {
    if attr_int(node, "group").unwrap_or(1) != 1 {
        return Err(imp.err(node, grouped));
    }
    if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return Err(imp.err(node, dilated));
    }
    Ok(())
}

fn conv(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let (x, extra) = match imp.input(node, 0)? {
        Val::Padded(id, p) => (id, p),
        _ => (imp.dyn_input(node, 0)?, [0; 4]),
    };
    let w = imp.const_input(node, 1, "weight")?;
    let b = imp.opt_input(node, 2)?;
    plain_kernel(
        imp,
        node,
        "grouped convolution is not supported (group must be 1)",
        "dilated convolution is not supported",
    )?;
    let s = imp.shape(x).dims().to_vec();
    if s.len() != 3 || w.dims.len() != 4 {
        return Err(imp.err(
            node,
            format!(
                "only 2-D convolution: input {}, weight {}",
                imp.shape(x),
                shape_str(&w.dims)
            ),
        ));
    }
    let (c_out, c_in, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    if c_in != s[0] {
        return Err(imp.err(
            node,
            format!(
                "weight expects {c_in} input channels but the input has shape {}",
                imp.shape(x)
            ),
        ));
    }
    if let Some(k) = attr_ints(node, "kernel_shape") {
        if k != [kh as i64, kw as i64] {
            return Err(imp.err(node, "kernel_shape disagrees with the weight"));
        }
    }
    let stride = pair(node, "strides", 1).map_err(|r| imp.err(node, r))?;
    let mut pads = window_pads(
        node,
        [s[1] + extra[0] + extra[2], s[2] + extra[1] + extra[3]],
        [kh, kw],
        stride,
    )
    .map_err(|r| imp.err(node, r))?;
    for (p, e) in pads.iter_mut().zip(extra) {
        *p += e;
    }
    let bias = bias(imp, node, b, c_out)?;
    let conv = Conv {
        weight: w.floats(),
        c_out,
        c_in,
        kh,
        kw,
        bias,
        stride,
        pads,
    };
    Ok(Val::Dyn(imp.push_inferred(
        node,
        name,
        Op::Conv(conv),
        vec![x],
    )?))
}

/// An optional constant bias of `n` values (zeros when absent).
fn bias(imp: &Importer, node: &NodeProto, b: Option<Val>, n: usize) -> Result<Vec<f32>> {
    match b {
        None => Ok(vec![0.0; n]),
        Some(Val::Const(c)) if c.numel() == n => Ok(c.floats()),
        Some(Val::Const(c)) => Err(imp.err(
            node,
            format!("bias of shape {} for {n} outputs", shape_str(&c.dims)),
        )),
        Some(_) => Err(imp.err(node, "bias must be a constant")),
    }
}

fn conv_transpose(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let w = imp.const_input(node, 1, "weight")?;
    let b = imp.opt_input(node, 2)?;
    plain_kernel(
        imp,
        node,
        "grouped transposed convolution is not supported",
        "dilated transposed convolution is not supported",
    )?;
    if attr_ints(node, "output_shape").is_some() {
        return Err(imp.err(
            node,
            "the output_shape attribute is not supported; use pads",
        ));
    }
    let s = imp.shape(x).dims().to_vec();
    if s.len() != 3 || w.dims.len() != 4 || w.dims[0] != s[0] {
        return Err(imp.err(
            node,
            format!(
                "input {} does not fit weight {}",
                imp.shape(x),
                shape_str(&w.dims)
            ),
        ));
    }
    let (c_in, c_out, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    let stride = pair(node, "strides", 1).map_err(|r| imp.err(node, r))?;
    let auto = attr_str(node, "auto_pad").unwrap_or_default();
    if !(auto.is_empty() || auto == "NOTSET") {
        return Err(imp.err(node, "auto_pad is not supported for transposed convolution"));
    }
    let pads =
        explicit_pads(node).map_err(|_| imp.err(node, "pads must be four non-negative values"))?;
    let output_padding = pair(node, "output_padding", 0).map_err(|r| imp.err(node, r))?;
    let bias = bias(imp, node, b, c_out)?;
    let ct = ConvTranspose {
        weight: w.floats(),
        c_in,
        c_out,
        kh,
        kw,
        bias,
        stride,
        pads,
        output_padding,
    };
    Ok(Val::Dyn(imp.push_inferred(
        node,
        name,
        Op::ConvTranspose(ct),
        vec![x],
    )?))
}

/// A zero `Pad` on the spatial axes of a `[N, C, H, W]` tensor.
fn pad(imp: &mut Importer, node: &NodeProto, _name: &str) -> Result<Val> {
    let (x, prev) = match imp.input(node, 0)? {
        Val::Padded(id, p) => (id, p),
        _ => (imp.dyn_input(node, 0)?, [0; 4]),
    };
    let mode = attr_str(node, "mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(imp.err(
            node,
            format!("pad mode '{mode}' is not supported (only constant zero)"),
        ));
    }
    let pads = if imp.opset >= 11 {
        imp.const_input(node, 1, "pads")?.ints()
    } else {
        attr_ints(node, "pads").unwrap_or_default()
    };
    let value = if imp.opset >= 11 {
        imp.opt_const_input(node, 2, "pad value")?
            .and_then(|c| c.floats().first().copied())
            .unwrap_or(0.0)
    } else {
        attr_float(node, "value").unwrap_or(0.0)
    };
    if value != 0.0 {
        return Err(imp.err(
            node,
            format!("padding with {value} (only zero is supported)"),
        ));
    }
    let r = imp.full_dims(x).len();
    // Optional axes (opset 18): pads then cover only those axes.
    let axes: Vec<usize> = match imp.opt_const_input(node, 3, "pad axes")? {
        Some(c) => normalize_axes(&c.ints(), r).map_err(|e| imp.err(node, format!("pad {e}")))?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(imp.err(
            node,
            format!("{} pad values for {} axes", pads.len(), axes.len()),
        ));
    }
    let mut begin = vec![0i64; r];
    let mut end = vec![0i64; r];
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
        end[a] = pads[k + axes.len()];
        if begin[a] > MAX_DIM as i64 || end[a] > MAX_DIM as i64 {
            return Err(imp.err(
                node,
                format!("pad {} exceeds {MAX_DIM}", begin[a].max(end[a])),
            ));
        }
    }
    if r != 4
        || begin[..2].iter().chain(&end[..2]).any(|&v| v != 0)
        || begin.iter().chain(&end).any(|&v| v < 0)
    {
        return Err(imp.err(
            node,
            format!(
                "pads {pads:?}: only non-negative spatial padding of [N, C, H, W] is supported"
            ),
        ));
    }
    let p = [
        prev[0] + begin[2] as usize,
        prev[1] + begin[3] as usize,
        prev[2] + end[2] as usize,
        prev[3] + end[3] as usize,
    ];
    Ok(Val::Padded(x, p))
}
