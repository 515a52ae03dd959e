//! ONNX import: protobuf (through the `onnx-protobuf` crate) to the validated
//! [`Model`] IR.
//!
//! The importer walks the graph once in topological order. Every ONNX value is
//! either a *constant* (initializers, `Constant` nodes and anything computed from
//! constants only, such as the `Shape → Gather → Concat` chains exporters emit for
//! reshapes) or a *dynamic* value that depends on the input and becomes a node of
//! the IR. Constant subgraphs are folded; batch normalization, per-channel scales
//! and bias additions are folded into the preceding linear layer when it has no
//! other consumer. Shapes are inferred for every node and checked against what the
//! file declares. Anything unsupported is an error naming the node, the op and the
//! opset.
//!
//! ONNX tensors carry a batch dimension; the IR does not. The importer assumes a
//! batch of one: the input's first dimension must be 1 or symbolic.

use crate::ir::{
    ChannelAffine, Conv, ConvTranspose, Dense, FinalActivation, Model, Node, Op, Pool, ValueId,
};
use blindfold_core::Shape;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, Message, ModelProto, NodeProto,
    TensorProto,
};
use protobuf::Enum;
use std::collections::HashMap;

/// Largest ONNX file accepted.
pub const MAX_ONNX_BYTES: usize = 1 << 30;
/// Largest tensor (elements) accepted.
const MAX_TENSOR_ELEMS: usize = 1 << 28;
/// Largest dimension, kernel, stride or padding accepted in any attribute.
const MAX_DIM: usize = 1 << 24;

/// An import failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    #[error("not a valid ONNX protobuf file: {0}")]
    Decode(String),
    #[error("ONNX file of {0} bytes exceeds the {MAX_ONNX_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the ONNX model has no graph")]
    NoGraph,
    #[error("the ONNX model imports no default-domain opset")]
    NoOpset,
    #[error("unsupported default-domain opset {0} (supported: 7 to 21)")]
    OpsetRange(i64),
    #[error("graph input: {0}")]
    Input(String),
    #[error("graph output: {0}")]
    Output(String),
    #[error("initializer {name}: {reason}")]
    Initializer { name: String, reason: String },
    #[error("node '{node}' (op {op}, opset {opset}): {reason}")]
    Node {
        node: String,
        op: String,
        opset: i64,
        reason: String,
    },
    #[error("imported graph is inconsistent: {0}")]
    Invalid(#[from] crate::ir::InvalidModel),
}

type Result<T> = std::result::Result<T, OnnxError>;

/// A constant tensor during import.
#[derive(Clone, Debug, PartialEq)]
struct Const {
    dims: Vec<usize>,
    data: ConstData,
}

#[derive(Clone, Debug, PartialEq)]
enum ConstData {
    F(Vec<f32>),
    I(Vec<i64>),
}

impl Const {
    fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    fn floats(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F(v) => v.clone(),
            ConstData::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    fn ints(&self) -> Vec<i64> {
        match &self.data {
            ConstData::F(v) => v.iter().map(|&x| x as i64).collect(),
            ConstData::I(v) => v.clone(),
        }
    }
    fn len(&self) -> usize {
        match &self.data {
            ConstData::F(v) => v.len(),
            ConstData::I(v) => v.len(),
        }
    }
    fn with_data(dims: Vec<usize>, like: &ConstData, f: Vec<f64>) -> Const {
        let data = match like {
            ConstData::F(_) => ConstData::F(f.iter().map(|&x| x as f32).collect()),
            ConstData::I(_) => ConstData::I(f.iter().map(|&x| x as i64).collect()),
        };
        Const { dims, data }
    }
    fn as_f64(&self) -> Vec<f64> {
        match &self.data {
            ConstData::F(v) => v.iter().map(|&x| x as f64).collect(),
            ConstData::I(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

#[derive(Clone, Debug)]
enum Val {
    Const(Const),
    Dyn(ValueId),
    /// A zero `Pad` of a dynamic value (`[top, left, bottom, right]`), merged into
    /// the convolution that consumes it.
    Padded(ValueId, [usize; 4]),
}

impl Val {
    fn dyn_id(&self) -> Option<ValueId> {
        match self {
            Val::Dyn(id) | Val::Padded(id, _) => Some(*id),
            Val::Const(_) => None,
        }
    }
}

/// Parse and import an ONNX model from bytes.
pub fn import_onnx(bytes: &[u8], name: &str) -> Result<Model> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(OnnxError::TooLarge(bytes.len()));
    }
    let proto =
        ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    Importer::new(&proto, name)?.run()
}

struct Importer<'a> {
    proto: &'a ModelProto,
    opset: i64,
    env: HashMap<String, Val>,
    nodes: Vec<Node>,
    /// Outstanding ONNX consumers of each IR value (to decide folding).
    id_uses: HashMap<ValueId, usize>,
    name_uses: HashMap<String, usize>,
    graph_outputs: Vec<String>,
    final_activation: Option<FinalActivation>,
    model_name: String,
}

fn tensor_to_const(t: &TensorProto) -> std::result::Result<Const, String> {
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut numel: usize = 1;
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        if d as u64 > MAX_DIM as u64 {
            return Err(format!("dimension {d} exceeds {MAX_DIM}"));
        }
        dims.push(d as usize);
        numel = numel
            .checked_mul(d as usize)
            .filter(|&n| n <= MAX_TENSOR_ELEMS)
            .ok_or("tensor too large")?;
    }
    if !t.external_data.is_empty() {
        return Err("external data is not supported (save the model with weights inside)".into());
    }
    let raw = &t.raw_data;
    let dt = DataType::from_i32(t.data_type).ok_or(format!("unknown data type {}", t.data_type))?;
    let need_raw = |w: usize| -> std::result::Result<(), String> {
        if raw.len() != numel * w {
            Err(format!(
                "raw data has {} bytes, {} needed for {:?}",
                raw.len(),
                numel * w,
                dims
            ))
        } else {
            Ok(())
        }
    };
    let data = match dt {
        DataType::FLOAT => {
            if !raw.is_empty() || numel == 0 {
                need_raw(4)?;
                ConstData::F(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            } else {
                ConstData::F(t.float_data.clone())
            }
        }
        DataType::DOUBLE => {
            if !raw.is_empty() || numel == 0 {
                need_raw(8)?;
                ConstData::F(
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                        .collect(),
                )
            } else {
                ConstData::F(t.double_data.iter().map(|&x| x as f32).collect())
            }
        }
        DataType::INT64 => {
            if !raw.is_empty() || numel == 0 {
                need_raw(8)?;
                ConstData::I(
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                )
            } else {
                ConstData::I(t.int64_data.clone())
            }
        }
        DataType::INT32 => {
            if !raw.is_empty() || numel == 0 {
                need_raw(4)?;
                ConstData::I(
                    raw.chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                        .collect(),
                )
            } else {
                ConstData::I(t.int32_data.iter().map(|&x| x as i64).collect())
            }
        }
        DataType::BOOL | DataType::UINT8 | DataType::INT8 => {
            if !raw.is_empty() || numel == 0 {
                need_raw(1)?;
                ConstData::I(
                    raw.iter()
                        .map(|&b| {
                            if dt == DataType::INT8 {
                                b as i8 as i64
                            } else {
                                b as i64
                            }
                        })
                        .collect(),
                )
            } else {
                ConstData::I(t.int32_data.iter().map(|&x| x as i64).collect())
            }
        }
        other => return Err(format!("data type {other:?} is not supported")),
    };
    let c = Const { dims, data };
    if c.len() != numel {
        return Err(format!("has {} values for shape {:?}", c.len(), c.dims));
    }
    Ok(c)
}

fn shape_str(d: &[usize]) -> String {
    Shape::new(d.to_vec()).to_string()
}

impl<'a> Importer<'a> {
    fn new(proto: &'a ModelProto, name: &str) -> Result<Importer<'a>> {
        let graph = proto.graph.as_ref().ok_or(OnnxError::NoGraph)?;
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or(OnnxError::NoOpset)?;
        if !(7..=21).contains(&opset) {
            return Err(OnnxError::OpsetRange(opset));
        }
        let mut name_uses: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in &n.input {
                if !i.is_empty() {
                    *name_uses.entry(i.clone()).or_default() += 1;
                }
            }
        }
        for o in &graph.output {
            *name_uses.entry(o.name.clone()).or_default() += 1;
        }
        Ok(Importer {
            proto,
            opset,
            env: HashMap::new(),
            nodes: Vec::new(),
            id_uses: HashMap::new(),
            name_uses,
            graph_outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
            final_activation: None,
            model_name: name.to_string(),
        })
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, shape: Shape) -> ValueId {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            shape,
        });
        self.nodes.len() - 1
    }

    fn bind(&mut self, onnx_name: &str, v: Val) {
        if let Some(id) = v.dyn_id() {
            let u = self.name_uses.get(onnx_name).copied().unwrap_or(0);
            *self.id_uses.entry(id).or_default() += u;
        }
        self.env.insert(onnx_name.to_string(), v);
    }

    fn run(mut self) -> Result<Model> {
        let graph = self.proto.graph.as_ref().ok_or(OnnxError::NoGraph)?;
        for t in &graph.initializer {
            let c = tensor_to_const(t).map_err(|reason| OnnxError::Initializer {
                name: t.name.clone(),
                reason,
            })?;
            self.env.insert(t.name.clone(), Val::Const(c));
        }
        let real_inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !self.env.contains_key(&i.name))
            .collect();
        if real_inputs.len() != 1 {
            return Err(OnnxError::Input(format!(
                "expected exactly one non-initializer input, found {}",
                real_inputs.len()
            )));
        }
        let inp = real_inputs[0];
        let dims = value_dims(inp).map_err(OnnxError::Input)?;
        if dims.len() < 2 {
            return Err(OnnxError::Input(format!(
                "input '{}' must have a batch dimension and at least one more",
                inp.name
            )));
        }
        match dims[0] {
            Some(1) | None => {}
            Some(b) => {
                return Err(OnnxError::Input(format!(
                    "input '{}' has batch size {b}; export with batch size 1 or a dynamic batch",
                    inp.name
                )))
            }
        }
        let mut shape = Vec::new();
        for (k, d) in dims[1..].iter().enumerate() {
            match d {
                Some(v) if *v > 0 => shape.push(*v),
                _ => {
                    return Err(OnnxError::Input(format!(
                        "input '{}' dimension {} is not a fixed positive size",
                        inp.name,
                        k + 1
                    )))
                }
            }
        }
        let id = self.push(&inp.name, Op::Input, vec![], Shape::new(shape));
        let iname = inp.name.clone();
        self.bind(&iname, Val::Dyn(id));

        for node in &graph.node {
            self.node(node)?;
        }

        if self.graph_outputs.len() != 1 {
            return Err(OnnxError::Output(format!(
                "expected exactly one graph output, found {}",
                self.graph_outputs.len()
            )));
        }
        let out_name = self.graph_outputs[0].clone();
        let output = match self.env.get(&out_name) {
            Some(Val::Dyn(id)) => *id,
            Some(Val::Const(_)) => {
                return Err(OnnxError::Output(format!(
                    "'{out_name}' does not depend on the input"
                )))
            }
            Some(Val::Padded(..)) => {
                return Err(OnnxError::Output(format!(
                    "'{out_name}' is a Pad result; Pad is only supported before a convolution"
                )))
            }
            None => {
                return Err(OnnxError::Output(format!(
                    "'{out_name}' is produced by no node"
                )))
            }
        };
        // Check the declared output shape when it is static.
        if let Some(o) = graph.output.first() {
            if let Ok(d) = value_dims(o) {
                if d.len() > 1 && d[1..].iter().all(|x| x.is_some()) {
                    let declared: Vec<usize> = d[1..].iter().map(|x| x.unwrap_or(0)).collect();
                    let got = self.nodes[output].shape.dims();
                    if declared.iter().product::<usize>() != got.iter().product::<usize>() {
                        return Err(OnnxError::Output(format!(
                            "declared shape {} but the graph computes {}",
                            shape_str(&declared),
                            shape_str(got)
                        )));
                    }
                }
            }
        }
        let model = prune(Model {
            name: self.model_name.clone(),
            nodes: std::mem::take(&mut self.nodes),
            output,
            final_activation: self.final_activation,
        });
        model.validate()?;
        Ok(model)
    }

    fn err(&self, node: &NodeProto, reason: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: if node.name.is_empty() {
                node.output.first().cloned().unwrap_or_default()
            } else {
                node.name.clone()
            },
            op: node.op_type.clone(),
            opset: self.opset,
            reason: reason.into(),
        }
    }

    fn input(&self, node: &NodeProto, k: usize) -> Result<Val> {
        let name = node
            .input
            .get(k)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| self.err(node, format!("missing input {k}")))?;
        self.env.get(name).cloned().ok_or_else(|| {
            self.err(
                node,
                format!("input '{name}' is produced by no node and no initializer"),
            )
        })
    }

    fn opt_input(&self, node: &NodeProto, k: usize) -> Result<Option<Val>> {
        match node.input.get(k) {
            Some(n) if !n.is_empty() => self.input(node, k).map(Some),
            _ => Ok(None),
        }
    }

    fn const_input(&self, node: &NodeProto, k: usize, what: &str) -> Result<Const> {
        match self.input(node, k)? {
            Val::Const(c) => Ok(c),
            _ => Err(self.err(node, format!("{what} must be a constant (an initializer)"))),
        }
    }

    fn dyn_input(&self, node: &NodeProto, k: usize) -> Result<ValueId> {
        match self.input(node, k)? {
            Val::Dyn(id) => Ok(id),
            Val::Padded(..) => Err(self.err(
                node,
                "the input comes from a Pad, which is only supported directly before a convolution",
            )),
            Val::Const(_) => {
                Err(self.err(node, "expected an input that depends on the model input"))
            }
        }
    }

    fn shape(&self, id: ValueId) -> &Shape {
        &self.nodes[id].shape
    }

    /// ONNX-level dims (with the batch dimension of 1).
    fn full_dims(&self, id: ValueId) -> Vec<usize> {
        let mut d = vec![1];
        d.extend_from_slice(self.shape(id).dims());
        d
    }

    fn out_name(&self, node: &NodeProto) -> Result<String> {
        node.output
            .first()
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| self.err(node, "node has no output"))
    }

    /// May the producer of `id` be rewritten in place (its only consumer is the
    /// node being imported, and it is not a graph output)?
    fn foldable(&self, id: ValueId) -> bool {
        self.id_uses.get(&id).copied().unwrap_or(0) == 1
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(self.err(
                node,
                format!("operator domain '{}' is not supported", node.domain),
            ));
        }
        let op = node.op_type.as_str();
        let out = self.out_name(node)?;
        // Constant folding: every input constant, and the op is a foldable one.
        let inputs: Vec<Option<Val>> = (0..node.input.len())
            .map(|k| self.opt_input(node, k))
            .collect::<Result<_>>()?;
        let all_const = !inputs.is_empty()
            && inputs
                .iter()
                .all(|v| v.as_ref().and_then(Val::dyn_id).is_none());
        if op == "Constant" {
            let c = self.constant_node(node)?;
            self.bind(&out, Val::Const(c));
            return Ok(());
        }
        if all_const && op != "Shape" {
            let c = self.fold(node, &inputs)?;
            self.bind(&out, Val::Const(c));
            return Ok(());
        }
        let name = if node.name.is_empty() {
            out.clone()
        } else {
            node.name.clone()
        };
        let v = match op {
            "Identity" | "Dropout" => self.input(node, 0)?,
            "Shape" => {
                let id = self.dyn_input(node, 0)?;
                let full: Vec<i64> = self.full_dims(id).iter().map(|&d| d as i64).collect();
                let r = full.len() as i64;
                let norm =
                    |v: i64| -> usize { (if v < 0 { v + r } else { v }).clamp(0, r) as usize };
                let start = norm(attr_int(node, "start").unwrap_or(0));
                let end = norm(attr_int(node, "end").unwrap_or(r));
                let s: Vec<i64> = full[start..end.max(start)].to_vec();
                Val::Const(Const {
                    dims: vec![s.len()],
                    data: ConstData::I(s),
                })
            }
            "Conv" => Val::Dyn(self.conv(node, &name)?),
            "Pad" => self.pad(node)?,
            "ReduceMean" => Val::Dyn(self.reduce_mean(node, &name)?),
            "ConvTranspose" => Val::Dyn(self.conv_transpose(node, &name)?),
            "Gemm" => Val::Dyn(self.gemm(node, &name)?),
            "MatMul" => Val::Dyn(self.matmul(node, &name)?),
            "Add" | "Sub" => Val::Dyn(self.add_sub(node, &name, op == "Sub")?),
            "Mul" => Val::Dyn(self.mul(node, &name)?),
            "Div" => {
                let x = self.dyn_input(node, 0)?;
                let c = self.const_input(node, 1, "divisor")?;
                let recip: Vec<f32> = c.floats().iter().map(|&v| 1.0 / v).collect();
                if recip.iter().any(|v| !v.is_finite()) {
                    return Err(self.err(node, "division by zero"));
                }
                let c = Const {
                    dims: c.dims.clone(),
                    data: ConstData::F(recip),
                };
                let scale = self.per_channel(node, x, &c)?;
                let zero = vec![0.0; scale.len()];
                Val::Dyn(self.affine(&name, x, scale, zero))
            }
            "Pow" => {
                let x = self.dyn_input(node, 0)?;
                let e = self.const_input(node, 1, "exponent")?;
                if e.numel() != 1 || e.floats()[0] != 2.0 {
                    return Err(self.err(node, "only the exponent 2 (square) is supported"));
                }
                let s = self.shape(x).clone();
                Val::Dyn(self.push(&name, Op::Square, vec![x], s))
            }
            "Relu" | "Sign" => {
                let x = self.dyn_input(node, 0)?;
                let s = self.shape(x).clone();
                let o = if op == "Relu" { Op::Relu } else { Op::Sign };
                Val::Dyn(self.push(&name, o, vec![x], s))
            }
            "MaxPool" | "AveragePool" => Val::Dyn(self.pool(node, &name)?),
            "GlobalAveragePool" => {
                let x = self.dyn_input(node, 0)?;
                let d = self.shape(x).dims().to_vec();
                if d.len() != 3 {
                    return Err(self.err(
                        node,
                        format!("needs a [N, C, H, W] input, got batch x {}", self.shape(x)),
                    ));
                }
                let p = Pool {
                    kernel: [d[1], d[2]],
                    stride: [1, 1],
                    pads: [0; 4],
                };
                Val::Dyn(self.push(&name, Op::AvgPool(p), vec![x], Shape::new([d[0], 1, 1])))
            }
            "BatchNormalization" => Val::Dyn(self.batchnorm(node, &name)?),
            "Flatten" => {
                let x = self.dyn_input(node, 0)?;
                let full = self.full_dims(x);
                let r = full.len() as i64;
                let mut axis = attr_int(node, "axis").unwrap_or(1);
                if axis < 0 {
                    axis += r;
                }
                if !(0..=r).contains(&axis) {
                    return Err(self.err(node, format!("axis {axis} out of range")));
                }
                let outer: usize = full[..axis as usize].iter().product();
                let inner: usize = full[axis as usize..].iter().product();
                if outer != 1 {
                    return Err(
                        self.err(node, "flattening into the batch dimension is not supported")
                    );
                }
                Val::Dyn(self.reshape_to(&name, x, vec![inner]))
            }
            "Reshape" => {
                let x = self.dyn_input(node, 0)?;
                let target = self.const_input(node, 1, "shape")?.ints();
                let full = self.full_dims(x);
                let allowzero = attr_int(node, "allowzero").unwrap_or(0) == 1;
                let d =
                    resolve_reshape(&full, &target, allowzero).map_err(|r| self.err(node, r))?;
                let ours = strip_batch(&d).map_err(|r| self.err(node, r))?;
                Val::Dyn(self.reshape_to(&name, x, ours))
            }
            "Squeeze" | "Unsqueeze" => {
                let x = self.dyn_input(node, 0)?;
                let axes = self.axes(node)?;
                let full = self.full_dims(x);
                let d = if op == "Squeeze" {
                    squeeze(&full, &axes)
                } else {
                    unsqueeze(&full, &axes)
                }
                .map_err(|r| self.err(node, r))?;
                let ours = strip_batch(&d).map_err(|r| self.err(node, r))?;
                Val::Dyn(self.reshape_to(&name, x, ours))
            }
            "Softmax" | "LogSoftmax" => {
                let x = self.dyn_input(node, 0)?;
                if !self.graph_outputs.contains(&out) {
                    return Err(self.err(node, "softmax is only supported as the last operation (it is dropped; argmax is unchanged)"));
                }
                let r = self.full_dims(x).len() as i64;
                let default_axis = if self.opset >= 13 { -1 } else { 1 };
                let mut axis = attr_int(node, "axis").unwrap_or(default_axis);
                if axis < 0 {
                    axis += r;
                }
                if self.shape(x).rank() != 1 || axis != 1 {
                    return Err(
                        self.err(node, "softmax must be over the features of a flat output")
                    );
                }
                self.final_activation = Some(if op == "Softmax" {
                    FinalActivation::Softmax
                } else {
                    FinalActivation::LogSoftmax
                });
                Val::Dyn(x)
            }
            "Concat" => Val::Dyn(self.concat(node, &name)?),
            "Resize" | "Upsample" => Val::Dyn(self.resize(node, &name)?),
            "Transpose" => {
                let x = self.dyn_input(node, 0)?;
                let r = self.full_dims(x).len();
                let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..r as i64).rev().collect());
                let trivial: Vec<i64> = (0..r as i64).collect();
                // A transpose that moves only size-1 axes is a reshape.
                let full = self.full_dims(x);
                let moved: Vec<usize> = perm
                    .iter()
                    .filter_map(|&p| full.get(p as usize).copied())
                    .collect();
                let non1_order: Vec<i64> = perm
                    .iter()
                    .copied()
                    .filter(|&p| full.get(p as usize).copied().unwrap_or(1) != 1)
                    .collect();
                let sorted = non1_order.windows(2).all(|w| w[0] < w[1]);
                if perm.len() != r || !(perm == trivial || sorted) {
                    return Err(self.err(node, "transposing data axes is not supported"));
                }
                let ours = strip_batch(&moved).map_err(|r| self.err(node, r))?;
                Val::Dyn(self.reshape_to(&name, x, ours))
            }
            _ => {
                return Err(self.err(node, "operator not supported"));
            }
        };
        // Extra outputs (Dropout's mask, BatchNorm's running stats, MaxPool's
        // indices) must not be used.
        for extra in node.output.iter().skip(1) {
            if !extra.is_empty() && self.name_uses.get(extra).copied().unwrap_or(0) > 0 {
                return Err(self.err(
                    node,
                    format!("secondary output '{extra}' is used, which is not supported"),
                ));
            }
        }
        // The consumed input's use is spent.
        for k in node.input.iter() {
            if let Some(id) = self.env.get(k).and_then(Val::dyn_id) {
                if let Some(u) = self.id_uses.get_mut(&id) {
                    *u = u.saturating_sub(1);
                }
            }
        }
        self.bind(&out, v);
        Ok(())
    }

    fn reshape_to(&mut self, name: &str, x: ValueId, dims: Vec<usize>) -> ValueId {
        if self.shape(x).dims() == dims.as_slice() {
            return x;
        }
        self.push(name, Op::Reshape, vec![x], Shape::new(dims))
    }

    fn axes(&self, node: &NodeProto) -> Result<Vec<i64>> {
        if let Some(a) = attr_ints(node, "axes") {
            return Ok(a);
        }
        match self.opt_input(node, 1)? {
            Some(Val::Const(c)) => Ok(c.ints()),
            Some(_) => Err(self.err(node, "axes must be constant")),
            None => Ok(vec![]),
        }
    }

    fn constant_node(&self, node: &NodeProto) -> Result<Const> {
        let a = node
            .attribute
            .first()
            .ok_or_else(|| self.err(node, "constant without a value"))?;
        let c = match a.name.as_str() {
            "value" => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.err(node, "constant value is not a tensor"))?;
                tensor_to_const(t).map_err(|r| self.err(node, r))?
            }
            "value_float" => Const {
                dims: vec![],
                data: ConstData::F(vec![a.f]),
            },
            "value_floats" => Const {
                dims: vec![a.floats.len()],
                data: ConstData::F(a.floats.clone()),
            },
            "value_int" => Const {
                dims: vec![],
                data: ConstData::I(vec![a.i]),
            },
            "value_ints" => Const {
                dims: vec![a.ints.len()],
                data: ConstData::I(a.ints.clone()),
            },
            other => {
                return Err(self.err(
                    node,
                    format!("constant attribute '{other}' is not supported"),
                ))
            }
        };
        Ok(c)
    }

    /// Evaluate a node whose inputs are all constants.
    fn fold(&self, node: &NodeProto, inputs: &[Option<Val>]) -> Result<Const> {
        let c = |k: usize| -> Result<Const> {
            match inputs.get(k) {
                Some(Some(Val::Const(c))) => Ok(c.clone()),
                _ => Err(self.err(node, format!("missing constant input {k}"))),
            }
        };
        let op = node.op_type.as_str();
        match op {
            "Identity" | "Dropout" => c(0),
            "Cast" => {
                let x = c(0)?;
                let to = attr_int(node, "to").unwrap_or(1);
                let data = match DataType::from_i32(to as i32) {
                    Some(DataType::FLOAT) | Some(DataType::DOUBLE) => ConstData::F(x.floats()),
                    Some(DataType::INT64) | Some(DataType::INT32) => ConstData::I(x.ints()),
                    _ => return Err(self.err(node, format!("cast to type {to} is not supported"))),
                };
                Ok(Const { dims: x.dims, data })
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let (a, b) = (c(0)?, c(1)?);
                let dims = broadcast_dims(&a.dims, &b.dims).map_err(|r| self.err(node, r))?;
                let (av, bv) = (a.as_f64(), b.as_f64());
                let n: usize = dims.iter().product();
                let ai = broadcast_index(&a.dims, &dims);
                let bi = broadcast_index(&b.dims, &dims);
                let is_int = matches!(a.data, ConstData::I(_)) && matches!(b.data, ConstData::I(_));
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
            "Sqrt" | "Reciprocal" | "Neg" => {
                let x = c(0)?;
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
            "Reshape" => {
                let x = c(0)?;
                let target = c(1)?.ints();
                let d = resolve_reshape(&x.dims, &target, attr_int(node, "allowzero") == Some(1))
                    .map_err(|r| self.err(node, r))?;
                Ok(Const {
                    dims: d,
                    data: x.data,
                })
            }
            "Flatten" => {
                let x = c(0)?;
                let r = x.dims.len() as i64;
                let mut axis = attr_int(node, "axis").unwrap_or(1);
                if axis < 0 {
                    axis += r;
                }
                let axis = axis.clamp(0, r) as usize;
                let outer = x.dims[..axis].iter().product();
                let inner = x.dims[axis..].iter().product();
                Ok(Const {
                    dims: vec![outer, inner],
                    data: x.data,
                })
            }
            "Squeeze" | "Unsqueeze" => {
                let x = c(0)?;
                let axes = match attr_ints(node, "axes") {
                    Some(a) => a,
                    None => match inputs.get(1) {
                        Some(Some(Val::Const(a))) => a.ints(),
                        _ => vec![],
                    },
                };
                let d = if op == "Squeeze" {
                    squeeze(&x.dims, &axes)
                } else {
                    unsqueeze(&x.dims, &axes)
                }
                .map_err(|r| self.err(node, r))?;
                Ok(Const {
                    dims: d,
                    data: x.data,
                })
            }
            "Concat" => {
                let parts: Vec<Const> = (0..inputs.len()).map(c).collect::<Result<_>>()?;
                let first = parts
                    .first()
                    .ok_or_else(|| self.err(node, "concat of nothing"))?;
                let r = first.dims.len() as i64;
                let mut axis = attr_int(node, "axis").unwrap_or(0);
                if axis < 0 {
                    axis += r;
                }
                if r == 0
                    || !(0..r).contains(&axis)
                    || parts.iter().any(|p| p.dims.len() as i64 != r)
                    || parts
                        .iter()
                        .any(|p| p.dims[..axis as usize].iter().product::<usize>() != 1)
                {
                    return Err(self.err(
                        node,
                        "constant concat only along the outermost non-unit axis",
                    ));
                }
                let axis = axis as usize;
                let mut dims = first.dims.clone();
                dims[axis] = parts
                    .iter()
                    .map(|p| p.dims.get(axis).copied().unwrap_or(0))
                    .sum();
                let is_int = parts.iter().all(|p| matches!(p.data, ConstData::I(_)));
                let data = if is_int {
                    ConstData::I(parts.iter().flat_map(|p| p.ints()).collect())
                } else {
                    ConstData::F(parts.iter().flat_map(|p| p.floats()).collect())
                };
                Ok(Const { dims, data })
            }
            "Gather" => {
                let (x, idx) = (c(0)?, c(1)?);
                let axis = attr_int(node, "axis").unwrap_or(0);
                if x.dims.len() != 1 || axis != 0 {
                    return Err(self.err(node, "constant gather only on 1-D data"));
                }
                let n = x.dims[0] as i64;
                let xv = x.as_f64();
                let mut out = Vec::new();
                for &i in &idx.ints() {
                    let j = if i < 0 { i + n } else { i };
                    if !(0..n).contains(&j) {
                        return Err(self.err(node, format!("gather index {i} out of range")));
                    }
                    out.push(xv[j as usize]);
                }
                Ok(Const::with_data(idx.dims.clone(), &x.data, out))
            }
            "Slice" => {
                let x = c(0)?;
                if x.numel() == 0 {
                    return Err(self.err(node, "slice of an empty constant"));
                }
                let r = x.dims.len() as i64;
                let (starts, ends, axes, steps) = if self.opset >= 10 {
                    let opt = |k: usize| -> Option<Vec<i64>> {
                        match inputs.get(k) {
                            Some(Some(Val::Const(s))) => Some(s.ints()),
                            _ => None,
                        }
                    };
                    (c(1)?.ints(), c(2)?.ints(), opt(3), opt(4))
                } else {
                    (
                        attr_ints(node, "starts").unwrap_or_default(),
                        attr_ints(node, "ends").unwrap_or_default(),
                        attr_ints(node, "axes"),
                        None,
                    )
                };
                let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err(self.err(node, "slice parameters of different lengths"));
                }
                // Per axis, the list of source indices kept.
                let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
                for k in 0..starts.len() {
                    let a = if axes[k] < 0 { axes[k] + r } else { axes[k] };
                    if !(0..r).contains(&a) || steps[k] == 0 {
                        return Err(self.err(node, "slice axis out of range or zero step"));
                    }
                    let d = x.dims[a as usize] as i64;
                    let step = steps[k];
                    let norm = |v: i64| if v < 0 { v + d } else { v };
                    let mut idx = Vec::new();
                    if step > 0 {
                        let (s0, e0) = (norm(starts[k]).clamp(0, d), norm(ends[k]).clamp(0, d));
                        let mut i = s0;
                        while i < e0 {
                            idx.push(i as usize);
                            i = i.saturating_add(step);
                        }
                    } else {
                        let (s0, e0) = (
                            norm(starts[k]).clamp(-1, d - 1),
                            norm(ends[k]).clamp(-1, d - 1),
                        );
                        let mut i = s0;
                        while i > e0 {
                            idx.push(i as usize);
                            i = i.saturating_add(step);
                        }
                    }
                    keep[a as usize] = idx;
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
            "Transpose" => {
                let x = c(0)?;
                if x.dims.len() != 2 {
                    return Err(self.err(node, "constant transpose only of matrices"));
                }
                let perm = attr_ints(node, "perm").unwrap_or(vec![1, 0]);
                if perm == [0, 1] {
                    return Ok(x);
                }
                let (r, cc) = (x.dims[0], x.dims[1]);
                let v = x.as_f64();
                let out: Vec<f64> = (0..r * cc).map(|i| v[(i % r) * cc + i / r]).collect();
                Ok(Const::with_data(vec![cc, r], &x.data, out))
            }
            "ConstantOfShape" => {
                let s = c(0)?.ints();
                let dims: Vec<usize> = s.iter().map(|&d| d.max(0) as usize).collect();
                let n: usize = dims.iter().product();
                if n > MAX_TENSOR_ELEMS {
                    return Err(self.err(node, "constant too large"));
                }
                let fill = match node
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                {
                    Some(t) => tensor_to_const(t).map_err(|r| self.err(node, r))?,
                    None => Const {
                        dims: vec![1],
                        data: ConstData::F(vec![0.0]),
                    },
                };
                let v = fill.as_f64().first().copied().unwrap_or(0.0);
                Ok(Const::with_data(dims, &fill.data, vec![v; n]))
            }
            _ => Err(self.err(node, "operator not supported on constants")),
        }
    }

    /// Per-channel coefficients of a constant broadcast against `x`: a scalar, or
    /// a tensor that varies only along the channel axis.
    fn per_channel(&self, node: &NodeProto, x: ValueId, c: &Const) -> Result<Vec<f32>> {
        let full = self.full_dims(x);
        let ch = full[1];
        let v = c.floats();
        if c.numel() == 1 {
            return Ok(vec![v[0]; ch]);
        }
        if c.dims.len() > full.len() {
            return Err(self.err(node, "constant has more axes than the tensor"));
        }
        let off = full.len() - c.dims.len();
        for (k, &d) in c.dims.iter().enumerate() {
            let axis = k + off;
            let ok = if axis == 1 { d == ch || d == 1 } else { d == 1 };
            if !ok {
                return Err(self.err(
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

    /// `y = scale[c] * x + shift[c]`, folded into the producer when possible.
    fn affine(&mut self, name: &str, x: ValueId, scale: Vec<f32>, shift: Vec<f32>) -> ValueId {
        if self.foldable(x) {
            let n = &mut self.nodes[x];
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
        let s = self.shape(x).clone();
        self.push(
            name,
            Op::ChannelAffine(ChannelAffine { scale, shift }),
            vec![x],
            s,
        )
    }

    fn conv(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let (x, extra) = match self.input(node, 0)? {
            Val::Padded(id, p) => (id, p),
            _ => (self.dyn_input(node, 0)?, [0; 4]),
        };
        let w = self.const_input(node, 1, "weight")?;
        let b = self.opt_input(node, 2)?;
        if attr_int(node, "group").unwrap_or(1) != 1 {
            return Err(self.err(
                node,
                "grouped convolution is not supported (group must be 1)",
            ));
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(self.err(node, "dilated convolution is not supported"));
        }
        let s = self.shape(x).dims().to_vec();
        if s.len() != 3 || w.dims.len() != 4 {
            return Err(self.err(
                node,
                format!(
                    "only 2-D convolution: input {}, weight {}",
                    self.shape(x),
                    shape_str(&w.dims)
                ),
            ));
        }
        let (c_out, c_in, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        if c_in != s[0] {
            return Err(self.err(
                node,
                format!(
                    "weight expects {c_in} input channels but the input has shape {}",
                    self.shape(x)
                ),
            ));
        }
        if let Some(k) = attr_ints(node, "kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(self.err(node, "kernel_shape disagrees with the weight"));
            }
        }
        let stride = pair(node, "strides", 1).map_err(|r| self.err(node, r))?;
        let mut pads = self.pads(
            node,
            [s[1] + extra[0] + extra[2], s[2] + extra[1] + extra[3]],
            [kh, kw],
            stride,
        )?;
        for (p, e) in pads.iter_mut().zip(extra) {
            *p += e;
        }
        let bias = self.bias(node, b, c_out)?;
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
        let shape =
            crate::ir::infer_shape(&Op::Conv(conv.clone()), &[self.shape(x)], &Shape::default())
                .map_err(|r| self.err(node, r))?;
        Ok(self.push(name, Op::Conv(conv), vec![x], shape))
    }

    fn bias(&self, node: &NodeProto, b: Option<Val>, n: usize) -> Result<Vec<f32>> {
        match b {
            None => Ok(vec![0.0; n]),
            Some(Val::Const(c)) if c.numel() == n => Ok(c.floats()),
            Some(Val::Const(c)) => Err(self.err(
                node,
                format!("bias of shape {} for {n} outputs", shape_str(&c.dims)),
            )),
            Some(_) => Err(self.err(node, "bias must be a constant")),
        }
    }

    fn pads(
        &self,
        node: &NodeProto,
        hw: [usize; 2],
        k: [usize; 2],
        stride: [usize; 2],
    ) -> Result<[usize; 4]> {
        let auto = attr_str(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" | "" => {
                let p = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&v| !(0..=MAX_DIM as i64).contains(&v)) {
                    return Err(
                        self.err(node, format!("pads {p:?} must be four non-negative values"))
                    );
                }
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
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
            other => Err(self.err(node, format!("auto_pad {other} is not supported"))),
        }
    }

    /// A zero `Pad` on the spatial axes of a `[N, C, H, W]` tensor.
    fn pad(&mut self, node: &NodeProto) -> Result<Val> {
        let (x, prev) = match self.input(node, 0)? {
            Val::Padded(id, p) => (id, p),
            _ => (self.dyn_input(node, 0)?, [0; 4]),
        };
        let mode = attr_str(node, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(self.err(
                node,
                format!("pad mode '{mode}' is not supported (only constant zero)"),
            ));
        }
        let pads = if self.opset >= 11 {
            self.const_input(node, 1, "pads")?.ints()
        } else {
            attr_ints(node, "pads").unwrap_or_default()
        };
        let value = if self.opset >= 11 {
            match self.opt_input(node, 2)? {
                Some(Val::Const(c)) => c.floats().first().copied().unwrap_or(0.0),
                Some(_) => return Err(self.err(node, "pad value must be constant")),
                None => 0.0,
            }
        } else {
            attr_float(node, "value").unwrap_or(0.0)
        };
        if value != 0.0 {
            return Err(self.err(
                node,
                format!("padding with {value} (only zero is supported)"),
            ));
        }
        let full = self.full_dims(x);
        let r = full.len();
        // Optional axes (opset 18): pads then cover only those axes.
        let axes: Vec<usize> = match self.opt_input(node, 3)? {
            Some(Val::Const(c)) => c
                .ints()
                .iter()
                .map(|&a| (if a < 0 { a + r as i64 } else { a }) as usize)
                .collect(),
            Some(_) => return Err(self.err(node, "pad axes must be constant")),
            None => (0..r).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(self.err(
                node,
                format!("{} pad values for {} axes", pads.len(), axes.len()),
            ));
        }
        let mut begin = vec![0i64; r];
        let mut end = vec![0i64; r];
        for (k, &a) in axes.iter().enumerate() {
            if a >= r {
                return Err(self.err(node, format!("pad axis {a} out of range")));
            }
            begin[a] = pads[k];
            end[a] = pads[k + axes.len()];
            if begin[a] > MAX_DIM as i64 || end[a] > MAX_DIM as i64 {
                return Err(self.err(
                    node,
                    format!("pad {} exceeds {MAX_DIM}", begin[a].max(end[a])),
                ));
            }
        }
        if r != 4
            || begin[..2].iter().chain(&end[..2]).any(|&v| v != 0)
            || begin.iter().chain(&end).any(|&v| v < 0)
        {
            return Err(self.err(
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

    /// `ReduceMean` over both spatial axes is a global average pool.
    fn reduce_mean(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let full = self.full_dims(x);
        let r = full.len() as i64;
        let axes = self.axes(node)?;
        let mut norm: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + r } else { a })
            .collect();
        norm.sort_unstable();
        if r != 4 || norm != [2, 3] {
            return Err(self.err(node, format!("ReduceMean over axes {axes:?}: only the two spatial axes of [N, C, H, W] are supported")));
        }
        let (c, h, w) = (full[1], full[2], full[3]);
        let p = Pool {
            kernel: [h, w],
            stride: [1, 1],
            pads: [0; 4],
        };
        let id = self.push(name, Op::AvgPool(p), vec![x], Shape::new([c, 1, 1]));
        if attr_int(node, "keepdims").unwrap_or(1) == 0 {
            Ok(self.reshape_to(&format!("{name}/squeeze"), id, vec![c]))
        } else {
            Ok(id)
        }
    }

    fn conv_transpose(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let w = self.const_input(node, 1, "weight")?;
        let b = self.opt_input(node, 2)?;
        if attr_int(node, "group").unwrap_or(1) != 1 {
            return Err(self.err(node, "grouped transposed convolution is not supported"));
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(self.err(node, "dilated transposed convolution is not supported"));
        }
        if attr_ints(node, "output_shape").is_some() {
            return Err(self.err(
                node,
                "the output_shape attribute is not supported; use pads",
            ));
        }
        let s = self.shape(x).dims().to_vec();
        if s.len() != 3 || w.dims.len() != 4 || w.dims[0] != s[0] {
            return Err(self.err(
                node,
                format!(
                    "input {} does not fit weight {}",
                    self.shape(x),
                    shape_str(&w.dims)
                ),
            ));
        }
        let (c_in, c_out, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        let stride = pair(node, "strides", 1).map_err(|r| self.err(node, r))?;
        let auto = attr_str(node, "auto_pad").unwrap_or_default();
        if !(auto.is_empty() || auto == "NOTSET") {
            return Err(self.err(node, "auto_pad is not supported for transposed convolution"));
        }
        let p = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
        if p.len() != 4 || p.iter().any(|&v| !(0..=MAX_DIM as i64).contains(&v)) {
            return Err(self.err(node, "pads must be four non-negative values"));
        }
        let output_padding = pair(node, "output_padding", 0).map_err(|r| self.err(node, r))?;
        let bias = self.bias(node, b, c_out)?;
        let ct = ConvTranspose {
            weight: w.floats(),
            c_in,
            c_out,
            kh,
            kw,
            bias,
            stride,
            pads: [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize],
            output_padding,
        };
        let op = Op::ConvTranspose(ct);
        let shape = crate::ir::infer_shape(&op, &[self.shape(x)], &Shape::default())
            .map_err(|r| self.err(node, r))?;
        Ok(self.push(name, op, vec![x], shape))
    }

    fn gemm(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let b = self.const_input(node, 1, "B (weight)")?;
        let c = self.opt_input(node, 2)?;
        if attr_int(node, "transA").unwrap_or(0) != 0 {
            return Err(self.err(node, "transA = 1 is not supported"));
        }
        let trans_b = attr_int(node, "transB").unwrap_or(0) == 1;
        let alpha = attr_float(node, "alpha").unwrap_or(1.0);
        let beta = attr_float(node, "beta").unwrap_or(1.0);
        if b.dims.len() != 2 {
            return Err(self.err(
                node,
                format!("weight of shape {} is not a matrix", shape_str(&b.dims)),
            ));
        }
        let (inputs, outputs) = if trans_b {
            (b.dims[1], b.dims[0])
        } else {
            (b.dims[0], b.dims[1])
        };
        if self.shape(x).dims() != [inputs] {
            return Err(self.err(
                node,
                format!(
                    "weight of shape {} does not fit an input of shape {} (flatten first)",
                    shape_str(&b.dims),
                    self.shape(x)
                ),
            ));
        }
        let bv = b.floats();
        let mut weight = vec![0f32; inputs * outputs];
        for o in 0..outputs {
            for i in 0..inputs {
                let v = if trans_b {
                    bv[o * inputs + i]
                } else {
                    bv[i * outputs + o]
                };
                weight[o * inputs + i] = alpha * v;
            }
        }
        let bias = match c {
            None => vec![0.0; outputs],
            Some(Val::Const(c)) if c.numel() == outputs => {
                c.floats().iter().map(|v| beta * v).collect()
            }
            Some(Val::Const(c)) if c.numel() == 1 => vec![beta * c.floats()[0]; outputs],
            Some(Val::Const(c)) => {
                return Err(self.err(
                    node,
                    format!("C of shape {} for {outputs} outputs", shape_str(&c.dims)),
                ))
            }
            Some(_) => return Err(self.err(node, "C must be a constant")),
        };
        let d = Dense {
            weight,
            inputs,
            outputs,
            bias,
        };
        Ok(self.push(name, Op::Dense(d), vec![x], Shape::new([outputs])))
    }

    fn matmul(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let b = self.const_input(node, 1, "right-hand matrix")?;
        if b.dims.len() != 2 {
            return Err(self.err(node, "the right-hand side must be a constant matrix"));
        }
        let (inputs, outputs) = (b.dims[0], b.dims[1]);
        if self.shape(x).dims() != [inputs] {
            return Err(self.err(
                node,
                format!(
                    "matrix {} does not fit an input of shape {}",
                    shape_str(&b.dims),
                    self.shape(x)
                ),
            ));
        }
        let bv = b.floats();
        let mut weight = vec![0f32; inputs * outputs];
        for o in 0..outputs {
            for i in 0..inputs {
                weight[o * inputs + i] = bv[i * outputs + o];
            }
        }
        let d = Dense {
            weight,
            inputs,
            outputs,
            bias: vec![0.0; outputs],
        };
        Ok(self.push(name, Op::Dense(d), vec![x], Shape::new([outputs])))
    }

    fn add_sub(&mut self, node: &NodeProto, name: &str, sub: bool) -> Result<ValueId> {
        let a = self.input(node, 0)?;
        let b = self.input(node, 1)?;
        match (a, b) {
            (Val::Dyn(x), Val::Dyn(y)) => {
                if sub {
                    return Err(self.err(node, "subtracting two computed tensors is not supported"));
                }
                if self.shape(x) != self.shape(y) {
                    return Err(self.err(
                        node,
                        format!(
                            "add of shapes {} and {} (broadcasting is not supported)",
                            self.shape(x),
                            self.shape(y)
                        ),
                    ));
                }
                let s = self.shape(x).clone();
                Ok(self.push(name, Op::Add, vec![x, y], s))
            }
            (Val::Dyn(x), Val::Const(c)) | (Val::Const(c), Val::Dyn(x)) => {
                let const_first = matches!(self.input(node, 0)?, Val::Const(_));
                let shift = self.per_channel(node, x, &c)?;
                let (scale, shift) = if sub && const_first {
                    (vec![-1.0; shift.len()], shift)
                } else if sub {
                    (vec![1.0; shift.len()], shift.iter().map(|v| -v).collect())
                } else {
                    (vec![1.0; shift.len()], shift)
                };
                Ok(self.affine(name, x, scale, shift))
            }
            _ => Err(self.err(node, "constant inputs only")),
        }
    }

    fn mul(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let a = self.input(node, 0)?;
        let b = self.input(node, 1)?;
        match (a, b) {
            (Val::Dyn(x), Val::Dyn(y)) if x == y => {
                let s = self.shape(x).clone();
                Ok(self.push(name, Op::Square, vec![x], s))
            }
            (Val::Dyn(_), Val::Dyn(_)) => Err(self.err(
                node,
                "only x * x (square) is supported between computed tensors",
            )),
            (Val::Dyn(x), Val::Const(c)) | (Val::Const(c), Val::Dyn(x)) => {
                let scale = self.per_channel(node, x, &c)?;
                let zero = vec![0.0; scale.len()];
                Ok(self.affine(name, x, scale, zero))
            }
            _ => Err(self.err(node, "constant inputs only")),
        }
    }

    fn pool(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let s = self.shape(x).dims().to_vec();
        if s.len() != 3 {
            return Err(self.err(
                node,
                format!(
                    "2-D pooling needs a [N, C, H, W] input, got batch x {}",
                    self.shape(x)
                ),
            ));
        }
        let k = attr_ints(node, "kernel_shape")
            .ok_or_else(|| self.err(node, "missing kernel_shape"))?;
        if k.len() != 2 || k.iter().any(|&v| !(1..=MAX_DIM as i64).contains(&v)) {
            return Err(self.err(
                node,
                format!("kernel_shape {k:?} must be two positive values"),
            ));
        }
        let kernel = [k[0] as usize, k[1] as usize];
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(self.err(node, "dilated pooling is not supported"));
        }
        let stride = pair(node, "strides", 1).map_err(|r| self.err(node, r))?;
        let pads = self.pads(node, [s[1], s[2]], kernel, stride)?;
        let pool = Pool {
            kernel,
            stride,
            pads,
        };
        let is_max = node.op_type == "MaxPool";
        if !is_max
            && pads.iter().any(|&p| p > 0)
            && attr_int(node, "count_include_pad").unwrap_or(0) == 0
        {
            return Err(self.err(
                node,
                "average pooling over padding must count the padding (count_include_pad = 1)",
            ));
        }
        let op = if is_max {
            Op::MaxPool(pool)
        } else {
            Op::AvgPool(pool)
        };
        let shape = crate::ir::infer_shape(&op, &[self.shape(x)], &Shape::default())
            .map_err(|r| self.err(node, r))?;
        if attr_int(node, "ceil_mode").unwrap_or(0) == 1 {
            // Only accepted when rounding up changes nothing.
            for a in 0..2 {
                let padded = s[a + 1] + pads[a] + pads[a + 2];
                if !(padded - kernel[a]).is_multiple_of(stride[a]) {
                    return Err(self.err(
                        node,
                        "ceil_mode = 1 that changes the output size is not supported",
                    ));
                }
            }
        }
        Ok(self.push(name, op, vec![x], shape))
    }

    fn batchnorm(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        if attr_int(node, "training_mode").unwrap_or(0) != 0 {
            return Err(self.err(
                node,
                "batch normalization in training mode is not supported; export in eval mode",
            ));
        }
        let eps = attr_float(node, "epsilon").unwrap_or(1e-5);
        let ch = self.full_dims(x)[1];
        let get = |k: usize, what: &str| -> Result<Vec<f32>> {
            let c = self.const_input(node, k, what)?;
            if c.numel() != ch {
                return Err(self.err(
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
        Ok(self.affine(name, x, scale, shift))
    }

    fn concat(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let mut ids = Vec::new();
        for k in 0..node.input.len() {
            ids.push(self.dyn_input(node, k)?);
        }
        let r = self.full_dims(ids[0]).len() as i64;
        let mut axis = attr_int(node, "axis").ok_or_else(|| self.err(node, "missing axis"))?;
        if axis < 0 {
            axis += r;
        }
        if axis != 1 {
            return Err(self.err(
                node,
                format!("concatenation along axis {axis} (only the channel axis 1 is supported)"),
            ));
        }
        let shapes: Vec<&Shape> = ids.iter().map(|&i| self.shape(i)).collect();
        let shape = crate::ir::infer_shape(&Op::Concat, &shapes, &Shape::default())
            .map_err(|r| self.err(node, r))?;
        Ok(self.push(name, Op::Concat, ids, shape))
    }

    fn resize(&mut self, node: &NodeProto, name: &str) -> Result<ValueId> {
        let x = self.dyn_input(node, 0)?;
        let mode = attr_str(node, "mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            return Err(self.err(
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
            return Err(self.err(
                node,
                format!("coordinate_transformation_mode '{ctm}' is not supported"),
            ));
        }
        let full = self.full_dims(x);
        if full.len() != 4 {
            return Err(self.err(node, "resize needs a [N, C, H, W] input"));
        }
        // Upsample (opset 7-9): scales attribute or input 1. Resize: scales at 2, sizes at 3.
        let scales: Option<Vec<f32>> = if node.op_type == "Upsample" {
            match attr_floats(node, "scales") {
                Some(s) => Some(s),
                None => Some(self.const_input(node, 1, "scales")?.floats()),
            }
        } else {
            let idx = if self.opset <= 10 { 1 } else { 2 };
            match self.opt_input(node, idx)? {
                Some(Val::Const(c)) if c.numel() > 0 => Some(c.floats()),
                Some(Val::Dyn(_)) | Some(Val::Padded(..)) => {
                    return Err(self.err(node, "scales must be constant"))
                }
                _ => None,
            }
        };
        let factors: Vec<f64> = match scales {
            Some(s) => s.iter().map(|&v| v as f64).collect(),
            None => {
                let sizes = match self.opt_input(node, 3)? {
                    Some(Val::Const(c)) => c.ints(),
                    _ => return Err(self.err(node, "needs constant scales or sizes")),
                };
                if sizes.len() != 4 {
                    return Err(self.err(node, "sizes must have four values"));
                }
                sizes
                    .iter()
                    .zip(&full)
                    .map(|(&s, &d)| s as f64 / d as f64)
                    .collect()
            }
        };
        if factors.len() != 4 || factors[0] != 1.0 || factors[1] != 1.0 {
            return Err(self.err(
                node,
                format!("scales {factors:?}: only spatial scaling is supported"),
            ));
        }
        let mut scale = [0usize; 2];
        for a in 0..2 {
            let f = factors[a + 2];
            if f < 1.0 || f.fract() != 0.0 {
                return Err(self.err(node, format!("scale {f} is not a positive integer")));
            }
            scale[a] = f as usize;
        }
        let op = Op::ResizeNearest { scale };
        let shape = crate::ir::infer_shape(&op, &[self.shape(x)], &Shape::default())
            .map_err(|r| self.err(node, r))?;
        Ok(self.push(name, op, vec![x], shape))
    }
}

/// Drop nodes that do not contribute to the output, renumbering the rest.
fn prune(m: Model) -> Model {
    let mut live = vec![false; m.nodes.len()];
    live[m.output] = true;
    live[0] = true;
    for i in (0..m.nodes.len()).rev() {
        if live[i] {
            for &j in &m.nodes[i].inputs {
                live[j] = true;
            }
        }
    }
    let mut map = vec![usize::MAX; m.nodes.len()];
    let mut nodes = Vec::new();
    for (i, mut n) in m.nodes.into_iter().enumerate() {
        if live[i] {
            n.inputs = n.inputs.iter().map(|&j| map[j]).collect();
            map[i] = nodes.len();
            nodes.push(n);
        }
    }
    Model {
        output: map[m.output],
        nodes,
        ..m
    }
}

fn value_dims(
    v: &onnx_protobuf::ValueInfoProto,
) -> std::result::Result<Vec<Option<usize>>, String> {
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

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n onnx_protobuf::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    attr(node, name)
        .filter(|a| a.type_.enum_value() == Ok(AttributeType::FLOATS))
        .map(|a| a.floats.clone())
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn pair(node: &NodeProto, name: &str, default: usize) -> std::result::Result<[usize; 2], String> {
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

fn resolve_reshape(
    full: &[usize],
    target: &[i64],
    allowzero: bool,
) -> std::result::Result<Vec<usize>, String> {
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
    let known: usize = out.iter().product();
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

fn strip_batch(d: &[usize]) -> std::result::Result<Vec<usize>, String> {
    match d {
        [1, rest @ ..] if !rest.is_empty() => Ok(rest.to_vec()),
        [n] => Ok(vec![*n]),
        _ => Err(format!(
            "result {} does not keep a batch dimension of 1",
            shape_str(d)
        )),
    }
}

fn squeeze(d: &[usize], axes: &[i64]) -> std::result::Result<Vec<usize>, String> {
    let r = d.len() as i64;
    let norm: Vec<usize> = axes
        .iter()
        .map(|&a| (if a < 0 { a + r } else { a }) as usize)
        .collect();
    if norm.is_empty() {
        return Ok(d.iter().copied().filter(|&x| x != 1).collect());
    }
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

fn unsqueeze(d: &[usize], axes: &[i64]) -> std::result::Result<Vec<usize>, String> {
    let r = (d.len() + axes.len()) as i64;
    let mut norm: Vec<usize> = axes
        .iter()
        .map(|&a| (if a < 0 { a + r } else { a }) as usize)
        .collect();
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

fn broadcast_dims(a: &[usize], b: &[usize]) -> std::result::Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for k in 0..r {
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
        out[k] = match (x, y) {
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
fn broadcast_index(src: &[usize], dims: &[usize]) -> impl Fn(usize) -> usize {
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
    fn garbage_is_a_decode_error() {
        let e = import_onnx(&[0xff, 0xff, 0xff, 0x07, 1, 2, 3], "x").unwrap_err();
        assert!(
            matches!(e, OnnxError::Decode(_) | OnnxError::NoGraph),
            "{e}"
        );
    }
}
