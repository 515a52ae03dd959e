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

    /// A binarized layer: a conv or dense layer whose weights are all exactly
    /// `+1` or `-1` (a batch normalization after it is kept, not folded in, so
    /// quantization can keep the layer binary; DESIGN section 2).
    pub fn is_binary_layer(&self) -> bool {
        let w = match self {
            Op::Conv(c) => &c.weight,
            Op::Dense(d) => &d.weight,
            _ => return false,
        };
        !w.is_empty() && w.iter().all(|&v| v == 1.0 || v == -1.0)
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

/// Why an op cannot run on inputs of given shapes ([`infer_shape`]).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShapeError {
    #[error("{op} takes {expected} input(s), got {got}")]
    Arity {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{op} needs a [C, H, W] input, got {got}")]
    NotChw { op: &'static str, got: Shape },
    #[error("{op} expects {expected} input channels, got {got}")]
    Channels {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    /// A parameter vector (`what`: weight, bias, scale, shift) of the wrong
    /// length for the op's geometry.
    #[error("{op} {what} has {got} values, its shape needs {expected}")]
    ParamLength {
        op: &'static str,
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{op}: zero kernel, stride or scale")]
    Zero { op: &'static str },
    #[error("window {window} larger than padded input {padded}")]
    WindowTooLarge { window: usize, padded: usize },
    #[error("pool padding must be smaller than the window")]
    PoolPadding,
    #[error("{op}: sizes overflow")]
    Overflow { op: &'static str },
    #[error(
        "conv-transpose: empty input or kernel, output too large, or pads remove the whole output"
    )]
    PadsRemoveOutput,
    #[error("dense expects a [{expected}] input, got {got}")]
    DenseInput { expected: usize, got: Shape },
    /// Inputs whose shapes must agree (add: all dims, concat: all but channels).
    #[error("{op} of mismatched shapes {a} and {b}")]
    Mismatch {
        op: &'static str,
        a: Shape,
        b: Shape,
    },
    #[error("reshape of {from} into {to}")]
    Reshape { from: Shape, to: Shape },
}

/// A structural problem found by [`Model::validate`]. `node` is the index of
/// the offending node, `name` its name.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidModel {
    #[error("node 0: the first node must be the input")]
    NoInput,
    #[error("the output refers to node {output}, but there are {nodes} nodes")]
    OutputOutOfRange { output: usize, nodes: usize },
    #[error("node {node} ({name}): only node 0 may be an input")]
    ExtraInput { node: usize, name: String },
    #[error("node {node} ({name}): input {input} is not an earlier node")]
    NodeOrder {
        node: usize,
        name: String,
        input: usize,
    },
    #[error("node {node} ({name}): empty shape {shape}")]
    EmptyShape {
        node: usize,
        name: String,
        shape: Shape,
    },
    #[error("node {node} ({name}): {error}")]
    Shape {
        node: usize,
        name: String,
        #[source]
        error: ShapeError,
    },
    #[error("node {node} ({name}): recorded shape {recorded} but the op gives {inferred}")]
    RecordedShape {
        node: usize,
        name: String,
        recorded: Shape,
        inferred: Shape,
    },
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
        if self.nodes.is_empty() || self.nodes[0].op != Op::Input {
            return Err(InvalidModel::NoInput);
        }
        if self.output >= self.nodes.len() {
            return Err(InvalidModel::OutputOutOfRange {
                output: self.output,
                nodes: self.nodes.len(),
            });
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let name = || n.name.clone();
            if i > 0 && n.op == Op::Input {
                return Err(InvalidModel::ExtraInput {
                    node: i,
                    name: name(),
                });
            }
            if let Some(&j) = n.inputs.iter().find(|&&j| j >= i) {
                return Err(InvalidModel::NodeOrder {
                    node: i,
                    name: name(),
                    input: j,
                });
            }
            if n.shape.numel() == 0 {
                return Err(InvalidModel::EmptyShape {
                    node: i,
                    name: name(),
                    shape: n.shape.clone(),
                });
            }
            let ins: Vec<&Shape> = n.inputs.iter().map(|&j| &self.nodes[j].shape).collect();
            let want = infer_shape(&n.op, &ins, &n.shape).map_err(|error| InvalidModel::Shape {
                node: i,
                name: name(),
                error,
            })?;
            if want != n.shape {
                return Err(InvalidModel::RecordedShape {
                    node: i,
                    name: name(),
                    recorded: n.shape.clone(),
                    inferred: want,
                });
            }
        }
        Ok(())
    }
}

fn spatial(s: &Shape, op: &'static str) -> Result<(usize, usize, usize), ShapeError> {
    match s.dims() {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(ShapeError::NotChw { op, got: s.clone() }),
    }
}

fn window_out(
    op: &'static str,
    len: usize,
    pad_a: usize,
    pad_b: usize,
    k: usize,
    stride: usize,
) -> Result<usize, ShapeError> {
    if stride == 0 || k == 0 {
        return Err(ShapeError::Zero { op });
    }
    blindfold_core::geom::window_count(len, k, stride, pad_a, pad_b).ok_or(
        ShapeError::WindowTooLarge {
            window: k,
            padded: len.saturating_add(pad_a).saturating_add(pad_b),
        },
    )
}

/// `a * b * ...` or an overflow error for `op`.
fn product(op: &'static str, v: &[usize]) -> Result<usize, ShapeError> {
    v.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or(ShapeError::Overflow { op })
}

/// `got == expected` for parameter `what` of `op`.
fn param_len(
    op: &'static str,
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), ShapeError> {
    if expected == got {
        Ok(())
    } else {
        Err(ShapeError::ParamLength {
            op,
            what,
            expected,
            got,
        })
    }
}

/// The output shape of `op` on inputs of shapes `ins`. `recorded` is the node's
/// own shape, used only by [`Op::Reshape`] (whose target is data, not an input).
pub fn infer_shape(op: &Op, ins: &[&Shape], recorded: &Shape) -> Result<Shape, ShapeError> {
    let arity = match op {
        Op::Input => 0,
        Op::Add => 2,
        Op::Concat => usize::MAX,
        _ => 1,
    };
    if arity != usize::MAX && ins.len() != arity {
        return Err(ShapeError::Arity {
            op: op.kind(),
            expected: arity,
            got: ins.len(),
        });
    }
    let kind = op.kind();
    match op {
        Op::Input => Ok(recorded.clone()),
        Op::Conv(c) => {
            let (ci, h, w) = spatial(ins[0], kind)?;
            if ci != c.c_in {
                return Err(ShapeError::Channels {
                    op: kind,
                    expected: c.c_in,
                    got: ci,
                });
            }
            let nw = product(kind, &[c.c_out, c.c_in, c.kh, c.kw])?;
            param_len(kind, "weight", nw, c.weight.len())?;
            param_len(kind, "bias", c.c_out, c.bias.len())?;
            let oh = window_out(kind, h, c.pads[0], c.pads[2], c.kh, c.stride[0])?;
            let ow = window_out(kind, w, c.pads[1], c.pads[3], c.kw, c.stride[1])?;
            Ok(Shape::new([c.c_out, oh, ow]))
        }
        Op::ConvTranspose(c) => {
            let (ci, h, w) = spatial(ins[0], kind)?;
            if ci != c.c_in {
                return Err(ShapeError::Channels {
                    op: kind,
                    expected: c.c_in,
                    got: ci,
                });
            }
            let nw = product(kind, &[c.c_out, c.c_in, c.kh, c.kw])?;
            param_len(kind, "weight", nw, c.weight.len())?;
            param_len(kind, "bias", c.c_out, c.bias.len())?;
            if c.stride[0] == 0 || c.stride[1] == 0 {
                return Err(ShapeError::Zero { op: kind });
            }
            let out = |len, s, k, lo, hi, op| {
                blindfold_core::geom::transpose_len(len, k, s, lo, hi, op)
                    .ok_or(ShapeError::PadsRemoveOutput)
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
                return Err(ShapeError::DenseInput {
                    expected: d.inputs,
                    got: ins[0].clone(),
                });
            }
            let nw = product(kind, &[d.inputs, d.outputs])?;
            param_len(kind, "weight", nw, d.weight.len())?;
            param_len(kind, "bias", d.outputs, d.bias.len())?;
            Ok(Shape::new([d.outputs]))
        }
        Op::ChannelAffine(a) => {
            let ch = ins[0].dims().first().copied().unwrap_or(0);
            param_len(kind, "scale", ch, a.scale.len())?;
            param_len(kind, "shift", ch, a.shift.len())?;
            Ok(ins[0].clone())
        }
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(ShapeError::Mismatch {
                    op: kind,
                    a: ins[0].clone(),
                    b: ins[1].clone(),
                });
            }
            Ok(ins[0].clone())
        }
        Op::Relu | Op::Square | Op::Sign => Ok(ins[0].clone()),
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let (c, h, w) = spatial(ins[0], kind)?;
            if p.pads[0] >= p.kernel[0]
                || p.pads[2] >= p.kernel[0]
                || p.pads[1] >= p.kernel[1]
                || p.pads[3] >= p.kernel[1]
            {
                return Err(ShapeError::PoolPadding);
            }
            let oh = window_out(kind, h, p.pads[0], p.pads[2], p.kernel[0], p.stride[0])?;
            let ow = window_out(kind, w, p.pads[1], p.pads[3], p.kernel[1], p.stride[1])?;
            Ok(Shape::new([c, oh, ow]))
        }
        Op::Reshape => {
            if recorded.numel() != ins[0].numel() {
                return Err(ShapeError::Reshape {
                    from: ins[0].clone(),
                    to: recorded.clone(),
                });
            }
            Ok(recorded.clone())
        }
        Op::Concat => {
            let first = ins.first().ok_or(ShapeError::Arity {
                op: kind,
                expected: 1,
                got: 0,
            })?;
            let rest = first.dims().get(1..).unwrap_or(&[]);
            let mut ch = 0usize;
            for s in ins {
                if s.rank() == 0 || &s.dims()[1..] != rest {
                    return Err(ShapeError::Mismatch {
                        op: kind,
                        a: (*first).clone(),
                        b: (*s).clone(),
                    });
                }
                ch = ch
                    .checked_add(s.dims()[0])
                    .ok_or(ShapeError::Overflow { op: kind })?;
            }
            let mut d = vec![ch];
            d.extend_from_slice(rest);
            Ok(Shape::new(d))
        }
        Op::ResizeNearest { scale } => {
            let (c, h, w) = spatial(ins[0], kind)?;
            if scale[0] == 0 || scale[1] == 0 {
                return Err(ShapeError::Zero { op: kind });
            }
            let oh = product(kind, &[h, scale[0]])?;
            let ow = product(kind, &[w, scale[1]])?;
            Ok(Shape::new([c, oh, ow]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense_model(weight_len: usize) -> Model {
        let input = Node {
            name: "x".into(),
            op: Op::Input,
            inputs: vec![],
            shape: Shape::new([3]),
        };
        let dense = Node {
            name: "fc".into(),
            op: Op::Dense(Dense {
                weight: vec![0.0; weight_len],
                inputs: 3,
                outputs: 2,
                bias: vec![0.0; 2],
            }),
            inputs: vec![0],
            shape: Shape::new([2]),
        };
        Model {
            name: "m".into(),
            nodes: vec![input, dense],
            output: 1,
            final_activation: None,
        }
    }

    #[test]
    fn validate_names_the_problem() {
        assert_eq!(dense_model(6).validate(), Ok(()));
        assert_eq!(
            dense_model(5).validate(),
            Err(InvalidModel::Shape {
                node: 1,
                name: "fc".into(),
                error: ShapeError::ParamLength {
                    op: "dense",
                    what: "weight",
                    expected: 6,
                    got: 5
                }
            })
        );
        let mut m = dense_model(6);
        m.nodes[1].inputs = vec![1];
        assert!(matches!(
            m.validate(),
            Err(InvalidModel::NodeOrder {
                node: 1,
                input: 1,
                ..
            })
        ));
        let mut m = dense_model(6);
        m.nodes[1].shape = Shape::new([3]);
        assert!(matches!(
            m.validate(),
            Err(InvalidModel::RecordedShape { node: 1, .. })
        ));
        let mut m = dense_model(6);
        m.output = 7;
        assert_eq!(
            m.validate(),
            Err(InvalidModel::OutputOutOfRange {
                output: 7,
                nodes: 2
            })
        );
        let mut m = dense_model(6);
        m.nodes.remove(0);
        assert_eq!(m.validate(), Err(InvalidModel::NoInput));
    }

    #[test]
    fn infer_shape_errors() {
        let chw = Shape::new([2, 4, 4]);
        let flat = Shape::new([32]);
        assert!(matches!(
            infer_shape(&Op::Relu, &[&chw, &chw], &Shape::default()),
            Err(ShapeError::Arity {
                expected: 1,
                got: 2,
                ..
            })
        ));
        let pool = Pool {
            kernel: [2, 2],
            stride: [2, 2],
            pads: [0; 4],
        };
        assert_eq!(
            infer_shape(&Op::MaxPool(pool.clone()), &[&chw], &Shape::default()),
            Ok(Shape::new([2, 2, 2]))
        );
        assert!(matches!(
            infer_shape(&Op::MaxPool(pool), &[&flat], &Shape::default()),
            Err(ShapeError::NotChw { op: "maxpool", .. })
        ));
        assert!(matches!(
            infer_shape(&Op::Add, &[&chw, &flat], &Shape::default()),
            Err(ShapeError::Mismatch { op: "add", .. })
        ));
        assert!(matches!(
            infer_shape(&Op::Reshape, &[&chw], &Shape::new([31])),
            Err(ShapeError::Reshape { .. })
        ));
        assert!(matches!(
            infer_shape(
                &Op::ResizeNearest {
                    scale: [usize::MAX, 1]
                },
                &[&chw],
                &Shape::default()
            ),
            Err(ShapeError::Overflow { .. })
        ));
    }
}
