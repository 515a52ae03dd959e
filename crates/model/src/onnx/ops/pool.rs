//! Pooling: MaxPool and AveragePool (2-D windows), GlobalAveragePool, and
//! ReduceMean over both spatial axes (what the dynamo exporter emits for
//! `AdaptiveAvgPool2d(1)`), the last two as a full-window average pool.

use super::OpFn;
use crate::ir::{Op, Pool};
use crate::onnx::attrs::{attr_int, attr_ints, normalize_axes, pair, window_pads};
use crate::onnx::import::{Importer, Val};
use crate::onnx::{Result, MAX_DIM};
use blindfold_core::Shape;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[
    ("MaxPool", max_pool),
    ("AveragePool", average_pool),
    ("GlobalAveragePool", global_average_pool),
    ("ReduceMean", reduce_mean),
];

fn max_pool(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    pool(imp, node, name, true)
}

fn average_pool(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    pool(imp, node, name, false)
}

fn pool(imp: &mut Importer, node: &NodeProto, name: &str, is_max: bool) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let s = imp.shape(x).dims().to_vec();
    if s.len() != 3 {
        return Err(imp.err(
            node,
            format!(
                "2-D pooling needs a [N, C, H, W] input, got batch x {}",
                imp.shape(x)
            ),
        ));
    }
    let k = attr_ints(node, "kernel_shape").ok_or_else(|| imp.err(node, "missing kernel_shape"))?;
    if k.len() != 2 || k.iter().any(|&v| !(1..=MAX_DIM as i64).contains(&v)) {
        return Err(imp.err(
            node,
            format!("kernel_shape {k:?} must be two positive values"),
        ));
    }
    let kernel = [k[0] as usize, k[1] as usize];
    if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return Err(imp.err(node, "dilated pooling is not supported"));
    }
    let stride = pair(node, "strides", 1).map_err(|r| imp.err(node, r))?;
    let pads = window_pads(node, [s[1], s[2]], kernel, stride).map_err(|r| imp.err(node, r))?;
    let pool = Pool {
        kernel,
        stride,
        pads,
    };
    if !is_max
        && pads.iter().any(|&p| p > 0)
        && attr_int(node, "count_include_pad").unwrap_or(0) == 0
    {
        return Err(imp.err(
            node,
            "average pooling over padding must count the padding (count_include_pad = 1)",
        ));
    }
    let op = if is_max {
        Op::MaxPool(pool)
    } else {
        Op::AvgPool(pool)
    };
    let shape = crate::ir::infer_shape(&op, &[imp.shape(x)], &Shape::default())
        .map_err(|r| imp.err(node, r.to_string()))?;
    if attr_int(node, "ceil_mode").unwrap_or(0) == 1 {
        // Only accepted when rounding up changes nothing.
        for a in 0..2 {
            let padded = s[a + 1] + pads[a] + pads[a + 2];
            if !(padded - kernel[a]).is_multiple_of(stride[a]) {
                return Err(imp.err(
                    node,
                    "ceil_mode = 1 that changes the output size is not supported",
                ));
            }
        }
    }
    Ok(Val::Dyn(imp.push(name, op, vec![x], shape)))
}

/// An average pool over the whole `h × w` plane of `c` channels.
fn global_pool(imp: &mut Importer, name: &str, x: usize, c: usize, h: usize, w: usize) -> usize {
    let p = Pool {
        kernel: [h, w],
        stride: [1, 1],
        pads: [0; 4],
    };
    imp.push(name, Op::AvgPool(p), vec![x], Shape::new([c, 1, 1]))
}

fn global_average_pool(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let d = imp.shape(x).dims().to_vec();
    if d.len() != 3 {
        return Err(imp.err(
            node,
            format!("needs a [N, C, H, W] input, got batch x {}", imp.shape(x)),
        ));
    }
    Ok(Val::Dyn(global_pool(imp, name, x, d[0], d[1], d[2])))
}

/// `ReduceMean` over both spatial axes is a global average pool.
fn reduce_mean(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let full = imp.full_dims(x);
    let axes = imp.axes(node)?;
    let unsupported = || {
        imp.err(
            node,
            format!("ReduceMean over axes {axes:?}: only the two spatial axes of [N, C, H, W] are supported"),
        )
    };
    let mut norm = normalize_axes(&axes, full.len()).map_err(|_| unsupported())?;
    norm.sort_unstable();
    if full.len() != 4 || norm != [2, 3] {
        return Err(unsupported());
    }
    let (c, h, w) = (full[1], full[2], full[3]);
    let id = global_pool(imp, name, x, c, h, w);
    if attr_int(node, "keepdims").unwrap_or(1) == 0 {
        Ok(Val::Dyn(imp.reshape_to(
            &format!("{name}/squeeze"),
            id,
            vec![c],
        )))
    } else {
        Ok(Val::Dyn(id))
    }
}
