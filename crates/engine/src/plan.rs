//! The planner: which protocol computes each node of a fixed-point program in a
//! given deployment, and who does what.
//!
//! ```text
//!  QModel ──Plan::new(program, Deployment)──▶ Plan { roles, steps[node], label }
//!                                               │
//!     inspect: Plan::survey (every node, supported or why not)
//!     split:   share::split_for refuses what Plan::new refuses
//!     serve:   PartyEngine::new runs exactly Plan::new's steps
//! ```
//!
//! A [`Deployment`] names a configuration users pick (`--mode`); its [`Roles`]
//! say, per party, who holds weights, which directions of homomorphic
//! preprocessing run, who garbles which circuit and who adds public terms. The
//! engine (`party.rs`) reads roles, never party numbers, so a new deployment is a
//! new `Roles` value plus the ops it can or cannot run, not a rewrite.
//!
//! Each [`Step`] carries its own spec (the HE packing of a linear layer, the
//! gadget, gather and garbler of a circuit, the size of a Beaver batch); at run
//! time the offline phase produces one material per step, in step order, and the
//! online phase consumes them together.

use crate::{EngineError, Result};
use blindfold_core::{FracBits, PartyId};
use blindfold_gc::Gadget;
use blindfold_he::{Directions, FcShape, LayerPlan, LinearShape};
use blindfold_model::quant::{BinaryProducts, NonLinear, QModel, QOp};
use serde::Serialize;

/// A deployment: who the two parties of the engine are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Deployment {
    /// Two non-colluding servers, each holding an additive share of the model
    /// and of the input.
    TwoServer,
    /// One server holding the plaintext quantized model (P0) and the client
    /// holding the input (P1); only the client learns the output.
    ClientServer,
}

impl Deployment {
    /// Every deployment the engine knows.
    pub const ALL: [Deployment; 2] = [Deployment::TwoServer, Deployment::ClientServer];

    /// The name users type (`--mode`).
    pub fn name(self) -> &'static str {
        match self {
            Deployment::TwoServer => "two-server",
            Deployment::ClientServer => "client-server",
        }
    }

    /// Parse a name printed by [`Self::name`].
    pub fn from_name(s: &str) -> Option<Deployment> {
        Deployment::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Who does what in this deployment.
    pub fn roles(self) -> Roles {
        match self {
            Deployment::TwoServer => Roles::two_server(),
            Deployment::ClientServer => Roles::client_server(),
        }
    }

    /// Say who the parties are in this deployment's terms (client-server:
    /// P0 is the server, P1 the client).
    pub fn name_parties(self, text: String) -> String {
        match self {
            Deployment::TwoServer => text,
            Deployment::ClientServer => text
                .replace("P0", "the server")
                .replace("P1", "the client")
                .replace("secret-shared input", "client's input (server's share 0)"),
        }
    }

    /// A one-byte identifier for handshakes.
    pub fn wire_id(self) -> u8 {
        match self {
            Deployment::TwoServer => 1,
            Deployment::ClientServer => 2,
        }
    }
}

impl std::fmt::Display for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How garbler and evaluator roles are assigned to garbled-circuit layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Garbling {
    /// Circuit `j` (in program order, the label circuit last) is garbled by P0
    /// when `j` is even and by P1 when odd, so both parties work.
    Alternate,
    /// One party garbles every circuit.
    Fixed(PartyId),
}

/// Who does what, by party. The engine reads these, never `party == P0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// Whether each party holds (a share of) the weights.
    weights: [bool; 2],
    /// The party that adds public terms (`e²` of a Beaver square).
    public_terms: PartyId,
    /// The OT sender of the Beaver cross products.
    beaver_sender: PartyId,
    garbling: Garbling,
}

impl Roles {
    /// Bytes of [`Self::to_wire`].
    pub const WIRE_LEN: usize = 5;

    /// A fixed encoding for the peer handshake: both servers must run the same
    /// roles, or their messages would not line up.
    pub fn to_wire(&self) -> [u8; Self::WIRE_LEN] {
        let (g, gp) = match self.garbling {
            Garbling::Alternate => (0, 0),
            Garbling::Fixed(p) => (1, p.index() as u8),
        };
        [
            self.weights[0] as u8 | (self.weights[1] as u8) << 1,
            self.public_terms.index() as u8,
            self.beaver_sender.index() as u8,
            g,
            gp,
        ]
    }

    /// Both servers hold a weight share: both directions of homomorphic
    /// preprocessing run, garblers alternate, P0 adds public terms.
    pub fn two_server() -> Roles {
        Roles {
            weights: [true, true],
            public_terms: PartyId::P0,
            beaver_sender: PartyId::P0,
            garbling: Garbling::Alternate,
        }
    }

    /// One party (`holder`) holds the plaintext weights, the other only its
    /// input: one direction of homomorphic preprocessing (the other party
    /// encrypts its mask), the given garbling policy. The configuration a
    /// client-server deployment runs.
    pub fn single_weight_holder(holder: PartyId, garbling: Garbling) -> Roles {
        let mut weights = [false; 2];
        weights[holder.index()] = true;
        Roles {
            weights,
            public_terms: holder,
            beaver_sender: holder,
            garbling,
        }
    }

    /// Client-server: the server (P0) holds the plaintext weights, the client
    /// (P1) its input; the server garbles every circuit (within the spread of
    /// the measured alternatives, and a garbling client could compute the
    /// server's shares outright: docs/BENCHMARKS.md, docs/SECURITY.md).
    pub fn client_server() -> Roles {
        Roles::single_weight_holder(PartyId::P0, Garbling::Fixed(PartyId::P0))
    }

    /// Whether these roles have exactly one weight holder, P0 (what a
    /// client-server client accepts from a server).
    pub fn is_client_server(&self) -> bool {
        self.weights == [true, false] && self.public_terms == PartyId::P0
    }

    /// Decode [`Self::to_wire`].
    pub fn from_wire(b: [u8; Self::WIRE_LEN]) -> Option<Roles> {
        let party = |v: u8| match v {
            0 => Some(PartyId::P0),
            1 => Some(PartyId::P1),
            _ => None,
        };
        if b[0] == 0 || b[0] > 3 {
            return None;
        }
        let garbling = match b[3] {
            0 if b[4] == 0 => Garbling::Alternate,
            1 => Garbling::Fixed(party(b[4])?),
            _ => return None,
        };
        Some(Roles {
            weights: [b[0] & 1 == 1, b[0] & 2 == 2],
            public_terms: party(b[1])?,
            beaver_sender: party(b[2])?,
            garbling,
        })
    }

    /// The garbling policy.
    pub fn garbling(&self) -> Garbling {
        self.garbling
    }

    /// Whether party `p` holds (a share of) the weights.
    pub fn holds_weights(&self, p: PartyId) -> bool {
        self.weights[p.index()]
    }

    /// The directions of homomorphic preprocessing: `p` encrypts its mask for
    /// the peer's weights exactly when the peer holds weights.
    pub fn he_directions(&self) -> Directions {
        Directions::new([self.weights[1], self.weights[0]])
    }

    /// Whether party `p` sends `x_p - R_p` in a linear layer (it queried).
    pub fn queries_linear(&self, p: PartyId) -> bool {
        self.holds_weights(p.other())
    }

    /// The party that adds public terms.
    pub fn public_terms(&self) -> PartyId {
        self.public_terms
    }

    /// The OT sender of Beaver cross products.
    pub fn beaver_sender(&self) -> PartyId {
        self.beaver_sender
    }

    /// Who garbles circuit number `j` (program order, the label circuit last).
    pub fn garbler(&self, j: usize) -> PartyId {
        match self.garbling {
            Garbling::Alternate if j.is_multiple_of(2) => PartyId::P0,
            Garbling::Alternate => PartyId::P1,
            Garbling::Fixed(p) => p,
        }
    }
}

/// A linear layer: preprocessed (homomorphically, or by oblivious transfers for
/// a binarized dense layer), one online round.
#[derive(Clone, Debug)]
pub struct LinearStep {
    pub shape: LinearShape,
    /// The packing of the homomorphic products.
    pub he: LayerPlan,
    pub products: Products,
}

/// How a linear layer's cross terms are preprocessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Products {
    /// Homomorphic preprocessing (any integer weights).
    He,
    /// Correlated OTs on the sign bits of `±1` weights (two-server mode,
    /// binarized dense layers): `W = σ0·σ1` element-wise, with `σb` read from
    /// bit 1 of party b's additive weight share (DESIGN section 7).
    BinaryOt,
}

/// The cost model's estimate for [`Products::BinaryOt`] on an `inputs × outputs`
/// dense layer, in [`LayerPlan::cost`]'s units (bytes, plus CPU at 1 ms = 50 kB):
/// one correlated OT per weight and direction (both directions counted), 16
/// bytes of IKNP extension plus an 8-byte correction each, and about 55 ns of
/// wall-clock time per OT (52–57 ns measured on the zoo's bnn:
/// docs/BENCHMARKS.md, "Binarized networks"). Compare with twice [`LayerPlan::cost`] (one
/// homomorphic direction each way).
pub fn binary_ot_cost(inputs: usize, outputs: usize) -> f64 {
    let ots = 2.0 * (inputs * outputs) as f64;
    ots * 24.0 + 50_000.0 * ots * 55e-6
}

/// A garbled-circuit layer.
#[derive(Clone, Debug)]
pub struct GcStep {
    pub gadget: Gadget,
    /// Circuit instances (output elements).
    pub elements: usize,
    /// Per instance, `arity` indices into the input value (max-pool windows);
    /// `None`: instance `e` takes input element `e`.
    pub gather: Option<Vec<usize>>,
    /// Multiply the output by `2^f` (sign outputs `±1` at scale `f`).
    pub scale_out: bool,
    pub garbler: PartyId,
}

/// A per-channel affine map with secret coefficients (an unfolded batch
/// normalization): the cross terms `s_peer ∘ R` by OT multiplication (Gilboa,
/// 64 correlated OTs per element and direction), one online round.
/// A non-linear layer by OT-based comparisons (`blindfold-cmp`): the op, its
/// output elements, the gather of window inputs, and whether the ±1 output is
/// scaled to the fixed-point scale (sign). P0 is the comparisons' OT sender.
#[derive(Clone, Debug)]
pub struct OtStep {
    pub op: blindfold_cmp::Op,
    pub elements: usize,
    pub gather: Option<Vec<usize>>,
    pub scale_out: bool,
}

/// The OT-based op computing a gadget's function, where one exists.
pub fn ot_op(g: &Gadget) -> Option<blindfold_cmp::Op> {
    use blindfold_cmp::Op;
    Some(match *g {
        Gadget::ReluTruncMask { f } => Op::ReluTrunc { k: 64, f: f.0 },
        Gadget::MaxPoolReluTruncMask { k, f } => Op::MaxPool {
            window: k,
            relu: true,
            f: f.0,
        },
        Gadget::MaxPoolTruncMask { k, f } => Op::MaxPool {
            window: k,
            relu: false,
            f: f.0,
        },
        Gadget::SignMask { width } => Op::Sign { k: width },
        Gadget::TruncMask { f } => Op::Trunc { k: 64, f: f.0 },
        Gadget::ThresholdSignMask | Gadget::ArgmaxMask { .. } => return None,
    })
}

/// Estimated cost of one element of a non-linear layer: bytes (both
/// directions, offline plus online), sequential one-way flights of the layer,
/// and CPU seconds per element (both parties, measured on this machine's
/// class: `bench primitives`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NonLinearCost {
    pub bytes: f64,
    pub flights: f64,
    pub cpu_s: f64,
}

impl NonLinearCost {
    /// Seconds for `n` elements on `link`.
    pub fn seconds(&self, n: usize, link: blindfold_core::LinkSpec) -> f64 {
        link.seconds(self.bytes * n as f64, self.flights) + self.cpu_s * n as f64
    }

    /// Garbled circuits: 32 bytes per AND (half-gates), the garbler's input
    /// labels online, the evaluator's labels by IKNP OT offline; two flights
    /// online (re-share, labels).
    pub fn garbled(g: &Gadget) -> NonLinearCost {
        let c = g.circuit();
        NonLinearCost {
            bytes: 32.0 * c.n_and() as f64
                + 16.0 * c.n_garbler_inputs() as f64
                + 48.0 * c.n_evaluator_inputs() as f64,
            flights: 2.0,
            cpu_s: 0.08e-6 * c.n_and() as f64,
        }
    }

    /// OT comparisons: the protocol's own count of online bits and random OTs
    /// (0.45 bits each on silent OT), its exchanges as flights.
    pub fn ot(op: &blindfold_cmp::Op) -> NonLinearCost {
        let (ra, rb) = op.rots(1);
        let rots = (ra + rb) as f64;
        NonLinearCost {
            bytes: op.online_bits() as f64 / 8.0 + rots * 0.45 / 8.0,
            flights: op.exchanges() as f64,
            cpu_s: 0.05e-6 * rots,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AffineStep {
    pub elements: usize,
    pub channels: usize,
}

/// A batch of Beaver squares.
#[derive(Clone, Copy, Debug)]
pub struct SquareStep {
    pub elements: usize,
}

/// How one node is computed.
#[derive(Clone, Debug)]
pub enum StepSpec {
    /// The secret-shared input (always node 0).
    Input,
    Linear(Box<LinearStep>),
    Affine(AffineStep),
    Gc(GcStep),
    /// OT-based comparisons.
    Ot(OtStep),
    Square(SquareStep),
    /// Linear with public coefficients or data movement: the same on shares.
    Local,
}

impl StepSpec {
    /// What `inspect` prints.
    pub fn protocol(&self) -> String {
        match self {
            StepSpec::Input => "secret-shared input".into(),
            StepSpec::Linear(l) if l.products == Products::BinaryOt => {
                "OT-preprocessed binary products (±1 weights), 1 round".into()
            }
            StepSpec::Linear(l) => format!(
                "HE-preprocessed bilinear, 1 round ({} ciphertexts)",
                l.he.input_cts() + l.he.output_cts()
            ),
            StepSpec::Gc(g) => match g.gadget {
                Gadget::SignMask { width } if width < 64 => {
                    format!(
                        "garbled circuit on {width}-bit values, {} garbles",
                        g.garbler
                    )
                }
                _ => format!("garbled circuit, {} garbles", g.garbler),
            },
            StepSpec::Ot(o) => format!(
                "OT comparisons on silent OT, {} flights, P0 sends",
                o.op.exchanges()
            ),
            StepSpec::Affine(_) => "OT-preprocessed element-wise products, 1 round".into(),
            StepSpec::Square(_) => "Beaver square (OT-preprocessed)".into(),
            StepSpec::Local => "local on shares".into(),
        }
    }
}

/// Why a deployment cannot run a node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("node 0 must be the input")]
    InputNotFirst,
    #[error("only node 0 may be the input")]
    ExtraInput,
    /// The packing cannot fit this layer's shape.
    #[error("no homomorphic packing for this shape: {0}")]
    PackingShape(String),
    /// A non-linear op without a circuit.
    #[error("{0} has no circuit yet")]
    NoCircuit(&'static str),
    #[error("a pooling window covers no input")]
    EmptyWindow,
    /// A plaintext mode has no protocol to plan or measure.
    #[error("plaintext modes run no protocol")]
    NotSecure,
}

/// One planned node.
#[derive(Clone, Debug)]
pub struct Step {
    /// The node of the program.
    pub node: usize,
    /// The op's kind (`QOp::kind`).
    pub op: &'static str,
    pub spec: StepSpec,
}

/// The plan of one program in one deployment.
#[derive(Clone, Debug)]
pub struct Plan {
    /// [`crate::share::architecture_fingerprint`] of the program planned.
    program: u64,
    deployment: Deployment,
    roles: Roles,
    frac: FracBits,
    steps: Vec<Step>,
    /// The argmax circuit over the output, present when the output is a vector:
    /// every bundle carries it so a client may ask for the label only.
    label: Option<GcStep>,
}

/// One row of [`Plan::survey`].
#[derive(Clone, Debug)]
pub struct NodeSupport {
    pub node: usize,
    pub op: &'static str,
    /// The protocol, or why this deployment cannot run the node.
    pub protocol: std::result::Result<String, Refusal>,
}

impl Plan {
    /// Plan `q` for `deployment`; refuses the first node it cannot run.
    pub fn new(q: &QModel, deployment: Deployment) -> Result<Plan> {
        Plan::with_roles(q, deployment, deployment.roles())
    }

    /// Plan `q` with explicit roles (a deployment's defaults overridden, e.g. by
    /// measurement or in tests).
    pub fn with_roles(q: &QModel, deployment: Deployment, roles: Roles) -> Result<Plan> {
        let mut steps = Vec::with_capacity(q.nodes.len());
        let mut circuits = 0usize;
        for (i, n) in q.nodes.iter().enumerate() {
            let spec = plan_node(q, i, &roles, &mut circuits).map_err(|reason| {
                EngineError::Unsupported {
                    layer: i,
                    op: n.op.kind(),
                    mode: deployment.name(),
                    reason,
                }
            })?;
            steps.push(Step {
                node: i,
                op: n.op.kind(),
                spec,
            });
        }
        let label = label_step(q, roles.garbler(circuits));
        Ok(Plan {
            program: crate::share::architecture_fingerprint(q),
            deployment,
            roles,
            frac: q.frac_bits(),
            steps,
            label,
        })
    }

    /// Every node with the protocol that would run it in `deployment`, or the
    /// reason it cannot: what `inspect` prints. Agrees with [`Plan::new`]: that
    /// succeeds exactly when every row here is `Ok`.
    pub fn survey(q: &QModel, deployment: Deployment) -> Vec<NodeSupport> {
        let roles = deployment.roles();
        let mut circuits = 0usize;
        q.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSupport {
                node: i,
                op: n.op.kind(),
                protocol: plan_node(q, i, &roles, &mut circuits)
                    .map(|s| deployment.name_parties(s.protocol())),
            })
            .collect()
    }

    pub fn deployment(&self) -> Deployment {
        self.deployment
    }
    /// The public architecture this plan is for.
    pub fn program_fingerprint(&self) -> u64 {
        self.program
    }
    /// Identifies the plan (program, deployment and roles): bundles carry it, so
    /// an engine refuses material made for another plan before sending anything.
    pub fn id(&self) -> u64 {
        let mut h = self.program ^ u64::from(self.deployment.wire_id()) << 56;
        for b in self.roles.to_wire() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    pub fn roles(&self) -> &Roles {
        &self.roles
    }
    pub fn frac_bits(&self) -> FracBits {
        self.frac
    }
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    pub fn label(&self) -> Option<&GcStep> {
        self.label.as_ref()
    }

    /// The garbled circuits in offline order (program order, the label last).
    pub fn circuits(&self) -> impl Iterator<Item = &GcStep> {
        self.steps
            .iter()
            .filter_map(|s| match &s.spec {
                StepSpec::Gc(g) => Some(g),
                _ => None,
            })
            .chain(self.label.iter())
    }

    /// The linear layers' shapes in program order.
    pub fn linear_shapes(&self) -> Vec<LinearShape> {
        self.steps
            .iter()
            .filter_map(|s| match &s.spec {
                StepSpec::Linear(l) => Some(l.shape),
                _ => None,
            })
            .collect()
    }
}

/// The argmax over the output's class axis: over a vector (the label), or
/// per pixel over the channels of a `[C, H, W]` output with `C >= 2` (a
/// segmentation mask, instance `p` gathering `x[c·H·W + p]` for every `c`; the
/// first maximum wins, as in the reference).
fn label_step(q: &QModel, garbler: PartyId) -> Option<GcStep> {
    let out = q.output_shape();
    let dims = out.dims();
    let (classes, pixels) = match *dims {
        [k] if k >= 2 => (k, 1),
        [c, h, w] if c >= 2 => (c, h * w),
        _ => return None,
    };
    let gather = (pixels > 1).then(|| {
        (0..pixels)
            .flat_map(|p| (0..classes).map(move |c| c * pixels + p))
            .collect()
    });
    Some(GcStep {
        gadget: Gadget::ArgmaxMask { k: classes },
        elements: pixels,
        gather,
        scale_out: false,
        garbler,
    })
}

/// Plan node `i`; `circuits` counts garbled circuits so far (garbler choice).
fn plan_node(
    q: &QModel,
    i: usize,
    roles: &Roles,
    circuits: &mut usize,
) -> std::result::Result<StepSpec, Refusal> {
    let n = &q.nodes[i];
    let f = q.frac_bits();
    let mut gc = |gadget: Gadget, gather: Option<Vec<usize>>, scale_out: bool| {
        let elements = n.shape.numel();
        if let Some(op) = ot_op(&gadget) {
            let ot = match q.nonlinear {
                NonLinear::Gc => false,
                NonLinear::Ot => true,
                NonLinear::Auto(link) => {
                    NonLinearCost::ot(&op).seconds(elements, link)
                        < NonLinearCost::garbled(&gadget).seconds(elements, link)
                }
            };
            if ot {
                return StepSpec::Ot(OtStep {
                    op,
                    elements,
                    gather,
                    scale_out,
                });
            }
        }
        let g = GcStep {
            gadget,
            elements,
            gather,
            scale_out,
            garbler: roles.garbler(*circuits),
        };
        *circuits += 1;
        StepSpec::Gc(g)
    };
    // Binarized dense layers between two weight holders may use OT products.
    let both_hold = roles.holds_weights(PartyId::P0) && roles.holds_weights(PartyId::P1);
    let binary_dense =
        both_hold && matches!(n.op, QOp::Dense { .. }) && q.binary_layers.contains(&i);
    let linear = |shape: LinearShape| -> std::result::Result<StepSpec, Refusal> {
        let he = LayerPlan::new(&shape, blindfold_he::params::RING_DEGREE)
            .map_err(|e| Refusal::PackingShape(e.to_string()))?;
        let products = match (binary_dense, q.binary_products, shape) {
            (true, BinaryProducts::Ot, _) => Products::BinaryOt,
            (true, BinaryProducts::Auto, LinearShape::Fc(fc))
                if binary_ot_cost(fc.inputs, fc.outputs) < 2.0 * he.cost() =>
            {
                Products::BinaryOt
            }
            _ => Products::He,
        };
        Ok(StepSpec::Linear(Box::new(LinearStep {
            shape,
            he,
            products,
        })))
    };
    Ok(match &n.op {
        QOp::Input if i == 0 => StepSpec::Input,
        QOp::Input => return Err(Refusal::ExtraInput),
        _ if i == 0 => return Err(Refusal::InputNotFirst),
        QOp::Conv { geom, .. } => linear(LinearShape::Conv2d(*geom))?,
        QOp::Dense {
            inputs, outputs, ..
        } => linear(LinearShape::Fc(FcShape {
            inputs: *inputs,
            outputs: *outputs,
        }))?,
        QOp::ConvTranspose { geom, .. } => linear(LinearShape::ConvTranspose2d(*geom))?,
        QOp::ChannelAffine { scale, .. } => StepSpec::Affine(AffineStep {
            elements: n.shape.numel(),
            channels: scale.len(),
        }),
        QOp::Relu { trunc } => gc(
            Gadget::ReluTruncMask {
                f: if *trunc { f } else { FracBits(0) },
            },
            None,
            false,
        ),
        QOp::MaxPool { pool, relu, trunc } => {
            let geom = QOp::pool_geom(pool, &q.nodes[n.inputs[0]].shape);
            let k = pool.kernel[0] * pool.kernel[1];
            let mut gather = Vec::with_capacity(n.shape.numel() * k);
            for win in geom.windows() {
                if win.is_empty() {
                    return Err(Refusal::EmptyWindow);
                }
                // Pad short (border) windows by repeating an element: max is idempotent.
                for j in 0..k {
                    gather.push(win[j.min(win.len() - 1)]);
                }
            }
            let f = if *trunc { f } else { FracBits(0) };
            let gadget = if *relu {
                Gadget::MaxPoolReluTruncMask { k, f }
            } else {
                Gadget::MaxPoolTruncMask { k, f }
            };
            gc(gadget, Some(gather), false)
        }
        QOp::Sign { width } => gc(Gadget::SignMask { width: *width }, None, true),
        QOp::Square => StepSpec::Square(SquareStep {
            elements: n.shape.numel(),
        }),
        // Exact: the SecureML local shares plus a garbled borrow of the low f
        // bits (a local truncation alone rounds at random, and repeated answers
        // would reveal the dropped bits).
        QOp::Trunc => gc(Gadget::TruncMask { f }, None, false),
        QOp::MulPublic { .. }
        | QOp::Add
        | QOp::SumPool { .. }
        | QOp::Reshape
        | QOp::Concat
        | QOp::ResizeNearest { .. } => StepSpec::Local,
    })
}

#[cfg(test)]
mod roles_tests {
    use super::*;

    #[test]
    fn roles_wire_round_trip_and_malformed() {
        let all = [
            Roles::two_server(),
            Roles::client_server(),
            Roles::single_weight_holder(PartyId::P1, Garbling::Alternate),
            Roles::single_weight_holder(PartyId::P0, Garbling::Fixed(PartyId::P1)),
        ];
        for r in all {
            assert_eq!(Roles::from_wire(r.to_wire()), Some(r));
        }
        assert!(Roles::client_server().is_client_server());
        assert!(!Roles::two_server().is_client_server());
        for bad in [
            [0, 0, 0, 0, 0], // nobody holds weights
            [4, 0, 0, 0, 0],
            [1, 2, 0, 0, 0],
            [1, 0, 2, 0, 0],
            [1, 0, 0, 2, 0],
            [1, 0, 0, 0, 1], // alternate with a party byte
            [1, 0, 0, 1, 2],
        ] {
            assert_eq!(Roles::from_wire(bad), None, "{bad:?}");
        }
    }
}
