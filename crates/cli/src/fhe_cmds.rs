//! FHE mode (non-interactive): `fhe profile|keygen|encrypt|eval|decrypt` on
//! files, and the `fhe` arms of `inspect`, `eval`, `bench` and `demo`.

use crate::paths;
use crate::plain_cmds::progress;
use anyhow::{bail, Context, Result};
use blindfold_core::Prg;
use blindfold_fhe::files::{self, ClientKeys, Server, ServerKeys};
use blindfold_fhe::{FheModel, FheQuant, Layout, Progress};
use blindfold_model::engine::argmax;
use blindfold_model::ir::Model;
use blindfold_model::{data, load_onnx};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    /// One input per slot, one ciphertext per input element (CryptoNets):
    /// a full batch costs what one input does.
    Batch,
    /// One input packed into a few ciphertexts, rotations for the linear
    /// layers (LoLa): the lowest latency for a single query.
    Latency,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Batch => Layout::Batch,
            LayoutArg::Latency => Layout::Latency,
        }
    }
}

/// How a model is lowered for FHE.
#[derive(Args, Clone, Debug)]
pub struct FheArgs {
    /// FHE slot layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Batch)]
    pub layout: LayoutArg,
    /// FHE: fractional bits of the input (`round(x · 2^bits)`).
    #[arg(long, default_value_t = FheQuant::default().input_bits)]
    pub input_bits: u32,
    /// FHE: signed bits of every layer's integer weights.
    #[arg(long, default_value_t = FheQuant::default().weight_bits)]
    pub weight_bits: u32,
    /// FHE: the range every input element lies in, `LO,HI` (the bounds that
    /// size the plaintext modulus; inputs outside are refused).
    #[arg(long, default_value = "0,1", allow_hyphen_values = true)]
    pub input_range: String,
}

impl FheArgs {
    pub fn quant(&self) -> Result<FheQuant> {
        let parts: Vec<&str> = self.input_range.split(',').collect();
        let [lo, hi] = parts.as_slice() else {
            bail!("--input-range takes LO,HI (got '{}')", self.input_range);
        };
        let (lo, hi): (f32, f32) = (
            lo.trim().parse().context("--input-range LO")?,
            hi.trim().parse().context("--input-range HI")?,
        );
        Ok(FheQuant {
            input_bits: self.input_bits,
            weight_bits: self.weight_bits,
            input_range: (lo, hi),
        })
    }
    pub fn build(&self, m: &Model) -> Result<FheModel> {
        Ok(FheModel::new(m, self.quant()?, self.layout.into())?)
    }
}

#[derive(Subcommand)]
pub enum FheCmd {
    /// Server: write the public profile of a model (shapes, quantization,
    /// parameters; no weights) for clients to make keys.
    Profile {
        /// Zoo model name or .onnx file.
        model: String,
        #[command(flatten)]
        fhe: FheArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Client: make keys. Writes DIR/secret.key (stays with the client) and
    /// DIR/eval.key (for the server), from --profile or from --model.
    Keygen {
        #[arg(long)]
        profile: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        fhe: FheArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Client: encrypt inputs (.npy or PNG files, or --data DIR --limit N).
    Encrypt {
        #[arg(long)]
        key: PathBuf,
        inputs: Vec<PathBuf>,
        /// IDX dataset directory to take inputs from.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Server: evaluate encrypted inputs with the model and evaluation keys.
    Eval {
        model: String,
        #[arg(long)]
        eval_key: PathBuf,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Client: decrypt a result: labels and scores per input.
    Decrypt {
        #[arg(long)]
        key: PathBuf,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn read(p: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

fn write(p: &PathBuf, b: &[u8]) -> Result<()> {
    std::fs::write(p, b).with_context(|| format!("writing {}", p.display()))
}

/// Write a file only its owner can read, with that mode from the start.
fn write_private(p: &PathBuf, b: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
    f.write_all(b)
        .with_context(|| format!("writing {}", p.display()))
}

fn load(model: &str) -> Result<Model> {
    Ok(load_onnx(paths::model_path(model)?)?)
}

fn bar_progress(pb: &indicatif::ProgressBar) -> Progress<'_> {
    Progress(Box::new(move |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    }))
}

#[derive(Serialize)]
struct Decrypted {
    index: usize,
    label: usize,
    scores: Vec<f64>,
}

pub fn run(cmd: FheCmd) -> Result<()> {
    match cmd {
        FheCmd::Profile { model, fhe, out } => {
            let fm = fhe.build(&load(&model)?)?;
            write(&out, &files::profile_to_bytes(&fm.profile()))?;
            eprintln!(
                "profile of {} written to {}: {}",
                fm.program.name,
                out.display(),
                fm.params.describe()
            );
        }
        FheCmd::Keygen {
            profile,
            model,
            fhe,
            out,
        } => {
            let profile = match (profile, model) {
                (Some(p), None) => files::profile_from_bytes(&read(&p)?)?,
                (None, Some(m)) => fhe.build(&load(&m)?)?.profile(),
                _ => bail!("keygen takes --profile FILE or --model MODEL"),
            };
            std::fs::create_dir_all(&out)?;
            let t0 = Instant::now();
            let (_, secret, eval) = files::generate(&profile, &mut Prg::from_entropy())?;
            let sk = out.join("secret.key");
            write_private(&sk, &secret)?;
            write(&out.join("eval.key"), &eval)?;
            write(&out.join("profile.fhe"), &files::profile_to_bytes(&profile))?;
            eprintln!(
                "keys in {:.1} s: {} (secret, keep it) and {} ({} bytes, for the server); {}",
                t0.elapsed().as_secs_f64(),
                sk.display(),
                out.join("eval.key").display(),
                eval.len(),
                profile.params.describe()
            );
        }
        FheCmd::Encrypt {
            key,
            inputs,
            data,
            limit,
            out,
        } => {
            let ck = ClientKeys::from_bytes(&read(&key)?)?;
            let shape = ck.profile.input_shape.clone();
            let mut xs = vec![];
            for p in &inputs {
                xs.push(data::load_input(p, &shape)?);
            }
            if let Some(dir) = data {
                let ds = data::load_idx_dir(&dir)?;
                let n = limit.unwrap_or(ds.len()).min(ds.len());
                xs.extend((0..n).map(|i| ds.image_f32(i)));
            }
            if xs.is_empty() {
                bail!("nothing to encrypt: give input files or --data DIR");
            }
            let t0 = Instant::now();
            let q = ck.encrypt(&xs, &mut Prg::from_entropy())?;
            write(&out, &q)?;
            eprintln!(
                "{} input(s) encrypted in {:.1} s: {} ({} bytes)",
                xs.len(),
                t0.elapsed().as_secs_f64(),
                out.display(),
                q.len()
            );
        }
        FheCmd::Eval {
            model,
            eval_key,
            input,
            out,
        } => {
            let (keys, quant, layout) = ServerKeys::from_bytes(&read(&eval_key)?)?;
            let fm = FheModel::new(&load(&model)?, quant, layout)?;
            let server = Server::new(fm)?;
            let pb = progress(1, "fhe eval");
            let t0 = Instant::now();
            let r = server.evaluate(&keys, &read(&input)?, &bar_progress(&pb))?;
            pb.finish_and_clear();
            write(&out, &r)?;
            eprintln!(
                "evaluated in {:.1} s: {} ({} bytes)",
                t0.elapsed().as_secs_f64(),
                out.display(),
                r.len()
            );
        }
        FheCmd::Decrypt { key, input, json } => {
            let ck = ClientKeys::from_bytes(&read(&key)?)?;
            let (outs, budget) = ck.decrypt(&read(&input)?)?;
            let rows: Vec<Decrypted> = outs
                .iter()
                .enumerate()
                .map(|(index, y)| {
                    let scores = ck.profile.decode(y);
                    Decrypted {
                        index,
                        label: argmax(&scores),
                        scores,
                    }
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"results": rows, "noise_budget_bits": budget})
                );
            } else {
                println!("{:>6} {:>6}  scores", "input", "label");
                for r in &rows {
                    let s: Vec<String> = r.scores.iter().map(|v| format!("{v:.2}")).collect();
                    println!("{:>6} {:>6}  {}", r.index, r.label, s.join(" "));
                }
                println!("noise budget left: {budget} bits");
            }
        }
    }
    Ok(())
}

/// `inspect --mode fhe`: the lowered program per layer, or the refusal.
pub fn inspect(model: &str, fhe: &FheArgs, json: bool) -> Result<()> {
    let m = load(model)?;
    let fm = fhe
        .build(&m)
        .map_err(|e| anyhow::anyhow!("{e}\n(model {} cannot run in FHE mode)", m.name))?;
    let p = &fm.program;
    if json {
        let layers: Vec<serde_json::Value> = p
            .nodes
            .iter()
            .map(|n| serde_json::json!({"name": n.name, "kind": n.kind, "len": n.len, "scale": n.scale, "bound_bits": n.bound_bits()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": p.name, "mode": "fhe", "layout": fm.layout().name(), "supported": true,
                "layers": layers, "range_bits": p.range_bits(), "depth": p.depth(),
                "degree": fm.params.degree, "log_q": fm.params.log_q(),
                "plaintext_moduli": fm.params.plaintext, "noise_estimate_bits": fm.params.noise_estimate,
                "rotations": fm.profile().rotations.len(),
            }))?
        );
        return Ok(());
    }
    println!(
        "model {}  FHE ({} layout): exact integers, no truncation",
        p.name,
        fm.layout().name()
    );
    println!(
        "{:>3}  {:<28} {:<15} {:>7} {:>12}  {:>10}",
        "#", "layer", "op", "values", "scale", "max |v|"
    );
    for (i, n) in p.nodes.iter().enumerate() {
        println!(
            "{:>3}  {:<28} {:<15} {:>7} {:>12.4e}  2^{:<8}",
            i,
            n.name,
            n.kind,
            n.len,
            n.scale,
            n.bound_bits()
        );
    }
    println!(
        "depth {} squares; values need {} bits: {}; noise estimate {} bits; {} rotation keys",
        p.depth(),
        p.range_bits(),
        fm.params.describe(),
        fm.params.noise_estimate,
        fm.profile().rotations.len()
    );
    Ok(())
}

#[derive(Serialize)]
pub struct FheEval {
    model: String,
    mode: &'static str,
    layout: &'static str,
    n: usize,
    params: String,
    float_accuracy: Option<f64>,
    reference_accuracy: Option<f64>,
    fhe_accuracy: Option<f64>,
    /// FHE results equal to the integer reference (all outputs of an input).
    exact: usize,
    noise_budget_bits: i64,
    keygen_ms: f64,
    encrypt_ms: f64,
    eval_ms: f64,
    decrypt_ms: f64,
    upload_bytes: usize,
    download_bytes: usize,
    key_bytes: usize,
}

/// `eval MODEL --mode fhe`: accuracy and agreement with the integer reference.
pub fn eval(
    model: &str,
    dataset: &data::Dataset,
    n: usize,
    fhe: &FheArgs,
    json: bool,
) -> Result<()> {
    let m = load(model)?;
    let fm = fhe.build(&m)?;
    let prog = fm.program.clone();
    let xs: Vec<Vec<f32>> = (0..n).map(|i| dataset.image_f32(i)).collect();
    let server = Server::new(fm.clone())?;
    let mut rng = Prg::from_entropy();
    let t0 = Instant::now();
    let (ck, _, eval_key) = files::generate(&fm.profile(), &mut rng)?;
    let (keys, _, _) = ServerKeys::from_bytes(&eval_key)?;
    let keygen_ms = ms(t0);
    let chunk = match fm.layout() {
        Layout::Batch => fm.params.slots(),
        // one query per input: files of 16 keep memory flat
        Layout::Latency => 16,
    };
    let pb = progress(
        n,
        &format!("eval {} (fhe, {})", prog.name, fm.layout().name()),
    );
    if json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut outs, mut budget) = (vec![], i64::MAX);
    let (mut enc_ms, mut eval_ms, mut dec_ms, mut up, mut down) = (0.0, 0.0, 0.0, 0, 0);
    for part in xs.chunks(chunk) {
        let t = Instant::now();
        let q = ck.encrypt(part, &mut rng)?;
        enc_ms += ms(t);
        up += q.len();
        let t = Instant::now();
        let r = server.evaluate(&keys, &q, &bar_progress(&pb))?;
        eval_ms += ms(t);
        down += r.len();
        let t = Instant::now();
        let (o, b) = ck.decrypt(&r)?;
        dec_ms += ms(t);
        outs.extend(o);
        budget = budget.min(b);
    }
    pb.finish_and_clear();
    let mut exact = 0;
    let (mut ok_float, mut ok_ref, mut ok_fhe) = (0, 0, 0);
    for (i, x) in xs.iter().enumerate() {
        let want = prog.run(&prog.encode_input(x)?);
        exact += usize::from(outs[i] == want);
        if let Some(l) = dataset.labels.get(i).copied() {
            let l = l as usize;
            ok_ref += usize::from(argmax(&want) == l);
            ok_fhe += usize::from(argmax(&outs[i]) == l);
            ok_float += usize::from(argmax(&blindfold_model::engine::run_float(&m, x)?) == l);
        }
    }
    let labelled = dataset.has_labels();
    let acc = |k: usize| labelled.then(|| k as f64 / n.max(1) as f64);
    let r = FheEval {
        model: prog.name.clone(),
        mode: "fhe",
        layout: fm.layout().name(),
        n,
        params: fm.params.describe(),
        float_accuracy: acc(ok_float),
        reference_accuracy: acc(ok_ref),
        fhe_accuracy: acc(ok_fhe),
        exact,
        noise_budget_bits: budget,
        keygen_ms,
        encrypt_ms: enc_ms,
        eval_ms,
        decrypt_ms: dec_ms,
        upload_bytes: up,
        download_bytes: down,
        key_bytes: eval_key.len(),
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("model {}  {} inputs  FHE, {}", r.model, n, r.params);
        let pct = |a: Option<f64>| {
            a.map(|v| format!("{:.2}%", 100.0 * v))
                .unwrap_or("-".into())
        };
        println!(
            "  accuracy: float {}  integer reference {}  FHE {}",
            pct(r.float_accuracy),
            pct(r.reference_accuracy),
            pct(r.fhe_accuracy)
        );
        println!(
            "  equal to the integer reference: {}/{}  noise budget left {} bits",
            exact, n, budget
        );
        println!(
            "  keygen {:.0} ms  encrypt {:.0} ms  evaluate {:.0} ms  decrypt {:.0} ms  upload {:.1} MB  download {:.1} MB  evaluation keys {:.1} MB",
            keygen_ms, enc_ms, eval_ms, dec_ms, up as f64 / 1e6, down as f64 / 1e6, eval_key.len() as f64 / 1e6
        );
    }
    if exact != n {
        bail!(
            "{} of {n} FHE results differ from the integer reference",
            n - exact
        );
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

#[derive(Serialize)]
struct FheBench {
    network: String,
    mode: &'static str,
    batch: usize,
    batch_ms: f64,
    per_image_ms: f64,
    latency_ms: f64,
    upload_bytes: usize,
    download_bytes: usize,
    key_bytes: usize,
    latency_upload_bytes: usize,
    latency_download_bytes: usize,
    latency_key_bytes: usize,
    batch_params: String,
    latency_params: String,
    batch_runs: usize,
    latency_runs: usize,
    noise_budget_bits: i64,
}

/// `bench --network MODEL --mode fhe`: a full batch in the batch layout and
/// one image in the latency layout; medians over runs.
pub fn bench(network: &str, fhe: &FheArgs, queries: usize, json: bool) -> Result<()> {
    let m = load(network)?;
    let quant = fhe.quant()?;
    let ds = data::load_idx_dir(&paths::default_data()).ok();
    let image = |i: usize| -> Vec<f32> {
        match &ds {
            Some(d) if d.image_f32(0).len() == m.input_shape().numel() => d.image_f32(i % d.len()),
            _ => {
                let (lo, hi) = quant.input_range;
                let mut prg = Prg::from_seed([i as u8; 16]);
                (0..m.input_shape().numel())
                    .map(|_| lo + (hi - lo) * ((prg.gen_u64() % 1001) as f32 / 1000.0))
                    .collect()
            }
        }
    };
    let mut rng = Prg::from_entropy();
    let mut budget = i64::MAX;
    // batch layout, full ciphertext
    let fb = FheModel::new(&m, quant, Layout::Batch)?;
    let sb = Server::new(fb.clone())?;
    let (ckb, _, ekb) = files::generate(&fb.profile(), &mut rng)?;
    let (kb, _, _) = ServerKeys::from_bytes(&ekb)?;
    let slots = fb.params.slots();
    let xs: Vec<Vec<f32>> = (0..slots).map(image).collect();
    let runs_b = queries.clamp(1, 3);
    let pb = progress(
        1,
        &format!("bench {} (fhe batch of {slots})", fb.program.name),
    );
    if json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let q = ckb.encrypt(&xs, &mut rng)?;
    let mut times = vec![];
    let mut r = vec![];
    for _ in 0..runs_b {
        let t = Instant::now();
        r = sb.evaluate(&kb, &q, &bar_progress(&pb))?;
        times.push(ms(t));
    }
    pb.finish_and_clear();
    budget = budget.min(ckb.decrypt(&r)?.1);
    let batch_ms = median(times);
    // latency layout, one image
    let fl = FheModel::new(&m, quant, Layout::Latency)?;
    let sl = Server::new(fl.clone())?;
    let (ckl, _, ekl) = files::generate(&fl.profile(), &mut rng)?;
    let (kl, _, _) = ServerKeys::from_bytes(&ekl)?;
    let ql = ckl.encrypt(&[image(0)], &mut rng)?;
    let runs_l = queries.clamp(1, 5);
    let mut times = vec![];
    let mut rl = vec![];
    for _ in 0..runs_l {
        let t = Instant::now();
        rl = sl.evaluate(&kl, &ql, &Progress::none())?;
        times.push(ms(t));
    }
    budget = budget.min(ckl.decrypt(&rl)?.1);
    let out = FheBench {
        network: fb.program.name.clone(),
        mode: "fhe",
        batch: slots,
        batch_ms,
        per_image_ms: batch_ms / slots as f64,
        latency_ms: median(times),
        upload_bytes: q.len(),
        download_bytes: r.len(),
        key_bytes: ekb.len(),
        latency_upload_bytes: ql.len(),
        latency_download_bytes: rl.len(),
        latency_key_bytes: ekl.len(),
        batch_params: fb.params.describe(),
        latency_params: fl.params.describe(),
        batch_runs: runs_b,
        latency_runs: runs_l,
        noise_budget_bits: budget,
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} in FHE mode (server time; medians of {runs_b} batch and {runs_l} latency runs)",
            out.network
        );
        println!("  batch layout:   {} inputs in {:.0} ms = {:.3} ms per image; upload {:.1} MB, download {:.1} MB, keys {:.1} MB  [{}]",
            slots, batch_ms, out.per_image_ms, out.upload_bytes as f64 / 1e6, out.download_bytes as f64 / 1e6, out.key_bytes as f64 / 1e6, out.batch_params);
        println!("  latency layout: one image in {:.0} ms; upload {:.2} MB, download {:.2} MB, keys {:.1} MB  [{}]",
            out.latency_ms, out.latency_upload_bytes as f64 / 1e6, out.latency_download_bytes as f64 / 1e6, out.latency_key_bytes as f64 / 1e6, out.latency_params);
        println!("  noise budget left: {budget} bits");
    }
    Ok(())
}

/// `demo --mode fhe`: keys, encryption, one server's evaluation, decryption,
/// for `count` bundled digits, against the plaintext reference.
pub fn demo(model: &str, count: usize, data_dir: Option<PathBuf>, fhe: &FheArgs) -> Result<()> {
    let m = load(model)?;
    let fm = fhe.build(&m)?;
    let ds = data::load_idx_dir(&data_dir.unwrap_or_else(paths::default_data))?;
    let n = count.min(ds.len()).max(1);
    println!(
        "FHE demo: {} ({} layout), {}",
        fm.program.name,
        fm.layout().name(),
        fm.params.describe()
    );
    let mut rng = Prg::from_entropy();
    let t = Instant::now();
    let (ck, _, ek) = files::generate(&fm.profile(), &mut rng)?;
    println!("client: keys in {:.0} ms (evaluation keys for the server: {:.1} MB; the secret key stays here)", ms(t), ek.len() as f64 / 1e6);
    let (keys, _, _) = ServerKeys::from_bytes(&ek)?;
    let server = Server::new(fm.clone())?;
    let xs: Vec<Vec<f32>> = (0..n).map(|i| ds.image_f32(i)).collect();
    let t = Instant::now();
    let q = ck.encrypt(&xs, &mut rng)?;
    println!(
        "client: {n} digit(s) encrypted in {:.0} ms ({:.1} MB)",
        ms(t),
        q.len() as f64 / 1e6
    );
    let pb = progress(1, "server: evaluating on ciphertexts");
    let t = Instant::now();
    let r = server.evaluate(&keys, &q, &bar_progress(&pb))?;
    pb.finish_and_clear();
    println!(
        "server: evaluated in {:.0} ms without any key to decrypt ({:.2} MB back)",
        ms(t),
        r.len() as f64 / 1e6
    );
    let (outs, budget) = ck.decrypt(&r)?;
    println!(
        "{:>5} {:>6} {:>10} {:>6}",
        "digit", "truth", "reference", "fhe"
    );
    let mut same = 0;
    for (i, x) in xs.iter().enumerate() {
        let want = fm.program.run(&fm.program.encode_input(x)?);
        same += usize::from(want == outs[i]);
        let truth = ds
            .labels
            .get(i)
            .copied()
            .map(|l| l.to_string())
            .unwrap_or("-".into());
        println!(
            "{:>5} {:>6} {:>10} {:>6}{}",
            i,
            truth,
            argmax(&want),
            argmax(&outs[i]),
            if want == outs[i] { "" } else { "  DIFFERS" }
        );
    }
    println!("{same}/{n} decrypted results equal the integer reference exactly; noise budget left {budget} bits");
    if same != n {
        bail!("FHE results differ from the reference");
    }
    Ok(())
}

/// `serve --mode fhe --model MODEL --listen ADDR`: one server, the model in
/// clear, no secret key; clients upload evaluation keys once per connection.
pub fn serve(a: &crate::secure_cmds::ServeArgs) -> Result<()> {
    use blindfold_fhe::service::{self, ServiceConfig};
    use blindfold_net::{TcpAcceptor, TlsRole};
    let Some(model) = a.model.clone() else {
        bail!("--mode fhe needs --model MODEL (zoo name or .onnx): the server holds the model in clear");
    };
    if a.share.is_some() || a.party.is_some() || a.peer.is_some() {
        bail!("--share, --party and --peer are for two-server mode; an FHE server has no peer");
    }
    let fm = a.fhe.build(&load(&model)?)?;
    let t = Instant::now();
    let server = std::sync::Arc::new(Server::new(fm)?);
    let identity = a.tls.identity(TlsRole::P0)?;
    let listener =
        std::net::TcpListener::bind(&a.listen).with_context(|| format!("binding {}", a.listen))?;
    eprintln!(
        "serving model {} in FHE mode on {} over {} ({}; ready in {:.1} s)",
        server.model.program.name,
        listener.local_addr()?,
        if identity.is_some() {
            "mutually authenticated TLS 1.3 (certificate p0)"
        } else {
            "PLAINTEXT TCP"
        },
        server.model.params.describe(),
        t.elapsed().as_secs_f64()
    );
    let cfg = ServiceConfig {
        timeout: std::time::Duration::from_secs(a.timeout.max(30)),
        max_connections: a.max_connections as usize,
        verbose: !a.quiet,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    match identity {
        None => service::run(server, TcpAcceptor::new(listener)?, cfg, stop)?,
        Some(id) => service::run(server, id.acceptor(listener)?, cfg, stop)?,
    }
    Ok(())
}

/// `query --mode fhe --server ADDR INPUT...`: keys made here, inputs encrypted
/// here (one batch, or one latency query each), decrypted here.
pub fn query(a: &crate::secure_cmds::QueryArgs) -> Result<()> {
    use blindfold_net::{TcpTransport, TlsRole};
    let Some(addr) = a.server.clone() else {
        bail!("--mode fhe needs --server ADDR (the FHE server's --listen address)");
    };
    let timeout = std::time::Duration::from_secs(a.timeout);
    match a.tls.identity(TlsRole::Client)? {
        None => query_over(&TcpTransport, &addr, a, timeout),
        Some(id) => query_over(&id.transport(Some(TlsRole::P0))?, &addr, a, timeout),
    }
}

fn query_over<T: blindfold_net::Transport>(
    t: &T,
    addr: &str,
    a: &crate::secure_cmds::QueryArgs,
    timeout: std::time::Duration,
) -> Result<()> {
    use blindfold_fhe::service::FheClient;
    let mut rng = Prg::from_entropy();
    let t0 = Instant::now();
    let mut client = FheClient::connect(t, addr, timeout, &mut rng)
        .with_context(|| format!("connecting to the FHE server at {addr}"))?;
    if !a.json {
        eprintln!(
            "connected to {addr}: model {}, {}; keys made here and evaluation keys ({:.1} MB) sent in {:.1} s",
            client.profile().name,
            client.profile().params.describe(),
            client.key_bytes as f64 / 1e6,
            t0.elapsed().as_secs_f64()
        );
    }
    let shape = client.profile().input_shape.clone();
    let xs: Vec<Vec<f32>> = a
        .input
        .iter()
        .map(|p| data::load_input(p, &shape))
        .collect::<std::result::Result<_, _>>()?;
    let t = Instant::now();
    let ans = client.query(&xs, &mut rng)?;
    let (ys, budget, up, down) = (
        ans.outputs,
        ans.noise_budget,
        ans.upload_bytes,
        ans.download_bytes,
    );
    let ms = t.elapsed().as_secs_f64() * 1e3;
    for (p, y) in a.input.iter().zip(&ys) {
        let scores = client.profile().decode(y);
        let label = argmax(&scores);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"input": p.display().to_string(), "label": label, "scores": scores, "noise_budget_bits": budget, "ms": ms, "upload_bytes": up, "download_bytes": down})
            );
        } else if a.label_only {
            println!("{}: label {label}", p.display());
        } else {
            let s: Vec<String> = scores.iter().map(|v| format!("{v:.2}")).collect();
            println!("{}: label {label}  scores {}", p.display(), s.join(" "));
        }
    }
    if !a.json {
        eprintln!(
            "{} input(s) in {:.0} ms: {:.1} MB up, {:.1} MB down, noise budget left {budget} bits",
            ys.len(),
            ms,
            up as f64 / 1e6,
            down as f64 / 1e6
        );
    }
    Ok(())
}
