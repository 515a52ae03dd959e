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
//!   `f` but holds `2f` gets an explicit [`QOp::Trunc`] — exact `floor` here and
//!   in the secure engines (a garbled borrow circuit on the local shares);
//! * an add or concat of a `2f` and an `f` value that flows (through reshapes,
//!   resizes, adds and concats) into a garbled circuit or the output does not
//!   truncate its `2f` input: it lifts the `f` input to `2f` with an exact public
//!   multiply by `2^f` ([`QOp::MulPublic`]), so the circuit that follows shifts
//!   the sum exactly (`floor((a + b·2^f) / 2^f) = floor(a / 2^f) + b`, the same
//!   value) and no stand-alone truncation (a garbled circuit and a round trip of
//!   its own) is spent before it. An add lifts when any consumer path gets there
//!   (lifting never adds a truncation: the sum is truncated once where `f` is
//!   needed, instead of the addend); a concat only when every path does (a
//!   truncated concat would cost more elements than its `2f` parts);
//! * average pooling is a sum; its `1/k²` is folded into the weights of the next
//!   linear layer when the pooled value feeds exactly one (through reshapes), and
//!   otherwise becomes a [`QOp::MulPublic`] by `round(2^f / k²)`;
//! * sign outputs `±1` at scale `f` (`±2^f`);
//! * a binarized layer (conv or dense, every weight exactly `±1`; the importer
//!   leaves its batch normalization unfolded) keeps integer `±1` weights, so its
//!   output keeps its input's scale `f`. A batch normalization after it whose
//!   every consumer is a sign becomes MOBIUS's integer one, `s' = floor(q·s)`,
//!   `t' = floor(q·t)`, `sign(s'·c + t'·2^f)` ([`QuantConfig::bn_scale`] `= q`),
//!   fused into the layer as a threshold ([`BnSign::Threshold`]: rows with
//!   `s' < 0` negated, `-ceil(-t'·2^f / s')` as the bias, clamped to the bound of
//!   `|W·x|` when the input is a sign, which lets the sign circuit read only the
//!   low bits, [`QOp::Sign`]'s `width`) or as `s'·W`, `s'·b + t'·2^f`
//!   ([`BnSign::Affine`]); both give the same signs. Any other batch
//!   normalization after it folds into a binarized conv in fixed point (the
//!   conv is then no longer binary; output `2f`) and stays a fixed-point
//!   channel affine map after a binarized dense layer (whose products can run
//!   on OTs);
//! * the output keeps its scale (`2f` after a final linear layer): the client
//!   decodes it with [`QModel::output_frac`].

use crate::ir::{ChannelAffine, FinalActivation, Model, Op, Pool, ValueId};
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
        geom: ConvGeom,
        weight: Vec<u64>,
        bias: Vec<u64>,
    },
    ConvTranspose {
        geom: ConvTransposeGeom,
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
    /// Exact truncation by `f`: `x >>a f` (secure engines: SecureML share
    /// truncation corrected by a garbled borrow of the low bits).
    Trunc,
    /// `±2^f`: `+` where `x >= 0`, `x` read as a signed `width`-bit number
    /// (its low `width` bits, sign-extended; 64 = the whole ring element).
    /// Quantization sets `width < 64` only where the program's structure bounds
    /// the input (a binarized layer on signs, its threshold clamped), so the
    /// garbled circuit reads only the low `width` bits of each share. Garbled circuit.
    Sign {
        width: u32,
    },
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
            QOp::Sign { .. } => "sign",
            QOp::SumPool { .. } => "sumpool",
            QOp::Reshape => "reshape",
            QOp::Concat => "concat",
            QOp::ResizeNearest { .. } => "resize-nearest",
        }
    }

    /// This op's secret parameters, if it carries any.
    ///
    /// The one place that says which fields of an op are secret: splitting into
    /// shares, recombining, fingerprinting the public architecture, counting
    /// parameters and encoding weights for homomorphic products all go through
    /// it. The match is exhaustive on purpose: a new op fails to compile here
    /// until its author says whether it carries secrets.
    pub fn secrets(&self) -> Option<Secrets<'_>> {
        match self {
            QOp::Conv { weight, bias, .. }
            | QOp::ConvTranspose { weight, bias, .. }
            | QOp::Dense { weight, bias, .. } => Some(Secrets { weight, bias }),
            QOp::ChannelAffine { scale, shift } => Some(Secrets {
                weight: scale,
                bias: shift,
            }),
            QOp::Input
            | QOp::MulPublic { .. }
            | QOp::Add
            | QOp::Relu { .. }
            | QOp::MaxPool { .. }
            | QOp::Square
            | QOp::Trunc
            | QOp::Sign { .. }
            | QOp::SumPool { .. }
            | QOp::Reshape
            | QOp::Concat
            | QOp::ResizeNearest { .. } => None,
        }
    }

    /// [`Self::secrets`], mutably (same exhaustive match).
    pub fn secrets_mut(&mut self) -> Option<SecretsMut<'_>> {
        match self {
            QOp::Conv { weight, bias, .. }
            | QOp::ConvTranspose { weight, bias, .. }
            | QOp::Dense { weight, bias, .. } => Some(SecretsMut { weight, bias }),
            QOp::ChannelAffine { scale, shift } => Some(SecretsMut {
                weight: scale,
                bias: shift,
            }),
            QOp::Input
            | QOp::MulPublic { .. }
            | QOp::Add
            | QOp::Relu { .. }
            | QOp::MaxPool { .. }
            | QOp::Square
            | QOp::Trunc
            | QOp::Sign { .. }
            | QOp::SumPool { .. }
            | QOp::Reshape
            | QOp::Concat
            | QOp::ResizeNearest { .. } => None,
        }
    }
}

/// The secret parameters of one op: a multiplicative part (weights, a channel
/// scale) and an additive part (bias, shift). Public constants (the average-pool
/// factor of [`QOp::MulPublic`]) are architecture, not secrets.
#[derive(Clone, Copy, Debug)]
pub struct Secrets<'a> {
    pub weight: &'a [u64],
    pub bias: &'a [u64],
}

impl Secrets<'_> {
    /// Number of secret ring elements.
    pub fn len(&self) -> usize {
        self.weight.len() + self.bias.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Mutable access to an op's secret parameters.
#[derive(Debug)]
pub struct SecretsMut<'a> {
    pub weight: &'a mut Vec<u64>,
    pub bias: &'a mut Vec<u64>,
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
    pub frac: FracBits,
}

/// A quantized model: the program the plaintext reference and the secure engines
/// run, bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QModel {
    pub name: String,
    pub frac: FracBits,
    pub nodes: Vec<QNode>,
    pub output: ValueId,
    pub final_activation: Option<FinalActivation>,
    /// Binarized layers (conv or dense nodes whose weights are all `±1`, in
    /// increasing order): public architecture, like the layer sizes.
    pub binary_layers: Vec<ValueId>,
    /// How the secure engines multiply by the binarized dense layers.
    pub binary_products: BinaryProducts,
    /// How the secure engines compute comparisons (ReLU, max-pool, sign,
    /// truncation): the plan's choice, recorded so both servers make the same.
    pub nonlinear: NonLinear,
}

/// Garbled circuits or OT-based comparisons for the non-linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NonLinear {
    /// Per layer, whichever the planner prices cheaper on the declared link
    /// (bytes at its rate plus one-way latencies, plus CPU).
    Auto(blindfold_core::LinkSpec),
    /// Garbled circuits (half-gates), a constant number of rounds per layer.
    Gc,
    /// Millionaires' comparisons on silent OT where a protocol exists (ReLU,
    /// max-pool, sign, truncation); garbled circuits for the rest (argmax,
    /// threshold sign).
    Ot,
}

impl NonLinear {
    /// The default: auto on a data-centre link.
    pub const DEFAULT: NonLinear = NonLinear::Auto(blindfold_core::LinkSpec::LAN);

    pub fn name(self) -> String {
        match self {
            NonLinear::Auto(l) => format!("auto ({l})"),
            NonLinear::Gc => "gc".into(),
            NonLinear::Ot => "ot".into(),
        }
    }
}

/// How two servers compute a binarized dense layer's cross terms (DESIGN
/// section 7; the plan's choice, recorded in the program so both servers make
/// the same one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryProducts {
    /// Per layer, whichever the planner's cost model (bytes, plus CPU at
    /// 1 ms = 50 kB) finds cheaper.
    Auto,
    /// Homomorphic preprocessing, as for any integer matrix.
    He,
    /// Correlated oblivious transfers on the weights' sign bits: one OT per
    /// weight and direction.
    Ot,
}

impl BinaryProducts {
    pub fn name(self) -> &'static str {
        match self {
            BinaryProducts::Auto => "auto",
            BinaryProducts::He => "he",
            BinaryProducts::Ot => "ot",
        }
    }
}

impl QModel {
    pub fn frac_bits(&self) -> FracBits {
        self.frac
    }
    pub fn input_shape(&self) -> &Shape {
        &self.nodes[0].shape
    }
    pub fn output_shape(&self) -> &Shape {
        &self.nodes[self.output].shape
    }
    /// Fractional bits of the output values.
    pub fn output_frac(&self) -> FracBits {
        self.nodes[self.output].frac
    }
}

/// Quantization failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    #[error("fractional bits {0} out of range (1..=24)")]
    FracBits(u32),
    #[error("batch-normalization scale {0} out of range (1..=2^30)")]
    BnScale(u64),
    #[error("node {name}: {reason}")]
    Unsupported { name: String, reason: String },
}

/// A node of a program, for [`ProgramError`]: its index and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAt {
    pub node: usize,
    pub name: String,
}

impl std::fmt::Display for NodeAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} ({})", self.node, self.name)
    }
}

/// An inconsistent program, found by [`QModel::validate`].
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgramError {
    #[error("fractional bits {frac} out of range")]
    FracBits { frac: u32 },
    #[error("the first node must be the input")]
    NoInput,
    #[error("the binarized layers are not increasing conv or dense nodes")]
    BinaryLayers,
    #[error("the output refers to node {output}, but there are {nodes} nodes")]
    OutputOutOfRange { output: usize, nodes: usize },
    #[error("{at}: {kind}")]
    Node { at: NodeAt, kind: ProgramErrorKind },
}

impl ProgramError {
    /// The node at fault, if the error is about one.
    pub fn node(&self) -> Option<&NodeAt> {
        match self {
            ProgramError::Node { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// What is wrong with one node of a program ([`ProgramError::Node`]).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgramErrorKind {
    #[error("shape {shape} empty or larger than {limit} elements")]
    ShapeSize { shape: Shape, limit: usize },
    #[error("scale {frac} is neither f nor 2f (f = {f})")]
    Scale { frac: u32, f: u32 },
    #[error("only node 0 may be an input")]
    ExtraInput,
    #[error("input {input} is not an earlier node")]
    NodeOrder { input: usize },
    #[error("expects {expected} inputs, has {got}")]
    Arity { expected: usize, got: usize },
    #[error("a geometry value exceeds {limit}")]
    GeometryBound { limit: usize },
    #[error("needs a [C, H, W] input, got {got:?}")]
    NotChw { got: Vec<usize> },
    /// Kernel, stride, padding or scale inconsistent with the input.
    #[error("{reason}")]
    Geometry { reason: &'static str },
    /// A weight, bias or coefficient vector of the wrong length.
    #[error("{what} has {got} values, the geometry needs {expected}")]
    ParamLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Inputs that must agree (shapes, scales) do not.
    #[error("{reason}")]
    Mismatch { reason: &'static str },
    #[error("recorded shape {recorded} but the op gives {inferred:?}")]
    Shape {
        recorded: Shape,
        inferred: Vec<usize>,
    },
}

/// How a batch normalization after a binarized layer becomes integers when a
/// sign follows it (MOBIUS): `s' = floor(q·s)`, `t' = floor(q·t)`, and
/// `sign(s'·c + t'·2^f)` for the layer's output `c` at scale `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BnSign {
    /// The sign as a threshold test, `c >= ceil(-t'·2^f / s')` (the row's
    /// weights negated when `s' < 0`), folded into the layer's bias: no
    /// multiplication, and values bounded by the layer's fan-in, so the sign
    /// circuit reads only a few low bits. The default.
    Threshold,
    /// `s'·c + t'·2^f` computed as it stands (`s'` folded into the weights), then
    /// its sign over the whole ring element.
    Affine,
}

impl BnSign {
    pub fn name(self) -> &'static str {
        match self {
            BnSign::Threshold => "threshold",
            BnSign::Affine => "affine",
        }
    }
}

/// Quantization settings: fractional bits, and the integer batch
/// normalization of binarized networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantConfig {
    pub frac: FracBits,
    /// `q` of the integer batch normalization (`s' = floor(q·s)`).
    pub bn_scale: u64,
    pub bn_sign: BnSign,
    pub binary_products: BinaryProducts,
    pub nonlinear: NonLinear,
}

impl QuantConfig {
    /// MOBIUS's `q`.
    pub const DEFAULT_BN_SCALE: u64 = 10_000;
    /// Largest accepted `q` (the integer parameters stay far inside 63 bits).
    pub const MAX_BN_SCALE: u64 = 1 << 30;

    pub fn new(frac: FracBits) -> QuantConfig {
        QuantConfig {
            frac,
            bn_scale: Self::DEFAULT_BN_SCALE,
            bn_sign: BnSign::Threshold,
            binary_products: BinaryProducts::Auto,
            nonlinear: NonLinear::DEFAULT,
        }
    }
}

/// Quantize a validated model with `frac` fractional bits (and the default
/// integer batch normalization for binarized layers).
pub fn quantize(model: &Model, frac: FracBits) -> Result<QModel, QuantError> {
    quantize_with(model, &QuantConfig::new(frac))
}

/// Quantize a validated model with the given settings.
pub fn quantize_with(model: &Model, cfg: &QuantConfig) -> Result<QModel, QuantError> {
    let frac = cfg.frac;
    let f = frac.0;
    if !(1..=24).contains(&f) {
        return Err(QuantError::FracBits(f));
    }
    if !(1..=QuantConfig::MAX_BN_SCALE).contains(&cfg.bn_scale) {
        return Err(QuantError::BnScale(cfg.bn_scale));
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

    let sinks = ScaleFreeSinks::of(model, &consumers);

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

    // Binarized layers (weights all ±1, no average-pool factor folded in) and
    // the batch normalization that is their only consumer, fused into them.
    let binary: Vec<bool> = model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| n.op.is_binary_layer() && weight_factor[i] == 1.0)
        .collect();
    // A batch normalization whose every consumer is a sign becomes MOBIUS's
    // integer one, fused into the layer; any other stays a channel affine map.
    let bn_of: Vec<Option<ValueId>> = (0..model.nodes.len())
        .map(|i| match consumers[i].as_slice() {
            [c] if binary[i]
                && matches!(model.nodes[*c].op, Op::ChannelAffine(_))
                && !consumers[*c].is_empty()
                && consumers[*c].iter().all(|&s| model.nodes[s].op == Op::Sign) =>
            {
                Some(*c)
            }
            _ => None,
        })
        .collect();
    // A binarized conv's other batch normalization folds into it in fixed
    // point (a stand-alone one over a feature map would cost 64 OTs per
    // element); a binarized dense layer's stays separate (its ±1 weights keep
    // the OT products; its outputs are few).
    let fold_of: Vec<Option<ValueId>> = (0..model.nodes.len())
        .map(|i| match consumers[i].as_slice() {
            [c] if binary[i]
                && bn_of[i].is_none()
                && matches!(model.nodes[i].op, Op::Conv(_))
                && matches!(model.nodes[*c].op, Op::ChannelAffine(_)) =>
            {
                Some(*c)
            }
            _ => None,
        })
        .collect();
    let mut fused_bn = vec![false; model.nodes.len()];
    // Program values known to lie in `[-bound, bound]` by construction.
    let mut bounded: Vec<Option<i128>> = Vec::new();
    let mut binary_layers = Vec::new();

    for (i, n) in model.nodes.iter().enumerate() {
        if fused_relu[i] || fused_bn[i] {
            continue;
        }
        if binary[i] {
            let x = b.at_f(map[n.inputs[0]]);
            // |input| <= 2^f when it is a sign (through reshapes).
            let mut src = x;
            while b.nodes[src].op == QOp::Reshape {
                src = b.nodes[src].inputs[0];
            }
            let in_bound = matches!(b.nodes[src].op, QOp::Sign { .. }).then_some(1i128 << f);
            let bn = bn_of[i].map(|j| {
                let ChannelAffine { scale, shift } = match &model.nodes[j].op {
                    Op::ChannelAffine(a) => a.clone(),
                    _ => unreachable!("bn_of points at a channel affine"),
                };
                (j, scale, shift)
            });
            let layer = BinaryLayer::of(&n.op, &b.nodes[x].shape);
            let fused = bn.as_ref().map(|b| b.0).or(fold_of[i]);
            let (op, out_frac, name, bound, shape) = match bn {
                None if fold_of[i].is_some() => {
                    let j = fold_of[i].expect("checked");
                    let Op::ChannelAffine(a) = &model.nodes[j].op else {
                        unreachable!("fold_of points at a channel affine")
                    };
                    fused_bn[j] = true;
                    let name = format!("{}+{}", n.name, model.nodes[j].name);
                    let op = layer.encode_fixed_bn(frac, &a.scale, &a.shift);
                    (op, 2 * f, name, None, model.nodes[j].shape.clone())
                }
                None => (layer.encode(frac), f, n.name.clone(), None, n.shape.clone()),
                Some((j, scale, shift)) => {
                    fused_bn[j] = true;
                    let name = format!("{}+{}", n.name, model.nodes[j].name);
                    let shape = model.nodes[j].shape.clone();
                    let bn = IntBn {
                        scale: &scale,
                        shift: &shift,
                        q: cfg.bn_scale,
                        f,
                        form: cfg.bn_sign,
                        in_bound,
                    };
                    let (op, bound) = layer.encode_int_bn(&bn, &name)?;
                    (op, f, name, bound, shape)
                }
            };
            // Binary by construction (not by the values, which under the
            // affine form would say whether every |s'| is 1).
            let still_binary =
                fold_of[i].is_none() && (bn_of[i].is_none() || cfg.bn_sign == BnSign::Threshold);
            let id = b.push(name, op, vec![x], shape, out_frac);
            if still_binary {
                binary_layers.push(id);
            }
            bounded.resize(b.nodes.len(), None);
            bounded[id] = bound;
            map[i] = id;
            if let Some(j) = fused {
                map[j] = id;
            }
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
                let geom = ConvGeom {
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
                let geom = ConvTransposeGeom {
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
                let (x, y) = if sinks.any[i] {
                    b.lift_to_same_scale(ins[0], ins[1])
                } else {
                    b.same_scale(ins[0], ins[1])
                };
                let fr = b.nodes[x].frac.0;
                b.push(n.name.clone(), QOp::Add, vec![x, y], n.shape.clone(), fr)
            }
            Op::Relu => {
                let x = ins[0];
                let trunc = b.nodes[x].frac.0 == 2 * f;
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
                let trunc = b.nodes[x].frac.0 == 2 * f;
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
            Op::Sign => {
                let width = bounded
                    .get(ins[0])
                    .copied()
                    .flatten()
                    .map_or(64, signed_width);
                b.push(
                    n.name.clone(),
                    QOp::Sign { width },
                    vec![ins[0]],
                    n.shape.clone(),
                    f,
                )
            }
            Op::AvgPool(p) => {
                let x = ins[0];
                let fr = b.nodes[x].frac.0;
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
                let fr = b.nodes[ins[0]].frac.0;
                b.push(n.name.clone(), QOp::Reshape, ins, n.shape.clone(), fr)
            }
            Op::Concat => {
                let mixed = ins.iter().any(|&x| b.nodes[x].frac != b.nodes[ins[0]].frac);
                let xs: Vec<ValueId> = if mixed && sinks.all[i] {
                    ins.iter().map(|&x| b.at_2f(x)).collect()
                } else if mixed {
                    ins.iter().map(|&x| b.at_f(x)).collect()
                } else {
                    ins
                };
                let fr = b.nodes[xs[0]].frac.0;
                b.push(n.name.clone(), QOp::Concat, xs, n.shape.clone(), fr)
            }
            Op::ResizeNearest { scale } => {
                let fr = b.nodes[ins[0]].frac.0;
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
        frac,
        output: map[model.output],
        nodes: b.nodes,
        final_activation: model.final_activation,
        binary_layers,
        binary_products: cfg.binary_products,
        nonlinear: cfg.nonlinear,
    })
}

/// Bits of the smallest signed width holding `[-bound, bound]` (at most 64).
fn signed_width(bound: i128) -> u32 {
    (129 - bound.max(1).leading_zeros()).min(64)
}

/// `ceil(a / b)` for `b != 0`.
fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// A batch normalization to turn into integers (see [`BnSign`]).
struct IntBn<'a> {
    scale: &'a [f32],
    shift: &'a [f32],
    q: u64,
    f: u32,
    form: BnSign,
    /// `|x| <= in_bound` for every input element, when the structure says so.
    in_bound: Option<i128>,
}

/// The integer parameters `(s', t'·2^f)` of channel `o` (MOBIUS: `floor(q·s)`,
/// `floor(q·t)`).
fn int_bn_params(bn: &IntBn<'_>, o: usize) -> Option<(i128, i128)> {
    let q = bn.q as f64;
    let (s, t) = (
        (q * bn.scale[o] as f64).floor(),
        (q * bn.shift[o] as f64).floor(),
    );
    const LIMIT: f64 = (1u64 << 40) as f64;
    (s.is_finite() && t.is_finite() && s.abs() < LIMIT && t.abs() < LIMIT)
        .then(|| (s as i128, (t as i128) << bn.f))
}

/// A binarized conv or dense layer being quantized: channel `o`'s weights are
/// `weight[o·fan_in..(o+1)·fan_in]` in both layouts.
struct BinaryLayer<'a> {
    weight: &'a [f32],
    bias: &'a [f32],
    fan_in: usize,
    kind: BinaryKind,
}

enum BinaryKind {
    Dense { inputs: usize, outputs: usize },
    Conv(ConvGeom),
}

impl<'a> BinaryLayer<'a> {
    fn of(op: &'a Op, in_shape: &Shape) -> BinaryLayer<'a> {
        match op {
            Op::Dense(d) => BinaryLayer {
                weight: &d.weight,
                bias: &d.bias,
                fan_in: d.inputs,
                kind: BinaryKind::Dense {
                    inputs: d.inputs,
                    outputs: d.outputs,
                },
            },
            Op::Conv(c) => BinaryLayer {
                weight: &c.weight,
                bias: &c.bias,
                fan_in: c.c_in * c.kh * c.kw,
                kind: BinaryKind::Conv(ConvGeom {
                    c_in: c.c_in,
                    h: in_shape.dims()[1],
                    w: in_shape.dims()[2],
                    c_out: c.c_out,
                    kh: c.kh,
                    kw: c.kw,
                    stride: c.stride,
                    pads: c.pads,
                }),
            },
            _ => unreachable!("only conv and dense layers are binarized"),
        }
    }

    fn op(&self, weight: Vec<u64>, bias: Vec<u64>) -> QOp {
        match self.kind {
            BinaryKind::Dense { inputs, outputs } => QOp::Dense {
                inputs,
                outputs,
                weight,
                bias,
            },
            BinaryKind::Conv(geom) => QOp::Conv { geom, weight, bias },
        }
    }

    /// Channel `o`'s weights times `k` (the binary weights are exactly `±1`).
    fn row_times(&self, o: usize, k: i128, out: &mut Vec<u64>) {
        let row = &self.weight[o * self.fan_in..(o + 1) * self.fan_in];
        out.extend(row.iter().map(|&w| ((w as i128) * k) as i64 as u64));
    }

    /// The layer alone: `±1` weights, the bias at the input's scale `f` (the
    /// output keeps scale `f`; see [`Self::encode_fixed_bn`] and
    /// [`Self::encode_int_bn`] for a batch normalization after it).
    fn encode(&self, frac: FracBits) -> QOp {
        let mut weight = Vec::with_capacity(self.weight.len());
        let mut bias = Vec::with_capacity(self.bias.len());
        for (o, &b) in self.bias.iter().enumerate() {
            self.row_times(o, 1, &mut weight);
            bias.push(encode(b as f64, frac));
        }
        self.op(weight, bias)
    }

    /// The layer followed by a fixed-point batch normalization (scale at `f`,
    /// shift at `2f`) folded in exactly: `s_f·W`, `s_f·b + t`; output at `2f`.
    fn encode_fixed_bn(&self, frac: FracBits, scale: &[f32], shift: &[f32]) -> QOp {
        let mut weight = Vec::with_capacity(self.weight.len());
        let mut bias = Vec::with_capacity(self.bias.len());
        for (o, &b) in self.bias.iter().enumerate() {
            let s_f = encode(scale[o] as f64, frac);
            self.row_times(o, s_f as i64 as i128, &mut weight);
            let t = encode(shift[o] as f64, FracBits(2 * frac.0));
            bias.push(s_f.wrapping_mul(encode(b as f64, frac)).wrapping_add(t));
        }
        self.op(weight, bias)
    }

    /// The layer followed by an integer batch normalization whose sign is taken
    /// ([`BnSign`]); output at scale `f`. Returns the op and, for the threshold
    /// form on bounded inputs, the bound of its output (the threshold clamped
    /// to `[-B, B + 1]` for `|W·x| <= B`, which changes no sign).
    fn encode_int_bn(&self, bn: &IntBn<'_>, name: &str) -> Result<(QOp, Option<i128>), QuantError> {
        let err = |reason: String| QuantError::Unsupported {
            name: name.to_string(),
            reason,
        };
        let (mut weight, mut bias) = (Vec::with_capacity(self.weight.len()), Vec::new());
        let in_bound = bn.in_bound.map(|x| x * self.fan_in as i128);
        const LIMIT: i128 = 1 << 62;
        for (o, &b) in self.bias.iter().enumerate() {
            let (s, t) = int_bn_params(bn, o).ok_or_else(|| {
                err(format!(
                    "batch normalization of channel {o} (scale {}, shift {}) does not fit 40 bits at q = {}",
                    bn.scale[o], bn.shift[o], bn.q
                ))
            })?;
            let b_f = encode(b as f64, FracBits(bn.f)) as i64 as i128;
            match bn.form {
                BnSign::Affine => {
                    self.row_times(o, s, &mut weight);
                    let c = s * b_f + t;
                    if s.abs() * in_bound.unwrap_or(0) + c.abs() >= LIMIT {
                        return Err(err(format!(
                            "the integer batch normalization of channel {o} overflows the ring at q = {}",
                            bn.q
                        )));
                    }
                    bias.push(c as i64 as u64);
                }
                BnSign::Threshold if s == 0 => {
                    // sign(t') for every input: the row stays binary and a
                    // bias beyond |W·x| decides (B + 1, or 2^62 on unbounded
                    // inputs: exact while |W·x| < 2^62).
                    let k = in_bound.map_or(1i128 << 62, |x| x + 1);
                    self.row_times(o, 1, &mut weight);
                    bias.push((if t >= 0 { k } else { -k }) as i64 as u64);
                }
                BnSign::Threshold => {
                    // s' > 0: s'c + T >= 0  <=>  c >= ceil(-T / s');
                    // s' < 0: s'c + T >= 0  <=> -c >= ceil(T / s').
                    let sigma: i128 = if s > 0 { 1 } else { -1 };
                    let theta = if s > 0 {
                        ceil_div(-t, s)
                    } else {
                        ceil_div(t, s)
                    };
                    // sigma·c - theta = sigma·W·x - (theta - sigma·b).
                    let mut th = theta - sigma * b_f;
                    if let Some(x) = in_bound {
                        th = th.clamp(-x, x + 1);
                    } else if th.abs() >= LIMIT {
                        return Err(err(format!(
                            "the threshold of channel {o} overflows the ring at q = {}",
                            bn.q
                        )));
                    }
                    self.row_times(o, sigma, &mut weight);
                    bias.push((-th) as i64 as u64);
                }
            }
        }
        let bound = match bn.form {
            BnSign::Threshold => in_bound.map(|x| 2 * x + 1),
            BnSign::Affine => None,
        };
        Ok((self.op(weight, bias), bound))
    }
}

/// Which IR values end, on some or on every path, where a `2f` value costs no
/// truncation: a garbled circuit (ReLU, max-pool, sign: the circuit shifts
/// exactly) or the program output (it keeps its scale). Paths pass through ops
/// that keep the scale and stay local: reshape, resize, add, concat.
struct ScaleFreeSinks {
    /// Some consumer path of value `i` ends at such a sink.
    any: Vec<bool>,
    /// Every consumer path of value `i` does (and there is one).
    all: Vec<bool>,
}

impl ScaleFreeSinks {
    fn of(model: &Model, consumers: &[Vec<ValueId>]) -> ScaleFreeSinks {
        let n = model.nodes.len();
        let (mut any, mut all) = (vec![false; n], vec![false; n]);
        // Consumers come later in topological order: walk backwards.
        for i in (0..n).rev() {
            let mut a = i == model.output;
            let mut every = true;
            let mut paths = a as usize;
            for &c in &consumers[i] {
                paths += 1;
                match &model.nodes[c].op {
                    Op::Relu | Op::MaxPool(_) | Op::Sign => a = true,
                    Op::Reshape | Op::ResizeNearest { .. } | Op::Add | Op::Concat => {
                        a |= any[c];
                        every &= all[c];
                    }
                    Op::Input
                    | Op::Conv(_)
                    | Op::ConvTranspose(_)
                    | Op::Dense(_)
                    | Op::ChannelAffine(_)
                    | Op::Square
                    | Op::AvgPool(_) => every = false,
                }
            }
            any[i] = a;
            all[i] = every && paths > 0;
        }
        ScaleFreeSinks { any, all }
    }
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
            frac: FracBits(frac),
        });
        self.nodes.len() - 1
    }

    /// `x` at scale `f`, inserting a truncation if it is at `2f`.
    fn at_f(&mut self, x: ValueId) -> ValueId {
        if self.nodes[x].frac.0 == self.f {
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

    /// `x` at scale `2f`, lifting an `f` value by an exact public multiply by
    /// `2^f` (reusing an existing lift of the same value).
    fn at_2f(&mut self, x: ValueId) -> ValueId {
        if self.nodes[x].frac.0 == 2 * self.f {
            return x;
        }
        let lift = QOp::MulPublic {
            factor: 1u64 << self.f,
        };
        if let Some(t) = self
            .nodes
            .iter()
            .position(|n| n.op == lift && n.inputs == [x])
        {
            return t;
        }
        let name = format!("{}/lift", self.nodes[x].name);
        let shape = self.nodes[x].shape.clone();
        let f2 = 2 * self.f;
        self.push(name, lift, vec![x], shape, f2)
    }

    /// Both at `2f` if their scales differ (the `f` one lifted), else unchanged.
    fn lift_to_same_scale(&mut self, x: ValueId, y: ValueId) -> (ValueId, ValueId) {
        if self.nodes[x].frac == self.nodes[y].frac {
            (x, y)
        } else {
            (self.at_2f(x), self.at_2f(y))
        }
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

impl QModel {
    /// Check that the program is consistent: topological order, arities, every
    /// parameter length and shape. Programs read from files (share files) are
    /// validated before any engine runs them, so kernels never index out of range.
    pub fn validate(&self) -> Result<(), ProgramError> {
        const MAX_ELEMS: usize = 1 << 28;
        const MAX_DIM: usize = 1 << 24;
        let f = self.frac.0;
        if !(1..=24).contains(&f) {
            return Err(ProgramError::FracBits { frac: f });
        }
        if self.nodes.is_empty()
            || self.nodes[0].op != QOp::Input
            || !self.nodes[0].inputs.is_empty()
        {
            return Err(ProgramError::NoInput);
        }
        if self.output >= self.nodes.len() {
            return Err(ProgramError::OutputOutOfRange {
                output: self.output,
                nodes: self.nodes.len(),
            });
        }
        if !self.binary_layers.windows(2).all(|w| w[0] < w[1])
            || self.binary_layers.iter().any(|&i| {
                !matches!(
                    self.nodes.get(i).map(|n| &n.op),
                    Some(QOp::Dense { .. } | QOp::Conv { .. })
                )
            })
        {
            return Err(ProgramError::BinaryLayers);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let at = NodeAt {
                node: i,
                name: n.name.clone(),
            };
            let e = |kind: ProgramErrorKind| ProgramError::Node {
                at: at.clone(),
                kind,
            };
            let geometry = |reason: &'static str| e(ProgramErrorKind::Geometry { reason });
            let mismatch = |reason: &'static str| e(ProgramErrorKind::Mismatch { reason });
            // A parameter of `got` values where the geometry needs `expected`
            // (None: the geometry's product overflows).
            let param = |what: &'static str, expected: Option<usize>, got: usize| match expected {
                Some(x) if x == got => Ok(()),
                Some(expected) => Err(e(ProgramErrorKind::ParamLength {
                    what,
                    expected,
                    got,
                })),
                None => Err(e(ProgramErrorKind::GeometryBound { limit: MAX_DIM })),
            };
            let numel = n
                .shape
                .dims()
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&v| v > 0 && v <= MAX_ELEMS)
                .ok_or_else(|| {
                    e(ProgramErrorKind::ShapeSize {
                        shape: n.shape.clone(),
                        limit: MAX_ELEMS,
                    })
                })?;
            if n.frac.0 != f && n.frac.0 != 2 * f {
                return Err(e(ProgramErrorKind::Scale { frac: n.frac.0, f }));
            }
            if i > 0 && n.op == QOp::Input {
                return Err(e(ProgramErrorKind::ExtraInput));
            }
            if let Some(&input) = n.inputs.iter().find(|&&j| j >= i) {
                return Err(e(ProgramErrorKind::NodeOrder { input }));
            }
            let arity = match n.op {
                QOp::Input => 0,
                QOp::Add => 2,
                QOp::Concat => n.inputs.len().max(1),
                _ => 1,
            };
            if n.inputs.len() != arity {
                return Err(e(ProgramErrorKind::Arity {
                    expected: arity,
                    got: n.inputs.len(),
                }));
            }
            if !geometry_fields(&n.op).iter().all(|&v| v <= MAX_DIM) {
                return Err(e(ProgramErrorKind::GeometryBound { limit: MAX_DIM }));
            }
            let ins: Vec<&QNode> = n.inputs.iter().map(|&j| &self.nodes[j]).collect();
            let in0 = ins
                .first()
                .map(|x| x.shape.dims().to_vec())
                .unwrap_or_default();
            let chw = |d: &[usize]| -> Result<(usize, usize, usize), ProgramError> {
                match d {
                    [c, h, w] => Ok((*c, *h, *w)),
                    _ => Err(e(ProgramErrorKind::NotChw { got: d.to_vec() })),
                }
            };
            let want: Vec<usize> = match &n.op {
                QOp::Input => n.shape.dims().to_vec(),
                QOp::Conv { geom, weight, bias } => {
                    if (geom.c_in, geom.h, geom.w) != chw(&in0)? {
                        return Err(geometry("geometry disagrees with the input shape"));
                    }
                    if geom.stride.contains(&0) || geom.kh == 0 || geom.kw == 0 {
                        return Err(geometry("zero kernel or stride"));
                    }
                    if geom.h + geom.pads[0] + geom.pads[2] < geom.kh
                        || geom.w + geom.pads[1] + geom.pads[3] < geom.kw
                    {
                        return Err(geometry("kernel larger than the padded input"));
                    }
                    let nw = checked_prod(&[geom.c_out, geom.c_in, geom.kh, geom.kw]);
                    param("weight", nw, weight.len())?;
                    param("bias", Some(geom.c_out), bias.len())?;
                    let g = *geom;
                    vec![geom.c_out, g.out_h(), g.out_w()]
                }
                QOp::ConvTranspose { geom, weight, bias } => {
                    if (geom.c_in, geom.h, geom.w) != chw(&in0)? {
                        return Err(geometry("geometry disagrees with the input shape"));
                    }
                    if geom.stride.contains(&0) || geom.h == 0 || geom.w == 0 {
                        return Err(geometry("zero stride or input"));
                    }
                    let nw = checked_prod(&[geom.c_out, geom.c_in, geom.kh, geom.kw]);
                    param("weight", nw, weight.len())?;
                    param("bias", Some(geom.c_out), bias.len())?;
                    let fh = (geom.h - 1) * geom.stride[0] + geom.kh + geom.output_padding[0];
                    let fw = (geom.w - 1) * geom.stride[1] + geom.kw + geom.output_padding[1];
                    let oh = fh
                        .checked_sub(geom.pads[0] + geom.pads[2])
                        .filter(|&v| v > 0);
                    let ow = fw
                        .checked_sub(geom.pads[1] + geom.pads[3])
                        .filter(|&v| v > 0);
                    match (oh, ow) {
                        (Some(oh), Some(ow)) => vec![geom.c_out, oh, ow],
                        _ => return Err(geometry("pads remove the whole output")),
                    }
                }
                QOp::Dense {
                    inputs,
                    outputs,
                    weight,
                    bias,
                } => {
                    if in0 != [*inputs] {
                        return Err(mismatch("dense input size disagrees with the layer"));
                    }
                    param("weight", checked_prod(&[*inputs, *outputs]), weight.len())?;
                    param("bias", Some(*outputs), bias.len())?;
                    vec![*outputs]
                }
                QOp::ChannelAffine { scale, shift } => {
                    let ch = in0.first().copied().unwrap_or(0);
                    param("scale", Some(ch), scale.len())?;
                    param("shift", Some(ch), shift.len())?;
                    in0.clone()
                }
                QOp::Add => {
                    if ins[0].shape != ins[1].shape || ins[0].frac != ins[1].frac {
                        return Err(mismatch("add of different shapes or scales"));
                    }
                    in0.clone()
                }
                QOp::MaxPool { pool, .. } | QOp::SumPool { pool } => {
                    let (c, h, w) = chw(&in0)?;
                    if pool.stride.contains(&0) || pool.kernel.contains(&0) {
                        return Err(geometry("zero window or stride"));
                    }
                    if pool.pads[0] >= pool.kernel[0]
                        || pool.pads[2] >= pool.kernel[0]
                        || pool.pads[1] >= pool.kernel[1]
                        || pool.pads[3] >= pool.kernel[1]
                    {
                        return Err(geometry("padding not smaller than the window"));
                    }
                    if h + pool.pads[0] + pool.pads[2] < pool.kernel[0]
                        || w + pool.pads[1] + pool.pads[3] < pool.kernel[1]
                    {
                        return Err(geometry("window larger than the input"));
                    }
                    let g = QOp::pool_geom(pool, &ins[0].shape);
                    vec![c, g.out_h(), g.out_w()]
                }
                QOp::Sign { width } => {
                    if !(2..=64).contains(width) {
                        return Err(e(ProgramErrorKind::Geometry {
                            reason: "sign width outside 2..=64",
                        }));
                    }
                    in0.clone()
                }
                QOp::Relu { .. } | QOp::Square | QOp::Trunc | QOp::MulPublic { .. } => in0.clone(),
                QOp::Reshape => {
                    if ins[0].shape.numel() != numel {
                        return Err(mismatch("reshape changes the element count"));
                    }
                    n.shape.dims().to_vec()
                }
                QOp::Concat => {
                    let rest = in0.get(1..).unwrap_or(&[]).to_vec();
                    let mut ch = 0;
                    for x in &ins {
                        let d = x.shape.dims();
                        if d.is_empty() || d[1..] != rest[..] || x.frac != ins[0].frac {
                            return Err(mismatch("concat of mismatched shapes or scales"));
                        }
                        ch += d[0];
                    }
                    let mut v = vec![ch];
                    v.extend(rest);
                    v
                }
                QOp::ResizeNearest { scale } => {
                    let (c, h, w) = chw(&in0)?;
                    if scale.contains(&0) {
                        return Err(geometry("zero scale"));
                    }
                    vec![c, h.saturating_mul(scale[0]), w.saturating_mul(scale[1])]
                }
            };
            if want != n.shape.dims() {
                return Err(e(ProgramErrorKind::Shape {
                    recorded: n.shape.clone(),
                    inferred: want,
                }));
            }
        }
        Ok(())
    }
}

/// Product without overflow.
fn checked_prod(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// Every size-like field of an op (validated against a bound before any
/// arithmetic on them).
fn geometry_fields(op: &QOp) -> Vec<usize> {
    let mut v = Vec::new();
    match op {
        QOp::Conv { geom: g, .. } => {
            v.extend([g.c_in, g.h, g.w, g.c_out, g.kh, g.kw]);
            v.extend(g.stride);
            v.extend(g.pads);
        }
        QOp::ConvTranspose { geom: g, .. } => {
            v.extend([g.c_in, g.h, g.w, g.c_out, g.kh, g.kw]);
            v.extend(g.stride);
            v.extend(g.pads);
            v.extend(g.output_padding);
        }
        QOp::Dense {
            inputs, outputs, ..
        } => v.extend([*inputs, *outputs]),
        QOp::MaxPool { pool, .. } | QOp::SumPool { pool } => {
            v.extend(pool.kernel);
            v.extend(pool.stride);
            v.extend(pool.pads);
        }
        QOp::ResizeNearest { scale } => v.extend(scale),
        // No geometry. Exhaustive on purpose: a new op's sizes must be bounded
        // here before a share file can carry it.
        QOp::Input
        | QOp::ChannelAffine { .. }
        | QOp::MulPublic { .. }
        | QOp::Add
        | QOp::Relu { .. }
        | QOp::Square
        | QOp::Trunc
        | QOp::Sign { .. }
        | QOp::Reshape
        | QOp::Concat => {}
    }
    v
}
