//! The validated model intermediate representation every engine walks.
//!
//! A [`Model`] is a directed acyclic graph in topological order: node `i`
//! produces value `i`, node 0 is the input. Shapes exclude the batch dimension
//! (a CHW image is `[C, H, W]`, a feature vector `[N]`). Weights are `f32` as the
//! model owner exported them, with batch normalization already folded into the
//! preceding linear layer where possible. [`crate::quant`] turns a `Model` into
//! its fixed-point form.

use blindfold_core::Shape;
use serde::{Deserialize, Serialize};

/// Index of a node (and of the value it produces).
pub type ValueId = usize;

/// 2-D convolution (group 1, dilation 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    /// `[c_out, c_in, kh, kw]`, row-major.
    pub weight: Vec<f32>,
    pub c_out: usize,
    pub c_in: usize,
    pub kh: usize,
    pub kw: usize,
    /// Length `c_out`.
    pub bias: Vec<f32>,
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

/// 2-D transposed convolution (group 1, dilation 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTranspose {
    /// `[c_in, c_out, kh, kw]`, row-major (the ONNX layout).
    pub weight: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub bias: Vec<f32>,
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`, removed from the full output.
    pub pads: [usize; 4],
    /// Extra rows/columns added at the bottom/right.
    pub output_padding: [usize; 2],
}

/// Fully connected layer on a rank-1 input: `y = W x + b`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// `[outputs, inputs]`, row-major.
    pub weight: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
    pub bias: Vec<f32>,
}

/// Per-channel affine map `y[c, ...] = scale[c] * x[c, ...] + shift[c]` (an
/// unfolded batch normalization, or a multiplication by a constant). A tensor of
/// rank 1 has one channel per element.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelAffine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// Pooling window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`; max-pool pads with −∞, average pool with 0
    /// (and divides by the full window, ONNX `count_include_pad = 1`).
    pub pads: [usize; 4],
}

/// The operations of the IR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// The model input.
    Input,
    Conv(Conv),
    ConvTranspose(ConvTranspose),
    Dense(Dense),
    ChannelAffine(ChannelAffine),
    /// Element-wise sum of two values of one shape.
    Add,
    Relu,
    /// `x * x`.
    Square,
    /// `+1` where `x >= 0`, else `-1` (ONNX Sign gives 0 at 0; see docs).
    Sign,
    MaxPool(Pool),
    AvgPool(Pool),
    /// Same elements, new shape (Flatten, Reshape, Squeeze, ...).
    Reshape,
    /// Concatenation along the channel axis (axis 0 without batch).
    Concat,
    /// Nearest-neighbour upsampling by integer factors on the spatial axes.
    ResizeNearest {
        scale: [usize; 2],
    },
}

impl Op {
    /// Short human name.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv(_) => "conv",
            Op::ConvTranspose(_) => "conv-transpose",
            Op::Dense(_) => "dense",
            Op::ChannelAffine(_) => "channel-affine",
            Op::Add => "add",
            Op::Relu => "relu",
            Op::Square => "square",
            Op::Sign => "sign",
            Op::MaxPool(_) => "maxpool",
            Op::AvgPool(_) => "avgpool",
            Op::Reshape => "reshape",
            Op::Concat => "concat",
            Op::ResizeNearest { .. } => "resize-nearest",
        }
    }

    /// Linear in its input with secret coefficients (needs the homomorphic
    /// preprocessing for the cross terms in two-server mode).
    pub fn is_linear_layer(&self) -> bool {
        matches!(
            self,
            Op::Conv(_) | Op::ConvTranspose(_) | Op::Dense(_) | Op::ChannelAffine(_)
        )
    }

    /// Number of weight parameters (including biases).
    pub fn parameters(&self) -> usize {
        match self {
            Op::Conv(c) => c.weight.len() + c.bias.len(),
            Op::ConvTranspose(c) => c.weight.len() + c.bias.len(),
            Op::Dense(d) => d.weight.len() + d.bias.len(),
            Op::ChannelAffine(a) => a.scale.len() + a.shift.len(),
            _ => 0,
        }
    }
}

/// The softmax that ended the exported graph, dropped at import (argmax is
/// unchanged). Kept so float outputs can be compared with other runtimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalActivation {
    Softmax,
    LogSoftmax,
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Name from the source graph (or generated).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    /// Output shape (no batch dimension).
    pub shape: Shape,
}

/// A validated model: nodes in topological order, node 0 the input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub nodes: Vec<Node>,
    pub output: ValueId,
    pub final_activation: Option<FinalActivation>,
}

/// A structural problem found by [`Model::validate`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("node {node} ({name}): {reason}")]
pub struct InvalidModel {
    pub node: usize,
    pub name: String,
    pub reason: String,
}

impl Model {
    pub fn input_shape(&self) -> &Shape {
        &self.nodes[0].shape
    }
    pub fn output_shape(&self) -> &Shape {
        &self.nodes[self.output].shape
    }

    /// Consumers of each value.
    pub fn consumers(&self) -> Vec<Vec<ValueId>> {
        let mut c = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &j in &n.inputs {
                c[j].push(i);
            }
        }
        c
    }

    /// Check topological order, arities, parameter sizes and every shape.
    /// Import calls this; so does anything that loads a model from a file.
    pub fn validate(&self) -> Result<(), InvalidModel> {
        let err = |i: usize, reason: String| InvalidModel {
            node: i,
            name: self
                .nodes
                .get(i)
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            reason,
        };
        if self.nodes.is_empty() || self.nodes[0].op != Op::Input {
            return Err(err(0, "the first node must be the input".into()));
        }
        if self.output >= self.nodes.len() {
            return Err(err(self.output, "output refers to no node".into()));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 && n.op == Op::Input {
                return Err(err(i, "only node 0 may be an input".into()));
            }
            for &j in &n.inputs {
                if j >= i {
                    return Err(err(i, format!("input {j} is not an earlier node")));
                }
            }
            if n.shape.numel() == 0 {
                return Err(err(i, format!("empty shape {}", n.shape)));
            }
            let ins: Vec<&Shape> = n.inputs.iter().map(|&j| &self.nodes[j].shape).collect();
            let want = infer_shape(&n.op, &ins, &n.shape).map_err(|r| err(i, r))?;
            if want != n.shape {
                return Err(err(
                    i,
                    format!("recorded shape {} but the op gives {want}", n.shape),
                ));
            }
        }
        Ok(())
    }
}

fn spatial(s: &Shape, what: &str) -> Result<(usize, usize, usize), String> {
    match s.dims() {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!("{what} needs a [C, H, W] input, got {s}")),
    }
}

fn window_out(
    len: usize,
    pad_a: usize,
    pad_b: usize,
    k: usize,
    stride: usize,
) -> Result<usize, String> {
    if stride == 0 || k == 0 {
        return Err("zero kernel or stride".into());
    }
    blindfold_core::geom::window_count(len, k, stride, pad_a, pad_b).ok_or_else(|| {
        format!("window {k} larger than the input {len} padded by {pad_a} + {pad_b}, or padding too large")
    })
}

/// The output shape of `op` on inputs of shapes `ins`. `recorded` is the node's
/// own shape, used only by [`Op::Reshape`] (whose target is data, not an input).
pub fn infer_shape(op: &Op, ins: &[&Shape], recorded: &Shape) -> Result<Shape, String> {
    let arity = match op {
        Op::Input => 0,
        Op::Add => 2,
        Op::Concat => usize::MAX,
        _ => 1,
    };
    if arity != usize::MAX && ins.len() != arity {
        return Err(format!(
            "{} takes {arity} input(s), got {}",
            op.kind(),
            ins.len()
        ));
    }
    match op {
        Op::Input => Ok(recorded.clone()),
        Op::Conv(c) => {
            let (ci, h, w) = spatial(ins[0], "conv")?;
            if ci != c.c_in {
                return Err(format!("conv expects {} input channels, got {ci}", c.c_in));
            }
            if c.weight.len() != c.c_out * c.c_in * c.kh * c.kw || c.bias.len() != c.c_out {
                return Err("conv weight or bias size does not match its shape".into());
            }
            let oh = window_out(h, c.pads[0], c.pads[2], c.kh, c.stride[0])?;
            let ow = window_out(w, c.pads[1], c.pads[3], c.kw, c.stride[1])?;
            Ok(Shape::new([c.c_out, oh, ow]))
        }
        Op::ConvTranspose(c) => {
            let (ci, h, w) = spatial(ins[0], "conv-transpose")?;
            if ci != c.c_in {
                return Err(format!(
                    "conv-transpose expects {} input channels, got {ci}",
                    c.c_in
                ));
            }
            if c.weight.len() != c.c_out * c.c_in * c.kh * c.kw || c.bias.len() != c.c_out {
                return Err("conv-transpose weight or bias size does not match".into());
            }
            if c.stride[0] == 0 || c.stride[1] == 0 {
                return Err("zero stride".into());
            }
            let out = |len, s, k, lo, hi, op| {
                blindfold_core::geom::transpose_len(len, k, s, lo, hi, op).ok_or(
                    "conv-transpose: empty input or kernel, output too large, or pads remove the whole output",
                )
            };
            let oh = out(
                h,
                c.stride[0],
                c.kh,
                c.pads[0],
                c.pads[2],
                c.output_padding[0],
            )?;
            let ow = out(
                w,
                c.stride[1],
                c.kw,
                c.pads[1],
                c.pads[3],
                c.output_padding[1],
            )?;
            Ok(Shape::new([c.c_out, oh, ow]))
        }
        Op::Dense(d) => {
            if ins[0].rank() != 1 || ins[0].dims()[0] != d.inputs {
                return Err(format!(
                    "dense expects a [{}] input, got {}",
                    d.inputs, ins[0]
                ));
            }
            if d.weight.len() != d.inputs * d.outputs || d.bias.len() != d.outputs {
                return Err("dense weight or bias size does not match".into());
            }
            Ok(Shape::new([d.outputs]))
        }
        Op::ChannelAffine(a) => {
            let ch = ins[0].dims().first().copied().unwrap_or(0);
            if a.scale.len() != ch || a.shift.len() != ch {
                return Err(format!(
                    "channel-affine has {} coefficients for {ch} channels",
                    a.scale.len()
                ));
            }
            Ok(ins[0].clone())
        }
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(format!("add of shapes {} and {}", ins[0], ins[1]));
            }
            Ok(ins[0].clone())
        }
        Op::Relu | Op::Square | Op::Sign => Ok(ins[0].clone()),
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let (c, h, w) = spatial(ins[0], op.kind())?;
            if p.pads[0] >= p.kernel[0]
                || p.pads[2] >= p.kernel[0]
                || p.pads[1] >= p.kernel[1]
                || p.pads[3] >= p.kernel[1]
            {
                return Err("pool padding must be smaller than the window".into());
            }
            let oh = window_out(h, p.pads[0], p.pads[2], p.kernel[0], p.stride[0])?;
            let ow = window_out(w, p.pads[1], p.pads[3], p.kernel[1], p.stride[1])?;
            Ok(Shape::new([c, oh, ow]))
        }
        Op::Reshape => {
            if recorded.numel() != ins[0].numel() {
                return Err(format!("reshape of {} into {recorded}", ins[0]));
            }
            Ok(recorded.clone())
        }
        Op::Concat => {
            if ins.is_empty() {
                return Err("concat of nothing".into());
            }
            let rest = &ins[0].dims()[1..];
            let mut ch = 0;
            for s in ins {
                if s.rank() == 0 || &s.dims()[1..] != rest {
                    return Err(format!("concat of mismatched shapes {} and {s}", ins[0]));
                }
                ch += s.dims()[0];
            }
            let mut d = vec![ch];
            d.extend_from_slice(rest);
            Ok(Shape::new(d))
        }
        Op::ResizeNearest { scale } => {
            let (c, h, w) = spatial(ins[0], "resize")?;
            if scale[0] == 0 || scale[1] == 0 {
                return Err("zero resize scale".into());
            }
            Ok(Shape::new([c, h * scale[0], w * scale[1]]))
        }
    }
}
