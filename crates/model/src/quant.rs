//! Quantization to `Z_2^64` fixed point (DESIGN section 2) and the fixed-point
//! program every engine executes.
//!
//! Every value carries a scale: `f` or `2f` fractional bits. The rules:
//!
//! * a linear layer (conv, dense, transposed conv, channel affine) takes scale `f`
//!   and produces `2f`: weights are encoded at `f`, biases at `2f`;
//! * ReLU and max-pool are garbled circuits, so a `2f` input is truncated inside
//!   the circuit exactly (arithmetic shift) and the output has scale `f`;
//!   a ReLU directly after a max-pool (or before it: `relu∘max = max∘relu`) is
//!   fused into one circuit;
//! * square takes `f` and produces `2f` (Beaver pair); every other place that needs
//!   `f` but holds `2f` gets an explicit [`QOp::Trunc`] — local share truncation in
//!   the secure engines, exact `floor` here;
//! * average pooling is a sum; its `1/k²` is folded into the weights of the next
//!   linear layer when the pooled value feeds exactly one (through reshapes), and
//!   otherwise becomes a [`QOp::MulPublic`] by `round(2^f / k²)`;
//! * sign outputs `±1` at scale `f` (`±2^f`);
//! * the output keeps its scale (`2f` after a final linear layer): the client
//!   decodes it with [`QModel::output_frac`].

use crate::ir::{FinalActivation, Model, Op, Pool, ValueId};
use crate::kernels::{ConvGeom, ConvTransposeGeom, PoolGeom};
use blindfold_core::ring::encode;
use blindfold_core::{FracBits, Shape};
use serde::{Deserialize, Serialize};

/// An operation of the fixed-point program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QOp {
    Input,
    /// Conv; weight at `f`, bias at `2f`.
    Conv {
        geom: ConvGeomSer,
        weight: Vec<u64>,
        bias: Vec<u64>,
    },
    ConvTranspose {
        geom: ConvTransposeGeomSer,
        weight: Vec<u64>,
        bias: Vec<u64>,
    },
    Dense {
        inputs: usize,
        outputs: usize,
        weight: Vec<u64>,
        bias: Vec<u64>,
    },
    ChannelAffine {
        scale: Vec<u64>,
        shift: Vec<u64>,
    },
    /// Multiplication by a public fixed-point constant (scale `+f`).
    MulPublic {
        factor: u64,
    },
    Add,
    /// `relu(x >>a f)` when `trunc`, else `relu(x)`. Garbled circuit.
    Relu {
        trunc: bool,
    },
    /// Max over windows, then optionally ReLU, then optionally `>>a f`. Garbled circuit.
    MaxPool {
        pool: Pool,
        relu: bool,
        trunc: bool,
    },
    /// `x * x` (Beaver pair); scale `f` in, `2f` out.
    Square,
    /// Local truncation by `f` (secure engines: SecureML share truncation).
    Trunc,
    /// `±2^f`: `+` where `x >= 0`. Garbled circuit.
    Sign,
    /// Window sums (average pooling without the division).
    SumPool {
        pool: Pool,
    },
    Reshape,
    Concat,
    ResizeNearest {
        scale: [usize; 2],
    },
}

impl QOp {
    pub fn kind(&self) -> &'static str {
        match self {
            QOp::Input => "input",
            QOp::Conv { .. } => "conv",
            QOp::ConvTranspose { .. } => "conv-transpose",
            QOp::Dense { .. } => "dense",
            QOp::ChannelAffine { .. } => "channel-affine",
            QOp::MulPublic { .. } => "mul-public",
            QOp::Add => "add",
            QOp::Relu { trunc: true } => "relu+trunc",
            QOp::Relu { trunc: false } => "relu",
            QOp::MaxPool { relu: true, .. } => "maxpool+relu",
            QOp::MaxPool { .. } => "maxpool",
            QOp::Square => "square",
            QOp::Trunc => "trunc",
            QOp::Sign => "sign",
            QOp::SumPool { .. } => "sumpool",
            QOp::Reshape => "reshape",
            QOp::Concat => "concat",
            QOp::ResizeNearest { .. } => "resize-nearest",
        }
    }

    /// How the two-party engine computes this op.
    pub fn protocol(&self) -> &'static str {
        match self {
            QOp::Input => "secret-shared input",
            QOp::Conv { .. }
            | QOp::ConvTranspose { .. }
            | QOp::Dense { .. }
            | QOp::ChannelAffine { .. } => "HE-preprocessed bilinear (1 round)",
            QOp::MulPublic { .. } | QOp::Add | QOp::SumPool { .. } => "local on shares",
            QOp::Reshape | QOp::Concat | QOp::ResizeNearest { .. } => "local (data movement)",
            QOp::Relu { .. } | QOp::MaxPool { .. } | QOp::Sign => "garbled circuit",
            QOp::Square => "Beaver square (OT-preprocessed)",
            QOp::Trunc => "local share truncation",
        }
    }
}

/// Serializable copy of [`ConvGeom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeomSer {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pads: [usize; 4],
}

impl From<ConvGeomSer> for ConvGeom {
    fn from(g: ConvGeomSer) -> ConvGeom {
        ConvGeom {
            c_in: g.c_in,
            h: g.h,
            w: g.w,
            c_out: g.c_out,
            kh: g.kh,
            kw: g.kw,
            stride: g.stride,
            pads: g.pads,
        }
    }
}

/// Serializable copy of [`ConvTransposeGeom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvTransposeGeomSer {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pads: [usize; 4],
    pub output_padding: [usize; 2],
}

impl From<ConvTransposeGeomSer> for ConvTransposeGeom {
    fn from(g: ConvTransposeGeomSer) -> ConvTransposeGeom {
        ConvTransposeGeom {
            c_in: g.c_in,
            h: g.h,
            w: g.w,
            c_out: g.c_out,
            kh: g.kh,
            kw: g.kw,
            stride: g.stride,
            pads: g.pads,
            output_padding: g.output_padding,
        }
    }
}

/// A node of the fixed-point program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QNode {
    /// Name of the model node it comes from (generated ops say what they are).
    pub name: String,
    pub op: QOp,
    pub inputs: Vec<ValueId>,
    pub shape: Shape,
    /// Fractional bits of this value (`f` or `2f`).
    pub frac: u32,
}

/// A quantized model: the program the plaintext reference and the secure engines
/// run, bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QModel {
    pub name: String,
    pub frac: u32,
    pub nodes: Vec<QNode>,
    pub output: ValueId,
    pub final_activation: Option<FinalActivation>,
}

impl QModel {
    pub fn frac_bits(&self) -> FracBits {
        FracBits(self.frac)
    }
    pub fn input_shape(&self) -> &Shape {
        &self.nodes[0].shape
    }
    pub fn output_shape(&self) -> &Shape {
        &self.nodes[self.output].shape
    }
    /// Fractional bits of the output values.
    pub fn output_frac(&self) -> FracBits {
        FracBits(self.nodes[self.output].frac)
    }
}

/// Quantization failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    #[error("fractional bits {0} out of range (1..=24)")]
    FracBits(u32),
    #[error("node {name}: {reason}")]
    Unsupported { name: String, reason: String },
}

/// Quantize a validated model with `frac` fractional bits.
pub fn quantize(model: &Model, frac: FracBits) -> Result<QModel, QuantError> {
    let f = frac.0;
    if !(1..=24).contains(&f) {
        return Err(QuantError::FracBits(f));
    }
    let consumers = model.consumers();
    // 1/k² factors to fold into linear layers, and pools that need a public multiply.
    let mut weight_factor = vec![1.0f64; model.nodes.len()];
    let mut pool_needs_mul = vec![false; model.nodes.len()];
    for (i, n) in model.nodes.iter().enumerate() {
        if let Op::AvgPool(p) = &n.op {
            let k2 = (p.kernel[0] * p.kernel[1]) as f64;
            // Follow single-consumer reshapes to a linear layer.
            let mut cur = i;
            let target = loop {
                match consumers[cur].as_slice() {
                    [next] => match &model.nodes[*next].op {
                        Op::Reshape => cur = *next,
                        op if op.is_linear_layer() => break Some(*next),
                        _ => break None,
                    },
                    _ => break None,
                }
            };
            match target {
                Some(t) => weight_factor[t] /= k2,
                None => pool_needs_mul[i] = true,
            }
        }
    }

    let mut b = Builder {
        nodes: Vec::new(),
        f,
    };
    // IR id -> program id.
    let mut map: Vec<ValueId> = vec![usize::MAX; model.nodes.len()];
    // ReLUs already fused into the max-pool before them.
    let mut fused_relu = vec![false; model.nodes.len()];
    // ReLUs deferred into the max-pool after them (relu∘max = max∘relu).
    let deferred_relu: Vec<bool> = model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.op == Op::Relu
                && matches!(consumers[i].as_slice(), [c] if matches!(model.nodes[*c].op, Op::MaxPool(_)))
        })
        .collect();

    for (i, n) in model.nodes.iter().enumerate() {
        if fused_relu[i] {
            continue;
        }
        let ins: Vec<ValueId> = n.inputs.iter().map(|&j| map[j]).collect();
        if deferred_relu[i] {
            map[i] = ins[0];
            continue;
        }
        let wf = weight_factor[i];
        let enc_w =
            |v: &[f32]| -> Vec<u64> { v.iter().map(|&x| encode(x as f64 * wf, frac)).collect() };
        let enc_b = |v: &[f32]| -> Vec<u64> {
            v.iter()
                .map(|&x| encode(x as f64, FracBits(2 * f)))
                .collect()
        };
        let id = match &n.op {
            Op::Input => b.push(n.name.clone(), QOp::Input, vec![], n.shape.clone(), f),
            Op::Conv(c) => {
                let x = b.at_f(ins[0]);
                let s = &b.nodes[x].shape;
                let geom = ConvGeomSer {
                    c_in: c.c_in,
                    h: s.dims()[1],
                    w: s.dims()[2],
                    c_out: c.c_out,
                    kh: c.kh,
                    kw: c.kw,
                    stride: c.stride,
                    pads: c.pads,
                };
                let op = QOp::Conv {
                    geom,
                    weight: enc_w(&c.weight),
                    bias: enc_b(&c.bias),
                };
                b.push(n.name.clone(), op, vec![x], n.shape.clone(), 2 * f)
            }
            Op::ConvTranspose(c) => {
                let x = b.at_f(ins[0]);
                let s = &b.nodes[x].shape;
                let geom = ConvTransposeGeomSer {
                    c_in: c.c_in,
                    h: s.dims()[1],
                    w: s.dims()[2],
                    c_out: c.c_out,
                    kh: c.kh,
                    kw: c.kw,
                    stride: c.stride,
                    pads: c.pads,
                    output_padding: c.output_padding,
                };
                let op = QOp::ConvTranspose {
                    geom,
                    weight: enc_w(&c.weight),
                    bias: enc_b(&c.bias),
                };
                b.push(n.name.clone(), op, vec![x], n.shape.clone(), 2 * f)
            }
            Op::Dense(d) => {
                let x = b.at_f(ins[0]);
                let op = QOp::Dense {
                    inputs: d.inputs,
                    outputs: d.outputs,
                    weight: enc_w(&d.weight),
                    bias: enc_b(&d.bias),
                };
                b.push(n.name.clone(), op, vec![x], n.shape.clone(), 2 * f)
            }
            Op::ChannelAffine(a) => {
                let x = b.at_f(ins[0]);
                let op = QOp::ChannelAffine {
                    scale: enc_w(&a.scale),
                    shift: enc_b(&a.shift),
                };
                b.push(n.name.clone(), op, vec![x], n.shape.clone(), 2 * f)
            }
            Op::Add => {
                let (x, y) = b.same_scale(ins[0], ins[1]);
                let fr = b.nodes[x].frac;
                b.push(n.name.clone(), QOp::Add, vec![x, y], n.shape.clone(), fr)
            }
            Op::Relu => {
                let x = ins[0];
                let trunc = b.nodes[x].frac == 2 * f;
                b.push(
                    n.name.clone(),
                    QOp::Relu { trunc },
                    vec![x],
                    n.shape.clone(),
                    f,
                )
            }
            Op::MaxPool(p) => {
                let x = ins[0];
                let trunc = b.nodes[x].frac == 2 * f;
                // Fuse a following ReLU that is the pool's only consumer, or a
                // preceding one whose only consumer is this pool.
                let relu_before = deferred_relu[n.inputs[0]];
                let relu_next = match consumers[i].as_slice() {
                    [c] if !relu_before && model.nodes[*c].op == Op::Relu => Some(*c),
                    _ => None,
                };
                let op = QOp::MaxPool {
                    pool: p.clone(),
                    relu: relu_before || relu_next.is_some(),
                    trunc,
                };
                let id = b.push(n.name.clone(), op, vec![x], n.shape.clone(), f);
                if let Some(c) = relu_next {
                    fused_relu[c] = true;
                    map[c] = id;
                }
                id
            }
            Op::Square => {
                let x = b.at_f(ins[0]);
                b.push(n.name.clone(), QOp::Square, vec![x], n.shape.clone(), 2 * f)
            }
            Op::Sign => b.push(n.name.clone(), QOp::Sign, vec![ins[0]], n.shape.clone(), f),
            Op::AvgPool(p) => {
                let x = ins[0];
                let fr = b.nodes[x].frac;
                let id = b.push(
                    n.name.clone(),
                    QOp::SumPool { pool: p.clone() },
                    vec![x],
                    n.shape.clone(),
                    fr,
                );
                if pool_needs_mul[i] {
                    let y = b.at_f(id);
                    let k2 = (p.kernel[0] * p.kernel[1]) as f64;
                    b.push(
                        format!("{}/scale", n.name),
                        QOp::MulPublic {
                            factor: encode(1.0 / k2, frac),
                        },
                        vec![y],
                        n.shape.clone(),
                        2 * f,
                    )
                } else {
                    id
                }
            }
            Op::Reshape => {
                let fr = b.nodes[ins[0]].frac;
                b.push(n.name.clone(), QOp::Reshape, ins, n.shape.clone(), fr)
            }
            Op::Concat => {
                let want_f = ins.iter().any(|&x| b.nodes[x].frac != b.nodes[ins[0]].frac);
                let xs: Vec<ValueId> = if want_f {
                    ins.iter().map(|&x| b.at_f(x)).collect()
                } else {
                    ins
                };
                let fr = b.nodes[xs[0]].frac;
                b.push(n.name.clone(), QOp::Concat, xs, n.shape.clone(), fr)
            }
            Op::ResizeNearest { scale } => {
                let fr = b.nodes[ins[0]].frac;
                b.push(
                    n.name.clone(),
                    QOp::ResizeNearest { scale: *scale },
                    ins,
                    n.shape.clone(),
                    fr,
                )
            }
        };
        map[i] = id;
    }
    Ok(QModel {
        name: model.name.clone(),
        frac: f,
        output: map[model.output],
        nodes: b.nodes,
        final_activation: model.final_activation,
    })
}

struct Builder {
    nodes: Vec<QNode>,
    f: u32,
}

impl Builder {
    fn push(
        &mut self,
        name: String,
        op: QOp,
        inputs: Vec<ValueId>,
        shape: Shape,
        frac: u32,
    ) -> ValueId {
        self.nodes.push(QNode {
            name,
            op,
            inputs,
            shape,
            frac,
        });
        self.nodes.len() - 1
    }

    /// `x` at scale `f`, inserting a truncation if it is at `2f`.
    fn at_f(&mut self, x: ValueId) -> ValueId {
        if self.nodes[x].frac == self.f {
            return x;
        }
        // Reuse an existing truncation of the same value.
        if let Some(t) = self
            .nodes
            .iter()
            .position(|n| n.op == QOp::Trunc && n.inputs == [x])
        {
            return t;
        }
        let name = format!("{}/trunc", self.nodes[x].name);
        let shape = self.nodes[x].shape.clone();
        let f = self.f;
        self.push(name, QOp::Trunc, vec![x], shape, f)
    }

    fn same_scale(&mut self, x: ValueId, y: ValueId) -> (ValueId, ValueId) {
        if self.nodes[x].frac == self.nodes[y].frac {
            (x, y)
        } else {
            (self.at_f(x), self.at_f(y))
        }
    }
}

/// Geometry helpers for engines.
impl QOp {
    pub fn pool_geom(pool: &Pool, in_shape: &Shape) -> PoolGeom {
        let d = in_shape.dims();
        PoolGeom {
            c: d[0],
            h: d[1],
            w: d[2],
            kernel: pool.kernel,
            stride: pool.stride,
            pads: pool.pads,
        }
    }
}
