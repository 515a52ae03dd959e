//! Resize and Upsample: nearest-neighbour upsampling by integer factors on the
//! spatial axes, from constant scales or sizes.

use super::OpFn;
use crate::ir::Op;
use crate::onnx::attrs::{attr_floats, attr_str};
use crate::onnx::import::{Importer, Val};
use crate::onnx::{Result, MAX_DIM};
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[("Resize", resize), ("Upsample", resize)];

fn resize(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    let mode = attr_str(node, "mode").unwrap_or_else(|| "nearest".into());
    if mode != "nearest" {
        return Err(imp.err(
            node,
            format!("resize mode '{mode}' is not supported (only nearest)"),
        ));
    }
    let ctm =
        attr_str(node, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into());
    if !matches!(
        ctm.as_str(),
        "asymmetric" | "half_pixel" | "pytorch_half_pixel" | "tf_half_pixel_for_nn"
    ) {
        return Err(imp.err(
            node,
            format!("coordinate_transformation_mode '{ctm}' is not supported"),
        ));
    }
    let full = imp.full_dims(x);
    if full.len() != 4 {
        return Err(imp.err(node, "resize needs a [N, C, H, W] input"));
    }
    // Upsample (opset 7-9): scales attribute or input 1. Resize: scales at 2, sizes at 3.
    let scales: Option<Vec<f32>> = if node.op_type == "Upsample" {
        match attr_floats(node, "scales") {
            Some(s) => Some(s),
            None => Some(imp.const_input(node, 1, "scales")?.floats()),
        }
    } else {
        let idx = if imp.opset <= 10 { 1 } else { 2 };
        imp.opt_const_input(node, idx, "scales")?
            .filter(|c| c.numel() > 0)
            .map(|c| c.floats())
    };
    let factors: Vec<f64> = match scales {
        Some(s) => s.iter().map(|&v| v as f64).collect(),
        None => {
            let sizes = match imp.opt_input(node, 3)? {
                Some(Val::Const(c)) => c.ints(),
                _ => return Err(imp.err(node, "needs constant scales or sizes")),
            };
            if sizes.len() != 4 {
                return Err(imp.err(node, "sizes must have four values"));
            }
            sizes
                .iter()
                .zip(&full)
                .map(|(&s, &d)| s as f64 / d as f64)
                .collect()
        }
    };
    if factors.len() != 4 || factors[0] != 1.0 || factors[1] != 1.0 {
        return Err(imp.err(
            node,
            format!("scales {factors:?}: only spatial scaling is supported"),
        ));
    }
    let mut scale = [0usize; 2];
    for a in 0..2 {
        let f = factors[a + 2];
        if !(1.0..=MAX_DIM as f64).contains(&f) || f.fract() != 0.0 {
            return Err(imp.err(node, format!("scale {f} is not a positive integer")));
        }
        scale[a] = f as usize;
    }
    Ok(Val::Dyn(imp.push_inferred(
        node,
        name,
        Op::ResizeNearest { scale },
        vec![x],
    )?))
}
