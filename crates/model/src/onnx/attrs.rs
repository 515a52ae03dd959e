//! Node attributes, and the one place where a (possibly negative) ONNX axis or
//! index is turned into a position.

use super::MAX_DIM;
use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, NodeProto};

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub(crate) fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(crate) fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    attr(node, name)
        .filter(|a| a.type_.enum_value() == Ok(AttributeType::FLOATS))
        .map(|a| a.floats.clone())
}

pub(crate) fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

pub(crate) fn attr_tensor<'n>(
    node: &'n NodeProto,
    name: &str,
) -> Option<&'n onnx_protobuf::TensorProto> {
    attr(node, name).and_then(|a| a.t.as_ref())
}

/// Axis `axis` of a tensor of rank `rank`, ONNX style: `-rank..rank`, negative
/// values counting from the end. Every op taking an axis goes through here.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = from_end(axis, r);
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// [`normalize_axis`] over a list; a repeated axis is an error.
pub(crate) fn normalize_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// A split point `0..=rank` (Flatten's `axis`): `-rank..=rank`.
pub(crate) fn normalize_split(axis: i64, rank: usize) -> Result<usize, String> {
    if axis == rank as i64 {
        Ok(rank)
    } else {
        normalize_axis(axis, rank)
    }
}

/// A start or end index along an axis of length `len` (Slice, Shape): negative
/// values count from the end, then the result is clamped to `lo..=hi`.
pub(crate) fn clamp_index(v: i64, len: usize, lo: i64, hi: i64) -> i64 {
    from_end(v, len as i64).clamp(lo, hi)
}

fn from_end(v: i64, len: i64) -> i64 {
    if v < 0 {
        v.saturating_add(len)
    } else {
        v
    }
}

/// A two-value attribute (`strides`, `output_padding`); `default` when absent.
/// A default of 1 means the values must be positive.
pub(crate) fn pair(node: &NodeProto, name: &str, default: usize) -> Result<[usize; 2], String> {
    match attr_ints(node, name) {
        None => Ok([default, default]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| (0..=MAX_DIM as i64).contains(&x)) => {
            if default == 1 && v.contains(&0) {
                return Err(format!("{name} must be positive"));
            }
            Ok([v[0] as usize, v[1] as usize])
        }
        Some(v) => Err(format!(
            "{name} {v:?} must have two values between 0 and {MAX_DIM}"
        )),
    }
}

/// The `pads` attribute, `[top, left, bottom, right]`, each in `0..=MAX_DIM`.
pub(crate) fn explicit_pads(node: &NodeProto) -> Result<[usize; 4], String> {
    let p = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
    if p.len() != 4 || p.iter().any(|&v| !(0..=MAX_DIM as i64).contains(&v)) {
        return Err(format!("pads {p:?} must be four non-negative values"));
    }
    Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
}

/// Padding of a windowed op (Conv, pooling) from `pads` or `auto_pad`, for an
/// input of spatial size `hw`, window `k` and `stride`.
pub(crate) fn window_pads(
    node: &NodeProto,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
) -> Result<[usize; 4], String> {
    let auto = attr_str(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => explicit_pads(node),
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut out = [0usize; 4];
            for a in 0..2 {
                let o = hw[a].div_ceil(stride[a]);
                let total = ((o - 1) * stride[a] + k[a]).saturating_sub(hw[a]);
                let small = total / 2;
                let big = total - small;
                if auto == "SAME_UPPER" {
                    out[a] = small;
                    out[a + 2] = big;
                } else {
                    out[a] = big;
                    out[a + 2] = small;
                }
            }
            Ok(out)
        }
        other => Err(format!("auto_pad {other} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        assert_eq!(normalize_axis(-1, 4), Ok(3));
        assert_eq!(normalize_axis(-4, 4), Ok(0));
        assert_eq!(normalize_axis(3, 4), Ok(3));
        assert!(normalize_axis(4, 4).is_err());
        assert!(normalize_axis(-5, 4).is_err());
        assert!(normalize_axis(i64::MIN, 4).is_err());
        assert!(normalize_axis(0, 0).is_err());
        assert_eq!(normalize_axes(&[-1, -2], 4), Ok(vec![3, 2]));
        assert!(normalize_axes(&[1, -3], 4).is_err());
        assert_eq!(normalize_split(4, 4), Ok(4));
        assert_eq!(normalize_split(-1, 4), Ok(3));
        assert!(normalize_split(5, 4).is_err());
        assert_eq!(clamp_index(-1, 5, 0, 5), 4);
        assert_eq!(clamp_index(-9, 5, 0, 5), 0);
        assert_eq!(clamp_index(i64::MAX, 5, 0, 5), 5);
    }
}
