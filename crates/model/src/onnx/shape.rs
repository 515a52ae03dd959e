//! Shape arithmetic on ONNX-level dims (with the batch dimension): reshape
//! targets, squeeze/unsqueeze, broadcasting, the batch strip, and the shapes a
//! graph declares for its inputs and outputs.

use super::attrs::normalize_axes;
use blindfold_core::Shape;

pub(crate) fn shape_str(d: &[usize]) -> String {
    Shape::new(d.to_vec()).to_string()
}

/// The declared dims of a graph input or output (`None`: symbolic or unknown).
pub(crate) fn value_dims(v: &onnx_protobuf::ValueInfoProto) -> Result<Vec<Option<usize>>, String> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
    use onnx_protobuf::type_proto::Value as TypeValue;
    let t = v
        .type_
        .as_ref()
        .ok_or(format!("'{}' has no type", v.name))?;
    let tensor = match &t.value {
        Some(TypeValue::TensorType(tt)) => tt,
        _ => return Err(format!("'{}' is not a tensor", v.name)),
    };
    let shape = tensor
        .shape
        .as_ref()
        .ok_or(format!("'{}' has no shape", v.name))?;
    Ok(shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::DimValue(x)) if *x > 0 => Some(*x as usize),
            _ => None,
        })
        .collect())
}

/// The dims `Reshape` produces from `full` for `target` (`-1` inferred once, `0`
/// copies the input's dimension unless `allowzero`).
pub(crate) fn resolve_reshape(
    full: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = full.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *full
                    .get(k)
                    .ok_or("reshape copies a dimension that does not exist")?,
            ),
            t if t > 0 => out.push(t as usize),
            _ => return Err(format!("invalid reshape target {target:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("reshape target {target:?} is too large"))?;
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!(
                "cannot reshape {} into {target:?}",
                shape_str(full)
            ));
        }
        out[k] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!(
            "cannot reshape {} into {target:?}",
            shape_str(full)
        ));
    }
    Ok(out)
}

/// Drop the batch dimension of 1 (a rank-1 result is kept as it is).
pub(crate) fn strip_batch(d: &[usize]) -> Result<Vec<usize>, String> {
    match d {
        [1, rest @ ..] if !rest.is_empty() => Ok(rest.to_vec()),
        [n] => Ok(vec![*n]),
        _ => Err(format!(
            "result {} does not keep a batch dimension of 1",
            shape_str(d)
        )),
    }
}

pub(crate) fn squeeze(d: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    if axes.is_empty() {
        return Ok(d.iter().copied().filter(|&x| x != 1).collect());
    }
    let norm = normalize_axes(axes, d.len())?;
    let mut out = Vec::new();
    for (k, &x) in d.iter().enumerate() {
        if norm.contains(&k) {
            if x != 1 {
                return Err(format!("cannot squeeze axis {k} of size {x}"));
            }
        } else {
            out.push(x);
        }
    }
    Ok(out)
}

pub(crate) fn unsqueeze(d: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    // Axes name positions of the output.
    let mut norm = normalize_axes(axes, d.len() + axes.len())?;
    norm.sort_unstable();
    let mut out = d.to_vec();
    for a in norm {
        if a > out.len() {
            return Err(format!("unsqueeze axis {a} out of range"));
        }
        out.insert(a, 1);
    }
    Ok(out)
}

/// Multidirectional (numpy) broadcasting of two shapes.
pub(crate) fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (k, o) in out.iter_mut().enumerate() {
        let x = if k + a.len() >= r {
            a[k + a.len() - r]
        } else {
            1
        };
        let y = if k + b.len() >= r {
            b[k + b.len() - r]
        } else {
            1
        };
        *o = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(format!(
                    "cannot broadcast {} with {}",
                    shape_str(a),
                    shape_str(b)
                ))
            }
        };
    }
    Ok(out)
}

/// Map a flat index of the broadcast result to a flat index of `src`.
pub(crate) fn broadcast_index(src: &[usize], dims: &[usize]) -> impl Fn(usize) -> usize {
    let r = dims.len();
    let off = r - src.len();
    let src = src.to_vec();
    let dims = dims.to_vec();
    move |mut i| {
        let mut idx = 0;
        let mut stride = 1;
        for k in (0..r).rev() {
            let coord = i % dims[k];
            i /= dims[k];
            if k >= off {
                let sd = src[k - off];
                if sd != 1 {
                    idx += coord * stride;
                }
                stride *= sd;
            }
        }
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_resolution() {
        assert_eq!(
            resolve_reshape(&[1, 16, 4, 4], &[1, -1], false).unwrap(),
            vec![1, 256]
        );
        assert_eq!(
            resolve_reshape(&[1, 16, 4, 4], &[0, -1], false).unwrap(),
            vec![1, 256]
        );
        assert!(resolve_reshape(&[1, 16, 4, 4], &[3, -1], false).is_err());
        assert!(resolve_reshape(&[1, 16], &[-1, -1], false).is_err());
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_dims(&[3, 1], &[4]).unwrap(), vec![3, 4]);
        let f = broadcast_index(&[3, 1], &[3, 4]);
        assert_eq!(f(5), 1);
        assert!(broadcast_dims(&[3], &[4]).is_err());
    }

    #[test]
    fn squeeze_and_unsqueeze_axes() {
        assert_eq!(squeeze(&[1, 3, 1, 2], &[-2]).unwrap(), vec![1, 3, 2]);
        assert_eq!(squeeze(&[1, 3, 1, 2], &[]).unwrap(), vec![3, 2]);
        assert!(squeeze(&[1, 3], &[1]).is_err());
        assert!(squeeze(&[1, 3], &[-3]).is_err());
        assert_eq!(unsqueeze(&[3, 2], &[0, -1]).unwrap(), vec![1, 3, 2, 1]);
        assert!(unsqueeze(&[3], &[2]).is_err());
    }
}
