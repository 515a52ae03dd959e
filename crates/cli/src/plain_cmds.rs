//! Commands that need no cryptography: zoo, inspect, run, eval (plain/float).

use crate::paths;
use anyhow::{bail, Context, Result};
use blindfold_core::FracBits;
use blindfold_engine::infer::{self, EvalReport};
use blindfold_engine::plan::{Deployment, Plan};
use blindfold_engine::Mode;
use blindfold_model::engine::{self, argmax};
use blindfold_model::quant::{
    quantize, quantize_with, BinaryProducts, BnSign, NonLinear, QModel, QuantConfig,
};
use blindfold_model::segment::MapShape;
use blindfold_model::{data, load_onnx, summary, Model};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args)]
pub struct ModelArg {
    /// An .onnx file or a zoo model name (e.g. minionn).
    pub model: String,
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub frac_bits: u32,
    #[command(flatten)]
    pub bn: BnArgs,
}

/// How binarized networks' batch normalizations become integers.
#[derive(Args, Clone, Copy, Debug)]
pub struct BnArgs {
    /// Binarized layers: the scale q of the integer batch normalization
    /// before a sign (s' = floor(q·s), t' = floor(q·t)).
    #[arg(long, default_value_t = QuantConfig::DEFAULT_BN_SCALE,
          value_parser = clap::value_parser!(u64).range(1..=QuantConfig::MAX_BN_SCALE))]
    pub bn_scale: u64,
    /// Binarized layers: the sign of s'·c + t' as a threshold test folded into
    /// the layer (cheaper), or computed as the affine map itself.
    #[arg(long, value_enum, default_value_t = BnSignArg::Threshold)]
    pub bn_sign: BnSignArg,
    /// Binarized dense layers, two-server mode: their cross terms by
    /// homomorphic preprocessing, by oblivious transfers on the weights' sign
    /// bits (fewer milliseconds, more bytes), or per layer by the cost model.
    #[arg(long, value_enum, default_value_t = BinaryProductsArg::Auto)]
    pub binary_products: BinaryProductsArg,
    /// Secure modes: ReLU, max-pool, sign and truncation layers by garbled
    /// circuits, by OT-based comparisons on silent OT (about 30x fewer bytes,
    /// more rounds), or per layer by the cost model on the --link declared.
    #[arg(long, value_enum, default_value_t = NonLinearArg::Auto)]
    pub nonlinear: NonLinearArg,
    /// The link between the parties, as RATE,RTT (e.g. 1gbit,0.5ms or
    /// 100mbit,20ms): what --nonlinear auto prices protocols on; `bench`
    /// also shapes its channel to it.
    #[arg(long, value_parser = parse_link)]
    pub link: Option<blindfold_core::LinkSpec>,
}

fn parse_link(s: &str) -> std::result::Result<blindfold_core::LinkSpec, String> {
    blindfold_core::LinkSpec::parse(s).map_err(|e| e.to_string())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonLinearArg {
    Auto,
    Gc,
    Ot,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BinaryProductsArg {
    Auto,
    He,
    Ot,
}

impl Default for BnArgs {
    fn default() -> Self {
        BnArgs {
            bn_scale: QuantConfig::DEFAULT_BN_SCALE,
            bn_sign: BnSignArg::Threshold,
            binary_products: BinaryProductsArg::Auto,
            nonlinear: NonLinearArg::Auto,
            link: None,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BnSignArg {
    Threshold,
    Affine,
}

impl BnArgs {
    pub fn config(&self, frac_bits: u32) -> QuantConfig {
        QuantConfig {
            frac: FracBits(frac_bits),
            bn_scale: self.bn_scale,
            bn_sign: match self.bn_sign {
                BnSignArg::Threshold => BnSign::Threshold,
                BnSignArg::Affine => BnSign::Affine,
            },
            binary_products: match self.binary_products {
                BinaryProductsArg::Auto => BinaryProducts::Auto,
                BinaryProductsArg::He => BinaryProducts::He,
                BinaryProductsArg::Ot => BinaryProducts::Ot,
            },
            nonlinear: match self.nonlinear {
                NonLinearArg::Auto => {
                    NonLinear::Auto(self.link.unwrap_or(blindfold_core::LinkSpec::LAN))
                }
                NonLinearArg::Gc => NonLinear::Gc,
                NonLinearArg::Ot => NonLinear::Ot,
            },
        }
    }
}

impl ModelArg {
    pub fn new(model: String, frac_bits: u32, bn: BnArgs) -> ModelArg {
        ModelArg {
            model,
            frac_bits,
            bn,
        }
    }

    pub fn load(&self) -> Result<(Model, QModel)> {
        let path = paths::model_path(&self.model)?;
        let m = load_onnx(&path)?;
        let q = quantize_with(&m, &self.bn.config(self.frac_bits))?;
        Ok((m, q))
    }
}

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// The deployment whose protocols to show (what `split` and `serve` would
    /// run): two-server, client-server, or fhe (the lowered integer program,
    /// its bounds and BFV parameters, or the layer FHE cannot run).
    #[arg(long, default_value = "two-server")]
    pub mode: String,
    #[command(flatten)]
    pub fhe: crate::fhe_cmds::FheArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A deployment by the name users type.
pub fn parse_deployment(s: &str) -> std::result::Result<Deployment, String> {
    Deployment::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Deployment::ALL.iter().map(|d| d.name()).collect();
        format!("unknown mode '{s}' (one of: {})", names.join(", "))
    })
}

/// `inspect --json`: the model's summary, each layer with the planner's answer
/// (`protocol`, or `unsupported` with the reason), the mode and whether it runs.
#[derive(Serialize)]
struct InspectReport {
    #[serde(flatten)]
    summary: summary::Summary,
    mode: Deployment,
    /// Whether `split` and `serve` accept this model in this mode.
    supported: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum ModeArg {
    /// The fixed-point reference (what the secure engines compute).
    Plain,
    /// The float model as trained.
    Float,
    /// Both servers and a client on loopback: the real protocols.
    TwoServer,
    /// One server holding the plaintext model and a client on loopback
    /// (hybrid HE + garbled circuits): the real protocols.
    ClientServer,
    /// Non-interactive FHE: the client encrypts, one server evaluates on
    /// ciphertexts (eval, bench, demo; square-activation networks only).
    Fhe,
}

impl ModeArg {
    /// The engine mode; FHE mode has its own commands.
    pub fn mode(self) -> Result<Mode> {
        match self {
            ModeArg::Plain => Ok(Mode::Plain),
            ModeArg::Float => Ok(Mode::Float),
            ModeArg::TwoServer => Ok(Mode::Secure(Deployment::TwoServer)),
            ModeArg::ClientServer => Ok(Mode::Secure(Deployment::ClientServer)),
            ModeArg::Fhe => {
                bail!("--mode fhe runs in `eval`, `bench`, `demo`, `inspect` and `blindfold fhe`")
            }
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Input: .npy (float32, the model's input shape) or a grayscale PNG.
    pub input: PathBuf,
    #[arg(long, value_enum, default_value_t = ModeArg::Plain)]
    pub mode: ModeArg,
    /// Apply the model's dropped final softmax to the printed scores.
    #[arg(long)]
    pub softmax: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// IDX dataset directory: images.idx3-ubyte with labels.idx1-ubyte, or
    /// with masks.idx3-ubyte for a segmentation model. Default: the bundled
    /// 1,000 MNIST test digits, or data/mnist-seg-test-100 for a model whose
    /// output is a [classes, rows, cols] map.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate only the first N inputs.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = ModeArg::Plain)]
    pub mode: ModeArg,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fhe: crate::fhe_cmds::FheArgs,
}

pub fn zoo() -> Result<()> {
    let dir = paths::home().join("models");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "onnx" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    println!(
        "{:<12} {:>10} {:>12} {:>8}  layers",
        "model", "params", "mults", "nonlin"
    );
    for n in names {
        let path = dir.join(format!("{n}.onnx"));
        match load_onnx(&path).and_then(|m| Ok(quantize(&m, FracBits::DEFAULT)?)) {
            Ok(q) => {
                let s = summary::summarize(&q);
                let kinds: Vec<&str> = q.nodes.iter().skip(1).map(|n| n.op.kind()).collect();
                println!(
                    "{:<12} {:>10} {:>12} {:>8}  {}",
                    n,
                    s.parameters,
                    s.multiplications,
                    s.nonlinear,
                    kinds.join(" ")
                );
            }
            Err(e) => println!("{n:<12} error: {e}"),
        }
    }
    Ok(())
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    if a.mode == "fhe" {
        return crate::fhe_cmds::inspect(&a.model.model, &a.fhe, a.json);
    }
    let mode = parse_deployment(&a.mode).map_err(|e| anyhow::anyhow!("{e} or fhe"))?;
    let (_, q) = a.model.load()?;
    let s = summary::summarize(&q);
    let survey = Plan::survey(&q, mode);
    let supported = survey.iter().all(|r| r.protocol.is_ok());
    if a.json {
        let report = InspectReport {
            summary: s,
            mode,
            supported,
        };
        let mut report = serde_json::to_value(&report)?;
        if let Some(layers) = report["layers"].as_array_mut() {
            for (l, r) in layers.iter_mut().zip(&survey) {
                match &r.protocol {
                    Ok(p) => l["protocol"] = p.clone().into(),
                    Err(why) => l["unsupported"] = why.to_string().into(),
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "model {}  input {}  output {}  fixed point: {} fractional bits in Z_2^64",
        s.name, s.input_shape, s.output_shape, s.frac_bits
    );
    println!(
        "{:>3}  {:<16} {:<14} {:>12} {:>4} {:>9} {:>10} {:>7}  protocol ({})",
        "#", "layer", "op", "output", "frac", "params", "mults", "nonlin", mode
    );
    for (l, p) in s.layers.iter().zip(&survey) {
        let protocol = match &p.protocol {
            Ok(p) => p.clone(),
            Err(why) => format!("NOT SUPPORTED: {why}"),
        };
        let name: String = l.name.chars().take(16).collect();
        println!(
            "{:>3}  {:<16} {:<14} {:>12} {:>4} {:>9} {:>10} {:>7}  {}",
            l.index,
            name,
            l.op,
            l.output_shape,
            l.frac,
            l.parameters,
            l.multiplications,
            l.nonlinear,
            protocol
        );
    }
    println!(
        "total: {} parameters, {} multiplications, {} non-linear elements ({} comparisons in max-pools), {} squares, {} stand-alone truncations",
        s.parameters, s.multiplications, s.nonlinear, s.comparisons, s.squares, s.truncations
    );
    if !supported {
        println!(
            "{} mode cannot run this model: `split` refuses it (layers marked NOT SUPPORTED)",
            mode
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct RunOutput {
    model: String,
    mode: String,
    label: usize,
    scores: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ring: Option<Vec<i64>>,
}

pub fn run(a: RunArgs) -> Result<()> {
    let (m, q) = a.model.load()?;
    let x = data::load_input(&a.input, m.input_shape().dims())?;
    let mode = a.mode.mode()?;
    if mode.is_secure() {
        bail!("`run` is plaintext; use `blindfold demo` or `serve` + `query` for the {mode} mode");
    }
    let p = infer::open(mode, &m, &q)?.infer(&x)?;
    let (scores, ring) = (
        p.scores,
        p.ring.map(|y| y.iter().map(|&v| v as i64).collect()),
    );
    let scores = if a.softmax {
        engine::apply_final(m.final_activation, &scores)
    } else {
        scores
    };
    let out = RunOutput {
        model: m.name.clone(),
        mode: mode.name().to_string(),
        label: argmax(&scores),
        scores,
        ring,
    };
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("label {}", out.label);
        let parts: Vec<String> = out.scores.iter().map(|v| format!("{v:.5}")).collect();
        println!("scores [{}]", parts.join(", "));
    }
    Ok(())
}

pub fn progress(n: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn load_dataset(
    arg: &Option<PathBuf>,
    limit: Option<usize>,
    m: &Model,
) -> Result<(data::Dataset, usize)> {
    let segments = MapShape::of(m.output_shape().dims()).is_some();
    let dir = arg.clone().unwrap_or_else(|| {
        if segments {
            paths::default_segmentation_data()
        } else {
            paths::default_data()
        }
    });
    if arg.is_none() && segments && !dir.exists() {
        bail!(
            "model {} segments (output {}), and the bundled segmentation set {} is not there; give --data DIR (images.idx3-ubyte + {})",
            m.name,
            m.output_shape(),
            dir.display(),
            data::MASKS_FILE
        );
    }
    let ds = data::load_idx_dir(&dir)?;
    if let (Some(map), true) = (MapShape::of(m.output_shape().dims()), ds.masks.is_some()) {
        crate::segment_cmds::check_segmentation_set(&ds, &dir, m, map)?;
    } else if !ds.has_labels() {
        bail!(
            "{} has per-pixel masks but no class labels, and model {} does not segment (its output is {})",
            dir.display(),
            m.name,
            m.output_shape()
        );
    }
    let need = m.input_shape().numel();
    if ds.rows * ds.cols != need {
        bail!(
            "dataset images are {}x{} but model {} takes input {}",
            ds.rows,
            ds.cols,
            m.name,
            m.input_shape()
        );
    }
    let n = limit.unwrap_or(ds.len()).min(ds.len());
    Ok((ds, n))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.mode == ModeArg::Fhe {
        let m = load_onnx(paths::model_path(&a.model.model)?)?;
        let (ds, n) = load_dataset(&a.data, a.limit, &m)?;
        return crate::fhe_cmds::eval(&a.model.model, &ds, n, &a.fhe, a.json);
    }
    let mode = a.mode.mode()?;
    let (m, q) = a.model.load()?;
    let (ds, n) = load_dataset(&a.data, a.limit, &m)?;
    let pb = progress(n, &format!("eval {} ({mode})", m.name));
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let r = infer::evaluate(&m, &q, &ds, n, mode, &mut |done| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    let binarized = m.nodes.iter().filter(|n| n.op.is_binary_layer()).count();
    let bn = a.model.bn.config(a.model.frac_bits);
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if binarized > 0 {
            v["binarized_layers"] = binarized.into();
            v["bn_scale"] = bn.bn_scale.into();
            v["bn_sign"] = bn.bn_sign.name().into();
        }
        println!("{v}");
    } else {
        print_eval(&r);
        if binarized > 0 {
            println!(
                "binarized layers      {binarized} (±1 weights); integer batch normalization q = {}, sign as {}",
                bn.bn_scale,
                bn.bn_sign.name()
            );
        }
    }
    Ok(())
}

fn print_eval(r: &EvalReport) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    println!(
        "model {}  n = {}  {}  ({:.2} s)",
        r.model, r.n, r.mode, r.seconds
    );
    if let Some(s) = &r.segmentation {
        crate::segment_cmds::print_dice(r, s);
        if let Some(s) = &r.secure {
            print_costs(s);
        }
        print_truncations(r);
        return;
    }
    println!("float accuracy        {:.2}%", 100.0 * r.float_accuracy);
    if r.mode == Mode::Float {
        return;
    }
    println!(
        "fixed-point accuracy  {}  ({} fractional bits)",
        pct(r.plain_accuracy),
        r.frac_bits
    );
    match &r.secure {
        None => {
            println!("argmax agreement      {}", pct(r.agreement));
            if let Some(d) = r.max_abs_diff {
                println!("max |plain - float|   {d:.5}");
            }
        }
        Some(s) => {
            println!("secure accuracy       {:.2}%", 100.0 * s.secure_accuracy);
            println!(
                "agreement with plain  {}  (bit-exact outputs {:.2}%)",
                pct(r.agreement),
                100.0 * s.bit_exact
            );
            print_costs(s);
        }
    }
    print_truncations(r);
}

fn print_costs(s: &infer::SecureEval) {
    println!(
        "per query (median): {:.1} ms at the client; offline {:.1} ms, online {:.1} ms; {:.2} MB",
        s.median_latency_ms,
        s.median_offline_ms,
        s.median_online_ms,
        s.median_bytes / 1e6
    );
}

fn print_truncations(r: &EvalReport) {
    if let (Some(m), Some(b)) = (r.max_abs_value, r.range_bits) {
        println!("integer range         largest |value| {m} (2^{:.1}): {b}-bit signed integers hold every intermediate", (m.max(1) as f64).log2());
    }
    match (r.truncated_values, &r.truncations) {
        (Some(0), _) => {
            println!("truncations           all inside ReLU / max-pool circuits (exact)")
        }
        (Some(v), Some(ts)) => {
            println!(
                "truncations           {v} values per query at {} stand-alone layers, each exact (garbled borrow of the {} dropped bits; nothing rounds at random)",
                ts.len(),
                r.frac_bits
            );
            for t in ts {
                println!(
                    "  node {:>3} {:<28} {:>6} values -> {:<20} wrap probability {:.1e}",
                    t.node,
                    t.name,
                    t.values,
                    t.feeds.join(", "),
                    t.failure_probability
                );
            }
            if let Some(p) = r.truncation_failure_per_query {
                println!(
                    "  failure probability per query {p:.1e} (the shares of a truncated value wrap: that value is off by 2^(64-f))"
                );
            }
        }
        _ => {}
    }
}

#[derive(Args)]
pub struct DigitsArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// How many digits, from --start.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// IDX dataset directory; default: the bundled MNIST test digits.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub fn digits(a: DigitsArgs) -> Result<()> {
    let dir = a.data.clone().unwrap_or_else(paths::default_data);
    let ds = data::load_idx_dir(&dir)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let end = (a.start + a.count).min(ds.len());
    let n = ds.rows * ds.cols;
    for i in a.start..end {
        let label = ds.labels[i];
        let px = &ds.images[i * n..(i + 1) * n];
        let stem = a.out.join(format!("digit{i}_label{label}"));
        let png = data::encode_png(ds.rows, ds.cols, px).map_err(anyhow::Error::msg)?;
        std::fs::write(stem.with_extension("png"), png)?;
        let npy = data::write_npy(&[1, 1, ds.rows, ds.cols], &ds.image_f32(i));
        std::fs::write(stem.with_extension("npy"), npy)?;
        println!(
            "{}.png  {}.npy  (label {label})",
            stem.display(),
            stem.display()
        );
    }
    Ok(())
}
