//! Commands of the two-server system: split, serve, query, demo.

use crate::paths;
use crate::plain_cmds::ModelArg;
use anyhow::{bail, Context, Result};
use blindfold_core::Prg;
use blindfold_engine::infer::median;
use blindfold_engine::party::PartyEngine;
use blindfold_engine::plan::Deployment;
use blindfold_engine::serve::{self, Answer, LocalCluster, ServeConfig};
use blindfold_engine::share::{split_for, ModelShare};
use blindfold_model::engine::{self as plain, argmax_ring};
use blindfold_model::{data, summary};
use clap::Args;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Directory for party0.share and party1.share (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn split_cmd(a: SplitArgs) -> Result<()> {
    let (_, q) = a.model.load()?;
    let mut rng = Prg::from_entropy();
    let shares = split_for(&q, Deployment::TwoServer, &mut rng)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for s in &shares {
        let p = a.out.join(format!("party{}.share", s.party.index()));
        std::fs::write(&p, s.to_bytes()).with_context(|| format!("writing {}", p.display()))?;
        println!(
            "wrote {} ({} bytes)",
            p.display(),
            std::fs::metadata(&p)?.len()
        );
    }
    let s = summary::summarize(&q);
    println!(
        "model {}: {} parameters, each file holds the architecture and one uniformly random additive share of every weight",
        q.name, s.parameters
    );
    println!("next: give party0.share to server P0 and party1.share to server P1, then `blindfold serve` on each");
    Ok(())
}

#[derive(Args)]
pub struct ServeArgs {
    /// Which server this is: 0 or 1.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub party: u8,
    /// This server's share file (from `blindfold split`).
    #[arg(long)]
    pub share: PathBuf,
    /// Address to accept clients on (and, for party 0, the other server).
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: String,
    /// The other server's listen address (party 1 connects to party 0; party 0
    /// waits for it and ignores this flag).
    #[arg(long)]
    pub peer: Option<String>,
    /// Preprocessed bundles kept ready.
    #[arg(long, default_value_t = 4)]
    pub pool: usize,
    /// Seconds to wait for a client's share or the other server.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// No per-query log lines.
    #[arg(long)]
    pub quiet: bool,
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let share = ModelShare::load(&a.share)?;
    if share.party.index() != a.party as usize {
        bail!(
            "{} is party {}'s share, but this server was started as --party {}",
            a.share.display(),
            share.party.index(),
            a.party
        );
    }
    if a.party == 1 && a.peer.is_none() {
        bail!("party 1 needs --peer ADDR (party 0's --listen address) and its own --listen ADDR");
    }
    if a.party == 0 && a.peer.is_some() {
        eprintln!("note: party 0 waits for party 1 to connect; --peer is not used");
    }
    let name = share.program.name.clone();
    let engine = PartyEngine::new(share)?;
    let listener = TcpListener::bind(&a.listen).with_context(|| {
        format!(
            "binding {} (two servers on one machine need different --listen ports)",
            a.listen
        )
    })?;
    eprintln!(
        "P{} serving model {} on {} (pool of {} preprocessed queries){}",
        a.party,
        name,
        listener.local_addr()?,
        a.pool,
        match &a.peer {
            Some(p) if a.party == 1 => format!(", peer {p}"),
            _ => ", waiting for P1".into(),
        }
    );
    let cfg = ServeConfig {
        peer: a.peer.clone(),
        pool: a.pool.max(1),
        timeout: Duration::from_secs(a.timeout.max(1)),
        verbose: !a.quiet,
    };
    serve::run(engine, listener, cfg, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}

#[derive(Args)]
pub struct QueryArgs {
    /// P0's and P1's addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// Input: .npy (float32, the model's input shape) or a grayscale PNG.
    pub input: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the servers.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// Ask for the label only: the servers compute the argmax in a garbled
    /// circuit and the client learns nothing but the label.
    #[arg(long)]
    pub label_only: bool,
}

pub fn query(a: QueryArgs) -> Result<()> {
    if a.servers.len() != 2 {
        bail!("--servers takes two addresses: P0,P1");
    }
    let bytes_shape = serve::info(&a.servers[0], Duration::from_secs(a.timeout))
        .with_context(|| format!("asking {} for the model's input shape", a.servers[0]))?
        .input_shape;
    let x = data::load_input(&a.input, &bytes_shape)?;
    let mut rng = Prg::from_entropy();
    let kind = if a.label_only {
        blindfold_engine::party::OutputKind::Label
    } else {
        blindfold_engine::party::OutputKind::Logits
    };
    let ans = serve::query_with(
        [a.servers[0].as_str(), a.servers[1].as_str()],
        &x,
        Duration::from_secs(a.timeout),
        kind,
        &mut rng,
    )?;
    if a.json {
        println!("{}", serde_json::to_string(&ans)?);
    } else {
        print_answer(&ans);
    }
    Ok(())
}

fn print_answer(a: &Answer) {
    println!("label {}", a.label);
    if !a.scores.is_empty() {
        let parts: Vec<String> = a.scores.iter().map(|v| format!("{v:.4}")).collect();
        println!("scores [{}]", parts.join(", "));
    }
    println!(
        "latency {:.1} ms at the client; servers: offline {:.1} ms, online {:.1} ms, {} bytes between them online, {} offline; client traffic {} bytes",
        a.latency_ms,
        a.cost[0].offline_ms,
        a.cost[0].online_ms,
        a.cost[0].online_bytes,
        a.cost[0].offline_bytes,
        a.client_bytes
    );
}

#[derive(Args)]
pub struct DemoArgs {
    /// Zoo model or .onnx file.
    #[arg(long, default_value = "minionn")]
    pub model: String,
    /// How many bundled digits to classify.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
}

pub fn demo(a: DemoArgs) -> Result<()> {
    let ma = ModelArg {
        model: a.model.clone(),
        frac_bits: a.frac_bits,
    };
    let (m, q) = ma.load()?;
    let ds = data::load_idx_dir(&paths::default_data())?;
    println!("blindfold demo: model {} split into two shares; servers P0 and P1 and a client on loopback", m.name);
    println!("each server holds one random share of every weight; the client sends each a random share of the digit");
    println!("offline = preprocessing done ahead of time for that query (HE products, garbled circuits, OTs)\n");
    let mut rng = Prg::from_entropy();
    let n = a.count.min(ds.len());
    let pool = n.clamp(1, 16);
    let cluster = LocalCluster::start(&q, pool, &mut rng)?;
    let t = std::time::Instant::now();
    eprint!("servers preprocessing {pool} queries ahead of time (HE products, garbled circuits, OTs)... ");
    cluster.wait_ready(pool, Duration::from_secs(120))?;
    eprintln!("{:.1} s", t.elapsed().as_secs_f64());
    println!(
        "{:>5} {:>6} {:>7} {:>7} {:>11} {:>10} {:>11} {:>10} {:>9}",
        "digit",
        "truth",
        "secure",
        "plain",
        "client ms",
        "online ms",
        "offline ms",
        "online MB",
        "total MB"
    );
    let (mut agree, mut correct) = (0, 0);
    let mut lat = Vec::new();
    let mut onl = Vec::new();
    let mut offl = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..n {
        let x = ds.image_f32(i);
        let ans = cluster.query(&x, &mut rng)?;
        let pl = argmax_ring(&plain::run_plain(&q, &x)?);
        agree += (pl == ans.label) as usize;
        correct += (ans.label == ds.labels[i] as usize) as usize;
        let total_bytes = ans.cost[0].offline_bytes + ans.cost[0].online_bytes + ans.client_bytes;
        println!(
            "{:>5} {:>6} {:>7} {:>7} {:>11.1} {:>10.1} {:>11.1} {:>10.2} {:>9.2}",
            i,
            ds.labels[i],
            ans.label,
            pl,
            ans.latency_ms,
            ans.cost[0].online_ms,
            ans.cost[0].offline_ms,
            (ans.cost[0].online_bytes + ans.client_bytes) as f64 / 1e6,
            total_bytes as f64 / 1e6
        );
        lat.push(ans.latency_ms);
        onl.push(ans.cost[0].online_ms);
        offl.push(ans.cost[0].offline_ms);
        bytes.push(total_bytes as f64);
    }
    println!();
    println!(
        "{n} digits: secure label = plaintext reference label on {agree}/{n}; correct {correct}/{n}"
    );
    println!(
        "median per query: offline {:.1} ms (done ahead of time), online {:.1} ms, client-observed {:.1} ms, {:.2} MB in all",
        median(&mut offl),
        median(&mut onl),
        median(&mut lat),
        median(&mut bytes) / 1e6
    );
    if agree != n {
        bail!("secure and plaintext labels differ on {} digits", n - agree);
    }
    Ok(())
}
