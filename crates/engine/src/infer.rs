//! One mode type and one small inference interface for every way blindfold runs
//! a model, and the evaluation and benchmark built on them. The CLI only parses
//! flags and formats these reports.
//!
//! ```text
//!  Mode::Float ──────▶ FloatInference    (the model as trained, f64)
//!  Mode::Plain ──────▶ PlainInference    (the fixed-point reference)
//!  Mode::Secure(d) ──▶ LocalInference    (deployment d's servers on loopback)
//!                         │
//!        evaluate(): accuracies, agreement, bit-exactness, costs → EvalReport
//!                    (+ Dice per class and mask agreement for [C, H, W] maps)
//!        bench():    both parties over loopback TCP, medians    → BenchReport
//! ```
//!
//! A model whose output is a `[C, H, W]` map with `C >= 2` (a segmentation
//! model) also gets a mask, one class per pixel ([`Prediction::mask`]), and a
//! dataset with masks is scored with Dice ([`SegmentationEval`]).
//!
//! Adding a mode: a `Mode` variant (or a [`Deployment`]) and an [`Inference`]
//! implementation; `evaluate` and the CLI pick it up.

use crate::party::OutputKind;
use crate::party::{LayerCost, PartyEngine};
use crate::plan::Deployment;
use crate::serve::{CsClient, LocalCluster, LocalCsServer};
use crate::{EngineError, Result};
use blindfold_core::Prg;
use blindfold_model::data::Dataset;
use blindfold_model::engine as reference;
use blindfold_model::quant::{QModel, QOp};
use blindfold_model::segment::{self, DiceCounts, DiceReport, MapShape, SegmentError};
use blindfold_model::{Model, ModelError};
use blindfold_net::TcpChannel;
use blindfold_net::{Channel, Listener, Transport};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How a model is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The float model as trained.
    Float,
    /// The fixed-point reference: what the secure engines compute.
    Plain,
    /// A secure deployment.
    Secure(Deployment),
}

impl Mode {
    /// Every mode, in the order help texts list them.
    pub const ALL: [Mode; 4] = [
        Mode::Plain,
        Mode::Float,
        Mode::Secure(Deployment::TwoServer),
        Mode::Secure(Deployment::ClientServer),
    ];

    /// The name users type (`--mode`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Float => "float",
            Mode::Plain => "plain",
            Mode::Secure(d) => d.name(),
        }
    }

    /// Parse a name printed by [`Self::name`].
    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether this mode computes on secrets.
    pub fn is_secure(self) -> bool {
        matches!(self, Mode::Secure(_))
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What one inference costs (secure modes).
#[derive(Clone, Debug, Default, Serialize)]
pub struct InferenceCost {
    /// Wall-clock time at the client.
    pub latency_ms: f64,
    /// The offline phase of the bundle the query used (P0's view).
    pub offline_ms: f64,
    /// The online phase between the servers (P0's view).
    pub online_ms: f64,
    /// Bytes: offline and online between the servers plus the client's.
    pub bytes: u64,
}

/// One answer.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub label: usize,
    /// Decoded output scores.
    pub scores: Vec<f64>,
    /// The ring output, in fixed-point modes.
    pub ring: Option<Vec<u64>>,
    /// Costs, in secure modes.
    pub cost: Option<InferenceCost>,
    /// One class per pixel (row-major), when the output is a `[C, H, W]` map
    /// with `C >= 2`: the per-pixel argmax, first maximum on ties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<Vec<u32>>,
}

/// The mask of a secure answer's output map, computed by the client from the
/// reconstructed ring output (the same per-pixel argmax as the reference's,
/// so equal outputs give equal masks). The one place to replace by a secure
/// per-pixel argmax circuit, after which the client would receive the mask
/// only.
pub fn secure_mask(map: MapShape, ring: &[u64]) -> Result<Vec<u32>> {
    seg(segment::argmax_map_ring(map, ring))
}

/// A segmentation result as an engine result.
fn seg<T>(r: std::result::Result<T, SegmentError>) -> Result<T> {
    r.map_err(|e| EngineError::Model(ModelError::from(e)))
}

/// The one inference interface every mode implements.
pub trait Inference {
    fn mode(&self) -> Mode;
    /// Predict one input (float values, the model's input shape flattened).
    fn infer(&mut self, input: &[f32]) -> Result<Prediction>;
}

/// [`Mode::Float`].
pub struct FloatInference<'a> {
    model: &'a Model,
}

impl Inference for FloatInference<'_> {
    fn mode(&self) -> Mode {
        Mode::Float
    }
    fn infer(&mut self, input: &[f32]) -> Result<Prediction> {
        let scores = reference::run_float(self.model, input)?;
        let mask = match MapShape::of(self.model.output_shape().dims()) {
            Some(map) => Some(seg(segment::argmax_map(map, &scores))?),
            None => None,
        };
        Ok(Prediction {
            label: reference::argmax(&scores),
            scores,
            ring: None,
            cost: None,
            mask,
        })
    }
}

/// [`Mode::Plain`].
pub struct PlainInference<'a> {
    q: &'a QModel,
}

impl Inference for PlainInference<'_> {
    fn mode(&self) -> Mode {
        Mode::Plain
    }
    fn infer(&mut self, input: &[f32]) -> Result<Prediction> {
        let y = reference::run_plain(self.q, input)?;
        let mask = match MapShape::of(self.q.output_shape().dims()) {
            Some(map) => Some(seg(segment::argmax_map_ring(map, &y))?),
            None => None,
        };
        Ok(Prediction {
            label: reference::argmax_ring(&y),
            scores: reference::decode_output(self.q, &y),
            ring: Some(y),
            cost: None,
            mask,
        })
    }
}

/// [`Mode::Secure`]: the deployment's servers on loopback in this process (a
/// fresh split, or the plaintext model at a client-server server), queried as
/// a client would.
pub struct LocalInference {
    deployment: Deployment,
    backend: Backend,
    map: Option<MapShape>,
    /// Bundles kept ready (client-server: refilled after each query, outside
    /// its latency, as the servers of two-server mode do).
    pool: usize,
}

/// The servers behind a [`LocalInference`]. The client-server client is
/// dropped (its connection closed) before its server.
enum Backend {
    TwoServer(LocalCluster),
    ClientServer {
        client: Box<CsClient<TcpChannel>>,
        _server: LocalCsServer,
    },
}

impl LocalInference {
    /// Start the deployment's servers with `pool` bundles preprocessed ahead.
    pub fn start(q: &QModel, deployment: Deployment, pool: usize) -> Result<LocalInference> {
        crate::plan::Plan::new(q, deployment)?;
        let mut rng = Prg::from_entropy();
        let backend = match deployment {
            Deployment::TwoServer => Backend::TwoServer(LocalCluster::start(q, pool, &mut rng)?),
            Deployment::ClientServer => {
                let cfg = crate::serve::ServeConfig {
                    pool: pool.max(1),
                    ..Default::default()
                };
                let server = LocalCsServer::start(q, cfg)?;
                let mut client = server.client()?;
                client.preprocess(pool)?;
                Backend::ClientServer {
                    client: Box::new(client),
                    _server: server,
                }
            }
        };
        Ok(LocalInference {
            deployment,
            backend,
            pool,
            map: MapShape::of(q.output_shape().dims()),
        })
    }

    /// The two servers behind this client (two-server mode).
    pub fn cluster(&self) -> Option<&LocalCluster> {
        match &self.backend {
            Backend::TwoServer(c) => Some(c),
            Backend::ClientServer { .. } => None,
        }
    }
}

impl LocalInference {
    /// One query for `kind`: the full output (`Logits`; a segmentation model's
    /// mask is then the argmax of the reconstructed logits) or the label /
    /// mask alone (`Label`: the per-pixel argmax runs in a garbled circuit and
    /// only the mask leaves the protocol).
    pub fn infer_kind(&mut self, input: &[f32], kind: OutputKind) -> Result<Prediction> {
        let (label, scores, ring, mask, cost) = match &mut self.backend {
            Backend::TwoServer(cluster) => {
                let a = cluster.query_kind(input, kind)?;
                let c = &a.cost[0];
                let cost = InferenceCost {
                    latency_ms: a.latency_ms,
                    offline_ms: c.offline_ms,
                    online_ms: c.online_ms,
                    bytes: c.offline_bytes + c.online_bytes + a.client_bytes,
                };
                (a.label, a.scores, a.ring, a.mask, cost)
            }
            Backend::ClientServer { client, .. } => {
                let a = client.query(input, kind)?;
                client.preprocess(self.pool)?;
                let cost = InferenceCost {
                    latency_ms: a.latency_ms,
                    offline_ms: a.offline_ms,
                    online_ms: a.online_ms,
                    bytes: a.offline_bytes + a.online_bytes,
                };
                (a.label, a.scores, a.ring, a.mask, cost)
            }
        };
        let mask = match (kind, self.map) {
            (OutputKind::Label, _) => mask,
            (OutputKind::Logits, Some(map)) => Some(secure_mask(map, &ring)?),
            (OutputKind::Logits, None) => None,
        };
        Ok(Prediction {
            label,
            scores,
            // A label-only answer has no logits to compare.
            ring: (kind == OutputKind::Logits).then_some(ring),
            cost: Some(cost),
            mask,
        })
    }
}

impl Inference for LocalInference {
    fn mode(&self) -> Mode {
        Mode::Secure(self.deployment)
    }
    fn infer(&mut self, input: &[f32]) -> Result<Prediction> {
        self.infer_kind(input, OutputKind::Logits)
    }
}

/// An [`Inference`] for `mode` (secure modes start their servers).
pub fn open<'a>(mode: Mode, model: &'a Model, q: &'a QModel) -> Result<Box<dyn Inference + 'a>> {
    Ok(match mode {
        Mode::Float => Box::new(FloatInference { model }),
        Mode::Plain => Box::new(PlainInference { q }),
        Mode::Secure(d) => Box::new(LocalInference::start(q, d, 2)?),
    })
}

/// The median (upper median for even lengths); NaN for no values.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Accuracy of a model on a dataset in one mode.
///
/// A segmentation model (output `[C, H, W]`, `C >= 2`) on a dataset with
/// masks is scored per pixel: the accuracies are fractions of pixels whose
/// class is right, `agreement` the fraction of items whose whole masks agree,
/// and [`Self::segmentation`] holds Dice per class and mode. Otherwise:
///
/// Every mode reports the float accuracy. Fixed-point modes add the reference's
/// accuracy, the largest |plain − float| and the local-truncation failure
/// probability; `agreement` is plain against float in plain mode and secure
/// against plain in secure modes. Secure modes add their own accuracy, the
/// fraction of bit-exact outputs and median costs.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub mode: Mode,
    pub frac_bits: u32,
    pub n: usize,
    pub float_accuracy: f64,
    pub plain_accuracy: Option<f64>,
    pub agreement: Option<f64>,
    /// Largest |plain − float| over all output scores.
    pub max_abs_diff: Option<f64>,
    /// Probability that some stand-alone truncation of one query fails (its
    /// shares wrap around the ring and the value is off by `2^(64-f)`):
    /// `Σ elements · 2·max|x| / 2^64`, with `max|x|` the largest magnitude seen
    /// before each truncation on this dataset. Zero for networks that truncate
    /// only inside ReLU and max-pool circuits (those are exact for every input).
    pub truncation_failure_per_query: Option<f64>,
    /// Values per query truncated outside ReLU and max-pool circuits (the sum
    /// over [`Self::truncations`]). Each is exact (the local shares plus a
    /// garbled borrow of the low bits, `Gadget::TruncMask`): no value is
    /// rounded at random, so repeated answers reveal nothing (docs/SECURITY.md).
    pub truncated_values: Option<usize>,
    /// Every stand-alone truncation of the program, in program order.
    pub truncations: Option<Vec<Truncation>>,
    /// The largest magnitude of any intermediate value of the fixed-point
    /// program on this dataset, and the signed integer width that holds it
    /// (`bits(max) + 1`): the range the ring must cover at these fractional
    /// bits (the quantization study of models/README.md).
    pub max_abs_value: Option<u64>,
    pub range_bits: Option<u32>,
    /// Dice scores and mask agreement, for a segmentation model on a dataset
    /// with masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<SegmentationEval>,
    #[serde(flatten)]
    pub secure: Option<SecureEval>,
    pub seconds: f64,
}

/// One stand-alone truncation of a program (a [`QOp::Trunc`] node, an exact
/// garbled truncation in the secure engines): where it is, how many values per
/// query, what it feeds, and its measured failure bound.
#[derive(Clone, Debug, Serialize)]
pub struct Truncation {
    /// The program node.
    pub node: usize,
    pub name: String,
    /// Values truncated per query.
    pub values: usize,
    /// What the truncated value flows into: the consumers' op kinds, following
    /// local data movement (`"reshape > dense"`).
    pub feeds: Vec<String>,
    /// Largest `|x|` (ring units) seen before this truncation on the data set.
    pub max_abs: u64,
    /// `values · 2·max_abs / 2^64`: the probability per query that the shares of
    /// one of its values wrap (the value is then off by `2^(64-f)`).
    pub failure_probability: f64,
}

/// The stand-alone truncations of `q` (without the data-dependent fields filled
/// in: `max_abs` 0).
pub fn truncations(q: &QModel) -> Vec<Truncation> {
    let mut consumers = vec![Vec::new(); q.nodes.len()];
    for (i, n) in q.nodes.iter().enumerate() {
        for &j in &n.inputs {
            consumers[j].push(i);
        }
    }
    // Follow single-consumer local data movement to what the value feeds.
    let path = |mut c: usize| {
        let mut kinds = vec![q.nodes[c].op.kind()];
        while matches!(
            q.nodes[c].op,
            QOp::Reshape | QOp::Concat | QOp::ResizeNearest { .. }
        ) {
            match consumers[c].as_slice() {
                [next] => {
                    c = *next;
                    kinds.push(q.nodes[c].op.kind());
                }
                _ => break,
            }
        }
        kinds.join(" > ")
    };
    q.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op == QOp::Trunc)
        .map(|(i, n)| {
            let mut feeds: Vec<String> = consumers[i].iter().map(|&c| path(c)).collect();
            if i == q.output {
                feeds.push("output".into());
            }
            Truncation {
                node: i,
                name: n.name.clone(),
                values: n.shape.numel(),
                feeds,
                max_abs: 0,
                failure_probability: 0.0,
            }
        })
        .collect()
}

/// The segmentation part of an [`EvalReport`]: Dice against the dataset's
/// masks, accumulated over all its pixels, per mode.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentationEval {
    /// The output map: classes (class 0 is background) and size.
    pub classes: usize,
    pub rows: usize,
    pub cols: usize,
    pub float: DiceReport,
    /// Fixed-point modes.
    pub plain: Option<DiceReport>,
    /// Secure modes.
    pub secure: Option<DiceReport>,
    /// Fraction of items whose plain mask equals the float mask (fixed-point
    /// modes).
    pub plain_float_mask_exact: Option<f64>,
    /// Fraction of items whose secure mask equals the plain mask (secure
    /// modes).
    pub mask_exact: Option<f64>,
}

/// The secure part of an [`EvalReport`].
#[derive(Clone, Debug, Serialize)]
pub struct SecureEval {
    pub secure_accuracy: f64,
    /// Fraction whose secure output equals the reference bit for bit.
    pub bit_exact: f64,
    pub median_latency_ms: f64,
    pub median_offline_ms: f64,
    pub median_online_ms: f64,
    pub median_bytes: f64,
}

/// Evaluate the first `n` items of `ds` in `mode`; `progress` is called after
/// each item with the number done. A segmentation model on a dataset with
/// masks is scored per pixel and with Dice (see [`EvalReport`]).
pub fn evaluate(
    model: &Model,
    q: &QModel,
    ds: &Dataset,
    n: usize,
    mode: Mode,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport> {
    let need = model.input_shape().numel();
    if ds.rows * ds.cols != need {
        return Err(EngineError::InputLength {
            expected: need,
            got: ds.rows * ds.cols,
        });
    }
    let n = n.min(ds.len());
    let out_dims = model.output_shape().dims();
    if let (Some(map), Some(_)) = (MapShape::of(out_dims), &ds.masks) {
        return evaluate_segmentation(model, q, ds, n, mode, map, progress);
    }
    if !ds.has_labels() {
        return seg(Err(SegmentError::NoLabels {
            shape: out_dims.to_vec(),
        }));
    }
    let t0 = Instant::now();
    let fixed = mode != Mode::Float;
    let mut secure = match mode {
        Mode::Secure(d) => Some(LocalInference::start(q, d, 2)?),
        _ => None,
    };
    let mut truncs = truncations(q);
    let mut max_value = 0u64;
    let (mut fc, mut pc, mut agree, mut sc, mut exact) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut max_diff = 0f64;
    let mut costs = Costs::default();
    for i in 0..n {
        let x = ds.image_f32(i);
        let truth = ds.labels[i] as usize;
        let yf = reference::run_float(model, &x)?;
        let lf = reference::argmax(&yf);
        fc += (lf == truth) as usize;
        if fixed {
            let all = reference::run_plain_all(q, &reference::encode_input(q, &x)?)?;
            record_truncations(q, &all, &mut truncs);
            max_value = max_value.max(max_abs_of(&all));
            let yp = &all[q.output];
            let sp = reference::decode_output(q, yp);
            let lp = reference::argmax(&sp);
            pc += (lp == truth) as usize;
            for (p, f) in sp.iter().zip(&yf) {
                max_diff = max_diff.max((p - f).abs());
            }
            match secure.as_mut() {
                None => agree += (lp == lf) as usize,
                Some(s) => {
                    let a = s.infer(&x)?;
                    sc += (a.label == truth) as usize;
                    agree += (a.label == lp) as usize;
                    exact += (a.ring.as_ref() == Some(yp)) as usize;
                    costs.push(&a.cost);
                }
            }
        }
        progress(i + 1);
    }
    let nf = n.max(1) as f64;
    let frac = |k: usize| k as f64 / nf;
    let mut r = report(model, q, mode, n, fixed, truncs, max_diff, max_value, t0);
    r.float_accuracy = frac(fc);
    r.plain_accuracy = fixed.then(|| frac(pc));
    r.agreement = fixed.then(|| frac(agree));
    r.secure = secure.map(|_| costs.secure_eval(frac(sc), frac(exact)));
    Ok(r)
}

/// [`evaluate`] of a model whose output is the map `map`, on a dataset with
/// masks.
fn evaluate_segmentation(
    model: &Model,
    q: &QModel,
    ds: &Dataset,
    n: usize,
    mode: Mode,
    map: MapShape,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport> {
    let masks = ds.masks.as_ref().expect("called with masks");
    if [masks.rows, masks.cols] != [map.rows, map.cols] {
        return seg(Err(SegmentError::MaskSize {
            expected: [map.rows, map.cols],
            got: [masks.rows, masks.cols],
        }));
    }
    let t0 = Instant::now();
    let fixed = mode != Mode::Float;
    let mut secure = match mode {
        Mode::Secure(d) => Some(LocalInference::start(q, d, 2)?),
        _ => None,
    };
    let mut truncs = truncations(q);
    let (mut df, mut dp, mut dsec) = (
        DiceCounts::new(map.classes),
        DiceCounts::new(map.classes),
        DiceCounts::new(map.classes),
    );
    let (mut plain_float, mut secure_plain, mut exact) = (0usize, 0usize, 0usize);
    let mut max_value = 0u64;
    let mut max_diff = 0f64;
    let mut costs = Costs::default();
    for i in 0..n {
        let x = ds.image_f32(i);
        let truth = masks.mask(i);
        let yf = reference::run_float(model, &x)?;
        let mf = seg(segment::argmax_map(map, &yf))?;
        seg(df.add(&mf, truth))?;
        if fixed {
            let all = reference::run_plain_all(q, &reference::encode_input(q, &x)?)?;
            record_truncations(q, &all, &mut truncs);
            max_value = max_value.max(max_abs_of(&all));
            let yp = &all[q.output];
            let mp = seg(segment::argmax_map_ring(map, yp))?;
            seg(dp.add(&mp, truth))?;
            plain_float += (mp == mf) as usize;
            for (p, f) in reference::decode_output(q, yp).iter().zip(&yf) {
                max_diff = max_diff.max((p - f).abs());
            }
            if let Some(s) = secure.as_mut() {
                let a = s.infer(&x)?;
                let ms = match a.mask {
                    Some(m) => m,
                    None => secure_mask(map, a.ring.as_deref().unwrap_or_default())?,
                };
                seg(dsec.add(&ms, truth))?;
                secure_plain += (ms == mp) as usize;
                exact += (a.ring.as_ref() == Some(yp)) as usize;
                costs.push(&a.cost);
            }
        }
        progress(i + 1);
    }
    let nf = n.max(1) as f64;
    let frac = |k: usize| k as f64 / nf;
    let pixel = |d: &DiceCounts| d.pixel_accuracy().unwrap_or(0.0);
    let is_secure = secure.is_some();
    let mut r = report(model, q, mode, n, fixed, truncs, max_diff, max_value, t0);
    r.float_accuracy = pixel(&df);
    r.plain_accuracy = fixed.then(|| pixel(&dp));
    r.agreement = fixed.then(|| frac(if is_secure { secure_plain } else { plain_float }));
    r.secure = secure.map(|_| costs.secure_eval(pixel(&dsec), frac(exact)));
    r.segmentation = Some(SegmentationEval {
        classes: map.classes,
        rows: map.rows,
        cols: map.cols,
        float: df.report(),
        plain: fixed.then(|| dp.report()),
        secure: is_secure.then(|| dsec.report()),
        plain_float_mask_exact: fixed.then(|| frac(plain_float)),
        mask_exact: is_secure.then(|| frac(secure_plain)),
    });
    Ok(r)
}

/// The largest `|x|` of any value of one item's run.
fn max_abs_of(all: &[Vec<u64>]) -> u64 {
    all.iter()
        .flat_map(|v| v.iter())
        .map(|&v| (v as i64).unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// The largest `|x|` before each stand-alone truncation, over one item's
/// values `all`.
fn record_truncations(q: &QModel, all: &[Vec<u64>], truncs: &mut [Truncation]) {
    for t in truncs.iter_mut() {
        let m = all[q.nodes[t.node].inputs[0]]
            .iter()
            .map(|&v| (v as i64).unsigned_abs())
            .max()
            .unwrap_or(0);
        t.max_abs = t.max_abs.max(m);
    }
}

/// Secure costs per query, for medians.
#[derive(Default)]
struct Costs {
    latency: Vec<f64>,
    offline: Vec<f64>,
    online: Vec<f64>,
    bytes: Vec<f64>,
}

impl Costs {
    fn push(&mut self, c: &Option<InferenceCost>) {
        if let Some(c) = c {
            self.latency.push(c.latency_ms);
            self.offline.push(c.offline_ms);
            self.online.push(c.online_ms);
            self.bytes.push(c.bytes as f64);
        }
    }

    fn secure_eval(&mut self, secure_accuracy: f64, bit_exact: f64) -> SecureEval {
        SecureEval {
            secure_accuracy,
            bit_exact,
            median_latency_ms: median(&mut self.latency),
            median_offline_ms: median(&mut self.offline),
            median_online_ms: median(&mut self.online),
            median_bytes: median(&mut self.bytes),
        }
    }
}

/// An [`EvalReport`] with the fields every task fills the same way;
/// accuracies, agreement and the secure part are the caller's.
#[allow(clippy::too_many_arguments)]
fn report(
    model: &Model,
    q: &QModel,
    mode: Mode,
    n: usize,
    fixed: bool,
    mut truncs: Vec<Truncation>,
    max_diff: f64,
    max_value: u64,
    t0: Instant,
) -> EvalReport {
    for t in truncs.iter_mut() {
        t.failure_probability = t.values as f64 * 2.0 * t.max_abs as f64 / 2f64.powi(64);
    }
    EvalReport {
        model: model.name.clone(),
        mode,
        frac_bits: q.frac.0,
        n,
        float_accuracy: 0.0,
        plain_accuracy: None,
        agreement: None,
        max_abs_diff: fixed.then_some(max_diff),
        truncation_failure_per_query: fixed.then(|| {
            truncs
                .iter()
                .map(|t| t.failure_probability)
                // Not `sum()`: an empty f64 sum is -0.0.
                .fold(0.0, |a, b| a + b)
        }),
        truncated_values: fixed.then(|| truncs.iter().map(|t| t.values).sum()),
        truncations: fixed.then_some(truncs),
        max_abs_value: fixed.then_some(max_value),
        range_bits: fixed.then(|| 65 - max_value.leading_zeros()),
        segmentation: None,
        secure: None,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// One layer's row of a [`BenchReport`] (medians over the queries).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchLayer {
    pub index: usize,
    pub op: String,
    pub offline_ms: f64,
    pub offline_bytes: u64,
    pub online_ms: f64,
    pub online_bytes: u64,
    pub online_rounds: u64,
}

/// The whole protocol's cost per query (medians), as P0 sees it.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub network: String,
    pub mode: Mode,
    pub transport: String,
    pub queries: usize,
    pub setup_ms: f64,
    pub offline_ms: f64,
    pub online_ms: f64,
    pub total_ms: f64,
    pub bytes: u64,
    pub offline_bytes: u64,
    pub online_bytes: u64,
    pub rounds: u64,
    pub layers: Vec<BenchLayer>,
}

/// Run `queries` queries of `q` in `mode` with both parties on threads of this
/// process over loopback TCP (one session, one fresh bundle per query, random
/// input shares) and report medians; `progress` is called after each query.
pub fn bench(
    q: &QModel,
    mode: Mode,
    queries: usize,
    link: Link,
    progress: &mut dyn FnMut(usize),
) -> Result<BenchReport> {
    bench_with_roles(q, mode, None, queries, link, progress)
}

/// [`bench`] with explicit roles (e.g. another garbling policy), to compare.
pub fn bench_with_roles(
    q: &QModel,
    mode: Mode,
    roles: Option<crate::plan::Roles>,
    queries: usize,
    link: Link,
    progress: &mut dyn FnMut(usize),
) -> Result<BenchReport> {
    let deployment = match mode {
        Mode::Secure(d) => d,
        other => {
            return Err(EngineError::Unsupported {
                layer: 0,
                op: "input",
                mode: other.name(),
                reason: crate::plan::Refusal::NotSecure,
            })
        }
    };
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io);
    match link {
        Link::Tcp => bench_on(
            q,
            mode,
            deployment,
            roles,
            queries,
            link,
            blindfold_net::TcpTransport,
            blindfold_net::TcpAcceptor::new(bind()?)?,
            progress,
        ),
        Link::Tls => {
            // A throwaway deployment CA: the cost measured is the handshake
            // and the record layer, as between two real servers.
            let tls = |e: blindfold_net::tls::TlsError| blindfold_net::NetError::Tls(e.to_string());
            let certs = blindfold_net::tls::DeploymentCerts::generate(1).map_err(tls)?;
            let p0 = certs
                .identity(blindfold_net::TlsRole::P0)
                .map_err(tls)?
                .acceptor(bind()?)?;
            let p1 = certs
                .identity(blindfold_net::TlsRole::P1)
                .and_then(|i| i.transport(Some(blindfold_net::TlsRole::P0)))
                .map_err(tls)?;
            bench_on(q, mode, deployment, roles, queries, link, p1, p0, progress)
        }
        Link::Shaped(spec) => bench_on(
            q,
            mode,
            deployment,
            roles,
            queries,
            link,
            blindfold_net::ShapedTransport(spec),
            blindfold_net::ShapedAcceptor::new(bind()?, spec)?,
            progress,
        ),
    }
}

/// The link [`bench`] runs the two parties over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// Plain loopback TCP.
    Tcp,
    /// Mutually authenticated TLS 1.3 over loopback TCP.
    Tls,
    /// Loopback TCP through the link model of `blindfold_net::shaped`: bytes
    /// paced at the rate, each delivered half a round trip late.
    Shaped(blindfold_core::LinkSpec),
}

impl Link {
    fn name(self) -> String {
        match self {
            Link::Tcp => "tcp-loopback".into(),
            Link::Tls => "tls-loopback".into(),
            Link::Shaped(l) => format!("tcp-shaped {l}"),
        }
    }
}

/// The two parties' engines of `deployment` for `q`, with `roles` or the
/// deployment's defaults: two-server from a fresh split; client-server the
/// plaintext model at party 0 and its weightless program at party 1.
pub fn local_engines(
    q: &QModel,
    deployment: Deployment,
    roles: Option<crate::plan::Roles>,
    rng: &mut Prg,
) -> Result<[PartyEngine; 2]> {
    let roles = roles.unwrap_or(deployment.roles());
    let plan = crate::plan::Plan::with_roles(q, deployment, roles)?;
    let [s0, s1] = match deployment {
        Deployment::TwoServer => crate::share::split(q, rng),
        Deployment::ClientServer => {
            let mut model_id = [0u8; 16];
            rand_core::RngCore::fill_bytes(rng, &mut model_id);
            let share = |party, program| crate::share::ModelShare {
                party,
                model_id,
                pairing_key: crate::share::PairingKey([0; 32]),
                program,
            };
            [
                share(blindfold_core::PartyId::P0, q.clone()),
                share(blindfold_core::PartyId::P1, crate::share::weightless(q)),
            ]
        }
    };
    Ok([
        PartyEngine::with_plan(s0, plan.clone())?,
        PartyEngine::with_plan(s1, plan)?,
    ])
}

#[allow(clippy::too_many_arguments)]
fn bench_on<T: Transport, L: Listener<Conn = T::Conn>>(
    q: &QModel,
    mode: Mode,
    deployment: Deployment,
    roles: Option<crate::plan::Roles>,
    queries: usize,
    link: Link,
    transport: T,
    listener: L,
    progress: &mut dyn FnMut(usize),
) -> Result<BenchReport> {
    let n_q = queries.max(1);
    let mut rng = Prg::from_entropy();
    let [e0, e1] = local_engines(q, deployment, roles, &mut rng)?;
    // A segmentation model's answer is its mask (the per-pixel argmax).
    let kind = match e0.plan().label() {
        Some(g) if g.elements > 1 => OutputKind::Label,
        _ => OutputKind::Logits,
    };
    let holder_only = deployment == Deployment::ClientServer;
    let len = q.input_shape().numel();
    let addr = listener.local_addr();
    let h1 = std::thread::spawn(move || -> Result<()> {
        let mut ch = transport.connect(&addr, Instant::now() + Duration::from_secs(10))?;
        let mut rng = Prg::from_entropy();
        let mut s = e1.setup(&mut ch, &mut rng)?;
        for _ in 0..n_q {
            let b = e1.offline(&mut ch, &mut s, &mut rng)?;
            let x: Vec<u64> = rng.gen_u64s(len);
            e1.online_with(&mut ch, b, x, kind)?;
        }
        Ok(())
    });
    let mut ch = listener
        .accept(Instant::now() + Duration::from_secs(10))?
        .ok_or(EngineError::Net(blindfold_net::NetError::Timeout))?;
    let t = Instant::now();
    let mut s = e0.setup(&mut ch, &mut rng)?;
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    let (mut off_ms, mut on_ms, mut off_b, mut on_b, mut rounds) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut per_query: Vec<Vec<BenchLayer>> = Vec::new();
    for k in 0..n_q {
        let b = e0.offline(&mut ch, &mut s, &mut rng)?;
        off_ms.push(b.offline_ms);
        off_b.push(b.offline_bytes as f64);
        let offl: Vec<LayerCost> = b.offline_layers.clone();
        // Client-server: the server's input share is zero (the client holds x).
        let x: Vec<u64> = if holder_only {
            vec![0; len]
        } else {
            rng.gen_u64s(len)
        };
        let st0 = ch.stats().total();
        let t = Instant::now();
        let (_, onl) = e0.online_with(&mut ch, b, x, kind)?;
        on_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let st1 = ch.stats().total();
        on_b.push((st1.bytes() - st0.bytes()) as f64);
        rounds.push((st1.rounds() - st0.rounds()) as f64);
        let mut rows: Vec<BenchLayer> = onl
            .iter()
            .map(|c| BenchLayer {
                index: c.index,
                op: c.op.clone(),
                online_ms: c.ms,
                online_bytes: c.bytes,
                online_rounds: c.rounds,
                ..BenchLayer::default()
            })
            .collect();
        for o in &offl {
            if let Some(r) = rows.iter_mut().find(|r| r.index == o.index) {
                r.offline_ms += o.ms;
                r.offline_bytes += o.bytes;
            }
        }
        per_query.push(rows);
        progress(k + 1);
    }
    match h1.join() {
        Ok(r) => r?,
        Err(_) => {
            return Err(EngineError::Net(blindfold_net::NetError::Io(
                std::io::Error::other("party 1's thread panicked"),
            )))
        }
    }
    let layers = (0..per_query[0].len())
        .map(|l| {
            let col = |f: &dyn Fn(&BenchLayer) -> f64| -> f64 {
                let mut v: Vec<f64> = per_query.iter().map(|q| f(&q[l])).collect();
                median(&mut v)
            };
            BenchLayer {
                index: per_query[0][l].index,
                op: per_query[0][l].op.clone(),
                offline_ms: col(&|r| r.offline_ms),
                offline_bytes: col(&|r| r.offline_bytes as f64) as u64,
                online_ms: col(&|r| r.online_ms),
                online_bytes: col(&|r| r.online_bytes as f64) as u64,
                online_rounds: col(&|r| r.online_rounds as f64) as u64,
            }
        })
        .collect();
    let mut totals: Vec<f64> = off_ms.iter().zip(&on_ms).map(|(a, b)| a + b).collect();
    let offline_bytes = median(&mut off_b) as u64;
    let online_bytes = median(&mut on_b) as u64;
    Ok(BenchReport {
        network: q.name.clone(),
        mode,
        transport: link.name(),
        queries: n_q,
        setup_ms,
        offline_ms: median(&mut off_ms),
        online_ms: median(&mut on_ms),
        total_ms: median(&mut totals),
        bytes: offline_bytes + online_bytes,
        offline_bytes,
        online_bytes,
        rounds: median(&mut rounds) as u64,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::{FracBits, Shape};
    use blindfold_model::data::Masks;
    use blindfold_model::ir::{Conv, Node, Op};
    use blindfold_model::quant::quantize;

    const H: usize = 4;
    const W: usize = 5;
    const C: usize = 3;

    fn weights(rng: &mut Prg, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    }

    fn node(name: &str, op: Op, inputs: Vec<usize>, dims: Vec<usize>) -> Node {
        Node {
            name: name.into(),
            op,
            inputs,
            shape: Shape::new(dims),
        }
    }

    fn conv(rng: &mut Prg, c_in: usize, c_out: usize, k: usize) -> Op {
        let p = k / 2;
        Op::Conv(Conv {
            weight: weights(rng, c_out * c_in * k * k),
            c_out,
            c_in,
            kh: k,
            kw: k,
            bias: weights(rng, c_out),
            stride: [1, 1],
            pads: [p, p, p, p],
        })
    }

    /// `[1, 4, 5]` → conv 3×3 → ReLU → conv 1×1 → `[3, 4, 5]` logits.
    fn segmenter() -> (Model, QModel) {
        let mut rng = Prg::from_seed([7; 16]);
        let m = Model {
            name: "segmenter".into(),
            nodes: vec![
                node("x", Op::Input, vec![], vec![1, H, W]),
                node("c1", conv(&mut rng, 1, 4, 3), vec![0], vec![4, H, W]),
                node("r1", Op::Relu, vec![1], vec![4, H, W]),
                node("c2", conv(&mut rng, 4, C, 1), vec![2], vec![C, H, W]),
            ],
            output: 3,
            final_activation: None,
        };
        m.validate().unwrap();
        let q = quantize(&m, FracBits::DEFAULT).unwrap();
        (m, q)
    }

    fn images(n: usize) -> Vec<u8> {
        let mut rng = Prg::from_seed([9; 16]);
        (0..n * H * W).map(|_| rng.gen_u64() as u8).collect()
    }

    /// A dataset whose masks are the plain model's own masks, except that the
    /// first pixel of every item is class `C - 1`.
    fn dataset(q: &QModel, n: usize) -> Dataset {
        let px = images(n);
        let mut classes = Vec::new();
        for i in 0..n {
            let x: Vec<f32> = px[i * H * W..(i + 1) * H * W]
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect();
            let y = reference::run_plain(q, &x).unwrap();
            let mut m = segment::argmax_map_ring(MapShape::of(&[C, H, W]).unwrap(), &y).unwrap();
            m[0] = (C - 1) as u32;
            classes.extend(m.iter().map(|&c| c as u8));
        }
        Dataset::segmentation(H, W, px, Masks::new(H, W, classes).unwrap()).unwrap()
    }

    #[test]
    fn predictions_carry_masks() {
        let (m, q) = segmenter();
        let x: Vec<f32> = images(1).iter().map(|&p| p as f32 / 255.0).collect();
        let map = MapShape::of(&[C, H, W]).unwrap();
        let f = open(Mode::Float, &m, &q).unwrap().infer(&x).unwrap();
        assert_eq!(
            f.mask.as_deref(),
            Some(&segment::argmax_map(map, &f.scores).unwrap()[..])
        );
        let p = open(Mode::Plain, &m, &q).unwrap().infer(&x).unwrap();
        let ring = p.ring.clone().unwrap();
        assert_eq!(p.mask.clone(), Some(secure_mask(map, &ring).unwrap()));
        assert_eq!(p.mask.as_ref().unwrap().len(), H * W);
        // JSON has the mask; a classification output has none.
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["mask"].as_array().unwrap().len(), H * W);
        let mut cls = m.clone();
        cls.nodes
            .push(node("flat", Op::Reshape, vec![3], vec![C * H * W]));
        cls.output = 4;
        let qc = quantize(&cls, FracBits::DEFAULT).unwrap();
        let p = open(Mode::Plain, &cls, &qc).unwrap().infer(&x).unwrap();
        assert!(p.mask.is_none());
        assert!(serde_json::to_value(&p).unwrap().get("mask").is_none());
    }

    #[test]
    fn plain_evaluation_scores_dice() {
        let (m, q) = segmenter();
        let ds = dataset(&q, 6);
        let r = evaluate(&m, &q, &ds, 100, Mode::Plain, &mut |_| {}).unwrap();
        assert_eq!(r.n, 6);
        let s = r.segmentation.as_ref().unwrap();
        assert_eq!((s.classes, s.rows, s.cols), (C, H, W));
        let plain = s.plain.as_ref().unwrap();
        // One pixel per item differs from the plain mask (unless it was
        // already of the last class).
        let acc = r.plain_accuracy.unwrap();
        assert!(
            (1.0 - 1.0 / (H * W) as f64..1.0 + 1e-12).contains(&acc),
            "{acc}"
        );
        for d in plain.per_class.iter().flatten() {
            assert!(*d > 0.8, "{:?}", plain.per_class);
        }
        assert_eq!(plain.truth_pixels.iter().sum::<u64>(), (6 * H * W) as u64);
        assert!(s.secure.is_none() && s.mask_exact.is_none());
        assert!(s.plain_float_mask_exact.is_some());
        assert_eq!(r.agreement, s.plain_float_mask_exact);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["segmentation"]["plain"]["per_class"].is_array());
        // Float mode: float Dice only.
        let r = evaluate(&m, &q, &ds, 2, Mode::Float, &mut |_| {}).unwrap();
        let s = r.segmentation.unwrap();
        assert!(s.plain.is_none() && r.plain_accuracy.is_none());
        assert_eq!(s.float.truth_pixels.iter().sum::<u64>(), (2 * H * W) as u64);
    }

    #[test]
    fn secure_evaluation_reports_mask_agreement() {
        let (m, q) = segmenter();
        let ds = dataset(&q, 3);
        let mode = Mode::Secure(Deployment::TwoServer);
        let r = evaluate(&m, &q, &ds, 3, mode, &mut |_| {}).unwrap();
        let s = r.segmentation.as_ref().unwrap();
        assert_eq!(s.mask_exact, Some(1.0));
        assert_eq!(s.secure, s.plain);
        assert_eq!(r.secure.as_ref().unwrap().bit_exact, 1.0);
        assert_eq!(r.agreement, Some(1.0));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["segmentation"]["mask_exact"], 1.0);
        assert!(v["bit_exact"].is_number());
        // A secure prediction carries the mask too.
        let x = ds.image_f32(0);
        let p = open(mode, &m, &q).unwrap().infer(&x).unwrap();
        let plain = open(Mode::Plain, &m, &q).unwrap().infer(&x).unwrap();
        assert_eq!(p.mask, plain.mask);
    }

    #[test]
    fn segmentation_data_that_does_not_fit() {
        let (m, q) = segmenter();
        let ds = dataset(&q, 2);
        let is = |r: Result<EvalReport>, f: &dyn Fn(&SegmentError) -> bool| match r {
            Err(EngineError::Model(ModelError::Segment(e))) => assert!(f(&e), "{e}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        // Masks of another size than the output map.
        let mut small = ds.clone();
        small.masks = Some(Masks::new(2, 2, vec![0; 8]).unwrap());
        is(
            evaluate(&m, &q, &small, 2, Mode::Plain, &mut |_| {}),
            &|e| {
                matches!(
                    e,
                    SegmentError::MaskSize {
                        expected: [H, W],
                        got: [2, 2]
                    }
                )
            },
        );
        // A class the model does not have.
        let mut wide = ds.clone();
        let mut classes = wide.masks.as_ref().unwrap().classes.clone();
        classes[3] = C as u8;
        wide.masks = Some(Masks::new(H, W, classes).unwrap());
        is(evaluate(&m, &q, &wide, 2, Mode::Float, &mut |_| {}), &|e| {
            matches!(
                e,
                SegmentError::MaskClass {
                    class: 3,
                    classes: C
                }
            )
        });
        // Masks but no labels, for a model that does not segment.
        let mut cls = m.clone();
        cls.nodes
            .push(node("flat", Op::Reshape, vec![3], vec![C * H * W]));
        cls.output = 4;
        let qc = quantize(&cls, FracBits::DEFAULT).unwrap();
        is(
            evaluate(&cls, &qc, &ds, 2, Mode::Plain, &mut |_| {}),
            &|e| matches!(e, SegmentError::NoLabels { .. }),
        );
        // A segmentation model on a classification set: the classification
        // path, as before.
        let mut labelled = ds.clone();
        labelled.masks = None;
        labelled.labels = vec![0, 1];
        let r = evaluate(&m, &q, &labelled, 2, Mode::Plain, &mut |_| {}).unwrap();
        assert!(r.segmentation.is_none());
    }
}
