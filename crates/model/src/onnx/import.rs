//! The importer: its state, the walk over the graph in topological order, and
//! the value accessors every op handler uses.

use super::external::ExternalDir;
use super::shape::{shape_str, value_dims};
use super::tensor::{tensor_to_const, Const, TensorError};
use super::{fold, ops, OnnxError, Result};
use crate::ir::{FinalActivation, Model, Node, Op, ValueId};
use blindfold_core::Shape;
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};
use std::collections::HashMap;

/// An ONNX value during import.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Const(Const),
    Dyn(ValueId),
    /// A zero `Pad` of a dynamic value (`[top, left, bottom, right]`), merged into
    /// the convolution that consumes it.
    Padded(ValueId, [usize; 4]),
}

impl Val {
    pub(crate) fn dyn_id(&self) -> Option<ValueId> {
        match self {
            Val::Dyn(id) | Val::Padded(id, _) => Some(*id),
            Val::Const(_) => None,
        }
    }
}

pub(crate) struct Importer<'a> {
    proto: &'a ModelProto,
    pub(crate) opset: i64,
    env: HashMap<String, Val>,
    nodes: Vec<Node>,
    /// Outstanding ONNX consumers of each IR value (to decide folding).
    id_uses: HashMap<ValueId, usize>,
    name_uses: HashMap<String, usize>,
    pub(crate) graph_outputs: Vec<String>,
    pub(crate) final_activation: Option<FinalActivation>,
    model_name: String,
    external: Option<ExternalDir>,
    /// Elements of all constants folded so far (bounded by `MAX_FOLDED_ELEMS`).
    pub(crate) folded: std::cell::Cell<usize>,
}

impl<'a> Importer<'a> {
    pub(crate) fn new(
        proto: &'a ModelProto,
        name: &str,
        external: Option<ExternalDir>,
    ) -> Result<Importer<'a>> {
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
            external,
            folded: std::cell::Cell::new(0),
        })
    }

    pub(crate) fn push(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<ValueId>,
        shape: Shape,
    ) -> ValueId {
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

    pub(crate) fn run(mut self) -> Result<Model> {
        let graph = self.proto.graph.as_ref().ok_or(OnnxError::NoGraph)?;
        for t in &graph.initializer {
            let c = self.tensor(t).map_err(|e| match e {
                TensorError::Malformed(reason) => OnnxError::Initializer {
                    name: t.name.clone(),
                    reason,
                },
                TensorError::External(error) => OnnxError::ExternalData {
                    tensor: t.name.clone(),
                    error,
                },
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
        model
            .validate()
            .map_err(|e| OnnxError::Invalid(Box::new(e)))?;
        Ok(model)
    }

    /// Decode a tensor of the model (initializer or attribute value), reading
    /// external data when the importer has a directory.
    pub(crate) fn tensor(&self, t: &TensorProto) -> std::result::Result<Const, TensorError> {
        tensor_to_const(t, self.external.as_ref())
    }

    /// A tensor in an attribute of `node`, with errors naming the node.
    pub(crate) fn node_tensor(&self, node: &NodeProto, t: &TensorProto) -> Result<Const> {
        self.tensor(t).map_err(|e| match e {
            TensorError::Malformed(r) => self.err(node, r),
            TensorError::External(error) => OnnxError::ExternalData {
                tensor: if t.name.is_empty() {
                    node_name(node)
                } else {
                    t.name.clone()
                },
                error,
            },
        })
    }

    pub(crate) fn err(&self, node: &NodeProto, reason: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: node_name(node),
            op: node.op_type.clone(),
            opset: self.opset,
            reason: reason.into(),
        }
    }

    pub(crate) fn input(&self, node: &NodeProto, k: usize) -> Result<Val> {
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

    pub(crate) fn opt_input(&self, node: &NodeProto, k: usize) -> Result<Option<Val>> {
        match node.input.get(k) {
            Some(n) if !n.is_empty() => self.input(node, k).map(Some),
            _ => Ok(None),
        }
    }

    pub(crate) fn const_input(&self, node: &NodeProto, k: usize, what: &str) -> Result<Const> {
        match self.input(node, k)? {
            Val::Const(c) => Ok(c),
            _ => Err(self.err(node, format!("{what} must be a constant (an initializer)"))),
        }
    }

    /// An optional input that must be constant when present.
    pub(crate) fn opt_const_input(
        &self,
        node: &NodeProto,
        k: usize,
        what: &str,
    ) -> Result<Option<Const>> {
        match self.opt_input(node, k)? {
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(_) => Err(self.err(node, format!("{what} must be constant"))),
            None => Ok(None),
        }
    }

    pub(crate) fn dyn_input(&self, node: &NodeProto, k: usize) -> Result<ValueId> {
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

    pub(crate) fn shape(&self, id: ValueId) -> &Shape {
        &self.nodes[id].shape
    }

    /// ONNX-level dims (with the batch dimension of 1).
    pub(crate) fn full_dims(&self, id: ValueId) -> Vec<usize> {
        let mut d = vec![1];
        d.extend_from_slice(self.shape(id).dims());
        d
    }

    /// The IR node producing `id`, for rewriting in place (see [`Self::foldable`]).
    pub(crate) fn node_mut(&mut self, id: ValueId) -> &mut Node {
        &mut self.nodes[id]
    }

    pub(crate) fn out_name(&self, node: &NodeProto) -> Result<String> {
        node.output
            .first()
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| self.err(node, "node has no output"))
    }

    /// May the producer of `id` be rewritten in place (its only consumer is the
    /// node being imported, and it is not a graph output)?
    pub(crate) fn foldable(&self, id: ValueId) -> bool {
        self.id_uses.get(&id).copied().unwrap_or(0) == 1
    }

    /// Axes from the `axes` attribute (older opsets) or the constant input 1.
    pub(crate) fn axes(&self, node: &NodeProto) -> Result<Vec<i64>> {
        if let Some(a) = super::attrs::attr_ints(node, "axes") {
            return Ok(a);
        }
        Ok(self
            .opt_const_input(node, 1, "axes")?
            .map(|c| c.ints())
            .unwrap_or_default())
    }

    /// A value with the elements of `x` and the shape `dims` (no node when the
    /// shape is unchanged).
    pub(crate) fn reshape_to(&mut self, name: &str, x: ValueId, dims: Vec<usize>) -> ValueId {
        if self.shape(x).dims() == dims.as_slice() {
            return x;
        }
        self.push(name, Op::Reshape, vec![x], Shape::new(dims))
    }

    /// Push `op` on `inputs` after inferring its shape (errors name the node).
    pub(crate) fn push_inferred(
        &mut self,
        node: &NodeProto,
        name: &str,
        op: Op,
        inputs: Vec<ValueId>,
    ) -> Result<ValueId> {
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape = crate::ir::infer_shape(&op, &shapes, &Shape::default())
            .map_err(|r| self.err(node, r.to_string()))?;
        Ok(self.push(name, op, inputs, shape))
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
            let c = fold::constant_node(self, node)?;
            self.bind(&out, Val::Const(c));
            return Ok(());
        }
        if all_const && op != "Shape" {
            let consts: Vec<Option<Const>> = inputs
                .into_iter()
                .map(|v| match v {
                    Some(Val::Const(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let c = fold::fold(self, node, &consts)?;
            self.bind(&out, Val::Const(c));
            return Ok(());
        }
        let name = if node.name.is_empty() {
            out.clone()
        } else {
            node.name.clone()
        };
        let handler = ops::handler(op).ok_or_else(|| self.err(node, "operator not supported"))?;
        let v = handler(self, node, &name)?;
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
}

/// The name errors use for a node: its name, else its first output.
fn node_name(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
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
