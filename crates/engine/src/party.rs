//! One server's side of the two-party engine.
//!
//! ```text
//!  P0 (program with W0, b0)                          P1 (program with W1, b1)
//!  ════════════ session setup (once per peer connection) ════════════════════
//!  HE keys, public keys exchanged; IKNP for GC (P0 garbler ⇄ P1 evaluator, then
//!  P1 garbler ⇄ P0 evaluator); IKNP for Beaver squares (P0 sender ⇄ P1 receiver)
//!  ═══════════════ offline, per query (inputs unknown) ══════════════════════
//!  for all linear layers: HE products  ⇄  (R0, M0, T0) | (R1, M1, T1)
//!  for GC layer j: garbler = P(j mod 2) garbles, the evaluator OTs its random K
//!  for all squares: Beaver pairs (a, a²) via Gilboa OT multiplication
//!  ═══════════════ online (input shares x0 | x1 arrive) ═════════════════════
//!  linear:  D0 = x0 - R0  ─────────▶           ◀───────── D1 = x1 - R1
//!           y0 = L(x0 + D1; W0) + M0 + T0 + b0   y1 = L(x1 + D0; W1) + M1 + T1 + b1
//!  trunc:   x0 >>> f (local)                     -((-x1) >>> f) (local)
//!  square:  e0 = x0 - a0 ─────────▶             ◀───────── e1 = x1 - a1
//!           y0 = e² + 2e·a0 + c0                 y1 = 2e·a1 + c1
//!  GC layer: the evaluator sends y_E - K, the garbler its input labels; the
//!           garbler's output share is its mask r, the evaluator's f(y) - r
//!  sum-pool, add, reshape, concat, resize, public multiply: local on shares
//! ```
//!
//! The online phase consumes a [`Bundle`] by value: preprocessed material is never
//! reused. Each linear layer and each square costs one round (both parties send at
//! once), each GC layer one round trip.

use crate::share::ModelShare;
use crate::{EngineError, Result};
use blindfold_core::{FracBits, PartyId};
use blindfold_gc::{EvaluatorOffline, EvaluatorSession, Gadget, GarblerOffline, GarblerSession};
use blindfold_he::{
    EncodedWeights, FcShape, HeParams, HeSession, LayerPlan, LayerShares, LinearShape,
};
use blindfold_model::kernels::PoolGeom;
use blindfold_model::quant::{QModel, QOp};
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;
use std::time::Instant;

/// How the engine computes one node of the program.
#[derive(Clone, Debug)]
enum Step {
    Input,
    /// Index into the linear layers (HE material).
    Linear(usize),
    /// Index into the GC layers; the gadget; the gather of inputs (per element,
    /// `k` indices into the input value); post-scaling of the output by `2^f`.
    Gc {
        index: usize,
        gather: Option<Vec<usize>>,
        scale_out: bool,
    },
    /// Index into the square layers (Beaver material).
    Square(usize),
    Local,
}

/// A server's engine for one model share: the program, the plan of each node,
/// and this party's weight shares encoded for the homomorphic products.
pub struct PartyEngine {
    party: PartyId,
    share: ModelShare,
    steps: Vec<Step>,
    linear_shapes: Vec<LinearShape>,
    he_params: Arc<HeParams>,
    he_weights: Vec<EncodedWeights>,
    /// `(gadget, elements)` per GC layer.
    gc_layers: Vec<(Gadget, usize)>,
    /// Elements per square layer.
    square_layers: Vec<usize>,
    /// The GC layer computing the label from the logits, if the output is a vector.
    argmax_layer: Option<usize>,
}

/// What the servers return to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Shares of every output value.
    Logits,
    /// Shares of the argmax index only (a garbled circuit over the logits).
    Label,
}

/// Keys and OT state of one peer connection.
pub struct Session {
    he: HeSession,
    garbler: GarblerSession,
    evaluator: EvaluatorSession,
    beaver_send: Option<CotSender>,
    beaver_recv: Option<CotReceiver>,
}

/// A garbled-circuit layer's offline material, in the role this party plays.
enum GcMaterial {
    Garbler(GarblerOffline),
    Evaluator(EvaluatorOffline),
}

/// One query's preprocessed material. Consumed by [`PartyEngine::online`].
pub struct Bundle {
    linear: Vec<LayerShares>,
    gc: Vec<GcMaterial>,
    /// Per square layer: shares of `a` and of `a²`.
    squares: Vec<(Vec<u64>, Vec<u64>)>,
    /// Offline cost: milliseconds and bytes (sent + received) seen by this party.
    pub offline_ms: f64,
    pub offline_bytes: u64,
    /// Offline cost per node of the program (linear, GC and square layers).
    pub offline_layers: Vec<LayerCost>,
}

/// Per-layer cost of an online evaluation.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerCost {
    pub index: usize,
    pub op: String,
    pub ms: f64,
    pub bytes: u64,
    pub rounds: u64,
}

/// Who garbles GC layer `j`: roles alternate so both parties work.
pub fn garbler_of(j: usize) -> PartyId {
    if j.is_multiple_of(2) {
        PartyId::P0
    } else {
        PartyId::P1
    }
}

impl PartyEngine {
    /// Plan the program and encode this party's weights for the HE products.
    pub fn new(share: ModelShare) -> Result<PartyEngine> {
        let party = share.party_id();
        let q = &share.program;
        let f = q.frac_bits();
        let he_params = HeParams::new()?;
        let mut steps = Vec::with_capacity(q.nodes.len());
        let mut linear_shapes = Vec::new();
        let mut he_weights = Vec::new();
        let mut gc_layers = Vec::new();
        let mut square_layers = Vec::new();
        for (i, n) in q.nodes.iter().enumerate() {
            let unsupported = |reason: &str| EngineError::Unsupported {
                layer: i,
                op: n.op.kind(),
                reason: reason.to_string(),
            };
            let step = match &n.op {
                QOp::Input => Step::Input,
                QOp::Conv { geom, weight, .. } => {
                    let s = LinearShape::Conv2d(*geom);
                    let plan = LayerPlan::new(&s, he_params.degree())?;
                    he_weights.push(EncodedWeights::new(&he_params, &plan, weight)?);
                    linear_shapes.push(s);
                    Step::Linear(linear_shapes.len() - 1)
                }
                QOp::Dense {
                    inputs,
                    outputs,
                    weight,
                    ..
                } => {
                    let s = LinearShape::Fc(FcShape {
                        inputs: *inputs,
                        outputs: *outputs,
                    });
                    let plan = LayerPlan::new(&s, he_params.degree())?;
                    he_weights.push(EncodedWeights::new(&he_params, &plan, weight)?);
                    linear_shapes.push(s);
                    Step::Linear(linear_shapes.len() - 1)
                }
                QOp::ConvTranspose { .. } | QOp::ChannelAffine { .. } => return Err(unsupported(
                    "the homomorphic packing covers convolutions and fully connected layers only",
                )),
                QOp::Relu { trunc } => {
                    let g = Gadget::ReluTruncMask {
                        f: if *trunc { f } else { FracBits(0) },
                    };
                    gc_layers.push((g, n.shape.numel()));
                    Step::Gc {
                        index: gc_layers.len() - 1,
                        gather: None,
                        scale_out: false,
                    }
                }
                QOp::MaxPool { pool, relu, trunc } => {
                    if !relu {
                        return Err(unsupported(
                            "max-pool without an adjacent ReLU has no circuit yet",
                        ));
                    }
                    let geom: PoolGeom = QOp::pool_geom(pool, &q.nodes[n.inputs[0]].shape);
                    let k = pool.kernel[0] * pool.kernel[1];
                    let mut gather = Vec::with_capacity(n.shape.numel() * k);
                    for win in geom.windows() {
                        // Pad short (border) windows by repeating an element: max is idempotent.
                        for j in 0..k {
                            gather.push(win[j.min(win.len() - 1)]);
                        }
                    }
                    let g = Gadget::MaxPoolReluTruncMask {
                        k,
                        f: if *trunc { f } else { FracBits(0) },
                    };
                    gc_layers.push((g, n.shape.numel()));
                    Step::Gc {
                        index: gc_layers.len() - 1,
                        gather: Some(gather),
                        scale_out: false,
                    }
                }
                QOp::Sign => {
                    gc_layers.push((Gadget::SignMask, n.shape.numel()));
                    Step::Gc {
                        index: gc_layers.len() - 1,
                        gather: None,
                        scale_out: true,
                    }
                }
                QOp::Square => {
                    square_layers.push(n.shape.numel());
                    Step::Square(square_layers.len() - 1)
                }
                QOp::Trunc
                | QOp::MulPublic { .. }
                | QOp::Add
                | QOp::SumPool { .. }
                | QOp::Reshape
                | QOp::Concat
                | QOp::ResizeNearest { .. } => Step::Local,
            };
            steps.push(step);
        }
        // Every bundle also carries an argmax circuit over the logits, so a client
        // may ask for the label only; unused material is dropped with the bundle.
        let out = q.output_shape();
        let argmax_layer = if out.rank() == 1 && out.numel() >= 2 {
            gc_layers.push((Gadget::ArgmaxMask { k: out.numel() }, 1));
            Some(gc_layers.len() - 1)
        } else {
            None
        };
        Ok(PartyEngine {
            party,
            share,
            steps,
            linear_shapes,
            he_params,
            he_weights,
            gc_layers,
            square_layers,
            argmax_layer,
        })
    }

    pub fn party(&self) -> PartyId {
        self.party
    }
    pub fn program(&self) -> &QModel {
        &self.share.program
    }
    pub fn model_id(&self) -> [u8; 16] {
        self.share.model_id
    }
    pub fn linear_shapes(&self) -> &[LinearShape] {
        &self.linear_shapes
    }

    /// Set up a session with the peer: checks that both hold shares of the same
    /// split and complementary parties, then HE keys and OT base setups.
    pub fn setup(
        &self,
        ch: &mut impl Channel,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Session> {
        // Handshake: model id, party, program fingerprint.
        let mut hello = b"BFPEER1\0".to_vec();
        hello.extend_from_slice(&self.share.model_id);
        hello.push(self.party.index() as u8);
        hello.extend_from_slice(
            &crate::share::architecture_fingerprint(&self.share.program).to_le_bytes(),
        );
        ch.send(&hello)?;
        ch.flush()?;
        let peer = ch.recv()?;
        if peer.len() != hello.len() || peer[..8] != hello[..8] {
            return Err(EngineError::Protocol(
                "the peer is not a blindfold server of this version".into(),
            ));
        }
        if peer[8..24] != hello[8..24] {
            return Err(EngineError::Protocol(
                "the peer holds a share of a different model split".into(),
            ));
        }
        if peer[24] as usize != self.party.other().index() {
            return Err(EngineError::Protocol(format!(
                "the peer also claims to be party {}",
                peer[24]
            )));
        }
        if peer[25..] != hello[25..] {
            return Err(EngineError::Protocol("the peer's program differs".into()));
        }
        let he = HeSession::setup(self.party, ch, &self.he_params, rng)?;
        let (garbler, evaluator) = match self.party {
            PartyId::P0 => {
                let g = GarblerSession::setup(ch, rng)?;
                let e = EvaluatorSession::setup(ch, rng)?;
                (g, e)
            }
            PartyId::P1 => {
                let e = EvaluatorSession::setup(ch, rng)?;
                let g = GarblerSession::setup(ch, rng)?;
                (g, e)
            }
        };
        let (beaver_send, beaver_recv) = if self.square_layers.is_empty() {
            (None, None)
        } else {
            match self.party {
                PartyId::P0 => {
                    let mut d = [0u8; 16];
                    rng.fill_bytes(&mut d);
                    let delta = blindfold_core::Block::from_bytes(d);
                    (Some(CotSender::setup(ch, delta, rng)?), None)
                }
                PartyId::P1 => (None, Some(CotReceiver::setup(ch, rng)?)),
            }
        };
        Ok(Session {
            he,
            garbler,
            evaluator,
            beaver_send,
            beaver_recv,
        })
    }

    /// The offline phase for one query: everything input-independent.
    pub fn offline(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Bundle> {
        let t0 = Instant::now();
        let b0 = ch.stats().total().bytes();
        ch.set_phase("offline");
        let q = &self.share.program;
        let node_of = |pred: &dyn Fn(&Step) -> bool| -> Vec<usize> {
            self.steps
                .iter()
                .enumerate()
                .filter(|(_, s)| pred(s))
                .map(|(i, _)| i)
                .collect()
        };
        let linear_nodes = node_of(&|s| matches!(s, Step::Linear(_)));
        let gc_nodes = node_of(&|s| matches!(s, Step::Gc { .. }));
        let square_nodes = node_of(&|s| matches!(s, Step::Square(_)));
        let mut offline_layers = Vec::new();
        let mut linear = Vec::with_capacity(linear_nodes.len());
        let he_out = blindfold_he::preprocess(self.party, ch, &s.he, &self.he_weights, rng)?;
        for ((sh, cost), &i) in he_out.into_iter().zip(&linear_nodes) {
            linear.push(sh);
            offline_layers.push(LayerCost {
                index: i,
                op: q.nodes[i].op.kind().to_string(),
                ms: cost.ms,
                bytes: cost.bytes,
                rounds: 4,
            });
        }
        let mut gc = Vec::with_capacity(self.gc_layers.len());
        for (j, &(g, n)) in self.gc_layers.iter().enumerate() {
            let t = Instant::now();
            let st0 = ch.stats().total();
            gc.push(if garbler_of(j) == self.party {
                GcMaterial::Garbler(s.garbler.offline(ch, g, n, rng)?)
            } else {
                GcMaterial::Evaluator(s.evaluator.offline(ch, g, n, rng)?)
            });
            ch.flush()?;
            let st1 = ch.stats().total();
            let i = gc_nodes.get(j).copied().unwrap_or(q.nodes.len());
            offline_layers.push(LayerCost {
                index: i,
                op: q
                    .nodes
                    .get(i)
                    .map_or("argmax (label only)", |n| n.op.kind())
                    .to_string(),
                ms: t.elapsed().as_secs_f64() * 1e3,
                bytes: st1.bytes() - st0.bytes(),
                rounds: st1.rounds() - st0.rounds(),
            });
        }
        let t = Instant::now();
        let st0 = ch.stats().total();
        let squares = self.beaver(ch, s, rng)?;
        ch.flush()?;
        if let Some(&i) = square_nodes.first() {
            let st1 = ch.stats().total();
            offline_layers.push(LayerCost {
                index: i,
                op: "square (all Beaver pairs)".into(),
                ms: t.elapsed().as_secs_f64() * 1e3,
                bytes: st1.bytes() - st0.bytes(),
                rounds: st1.rounds() - st0.rounds(),
            });
        }
        Ok(Bundle {
            linear,
            gc,
            squares,
            offline_ms: t0.elapsed().as_secs_f64() * 1e3,
            offline_bytes: ch.stats().total().bytes() - b0,
            offline_layers,
        })
    }

    /// Beaver square pairs for every square layer: `a = a0 + a1` uniform,
    /// `c0 + c1 = a²`, the cross term `a0·a1` by Gilboa multiplication over 64
    /// additively correlated OTs per element (`blindfold_he::beaver`).
    fn beaver(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(Vec<u64>, Vec<u64>)>> {
        let total: usize = self.square_layers.iter().sum();
        if total == 0 {
            return Ok(Vec::new());
        }
        let pairs = match self.party {
            PartyId::P0 => {
                let cot = s
                    .beaver_send
                    .as_mut()
                    .ok_or_else(|| EngineError::Protocol("no Beaver OT session".into()))?;
                blindfold_he::beaver::square_pairs_sender(ch, cot, total, rng)?
            }
            PartyId::P1 => {
                let cot = s
                    .beaver_recv
                    .as_mut()
                    .ok_or_else(|| EngineError::Protocol("no Beaver OT session".into()))?;
                blindfold_he::beaver::square_pairs_receiver(ch, cot, total, rng)?
            }
        };
        let (a, c) = (&pairs.a, &pairs.a2);
        let mut out = Vec::with_capacity(self.square_layers.len());
        let mut off = 0;
        for &n in &self.square_layers {
            out.push((a[off..off + n].to_vec(), c[off..off + n].to_vec()));
            off += n;
        }
        Ok(out)
    }

    /// The online phase returning shares of the logits; see [`Self::online_with`].
    pub fn online(
        &self,
        ch: &mut impl Channel,
        bundle: Bundle,
        input: Vec<u64>,
    ) -> Result<(Vec<u64>, Vec<LayerCost>)> {
        self.online_with(ch, bundle, input, OutputKind::Logits)
    }

    /// Whether a label-only answer is available (the output is a vector).
    pub fn supports_label(&self) -> bool {
        self.argmax_layer.is_some()
    }

    /// The online phase: consumes `bundle`, takes this party's input share and
    /// returns its share of the output (the logits at the program's output scale,
    /// or the label), with the per-layer costs. Both parties must pass the same
    /// `kind`.
    pub fn online_with(
        &self,
        ch: &mut impl Channel,
        bundle: Bundle,
        input: Vec<u64>,
        kind: OutputKind,
    ) -> Result<(Vec<u64>, Vec<LayerCost>)> {
        let q = &self.share.program;
        if kind == OutputKind::Label && self.argmax_layer.is_none() {
            return Err(EngineError::Protocol(
                "a label-only answer needs a vector output".into(),
            ));
        }
        if input.len() != q.input_shape().numel() {
            return Err(EngineError::Protocol(format!(
                "input share has {} values, the model takes {}",
                input.len(),
                q.input_shape().numel()
            )));
        }
        let f = q.frac_bits();
        let Bundle {
            linear,
            gc,
            squares,
            ..
        } = bundle;
        let mut linear: Vec<Option<LayerShares>> = linear.into_iter().map(Some).collect();
        let mut gc: Vec<Option<GcMaterial>> = gc.into_iter().map(Some).collect();
        let mut squares: Vec<Option<(Vec<u64>, Vec<u64>)>> =
            squares.into_iter().map(Some).collect();
        let mut vals: Vec<Vec<u64>> = Vec::with_capacity(q.nodes.len());
        let mut costs = Vec::new();
        let mut input = Some(input);
        for (i, (n, step)) in q.nodes.iter().zip(&self.steps).enumerate() {
            let t0 = Instant::now();
            let st0 = ch.stats();
            ch.set_phase("online");
            let x = |k: usize| -> &Vec<u64> { &vals[n.inputs[k]] };
            let out: Vec<u64> = match step {
                Step::Input => input.take().unwrap_or_default(),
                Step::Linear(l) => {
                    let sh = linear[*l].take().ok_or_else(|| {
                        EngineError::Protocol("linear material used twice".into())
                    })?;
                    let xs = x(0);
                    let d: Vec<u64> = xs
                        .iter()
                        .zip(&sh.r)
                        .map(|(a, r)| a.wrapping_sub(*r))
                        .collect();
                    ch.send_u64s(&d)?;
                    ch.flush()?;
                    let dp = ch.recv_u64s(xs.len())?;
                    let z: Vec<u64> = xs
                        .iter()
                        .zip(&dp)
                        .map(|(a, b)| a.wrapping_add(*b))
                        .collect();
                    let mut y = self.apply_linear(i, &z)?;
                    for ((v, m), t) in y.iter_mut().zip(&sh.m).zip(&sh.t) {
                        *v = v.wrapping_add(*m).wrapping_add(*t);
                    }
                    y
                }
                Step::Square(s) => {
                    let (a, c) = squares[*s].take().ok_or_else(|| {
                        EngineError::Protocol("Beaver material used twice".into())
                    })?;
                    let xs = x(0);
                    let e_mine: Vec<u64> =
                        xs.iter().zip(&a).map(|(v, a)| v.wrapping_sub(*a)).collect();
                    ch.send_u64s(&e_mine)?;
                    ch.flush()?;
                    let e_peer = ch.recv_u64s(xs.len())?;
                    e_mine
                        .iter()
                        .zip(&e_peer)
                        .zip(a.iter().zip(&c))
                        .map(|((e0, e1), (a, c))| {
                            let e = e0.wrapping_add(*e1);
                            let mut y = e.wrapping_mul(2).wrapping_mul(*a).wrapping_add(*c);
                            if self.party == PartyId::P0 {
                                y = y.wrapping_add(e.wrapping_mul(e));
                            }
                            y
                        })
                        .collect()
                }
                Step::Gc {
                    index,
                    gather,
                    scale_out,
                    ..
                } => {
                    let mat = gc[*index]
                        .take()
                        .ok_or_else(|| EngineError::Protocol("GC material used twice".into()))?;
                    let xs = x(0);
                    let inputs: Vec<u64> = match gather {
                        Some(g) => g.iter().map(|&j| xs[j]).collect(),
                        None => xs.clone(),
                    };
                    let mut y = match mat {
                        GcMaterial::Garbler(g) => g.online(ch, &inputs)?,
                        GcMaterial::Evaluator(e) => e.online(ch, &inputs)?,
                    };
                    if *scale_out {
                        for v in y.iter_mut() {
                            *v = v.wrapping_shl(f.0);
                        }
                    }
                    y
                }
                Step::Local => self.local(i, &vals)?,
            };
            let st1 = ch.stats();
            costs.push(LayerCost {
                index: i,
                op: n.op.kind().to_string(),
                ms: t0.elapsed().as_secs_f64() * 1e3,
                bytes: st1.total().bytes() - st0.total().bytes(),
                rounds: st1.total().rounds() - st0.total().rounds(),
            });
            vals.push(out);
        }
        let logits = vals.swap_remove(q.output);
        match (kind, self.argmax_layer) {
            (OutputKind::Label, Some(a)) => {
                let t0 = Instant::now();
                let st0 = ch.stats().total();
                let mat = gc[a]
                    .take()
                    .ok_or_else(|| EngineError::Protocol("GC material used twice".into()))?;
                let label = match mat {
                    GcMaterial::Garbler(g) => g.online(ch, &logits)?,
                    GcMaterial::Evaluator(e) => e.online(ch, &logits)?,
                };
                let st1 = ch.stats().total();
                costs.push(LayerCost {
                    index: q.nodes.len(),
                    op: "argmax (label only)".into(),
                    ms: t0.elapsed().as_secs_f64() * 1e3,
                    bytes: st1.bytes() - st0.bytes(),
                    rounds: st1.rounds() - st0.rounds(),
                });
                Ok((label, costs))
            }
            _ => Ok((logits, costs)),
        }
    }

    /// `L(z; W_mine) + b_mine` for linear node `i`.
    fn apply_linear(&self, i: usize, z: &[u64]) -> Result<Vec<u64>> {
        let op = &self.share.program.nodes[i].op;
        blindfold_model::engine::apply_weighted(op, z).ok_or_else(|| {
            EngineError::Protocol(format!("node {i} ({}) is not a linear layer", op.kind()))
        })
    }

    /// Local operations on this party's shares.
    fn local(&self, i: usize, vals: &[Vec<u64>]) -> Result<Vec<u64>> {
        let q = &self.share.program;
        let n = &q.nodes[i];
        if n.op == QOp::Trunc {
            let f = q.frac_bits();
            return Ok(vals[n.inputs[0]]
                .iter()
                .map(|&v| match self.party {
                    PartyId::P0 => blindfold_core::ring::trunc_share_p0(v, f),
                    PartyId::P1 => blindfold_core::ring::trunc_share_p1(v, f),
                })
                .collect());
        }
        blindfold_model::engine::apply_share_local(q, i, vals).ok_or_else(|| {
            EngineError::Protocol(format!("node {i} ({}) is not local", n.op.kind()))
        })
    }
}
