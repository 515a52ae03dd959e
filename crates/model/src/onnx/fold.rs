//! Constant folding: nodes whose inputs are all constants are evaluated at
//! import (the shape arithmetic exporters emit: Cast, arithmetic, Reshape,
//! Squeeze/Unsqueeze, Concat, Gather, Slice, Transpose, ConstantOfShape...), and
//! `Constant` nodes. One function per op (family), looked up in [`FOLDERS`].

use super::attrs::{
    attr_int, attr_ints, attr_tensor, clamp_index, normalize_axis, normalize_split,
};
use super::import::Importer;
use super::shape::{broadcast_dims, broadcast_index, resolve_reshape, squeeze, unsqueeze};
use super::tensor::{Const, ConstData};
use super::{Result, MAX_FOLDED_ELEMS};
use onnx_protobuf::{tensor_proto::DataType, NodeProto};
use protobuf::Enum;

/// What a folder sees: the node, its constant inputs (`None` for an omitted
/// optional input) and the opset.
pub(crate) struct FoldCx<'n> {
    node: &'n NodeProto,
    inputs: &'n [Option<Const>],
    opset: i64,
    /// Elements this fold may still produce ([`MAX_FOLDED_ELEMS`] per model).
    budget: usize,
}

impl FoldCx<'_> {
    /// Constant input `k` (must be present).
    fn c(&self, k: usize) -> std::result::Result<&Const, String> {
        match self.inputs.get(k) {
            Some(Some(c)) => Ok(c),
            _ => Err(format!("missing constant input {k}")),
        }
    }
    /// Optional constant input `k`.
    fn opt(&self, k: usize) -> Option<&Const> {
        self.inputs.get(k).and_then(Option::as_ref)
    }
    fn op(&self) -> &str {
        self.node.op_type.as_str()
    }
    /// Elements of a result of shape `dims`, refused past the budget: checked
    /// before anything is allocated by the folders whose output can be larger
    /// than their inputs (broadcasting, concatenation, ConstantOfShape).
    fn size(&self, dims: &[usize]) -> std::result::Result<usize, String> {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= self.budget)
            .ok_or_else(|| {
                format!(
                    "constant of shape {dims:?} exceeds what folding may produce \
                     ({MAX_FOLDED_ELEMS} elements per model)"
                )
            })
    }
}

type FoldFn = fn(&FoldCx) -> std::result::Result<Const, String>;

/// `op_type` → folder. `Constant` is handled by [`constant_node`].
const FOLDERS: &[(&str, FoldFn)] = &[
    ("Identity", identity),
    ("Dropout", identity),
    ("Cast", cast),
    ("Add", arith),
    ("Sub", arith),
    ("Mul", arith),
    ("Div", arith),
    ("Sqrt", unary),
    ("Reciprocal", unary),
    ("Neg", unary),
    ("Reshape", reshape),
    ("Flatten", flatten),
    ("Squeeze", squeeze_unsqueeze),
    ("Unsqueeze", squeeze_unsqueeze),
    ("Concat", concat),
    ("Gather", gather),
    ("Slice", slice),
    ("Transpose", transpose),
];

/// Evaluate a node whose inputs are all constants.
/// All folded results of one model count against [`MAX_FOLDED_ELEMS`], so a
/// small file cannot make the importer hold gigabytes of constants.
pub(crate) fn fold(imp: &Importer, node: &NodeProto, inputs: &[Option<Const>]) -> Result<Const> {
    let cx = FoldCx {
        node,
        inputs,
        opset: imp.opset,
        budget: MAX_FOLDED_ELEMS.saturating_sub(imp.folded.get()),
    };
    let c = if node.op_type == "ConstantOfShape" {
        constant_of_shape(imp, &cx)?
    } else {
        let f = FOLDERS
            .iter()
            .find(|(op, _)| *op == node.op_type)
            .map(|&(_, f)| f)
            .ok_or_else(|| imp.err(node, "operator not supported on constants"))?;
        f(&cx).map_err(|r| imp.err(node, r))?
    };
    let n = c.len();
    if n > cx.budget {
        return Err(imp.err(node, cx.size(&c.dims).err().unwrap_or_default()));
    }
    imp.folded.set(imp.folded.get() + n);
    Ok(c)
}

/// The value of a `Constant` node.
pub(crate) fn constant_node(imp: &Importer, node: &NodeProto) -> Result<Const> {
    let a = node
        .attribute
        .first()
        .ok_or_else(|| imp.err(node, "constant without a value"))?;
    let c = match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| imp.err(node, "constant value is not a tensor"))?;
            imp.node_tensor(node, t)?
        }
        "value_float" => Const::scalar_f(a.f),
        "value_floats" => Const {
            dims: vec![a.floats.len()],
            data: ConstData::F(a.floats.clone()),
        },
        "value_int" => Const {
            dims: vec![],
            data: ConstData::I(vec![a.i]),
        },
        "value_ints" => Const::vec_i(a.ints.clone()),
        other => {
            return Err(imp.err(
                node,
                format!("constant attribute '{other}' is not supported"),
            ))
        }
    };
    Ok(c)
}

fn identity(cx: &FoldCx) -> std::result::Result<Const, String> {
    cx.c(0).cloned()
}

fn cast(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    let to = attr_int(cx.node, "to").unwrap_or(1);
    let data = match DataType::from_i32(to as i32) {
        Some(DataType::FLOAT) | Some(DataType::DOUBLE) => ConstData::F(x.floats()),
        Some(DataType::INT64) | Some(DataType::INT32) => ConstData::I(x.ints()),
        _ => return Err(format!("cast to type {to} is not supported")),
    };
    Ok(Const {
        dims: x.dims.clone(),
        data,
    })
}

/// Add, Sub, Mul, Div with broadcasting; integer division floors.
fn arith(cx: &FoldCx) -> std::result::Result<Const, String> {
    let (a, b) = (cx.c(0)?, cx.c(1)?);
    let dims = broadcast_dims(&a.dims, &b.dims)?;
    let n = cx.size(&dims)?;
    let (av, bv) = (a.as_f64(), b.as_f64());
    let ai = broadcast_index(&a.dims, &dims);
    let bi = broadcast_index(&b.dims, &dims);
    let is_int = a.is_int() && b.is_int();
    let op = cx.op();
    let out: Vec<f64> = (0..n)
        .map(|i| {
            let (x, y) = (av[ai(i)], bv[bi(i)]);
            match op {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                _ if is_int && y != 0.0 => (x / y).floor(),
                _ => x / y,
            }
        })
        .collect();
    Ok(Const::with_data(dims, &a.data, out))
}

fn unary(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    let op = cx.op();
    let v: Vec<f64> = x
        .as_f64()
        .iter()
        .map(|&v| match op {
            "Sqrt" => v.sqrt(),
            "Reciprocal" => 1.0 / v,
            _ => -v,
        })
        .collect();
    Ok(Const::with_data(x.dims.clone(), &x.data, v))
}

fn reshape(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    let target = cx.c(1)?.ints();
    let dims = resolve_reshape(&x.dims, &target, attr_int(cx.node, "allowzero") == Some(1))?;
    Ok(Const {
        dims,
        data: x.data.clone(),
    })
}

fn flatten(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    let axis = normalize_split(attr_int(cx.node, "axis").unwrap_or(1), x.dims.len())?;
    let outer = x.dims[..axis].iter().product();
    let inner = x.dims[axis..].iter().product();
    Ok(Const {
        dims: vec![outer, inner],
        data: x.data.clone(),
    })
}

fn squeeze_unsqueeze(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    let axes = match attr_ints(cx.node, "axes") {
        Some(a) => a,
        None => cx.opt(1).map(Const::ints).unwrap_or_default(),
    };
    let dims = if cx.op() == "Squeeze" {
        squeeze(&x.dims, &axes)
    } else {
        unsqueeze(&x.dims, &axes)
    }?;
    Ok(Const {
        dims,
        data: x.data.clone(),
    })
}

/// Concatenation along the outermost non-unit axis (shape vectors).
fn concat(cx: &FoldCx) -> std::result::Result<Const, String> {
    let parts: Vec<&Const> = (0..cx.inputs.len())
        .map(|k| cx.c(k))
        .collect::<std::result::Result<_, _>>()?;
    let first = parts.first().ok_or("concat of nothing")?;
    let r = first.dims.len();
    let outermost = "constant concat only along the outermost non-unit axis";
    let axis = normalize_axis(attr_int(cx.node, "axis").unwrap_or(0), r)
        .map_err(|e| format!("{outermost} ({e})"))?;
    if parts.iter().any(|p| p.dims.len() != r)
        || parts
            .iter()
            .any(|p| p.dims[..axis].iter().product::<usize>() != 1)
    {
        return Err(outermost.into());
    }
    // The other axes must agree, or the data would not fill the shape.
    if parts
        .iter()
        .any(|p| p.dims[axis + 1..] != first.dims[axis + 1..])
    {
        return Err("constant concat of parts whose other dimensions differ".into());
    }
    let mut dims = first.dims.clone();
    dims[axis] = parts
        .iter()
        .try_fold(0usize, |a, p| a.checked_add(p.dims[axis]))
        .ok_or("constant concat too large")?;
    cx.size(&dims)?;
    let data = if parts.iter().all(|p| p.is_int()) {
        ConstData::I(parts.iter().flat_map(|p| p.ints()).collect())
    } else {
        ConstData::F(parts.iter().flat_map(|p| p.floats()).collect())
    };
    Ok(Const { dims, data })
}

fn gather(cx: &FoldCx) -> std::result::Result<Const, String> {
    let (x, idx) = (cx.c(0)?, cx.c(1)?);
    let axis = attr_int(cx.node, "axis").unwrap_or(0);
    if x.dims.len() != 1 || axis != 0 {
        return Err("constant gather only on 1-D data".into());
    }
    let xv = x.as_f64();
    let mut out = Vec::new();
    for &i in &idx.ints() {
        let j =
            normalize_axis(i, x.dims[0]).map_err(|_| format!("gather index {i} out of range"))?;
        out.push(xv[j]);
    }
    Ok(Const::with_data(idx.dims.clone(), &x.data, out))
}

fn slice(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    if x.numel() == 0 {
        return Err("slice of an empty constant".into());
    }
    let (starts, ends, axes, steps) = if cx.opset >= 10 {
        (
            cx.c(1)?.ints(),
            cx.c(2)?.ints(),
            cx.opt(3).map(Const::ints),
            cx.opt(4).map(Const::ints),
        )
    } else {
        (
            attr_ints(cx.node, "starts").unwrap_or_default(),
            attr_ints(cx.node, "ends").unwrap_or_default(),
            attr_ints(cx.node, "axes"),
            None,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("slice parameters of different lengths".into());
    }
    // Per axis, the list of source indices kept.
    let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let a = normalize_axis(axes[k], x.dims.len())
            .ok()
            .filter(|_| steps[k] != 0)
            .ok_or("slice axis out of range or zero step")?;
        let len = x.dims[a];
        let d = len as i64;
        let step = steps[k];
        let mut idx = Vec::new();
        if step > 0 {
            let s0 = clamp_index(starts[k], len, 0, d);
            let e0 = clamp_index(ends[k], len, 0, d);
            let mut i = s0;
            while i < e0 {
                idx.push(i as usize);
                i = i.saturating_add(step);
            }
        } else {
            let s0 = clamp_index(starts[k], len, -1, d - 1);
            let e0 = clamp_index(ends[k], len, -1, d - 1);
            let mut i = s0;
            while i > e0 {
                idx.push(i as usize);
                i = i.saturating_add(step);
            }
        }
        keep[a] = idx;
    }
    let dims: Vec<usize> = keep.iter().map(|v| v.len()).collect();
    let n: usize = dims.iter().product();
    let xv = x.as_f64();
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rem = flat;
        let mut src = 0;
        let mut stride = 1;
        for a in (0..dims.len()).rev() {
            let coord = rem % dims[a];
            rem /= dims[a];
            src += keep[a][coord] * stride;
            stride *= x.dims[a];
        }
        out.push(xv[src]);
    }
    Ok(Const::with_data(dims, &x.data, out))
}

fn transpose(cx: &FoldCx) -> std::result::Result<Const, String> {
    let x = cx.c(0)?;
    if x.dims.len() != 2 {
        return Err("constant transpose only of matrices".into());
    }
    let perm = attr_ints(cx.node, "perm").unwrap_or(vec![1, 0]);
    if perm == [0, 1] {
        return Ok(x.clone());
    }
    let (r, cc) = (x.dims[0], x.dims[1]);
    let v = x.as_f64();
    let out: Vec<f64> = (0..r * cc).map(|i| v[(i % r) * cc + i / r]).collect();
    Ok(Const::with_data(vec![cc, r], &x.data, out))
}

/// ConstantOfShape reads its fill value from a tensor attribute (which may be
/// external data), hence the importer.
fn constant_of_shape(imp: &Importer, cx: &FoldCx) -> Result<Const> {
    let s = cx.c(0).map_err(|r| imp.err(cx.node, r))?.ints();
    let dims: Vec<usize> = s.iter().map(|&d| d.max(0) as usize).collect();
    let n = cx.size(&dims).map_err(|r| imp.err(cx.node, r))?;
    let fill = match attr_tensor(cx.node, "value") {
        Some(t) => imp.node_tensor(cx.node, t)?,
        None => Const {
            dims: vec![1],
            data: ConstData::F(vec![0.0]),
        },
    };
    let v = fill.as_f64().first().copied().unwrap_or(0.0);
    Ok(Const::with_data(dims, &fill.data, vec![v; n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_folded_twice() {
        for (k, (a, _)) in FOLDERS.iter().enumerate() {
            assert!(
                FOLDERS[k + 1..].iter().all(|(b, _)| a != b),
                "{a} is listed twice"
            );
            assert_ne!(*a, "ConstantOfShape");
            assert_ne!(*a, "Constant");
        }
    }
}
