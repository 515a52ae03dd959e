//! Normalization: BatchNormalization (eval mode) as a per-channel affine map.

use super::affine::affine;
use super::OpFn;
use crate::onnx::attrs::{attr_float, attr_int};
use crate::onnx::import::{Importer, Val};
use crate::onnx::Result;
use onnx_protobuf::NodeProto;

pub(super) const OPS: &[(&str, OpFn)] = &[("BatchNormalization", batchnorm)];

fn batchnorm(imp: &mut Importer, node: &NodeProto, name: &str) -> Result<Val> {
    let x = imp.dyn_input(node, 0)?;
    if attr_int(node, "training_mode").unwrap_or(0) != 0 {
        return Err(imp.err(
            node,
            "batch normalization in training mode is not supported; export in eval mode",
        ));
    }
    let eps = attr_float(node, "epsilon").unwrap_or(1e-5);
    let ch = imp.full_dims(x)[1];
    let get = |k: usize, what: &str| -> Result<Vec<f32>> {
        let c = imp.const_input(node, k, what)?;
        if c.numel() != ch {
            return Err(imp.err(
                node,
                format!("{what} has {} values for {ch} channels", c.numel()),
            ));
        }
        Ok(c.floats())
    };
    let (g, b, m, v) = (
        get(1, "scale")?,
        get(2, "bias")?,
        get(3, "mean")?,
        get(4, "variance")?,
    );
    let mut scale = Vec::with_capacity(ch);
    let mut shift = Vec::with_capacity(ch);
    for c in 0..ch {
        let s = g[c] as f64 / ((v[c] as f64) + eps as f64).sqrt();
        scale.push(s as f32);
        shift.push((b[c] as f64 - m[c] as f64 * s) as f32);
    }
    Ok(Val::Dyn(affine(imp, name, x, scale, shift)))
}
