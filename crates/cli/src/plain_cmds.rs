//! Commands that need no cryptography: zoo, inspect, run, eval (plain/float).

use crate::paths;
use anyhow::{bail, Context, Result};
use blindfold_core::FracBits;
use blindfold_model::engine::{self, argmax};
use blindfold_model::quant::{quantize, QModel};
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
}

impl ModelArg {
    pub fn load(&self) -> Result<(Model, QModel)> {
        let path = paths::model_path(&self.model)?;
        let m = load_onnx(&path)?;
        let q = quantize(&m, FracBits(self.frac_bits))?;
        Ok((m, q))
    }
}

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum PlainMode {
    /// The fixed-point reference (what the secure engines compute).
    Plain,
    /// The float model as trained.
    Float,
    /// Both servers and a client on loopback: the real protocols.
    TwoServer,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Input: .npy (float32, the model's input shape) or a grayscale PNG.
    pub input: PathBuf,
    #[arg(long, value_enum, default_value_t = PlainMode::Plain)]
    pub mode: PlainMode,
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
    /// IDX dataset directory (images.idx3-ubyte + labels.idx1-ubyte);
    /// default: the bundled 1,000 MNIST test digits.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate only the first N inputs.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = PlainMode::Plain)]
    pub mode: PlainMode,
    #[arg(long)]
    pub json: bool,
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
    let (_, q) = a.model.load()?;
    let s = summary::summarize(&q);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "model {}  input {}  output {}  fixed point: {} fractional bits in Z_2^64",
        s.name, s.input_shape, s.output_shape, s.frac_bits
    );
    println!(
        "{:>3}  {:<16} {:<14} {:>12} {:>4} {:>9} {:>10} {:>7}  protocol",
        "#", "layer", "op", "output", "frac", "params", "mults", "nonlin"
    );
    for l in &s.layers {
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
            l.protocol
        );
    }
    println!(
        "total: {} parameters, {} multiplications, {} garbled non-linear elements ({} comparisons in max-pools), {} squares, {} local truncations",
        s.parameters, s.multiplications, s.nonlinear, s.comparisons, s.squares, s.truncations
    );
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
    let (scores, ring) = match a.mode {
        PlainMode::Float => (engine::run_float(&m, &x)?, None),
        PlainMode::TwoServer => bail!(
            "`run` is plaintext; use `blindfold demo` or `serve` + `query` for the two-server mode"
        ),
        PlainMode::Plain => {
            let y = engine::run_plain(&q, &x)?;
            (
                engine::decode_output(&q, &y),
                Some(y.iter().map(|&v| v as i64).collect()),
            )
        }
    };
    let scores = if a.softmax {
        engine::apply_final(m.final_activation, &scores)
    } else {
        scores
    };
    let out = RunOutput {
        model: m.name.clone(),
        mode: format!("{:?}", a.mode).to_lowercase(),
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

#[derive(Serialize)]
pub struct EvalReport {
    pub model: String,
    pub mode: String,
    pub frac_bits: u32,
    pub n: usize,
    pub float_accuracy: f64,
    pub plain_accuracy: f64,
    /// Fraction of inputs whose fixed-point argmax equals the float argmax.
    pub agreement: f64,
    /// Largest |plain − float| over all output scores.
    pub max_abs_diff: f64,
    /// Probability that some local share truncation of one query is off by more
    /// than one unit (`Σ elements · 2·max|x| / 2^64`, with `max|x|` the largest
    /// magnitude seen before each truncation on this dataset). Zero for networks
    /// that truncate only inside garbled circuits.
    pub truncation_failure_per_query: f64,
    pub seconds: f64,
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
    let dir = arg.clone().unwrap_or_else(paths::default_data);
    let ds = data::load_idx_dir(&dir)?;
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
    if a.mode == PlainMode::TwoServer {
        return crate::secure_cmds::eval_two_server(&a.model, &a.data, a.limit, a.json);
    }
    let (m, q) = a.model.load()?;
    let (ds, n) = load_dataset(&a.data, a.limit, &m)?;
    let t0 = std::time::Instant::now();
    let pb = progress(n, &format!("eval {} ({:?})", m.name, a.mode).to_lowercase());
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut fc, mut pc, mut agree) = (0usize, 0usize, 0usize);
    let mut max_diff = 0f64;
    let trunc_nodes: Vec<usize> = (0..q.nodes.len())
        .filter(|&i| q.nodes[i].op == blindfold_model::quant::QOp::Trunc)
        .collect();
    let mut trunc_max = vec![0u64; trunc_nodes.len()];
    for i in 0..n {
        let x = ds.image_f32(i);
        let label = ds.labels[i] as usize;
        let yf = engine::run_float(&m, &x)?;
        let lf = argmax(&yf);
        fc += (lf == label) as usize;
        if a.mode == PlainMode::Plain {
            let all = engine::run_plain_all(&q, &engine::encode_input(&q, &x)?)?;
            for (k, &t) in trunc_nodes.iter().enumerate() {
                let src = q.nodes[t].inputs[0];
                let m = all[src]
                    .iter()
                    .map(|&v| (v as i64).unsigned_abs())
                    .max()
                    .unwrap_or(0);
                trunc_max[k] = trunc_max[k].max(m);
            }
            let yp = engine::decode_output(&q, &all[q.output]);
            let lp = argmax(&yp);
            pc += (lp == label) as usize;
            agree += (lp == lf) as usize;
            for (p, f) in yp.iter().zip(&yf) {
                max_diff = max_diff.max((p - f).abs());
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let nf = n.max(1) as f64;
    let r = EvalReport {
        model: m.name.clone(),
        mode: format!("{:?}", a.mode).to_lowercase(),
        frac_bits: q.frac.0,
        n,
        float_accuracy: fc as f64 / nf,
        plain_accuracy: if a.mode == PlainMode::Plain {
            pc as f64 / nf
        } else {
            f64::NAN
        },
        agreement: if a.mode == PlainMode::Plain {
            agree as f64 / nf
        } else {
            f64::NAN
        },
        max_abs_diff: max_diff,
        truncation_failure_per_query: trunc_nodes
            .iter()
            .zip(&trunc_max)
            .map(|(&t, &m)| q.nodes[t].shape.numel() as f64 * 2.0 * m as f64 / 2f64.powi(64))
            .fold(0.0, |a, b| a + b),
        seconds: t0.elapsed().as_secs_f64(),
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("model {}  n = {}  ({:.2} s)", r.model, r.n, r.seconds);
        println!("float accuracy        {:.2}%", 100.0 * r.float_accuracy);
        if a.mode == PlainMode::Plain {
            println!(
                "fixed-point accuracy  {:.2}%  ({} fractional bits)",
                100.0 * r.plain_accuracy,
                r.frac_bits
            );
            println!("argmax agreement      {:.2}%", 100.0 * r.agreement);
            println!("max |plain - float|   {:.5}", r.max_abs_diff);
            if r.truncation_failure_per_query > 0.0 {
                println!(
                    "local truncation: failure probability per query {:.1e} (secure may differ from plain by 1 unit per truncated element otherwise)",
                    r.truncation_failure_per_query
                );
            }
        }
    }
    Ok(())
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
