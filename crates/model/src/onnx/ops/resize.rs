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
    // Upsample and Resize before opset 11 have neither attribute: their nearest
    // neighbour of output o is input floor(o / s) (asymmetric, floor).
    let fixed = node.op_type == "Upsample" || imp.opset <= 10;
    let ctm = match fixed {
        true => "asymmetric".into(),
        false => {
            attr_str(node, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into())
        }
    };
    if !matches!(
        ctm.as_str(),
        "asymmetric" | "half_pixel" | "pytorch_half_pixel" | "tf_half_pixel_for_nn"
    ) {
        return Err(imp.err(
            node,
            format!("coordinate_transformation_mode '{ctm}' is not supported"),
        ));
    }
    let nearest = match fixed {
        true => "floor".into(),
        false => attr_str(node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into()),
    };
    if !matches!(
        nearest.as_str(),
        "floor" | "ceil" | "round_prefer_floor" | "round_prefer_ceil"
    ) {
        return Err(imp.err(node, format!("nearest_mode '{nearest}' is not supported")));
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
        if full[a + 2] >= 2 && !reads_floor(&ctm, &nearest, scale[a]) {
            return Err(imp.err(
                node,
                format!(
                    "coordinate_transformation_mode '{ctm}' with nearest_mode '{nearest}' at \
                     scale {} does not read input floor(o / scale) for output o (the only \
                     nearest-neighbour resize supported)",
                    scale[a]
                ),
            ));
        }
    }
    Ok(Val::Dyn(imp.push_inferred(
        node,
        name,
        Op::ResizeNearest { scale },
        vec![x],
    )?))
}

/// Whether ONNX's nearest-neighbour Resize with coordinate transformation `ctm`
/// and rounding `nearest` at integer scale `s` reads input `floor(o / s)` for
/// every output `o`, which is what the kernel computes.
///
/// For output `o = s·i + j` (`0 <= j < s`) the source coordinate of these
/// transformations is `i + f(j)`, `f` independent of `i`: asymmetric `j/s`,
/// half_pixel (and pytorch_half_pixel, output length > 1) `(j + 0.5)/s − 0.5`,
/// tf_half_pixel_for_nn `(j + 0.5)/s`. So the source is input `i` exactly when
/// `round(f(j)) = 0` for every `j`; clamping at the borders cannot make up for a
/// difference once the axis has two or more inputs (the first block would need
/// `round(f) <= 0`, the last `>= 0`). Every rounding is monotone and `f` increases
/// with `j`, so `j = 0` and `j = s − 1` decide. Exact rational arithmetic: `f(j)`
/// is `num / den`.
fn reads_floor(ctm: &str, nearest: &str, s: usize) -> bool {
    let s = s as i64;
    let f = |j: i64| match ctm {
        "asymmetric" => (j, s),
        "tf_half_pixel_for_nn" => (2 * j + 1, 2 * s),
        _ => (2 * j + 1 - s, 2 * s), // half_pixel, pytorch_half_pixel
    };
    let round = |(n, d): (i64, i64)| {
        let fl = n.div_euclid(d);
        let twice_rem = 2 * n.rem_euclid(d);
        match nearest {
            "floor" => fl,
            "ceil" => fl + (twice_rem > 0) as i64,
            "round_prefer_ceil" => fl + (twice_rem >= d) as i64,
            _ => fl + (twice_rem > d) as i64, // round_prefer_floor
        }
    };
    round(f(0)) == 0 && round(f(s - 1)) == 0
}

#[cfg(test)]
mod tests {
    use super::reads_floor;

    /// Brute force from ONNX's formulas (as onnxruntime computes them), over
    /// an input of length 5 with clamping.
    fn brute(ctm: &str, nearest: &str, s: usize) -> bool {
        let n = 5usize;
        (0..n * s).all(|o| {
            let x = match ctm {
                "asymmetric" => o as f64 / s as f64,
                "tf_half_pixel_for_nn" => (o as f64 + 0.5) / s as f64,
                _ => (o as f64 + 0.5) / s as f64 - 0.5,
            };
            let r = match nearest {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                "round_prefer_ceil" if x.fract() == 0.5 => x.ceil(),
                "round_prefer_floor" if x.fract() == 0.5 => x.floor(),
                _ => x.round(),
            };
            r.clamp(0.0, (n - 1) as f64) as usize == o / s
        })
    }

    #[test]
    fn matches_brute_force() {
        for ctm in [
            "asymmetric",
            "half_pixel",
            "pytorch_half_pixel",
            "tf_half_pixel_for_nn",
        ] {
            for nearest in ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"] {
                for s in 1..=9 {
                    assert_eq!(
                        reads_floor(ctm, nearest, s),
                        brute(ctm, nearest, s),
                        "{ctm} {nearest} {s}"
                    );
                }
            }
        }
    }

    /// What exporters write, and the ONNX defaults, are accepted; the
    /// combinations onnxruntime showed reading another pixel are not.
    #[test]
    fn known_cases() {
        // TorchScript and dynamo exporters: asymmetric + floor.
        assert!((1..=8).all(|s| reads_floor("asymmetric", "floor", s)));
        // ONNX defaults: half_pixel + round_prefer_floor.
        assert!((1..=8).all(|s| reads_floor("half_pixel", "round_prefer_floor", s)));
        assert!(reads_floor("half_pixel", "round_prefer_ceil", 2));
        assert!(reads_floor("tf_half_pixel_for_nn", "floor", 3));
        assert!(reads_floor("asymmetric", "round_prefer_floor", 2));
        // onnxruntime 1.32 on a 3-wide row, scale 2: [0, 1, 1, 2, 2, 2] (want [0, 0, 1, 1, 2, 2]).
        assert!(!reads_floor("asymmetric", "ceil", 2));
        assert!(!reads_floor(
            "tf_half_pixel_for_nn",
            "round_prefer_floor",
            2
        ));
        // [0, 0, 0, 1, 1, 2]
        assert!(!reads_floor("half_pixel", "floor", 2));
        // scale 3: [0, 0, 1, 1, 1, 2, 2, 2, 2] (want [0, 0, 0, 1, 1, 1, 2, 2, 2]).
        assert!(!reads_floor("asymmetric", "round_prefer_floor", 3));
    }
}
