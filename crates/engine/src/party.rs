//! One party's side of the two-party engine, driven by a [`Plan`] and its
//! [`Roles`]. The diagram is the two-server deployment (both parties hold weight
//! shares, P0 adds public terms, garblers alternate); with one weight holder
//! only the other party's direction of every exchange below runs (see
//! [`PartyEngine::linear_online`]).
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
//!  trunc:   a GC layer (below) whose circuit is the borrow of the low f bits;
//!           the garbler adds a >>> f, the evaluator -((-K) >>> f) (exact)
//!  square:  e0 = x0 - a0 ─────────▶             ◀───────── e1 = x1 - a1
//!           y0 = e² + 2e·a0 + c0                 y1 = 2e·a1 + c1
//!  GC layer: the evaluator sends y_E - K, the garbler its input labels; the
//!           garbler's output share is its mask r, the evaluator's f(y) - r
//!  sum-pool, add, reshape, concat, resize, public multiply: local on shares
//! ```
//!
//! The offline phase makes one material per plan step, in step order; the online
//! phase consumes a [`Bundle`] by value, step and material together, so
//! preprocessed material is never reused. Each linear layer and each square costs one round (both parties send at
//! once), each GC layer one round trip.

use crate::plan::{GcStep, Plan, Products, Roles, StepSpec};
use crate::serve::wire::PeerHello;
use crate::share::ModelShare;
use crate::{EngineError, PeerMismatch, Result};
use blindfold_core::PartyId;
use blindfold_gc::{EvaluatorOffline, EvaluatorSession, GarblerOffline, GarblerSession};
use blindfold_he::{DirectedShares, EncodedWeights, HeParams, HeSession, LayerJob};
use blindfold_model::quant::QModel;
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;
use std::time::Instant;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A step of the plan with what this party prepared for it once per model.
struct Prepared {
    spec: StepSpec,
    /// This party's weight share packed for the homomorphic products, on linear
    /// steps where this party answers the peer's queries.
    weights: Option<EncodedWeights>,
}

/// A server's engine for one model share: the plan, and this party's weight
/// shares encoded for the homomorphic products.
pub struct PartyEngine {
    party: PartyId,
    share: ModelShare,
    plan: Plan,
    steps: Vec<Prepared>,
    he_params: Arc<HeParams>,
}

/// What the servers return to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Shares of every output value.
    Logits,
    /// Shares of the argmax index only (a garbled circuit over the logits).
    Label,
}

/// Keys and OT state of one peer connection, for the roles of the plan.
pub struct Session {
    he: Option<HeSession>,
    garbler: Option<GarblerSession>,
    evaluator: Option<EvaluatorSession>,
    beaver: BeaverOt,
    /// Correlated OT for the OT-preprocessed linear steps (binarized dense
    /// layers, per-channel affine maps): ours as sender (we hold weights and
    /// the peer queries), ours as receiver (we query, the peer holds weights).
    products_ot: (Option<CotSender>, Option<CotReceiver>),
    /// Silent OT both ways for the OT-based comparison steps (P0 is their
    /// sender, role A).
    cmp: Option<blindfold_cmp::CmpSession>,
}

/// This party's end of the OTs behind Beaver squares.
enum BeaverOt {
    None,
    Sender(CotSender),
    Receiver(CotReceiver),
}

/// A garbled-circuit layer's offline material, in the role this party plays.
enum GcMaterial {
    Garbler(GarblerOffline),
    Evaluator(EvaluatorOffline),
}

impl GcMaterial {
    fn online(self, ch: &mut impl Channel, inputs: &[u64]) -> Result<Vec<u64>> {
        Ok(match self {
            GcMaterial::Garbler(g) => g.online(ch, inputs)?,
            GcMaterial::Evaluator(e) => e.online(ch, inputs)?,
        })
    }
}

/// One step's preprocessed material. Every variant's secrets are zeroized when
/// it is dropped (after the online phase used it, or with an unused bundle).
enum Material {
    /// Steps without preprocessing (input, local ops).
    None,
    Linear(LinearShares),
    /// `GarblerOffline` / `EvaluatorOffline` zeroize themselves (blindfold-gc).
    Gc(GcMaterial),
    /// Random OTs of an OT-comparison step (zeroized on drop, blindfold-cmp).
    Ot(blindfold_cmp::Material),
    Square(BeaverShares),
}

/// One linear layer's HE-preprocessed shares: the mask `R`, `M` and `T`, all
/// secret. `DirectedShares` (blindfold-he) has public fields and no `Drop`; this
/// wrapper wipes them.
struct LinearShares(DirectedShares);

impl Zeroize for LinearShares {
    fn zeroize(&mut self) {
        if let Some(m) = self.0.mask.as_mut() {
            m.r.zeroize();
            m.m.zeroize();
        }
        if let Some(t) = self.0.t.as_mut() {
            t.zeroize();
        }
    }
}

impl Drop for LinearShares {
    fn drop(&mut self) {
        self.zeroize();
    }
}

/// This party's shares of one square layer's Beaver pairs `(a, a²)`, cut from
/// the batch without leaving copies behind.
#[derive(Zeroize, ZeroizeOnDrop)]
struct BeaverShares {
    a: Vec<u64>,
    a2: Vec<u64>,
}

/// One query's preprocessed material: one [`Material`] per step of the plan, in
/// step order, and the label circuit's. Consumed by [`PartyEngine::online_with`].
pub struct Bundle {
    /// The plan it was made for ([`Plan::id`]).
    plan_id: u64,
    steps: Vec<Material>,
    label: Option<GcMaterial>,
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

/// Whether `peer`'s hello names the counterpart of `mine`.
fn check_peer(mine: &PeerHello, peer: &PeerHello) -> std::result::Result<(), PeerMismatch> {
    if peer.model_id != mine.model_id {
        return Err(PeerMismatch::OtherSplit);
    }
    if peer.party == mine.party {
        return Err(PeerMismatch::SameParty(peer.party.index() as u8));
    }
    if peer.deployment != mine.deployment {
        return Err(PeerMismatch::OtherDeployment);
    }
    if peer.roles != mine.roles {
        return Err(PeerMismatch::OtherRoles);
    }
    if peer.fingerprint != mine.fingerprint {
        return Err(PeerMismatch::OtherProgram);
    }
    Ok(())
}

/// Run one batched OT exchange for several layers and give each layer its
/// share (in proportion to `sizes`) of the batch's time and bytes, appending
/// its material to `linear`.
fn ot_batch<C: Channel>(
    ch: &mut C,
    nodes: &[(usize, &str)],
    sizes: &[usize],
    linear: &mut Vec<(usize, LinearShares)>,
    costs: &mut Vec<LayerCost>,
    run: impl FnOnce(&mut C) -> Result<Vec<DirectedShares>>,
) -> Result<()> {
    let t = Instant::now();
    let st0 = ch.stats().total();
    let out = run(ch)?;
    ch.flush()?;
    let st1 = ch.stats().total();
    let (ms, bytes) = (t.elapsed().as_secs_f64() * 1e3, st1.bytes() - st0.bytes());
    let total: usize = sizes.iter().sum();
    for ((&(node, op), &size), sh) in nodes.iter().zip(sizes).zip(out) {
        let part = size as f64 / total as f64;
        costs.push(LayerCost {
            index: node,
            op: format!("{op} (OT products)"),
            ms: ms * part,
            bytes: (bytes as f64 * part) as u64,
            rounds: st1.rounds() - st0.rounds(),
        });
        linear.push((node, LinearShares(sh)));
    }
    Ok(())
}

impl PartyEngine {
    /// Plan the program for the two-server deployment and encode this party's
    /// weights for the homomorphic products.
    pub fn new(share: ModelShare) -> Result<PartyEngine> {
        PartyEngine::for_deployment(share, crate::plan::Deployment::TwoServer)
    }

    /// Plan the program for `deployment` (its default roles).
    pub fn for_deployment(
        share: ModelShare,
        deployment: crate::plan::Deployment,
    ) -> Result<PartyEngine> {
        let plan = Plan::new(&share.program, deployment)?;
        PartyEngine::with_plan(share, plan)
    }

    /// An engine for `plan` (made from `share.program`, possibly with other roles).
    pub fn with_plan(share: ModelShare, plan: Plan) -> Result<PartyEngine> {
        if plan.program_fingerprint() != crate::share::architecture_fingerprint(&share.program) {
            return Err(EngineError::PlanMismatch);
        }
        let party = share.party_id();
        let he_params = HeParams::new()?;
        let answers = plan.roles().he_directions().answers(party);
        let mut steps = Vec::with_capacity(plan.steps().len());
        for step in plan.steps() {
            let weights = match &step.spec {
                StepSpec::Linear(l) if answers && l.products == Products::He => {
                    let w = share.program.nodes[step.node]
                        .op
                        .secrets()
                        .ok_or(EngineError::BundleMismatch { layer: step.node })?
                        .weight;
                    Some(EncodedWeights::new(&he_params, &l.he, w)?)
                }
                _ => None,
            };
            steps.push(Prepared {
                spec: step.spec.clone(),
                weights,
            });
        }
        Ok(PartyEngine {
            party,
            share,
            plan,
            steps,
            he_params,
        })
    }

    pub fn party(&self) -> PartyId {
        self.party
    }
    pub fn program(&self) -> &QModel {
        &self.share.program
    }
    /// The split's pairing secret (`serve::pairing`).
    pub(crate) fn pairing_key(&self) -> &crate::share::PairingKey {
        &self.share.pairing_key
    }

    pub fn model_id(&self) -> [u8; 16] {
        self.share.model_id
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    fn roles(&self) -> &Roles {
        self.plan.roles()
    }

    /// Set up a session with the peer: checks that both hold shares of the same
    /// split, complementary parties and the same deployment and program, then the
    /// HE keys and OT base setups the plan's roles need.
    pub fn setup(
        &self,
        ch: &mut impl Channel,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Session> {
        let hello = PeerHello {
            model_id: self.share.model_id,
            party: self.party,
            deployment: self.plan.deployment().wire_id(),
            roles: self.roles().to_wire(),
            fingerprint: self.plan.program_fingerprint(),
        };
        ch.send(&hello.encode())?;
        ch.flush()?;
        let peer = PeerHello::decode(&ch.recv()?)?;
        check_peer(&hello, &peer)?;
        let roles = *self.roles();
        let he = if self
            .steps
            .iter()
            .any(|s| matches!(&s.spec, StepSpec::Linear(l) if l.products == Products::He))
        {
            Some(HeSession::setup_directed(
                self.party,
                ch,
                &self.he_params,
                roles.he_directions(),
                rng,
            )?)
        } else {
            None
        };
        // One GC session per direction in use, P0's garbling first.
        let garblers: Vec<PartyId> = self.plan.circuits().map(|g| g.garbler).collect();
        let (mut garbler, mut evaluator) = (None, None);
        for g in [PartyId::P0, PartyId::P1] {
            if !garblers.contains(&g) {
                continue;
            }
            if g == self.party {
                garbler = Some(GarblerSession::setup(ch, rng)?);
            } else {
                evaluator = Some(EvaluatorSession::setup(ch, rng)?);
            }
        }
        let squares = self
            .steps
            .iter()
            .any(|s| matches!(s.spec, StepSpec::Square(_)));
        let beaver = if !squares {
            BeaverOt::None
        } else if roles.beaver_sender() == self.party {
            let mut d = Zeroizing::new([0u8; 16]);
            rng.fill_bytes(&mut *d);
            let delta = Zeroizing::new(blindfold_core::Block::from_bytes(*d));
            BeaverOt::Sender(CotSender::setup(ch, *delta, rng)?)
        } else {
            BeaverOt::Receiver(CotReceiver::setup(ch, rng)?)
        };
        // OT products (binarized layers, affine maps): one session per
        // direction in use, P0's sending first.
        let ot_steps = self.steps.iter().any(|s| match &s.spec {
            StepSpec::Linear(l) => l.products == Products::BinaryOt,
            StepSpec::Affine(_) => true,
            _ => false,
        });
        let mut products_ot = (None, None);
        for sender in [PartyId::P0, PartyId::P1] {
            let receiver = sender.other();
            if !(ot_steps && roles.holds_weights(sender) && roles.queries_linear(receiver)) {
                continue;
            }
            if sender == self.party {
                let mut d = Zeroizing::new([0u8; 16]);
                rng.fill_bytes(&mut *d);
                let delta = Zeroizing::new(blindfold_core::Block::from_bytes(*d));
                products_ot.0 = Some(CotSender::setup(ch, *delta, rng)?);
            } else {
                products_ot.1 = Some(CotReceiver::setup(ch, rng)?);
            }
        }
        let cmp = if self.steps.iter().any(|s| matches!(s.spec, StepSpec::Ot(_))) {
            let role = if self.party == PartyId::P0 {
                blindfold_cmp::Role::A
            } else {
                blindfold_cmp::Role::B
            };
            let per_query = self.steps.iter().fold([0, 0], |[a, b], s| match &s.spec {
                StepSpec::Ot(o) => {
                    let (x, y) = o.op.rots(o.elements);
                    [a + x, b + y]
                }
                _ => [a, b],
            });
            Some(blindfold_cmp::CmpSession::setup(ch, role, per_query, rng)?)
        } else {
            None
        };
        Ok(Session {
            he,
            garbler,
            evaluator,
            beaver,
            products_ot,
            cmp,
        })
    }

    /// The offline phase for one query: everything input-independent, one
    /// material per step of the plan.
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
        let plan_steps = self.plan.steps();
        let mut offline_layers = Vec::new();

        // Homomorphic products of every linear layer, in one pass.
        let jobs: Vec<LayerJob<'_>> = self
            .steps
            .iter()
            .filter_map(|p| match &p.spec {
                StepSpec::Linear(l) if l.products == Products::He => Some(LayerJob {
                    plan: &l.he,
                    weights: p.weights.as_ref(),
                }),
                _ => None,
            })
            .collect();
        // Linear materials by node: HE ones, then OT ones, merged in step order.
        let mut linear_by_node: Vec<(usize, LinearShares)> = Vec::new();
        if !jobs.is_empty() {
            let he =
                s.he.as_ref()
                    .ok_or(EngineError::BundleMismatch { layer: 0 })?;
            let linear_nodes = plan_steps
                .iter()
                .filter(|st| matches!(&st.spec, StepSpec::Linear(l) if l.products == Products::He));
            // Each running direction is a query flight and an answer flight.
            let dirs = he.directions();
            let he_flights = 2 * [PartyId::P0, PartyId::P1]
                .iter()
                .filter(|&&p| dirs.queries(p))
                .count() as u64;
            let out = blindfold_he::preprocess_directed(self.party, ch, he, &jobs, rng)?;
            let mut out: Vec<(LinearShares, _)> = out
                .into_iter()
                .map(|(sh, cost)| (LinearShares(sh), cost))
                .collect();
            for ((sh, cost), st) in out.drain(..).zip(linear_nodes) {
                offline_layers.push(LayerCost {
                    index: st.node,
                    op: st.op.to_string(),
                    ms: cost.ms,
                    bytes: cost.bytes,
                    rounds: he_flights,
                });
                linear_by_node.push((st.node, sh));
            }
        }
        self.binary_ot_offline(ch, s, &mut linear_by_node, &mut offline_layers, rng)?;
        self.affine_offline(ch, s, &mut linear_by_node, &mut offline_layers, rng)?;
        linear_by_node.sort_by_key(|(node, _)| *node);
        let linear: Vec<LinearShares> = linear_by_node.into_iter().map(|(_, sh)| sh).collect();

        // Garbled circuits, program order, the label circuit last.
        let circuit_nodes = plan_steps
            .iter()
            .filter(|st| matches!(st.spec, StepSpec::Gc(_)))
            .map(|st| (st.node, st.op))
            .chain(self.plan.label().map(|_| (q.nodes.len(), self.label_op())));
        let mut circuits = Vec::new();
        for (g, (node, op)) in self.plan.circuits().zip(circuit_nodes) {
            let t = Instant::now();
            let st0 = ch.stats().total();
            circuits.push(self.garble_or_evaluate(ch, s, g, rng)?);
            ch.flush()?;
            let st1 = ch.stats().total();
            offline_layers.push(LayerCost {
                index: node,
                op: op.to_string(),
                ms: t.elapsed().as_secs_f64() * 1e3,
                bytes: st1.bytes() - st0.bytes(),
                rounds: st1.rounds() - st0.rounds(),
            });
        }

        // OT comparisons: the random OTs of each step, program order.
        let mut ot_mats = Vec::new();
        let (mut offline_adjust_ms, mut offline_adjust_bytes) = (0.0f64, 0i64);
        for st in plan_steps {
            let StepSpec::Ot(o) = &st.spec else { continue };
            let t = Instant::now();
            let st0 = ch.stats().total();
            let cmp = s.cmp.as_mut().ok_or(EngineError::NoSession("silent OT"))?;
            let m = cmp.offline(ch, o.op, o.elements, rng)?;
            ch.flush()?;
            let st1 = ch.stats().total();
            // Silent OT extensions land on one query in several: report the
            // draw with its amortized share instead (blindfold-cmp OfflineCost).
            let c = m.cost;
            let ms =
                t.elapsed().as_secs_f64() * 1e3 - 1e3 * c.extension_secs + 1e3 * c.amortized_secs;
            let bytes = (st1.bytes() - st0.bytes()).saturating_sub(c.extension_bytes)
                + c.amortized_bytes.round() as u64;
            offline_adjust_ms += ms - t.elapsed().as_secs_f64() * 1e3;
            offline_adjust_bytes += bytes as i64 - (st1.bytes() - st0.bytes()) as i64;
            ot_mats.push(m);
            offline_layers.push(LayerCost {
                index: st.node,
                op: format!("{} (OT comparisons)", st.op),
                ms,
                bytes,
                rounds: st1.rounds() - st0.rounds(),
            });
        }
        let mut ot_mats = ot_mats.into_iter();

        // Beaver pairs for every square, in one batch.
        let t = Instant::now();
        let st0 = ch.stats().total();
        let sizes: Vec<usize> = self
            .steps
            .iter()
            .filter_map(|p| match p.spec {
                StepSpec::Square(sq) => Some(sq.elements),
                _ => None,
            })
            .collect();
        let pairs = self.beaver(ch, s, sizes.iter().sum(), rng)?;
        ch.flush()?;
        if let Some(st) = plan_steps
            .iter()
            .find(|st| matches!(st.spec, StepSpec::Square(_)))
        {
            let st1 = ch.stats().total();
            offline_layers.push(LayerCost {
                index: st.node,
                op: "square (all Beaver pairs)".into(),
                ms: t.elapsed().as_secs_f64() * 1e3,
                bytes: st1.bytes() - st0.bytes(),
                rounds: st1.rounds() - st0.rounds(),
            });
        }

        // One material per step, in step order.
        let mut linear = linear.into_iter();
        let mut circuits = circuits.into_iter();
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut taken = 0usize;
        for (i, p) in self.steps.iter().enumerate() {
            let missing = EngineError::BundleMismatch { layer: i };
            steps.push(match p.spec {
                StepSpec::Linear(_) | StepSpec::Affine(_) => {
                    Material::Linear(linear.next().ok_or(missing)?)
                }
                StepSpec::Gc(_) => Material::Gc(circuits.next().ok_or(missing)?),
                StepSpec::Ot(_) => Material::Ot(ot_mats.next().ok_or(missing)?),
                StepSpec::Square(sq) => {
                    // Copy this layer's pairs out of the batch, which is zeroized
                    // when dropped (split_off / truncate would leave copies in
                    // spare capacity).
                    let range = taken..taken + sq.elements;
                    taken += sq.elements;
                    match (pairs.a.get(range.clone()), pairs.a2.get(range)) {
                        (Some(a), Some(a2)) => Material::Square(BeaverShares {
                            a: a.to_vec(),
                            a2: a2.to_vec(),
                        }),
                        _ => return Err(missing),
                    }
                }
                StepSpec::Input | StepSpec::Local => Material::None,
            });
        }
        let label = circuits.next();
        Ok(Bundle {
            plan_id: self.plan.id(),
            steps,
            label,
            offline_ms: t0.elapsed().as_secs_f64() * 1e3 + offline_adjust_ms,
            offline_bytes: ((ch.stats().total().bytes() - b0) as i64 + offline_adjust_bytes).max(0)
                as u64,
            offline_layers,
        })
    }

    fn garble_or_evaluate(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        g: &GcStep,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<GcMaterial> {
        Ok(if g.garbler == self.party {
            let gs = s
                .garbler
                .as_mut()
                .ok_or(EngineError::NoSession("garbler"))?;
            GcMaterial::Garbler(gs.offline(ch, g.gadget, g.elements, rng)?)
        } else {
            let es = s
                .evaluator
                .as_mut()
                .ok_or(EngineError::NoSession("evaluator"))?;
            GcMaterial::Evaluator(es.offline(ch, g.gadget, g.elements, rng)?)
        })
    }

    /// `total` Beaver square pairs: `a = a0 + a1` uniform, `c0 + c1 = a²`, the
    /// cross term `a0·a1` by Gilboa multiplication over 64 additively correlated
    /// OTs per element (`blindfold_he::beaver`).
    fn beaver(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        total: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<blindfold_he::beaver::SquareShares> {
        if total == 0 {
            return Ok(blindfold_he::beaver::SquareShares {
                a: Vec::new(),
                a2: Vec::new(),
            });
        }
        Ok(match &mut s.beaver {
            BeaverOt::Sender(cot) => {
                blindfold_he::beaver::square_pairs_sender(ch, cot, total, rng)?
            }
            BeaverOt::Receiver(cot) => {
                blindfold_he::beaver::square_pairs_receiver(ch, cot, total, rng)?
            }
            BeaverOt::None => return Err(EngineError::NoSession("Beaver OT")),
        })
    }

    /// The OT products of every binarized dense layer (two batches of
    /// correlated OTs, `binary_ot`), appended to `linear` with their costs.
    fn binary_ot_offline(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        linear: &mut Vec<(usize, LinearShares)>,
        costs: &mut Vec<LayerCost>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<()> {
        let q = &self.share.program;
        let mut nodes = Vec::new();
        let mut jobs = Vec::new();
        for st in self.plan.steps() {
            let StepSpec::Linear(l) = &st.spec else {
                continue;
            };
            if l.products != Products::BinaryOt {
                continue;
            }
            let missing = EngineError::BundleMismatch { layer: st.node };
            let (
                blindfold_model::quant::QOp::Dense {
                    inputs, outputs, ..
                },
                Some(sec),
            ) = (&q.nodes[st.node].op, q.nodes[st.node].op.secrets())
            else {
                return Err(missing);
            };
            nodes.push((st.node, st.op));
            jobs.push(crate::binary_ot::BinaryLayerJob {
                inputs: *inputs,
                outputs: *outputs,
                weight: sec.weight,
            });
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let (Some(snd), Some(rcv)) = (s.products_ot.0.as_mut(), s.products_ot.1.as_mut()) else {
            return Err(EngineError::NoSession("binary-layer OT"));
        };
        let sizes: Vec<usize> = jobs.iter().map(|j| j.inputs * j.outputs).collect();
        ot_batch(ch, &nodes, &sizes, linear, costs, |ch| {
            crate::binary_ot::preprocess(ch, snd, rcv, &jobs, rng)
        })
    }

    /// The OT multiplications of every per-channel affine step, appended to
    /// `linear` with their costs (`crate::affine_ot`).
    fn affine_offline(
        &self,
        ch: &mut impl Channel,
        s: &mut Session,
        linear: &mut Vec<(usize, LinearShares)>,
        costs: &mut Vec<LayerCost>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<()> {
        let q = &self.share.program;
        let mut nodes = Vec::new();
        let mut jobs = Vec::new();
        for st in self.plan.steps() {
            let StepSpec::Affine(a) = &st.spec else {
                continue;
            };
            let sec = q.nodes[st.node]
                .op
                .secrets()
                .ok_or(EngineError::BundleMismatch { layer: st.node })?;
            nodes.push((st.node, st.op));
            jobs.push(crate::affine_ot::AffineJob {
                elements: a.elements,
                scale: sec.weight,
            });
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let me = self.party;
        let sizes: Vec<usize> = jobs.iter().map(|j| j.elements).collect();
        let (i_query, i_hold) = (
            self.roles().queries_linear(me),
            self.roles().holds_weights(me),
        );
        ot_batch(ch, &nodes, &sizes, linear, costs, |ch| {
            crate::affine_ot::preprocess(ch, &mut s.products_ot, i_query, i_hold, &jobs, rng)
        })
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

    /// What the label circuit is called in per-layer costs.
    fn label_op(&self) -> &'static str {
        match self.plan.label() {
            Some(g) if g.elements > 1 => "argmax per pixel (mask only)",
            _ => "argmax (label only)",
        }
    }

    /// Whether a label-only answer is available (the output is a vector, or a
    /// `[C, H, W]` map whose per-pixel argmax is a mask).
    pub fn supports_label(&self) -> bool {
        self.plan.label().is_some()
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
        if kind == OutputKind::Label && !self.supports_label() {
            return Err(EngineError::LabelNeedsVector);
        }
        let expected = q.input_shape().numel();
        if input.len() != expected {
            return Err(EngineError::InputLength {
                expected,
                got: input.len(),
            });
        }
        if bundle.plan_id != self.plan.id() || bundle.steps.len() != self.steps.len() {
            return Err(EngineError::BundleMismatch { layer: 0 });
        }
        let f = self.plan.frac_bits();
        let me = self.party;
        let roles = *self.roles();
        // Shares of every intermediate value: wiped when the query ends, also on
        // an error.
        let mut vals: Zeroizing<Vec<Vec<u64>>> = Zeroizing::new(Vec::with_capacity(q.nodes.len()));
        let mut costs = Vec::with_capacity(q.nodes.len() + 1);
        let mut steps = self.steps.iter().zip(bundle.steps).enumerate();
        // Node 0 is the input: the planner refuses any other program.
        match steps.next() {
            Some((
                _,
                (
                    Prepared {
                        spec: StepSpec::Input,
                        ..
                    },
                    Material::None,
                ),
            )) => {}
            _ => return Err(EngineError::BundleMismatch { layer: 0 }),
        }
        costs.push(LayerCost {
            index: 0,
            op: q.nodes[0].op.kind().to_string(),
            ..LayerCost::default()
        });
        vals.push(input);
        for (i, (p, mat)) in steps {
            let n = &q.nodes[i];
            let t0 = Instant::now();
            let st0 = ch.stats().total();
            ch.set_phase("online");
            let out: Vec<u64> = match (&p.spec, mat) {
                (StepSpec::Linear(_) | StepSpec::Affine(_), Material::Linear(sh)) => {
                    self.linear_online(ch, i, &vals[n.inputs[0]], &sh.0, &roles)?
                }
                (StepSpec::Square(_), Material::Square(BeaverShares { ref a, ref a2 })) => {
                    let xs = &vals[n.inputs[0]];
                    let e_mine: Vec<u64> =
                        xs.iter().zip(a).map(|(v, a)| v.wrapping_sub(*a)).collect();
                    ch.send_u64s(&e_mine)?;
                    ch.flush()?;
                    let e_peer = ch.recv_u64s(xs.len())?;
                    let public = roles.public_terms() == me;
                    e_mine
                        .iter()
                        .zip(&e_peer)
                        .zip(a.iter().zip(a2))
                        .map(|((e0, e1), (a, c))| {
                            let e = e0.wrapping_add(*e1);
                            let y = e.wrapping_mul(2).wrapping_mul(*a).wrapping_add(*c);
                            if public {
                                y.wrapping_add(e.wrapping_mul(e))
                            } else {
                                y
                            }
                        })
                        .collect()
                }
                (StepSpec::Gc(g), Material::Gc(mat)) => {
                    let xs = &vals[n.inputs[0]];
                    let mut y = match &g.gather {
                        Some(idx) => {
                            let inputs: Vec<u64> = idx.iter().map(|&j| xs[j]).collect();
                            mat.online(ch, &inputs)?
                        }
                        None => mat.online(ch, xs)?,
                    };
                    if g.scale_out {
                        for v in y.iter_mut() {
                            *v = v.wrapping_shl(f.0);
                        }
                    }
                    y
                }
                (StepSpec::Ot(o), Material::Ot(mat)) => {
                    let xs = &vals[n.inputs[0]];
                    let mut y = match &o.gather {
                        Some(idx) => {
                            let inputs: Zeroizing<Vec<u64>> =
                                Zeroizing::new(idx.iter().map(|&j| xs[j]).collect());
                            mat.online(ch, &inputs)?
                        }
                        None => mat.online(ch, xs)?,
                    };
                    if o.scale_out {
                        for v in y.iter_mut() {
                            *v = v.wrapping_shl(f.0);
                        }
                    }
                    y
                }
                (StepSpec::Local, Material::None) => {
                    blindfold_model::engine::apply_share_local(q, i, &vals)
                        .ok_or(EngineError::BundleMismatch { layer: i })?
                }
                _ => return Err(EngineError::BundleMismatch { layer: i }),
            };
            let st1 = ch.stats().total();
            costs.push(LayerCost {
                index: i,
                op: n.op.kind().to_string(),
                ms: t0.elapsed().as_secs_f64() * 1e3,
                bytes: st1.bytes() - st0.bytes(),
                rounds: st1.rounds() - st0.rounds(),
            });
            vals.push(out);
        }
        let logits = vals.swap_remove(q.output);
        match (kind, bundle.label) {
            (OutputKind::Label, Some(mat)) => {
                let t0 = Instant::now();
                let st0 = ch.stats().total();
                let gather = self.plan.label().and_then(|g| g.gather.as_ref());
                let label = match gather {
                    Some(idx) => {
                        let inputs: Zeroizing<Vec<u64>> =
                            Zeroizing::new(idx.iter().map(|&j| logits[j]).collect());
                        mat.online(ch, &inputs)?
                    }
                    None => mat.online(ch, &logits)?,
                };
                let st1 = ch.stats().total();
                costs.push(LayerCost {
                    index: q.nodes.len(),
                    op: self.label_op().into(),
                    ms: t0.elapsed().as_secs_f64() * 1e3,
                    bytes: st1.bytes() - st0.bytes(),
                    rounds: st1.rounds() - st0.rounds(),
                });
                Ok((label, costs))
            }
            (OutputKind::Label, None) => Err(EngineError::LabelNeedsVector),
            (OutputKind::Logits, _) => Ok((logits, costs)),
        }
    }

    /// One linear layer online, by roles: a party that queried sends
    /// `D = x - R`; a weight holder adds `L(x + D_peer; W) + b` and its `T`; a
    /// party that queried adds its `M`.
    fn linear_online(
        &self,
        ch: &mut impl Channel,
        i: usize,
        xs: &[u64],
        sh: &DirectedShares,
        roles: &Roles,
    ) -> Result<Vec<u64>> {
        let me = self.party;
        let mismatch = EngineError::BundleMismatch { layer: i };
        let (i_query, i_hold) = (roles.queries_linear(me), roles.holds_weights(me));
        if i_query {
            let mask = sh
                .mask
                .as_ref()
                .ok_or(EngineError::BundleMismatch { layer: i })?;
            let d: Vec<u64> = xs
                .iter()
                .zip(&mask.r)
                .map(|(a, r)| a.wrapping_sub(*r))
                .collect();
            ch.send_u64s(&d)?;
            ch.flush()?;
        }
        let mut y = if i_hold {
            // The peer queried us exactly when we hold weights.
            let dp = ch.recv_u64s(xs.len())?;
            let z: Vec<u64> = xs
                .iter()
                .zip(&dp)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
            let op = &self.share.program.nodes[i].op;
            let mut y = blindfold_model::engine::apply_weighted(op, &z)
                .ok_or(EngineError::BundleMismatch { layer: i })?;
            let t =
                sh.t.as_ref()
                    .ok_or(EngineError::BundleMismatch { layer: i })?;
            for (v, t) in y.iter_mut().zip(t) {
                *v = v.wrapping_add(*t);
            }
            y
        } else {
            let out = self.share.program.nodes[i].shape.numel();
            vec![0u64; out]
        };
        if i_query {
            let mask = sh.mask.as_ref().ok_or(mismatch)?;
            for (v, m) in y.iter_mut().zip(&mask.m) {
                *v = v.wrapping_add(*m);
            }
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_he::MaskShares;

    #[test]
    fn linear_and_beaver_material_zeroize() {
        let mut l = LinearShares(DirectedShares {
            mask: Some(MaskShares {
                r: vec![1, 2, 3],
                m: vec![4, 5],
            }),
            t: Some(vec![6, 7]),
        });
        l.zeroize();
        let m = l.0.mask.as_ref().unwrap();
        assert!(m.r.is_empty() && m.m.is_empty());
        assert!(l.0.t.as_ref().unwrap().is_empty());

        let mut b = BeaverShares {
            a: vec![9; 4],
            a2: vec![81; 4],
        };
        b.zeroize();
        assert!(b.a.is_empty() && b.a2.is_empty());
    }
}
