//! `blindfold bench`: measured costs, printed as a table or JSON.
//!
//! * `bench primitives`: garbling / evaluation / OT rates and 10,000 fused ReLUs;
//! * `bench preprocessing --network NAME`: the homomorphic preprocessing of one
//!   query's linear layers, both directions, per layer;
//! * `bench --network NAME --mode two-server`: the whole two-party protocol, both
//!   servers on threads of this process over loopback TCP, per query (medians)
//!   and per layer.

use crate::plain_cmds::{ModeArg, ModelArg};
use anyhow::Result;
use blindfold_engine::infer;
use blindfold_engine::plan::{Deployment, Plan};
use blindfold_engine::Mode;
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// OT, garbling and ReLU rates.
    Primitives,
    /// Homomorphic preprocessing of a network's linear layers.
    Preprocessing,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to measure; without it, the whole protocol (--mode).
    pub kind: Option<BenchKind>,
    /// Zoo model name or .onnx file.
    #[arg(long, default_value = "minionn")]
    pub network: String,
    #[arg(long, value_enum, default_value_t = ModeArg::TwoServer)]
    pub mode: ModeArg,
    /// Queries (the medians are over these).
    #[arg(long, default_value_t = 10)]
    pub queries: usize,
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
    #[command(flatten)]
    pub bn: crate::plain_cmds::BnArgs,
    #[arg(long)]
    pub json: bool,
    /// Also run the protocol over mutually authenticated TLS 1.3 (after the
    /// plain-TCP run, in the same process) and report what TLS costs.
    #[arg(long)]
    pub tls: bool,
    /// Client-server mode: who garbles the circuits (the default is the
    /// server; the others are there to compare).
    #[arg(long, value_enum)]
    pub garbler: Option<GarblerArg>,
    #[command(flatten)]
    pub fhe: crate::fhe_cmds::FheArgs,
    /// Two-server mode: sustained throughput of one server pair instead of
    /// per-query costs: N clients query at once, --queries in all, after the
    /// servers' pools are full (--pool bundles each).
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,
    /// With --clients: preprocessed bundles each server keeps ready.
    #[arg(long, default_value_t = 8)]
    pub pool: usize,
}

/// Who garbles in client-server mode.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GarblerArg {
    Server,
    Client,
    Alternate,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    match a.kind {
        Some(BenchKind::Primitives) => primitives(a.json),
        Some(BenchKind::Preprocessing) => preprocessing(&a),
        None if a.mode == crate::plain_cmds::ModeArg::Fhe => {
            crate::fhe_cmds::bench(&a.network, &a.fhe, a.queries, a.json)
        }
        None if a.clients.is_some() => throughput(&a),
        None => secure(&a),
    }
}

/// What `bench --clients N` measured.
#[derive(Serialize)]
struct Throughput {
    network: String,
    clients: usize,
    queries: usize,
    pool: usize,
    nonlinear: String,
    /// Time to fill both pools before the first query.
    warmup_s: f64,
    /// From the `pool`-th answer (the pools drawn down) to the last.
    seconds: f64,
    queries_per_s: f64,
    latency_ms_median: f64,
    latency_ms_p95: f64,
    /// Queries that waited more than 1 ms for a bundle or the peer link.
    queued: usize,
}

/// `bench --mode two-server --clients N`: both servers of one split on
/// loopback TCP in this process, pools filled first, then N client threads
/// share `--queries` queries; the rate counts the queries after the first
/// `--pool` answers (the ones the filled pools serve), and every answer is
/// checked against the plaintext reference.
fn throughput(a: &BenchArgs) -> Result<()> {
    use blindfold_core::Prg;
    use blindfold_engine::serve::LocalCluster;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    let clients = a.clients.unwrap_or(1);
    anyhow::ensure!(clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(
        a.mode == ModeArg::TwoServer,
        "--clients measures a two-server pair (--mode two-server)"
    );
    anyhow::ensure!(a.pool >= 1, "--pool must be at least 1");
    anyhow::ensure!(
        !a.tls && a.garbler.is_none() && a.bn.link.is_none(),
        "--clients runs plain TCP on loopback: --tls, --garbler and --link are for the per-query bench"
    );
    let ma = ModelArg::new(a.network.clone(), a.frac_bits, a.bn);
    let (m, q) = ma.load()?;
    let n_q = a.queries.max(clients);
    anyhow::ensure!(
        n_q > a.pool,
        "--queries ({n_q}) must exceed --pool ({}): the clock starts after the first --pool answers, which the filled pools serve",
        a.pool
    );
    let mut rng = Prg::from_entropy();
    let t0 = Instant::now();
    // Every client connects from 127.0.0.1: admit all of them.
    let defaults = blindfold_engine::serve::ServeConfig::default();
    let cfg = blindfold_engine::serve::ServeConfig {
        pool: a.pool,
        max_pending: defaults.max_pending.max(2 * clients),
        max_pending_per_source: defaults.max_pending_per_source.max(2 * clients),
        max_connections: defaults.max_connections.max(4 * clients),
        max_connections_per_source: defaults.max_connections_per_source.max(4 * clients),
        ..defaults
    };
    let cluster = LocalCluster::start_tcp(&q, cfg, &mut rng)?;
    if !a.json {
        eprintln!(
            "network {}: filling both servers' pools ({} bundles each) ...",
            m.name, a.pool
        );
    }
    anyhow::ensure!(
        cluster.wait_ready(a.pool, Duration::from_secs(600))?,
        "the servers did not fill their pools within 10 minutes"
    );
    let warmup_s = t0.elapsed().as_secs_f64();
    // Inputs: pseudo-random values in [0, 1) of the model's input shape (the
    // protocol's cost does not depend on them); answers checked all the same.
    let numel = q.input_shape().numel();
    let inputs: Vec<Vec<f32>> = (0..8)
        .map(|i| {
            let mut r = Prg::from_seed([i as u8 + 1; 16]);
            (0..numel)
                .map(|_| (r.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
                .collect()
        })
        .collect();
    let wants: Vec<Vec<u64>> = inputs
        .iter()
        .map(|x| blindfold_model::engine::run_plain(&q, x))
        .collect::<std::result::Result<_, _>>()?;
    let next = AtomicUsize::new(0);
    // The first `pool` answers come from bundles made before the clock: the
    // sustained rate is measured from the moment the pool is drawn down.
    let done = AtomicUsize::new(0);
    let drawn: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let pb = crate::plain_cmds::progress(
        n_q,
        &format!("network {}: {clients} clients, {n_q} queries", m.name),
    );
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let results: Vec<Result<Vec<(f64, f64)>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<Vec<(f64, f64)>> {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        if k >= n_q {
                            return Ok(out);
                        }
                        let i = k % inputs.len();
                        let ans = cluster.query(&inputs[i])?;
                        anyhow::ensure!(
                            ans.ring == wants[i],
                            "query {k}: the secure answer differs from the plaintext reference"
                        );
                        let queue = ans.cost[0].queue_ms.max(ans.cost[1].queue_ms);
                        if done.fetch_add(1, Ordering::SeqCst) + 1 == a.pool {
                            *drawn.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                        }
                        out.push((ans.latency_ms, queue));
                        pb.inc(1);
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let end = Instant::now();
    let from = drawn
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(start);
    let seconds = (end - from).as_secs_f64();
    let timed = n_q - a.pool;
    pb.finish_and_clear();
    let mut lat = Vec::new();
    let mut queued = 0;
    for r in results {
        for (l, qm) in r? {
            lat.push(l);
            queued += usize::from(qm > 1.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let t = Throughput {
        network: m.name.clone(),
        clients,
        queries: n_q,
        pool: a.pool,
        nonlinear: q.nonlinear.name(),
        warmup_s,
        seconds,
        queries_per_s: timed as f64 / seconds,
        latency_ms_median: pct(0.5),
        latency_ms_p95: pct(0.95),
        queued,
    };
    if a.json {
        println!("{}", serde_json::to_string(&t)?);
    } else {
        println!(
            "{}: {} clients, {} queries; the last {} in {:.2} s after the pools were drawn down: {:.1} queries/s sustained by one server pair (pools of {} filled first, in {:.1} s); latency median {:.1} ms, p95 {:.1} ms; {} queries waited for a bundle or the peer link; every answer equal to the reference (--nonlinear {})",
            t.network, clients, n_q, timed, seconds, t.queries_per_s, a.pool, warmup_s,
            t.latency_ms_median, t.latency_ms_p95, queued, t.nonlinear
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct Primitives {
    garble_and_per_s: f64,
    eval_and_per_s: f64,
    cot_per_s: f64,
    base_ot_128_ms: f64,
    silent_rot_per_s: f64,
    silent_bytes_per_ot: f64,
    silent_setup_ms: f64,
    silent_setup_bytes: u64,
    relu_10k_ms: f64,
    relu_10k_ms_median: f64,
    relu_bytes_offline: u64,
    relu_bytes_online: u64,
    relu_and_gates: usize,
    ot_relu_10k_offline_ms: f64,
    ot_relu_10k_online_ms: f64,
    ot_relu_bytes_online: u64,
    ot_relu_bytes_silent_amortized: f64,
    ot_relu_flights: u64,
}

fn primitives(json: bool) -> Result<()> {
    if !json {
        eprintln!("measuring (about half a minute)...");
    }
    let relu = blindfold_gc::bench::relu_10k()?;
    let silent = blindfold_ot::bench::silent(3);
    let ot = blindfold_cmp::bench::relu(10_000)?;
    let p = Primitives {
        garble_and_per_s: blindfold_gc::bench::garble_and_per_s(),
        eval_and_per_s: blindfold_gc::bench::eval_and_per_s(),
        cot_per_s: blindfold_ot::bench::cot_per_s(1 << 22),
        base_ot_128_ms: blindfold_ot::bench::base_ot_128_ms(),
        silent_rot_per_s: silent.rot_per_s,
        silent_bytes_per_ot: silent.bytes_per_ot,
        silent_setup_ms: silent.setup_ms,
        silent_setup_bytes: silent.setup_bytes,
        relu_10k_ms: relu.ms,
        relu_10k_ms_median: relu.ms_median,
        relu_bytes_offline: relu.bytes_offline,
        relu_bytes_online: relu.bytes_online,
        relu_and_gates: relu.and_per_relu,
        ot_relu_10k_offline_ms: ot.offline_ms,
        ot_relu_10k_online_ms: ot.online_ms,
        ot_relu_bytes_online: ot.online_bytes,
        ot_relu_bytes_silent_amortized: ot.amortized_bytes,
        ot_relu_flights: ot.rounds,
    };
    if json {
        println!("{}", serde_json::to_string(&p)?);
    } else {
        println!(
            "garbling            {:>8.1} M AND/s (one core)",
            p.garble_and_per_s / 1e6
        );
        println!(
            "evaluation          {:>8.1} M AND/s (one core)",
            p.eval_and_per_s / 1e6
        );
        println!("IKNP correlated OT  {:>8.1} M OT/s", p.cot_per_s / 1e6);
        println!("128 base OTs        {:>8.2} ms", p.base_ot_128_ms);
        println!(
            "silent random OT    {:>8.1} M OT/s, {:.3} bits per OT (Ferret-style LPN, 10.2 M per extension)",
            p.silent_rot_per_s / 1e6,
            8.0 * p.silent_bytes_per_ot
        );
        println!(
            "silent OT setup     {:>8.1} ms, {:.2} MB (IKNP bootstrap and one setup extension)",
            p.silent_setup_ms,
            p.silent_setup_bytes as f64 / 1e6
        );
        println!(
            "10,000 fused ReLUs  {:>8.1} ms offline+online over loopback TCP (median {:.1}), {} AND gates each",
            p.relu_10k_ms, p.relu_10k_ms_median, p.relu_and_gates
        );
        println!(
            "ReLU bytes          {:>8.2} MB offline, {:.2} MB online ({:.0} B per ReLU)",
            p.relu_bytes_offline as f64 / 1e6,
            p.relu_bytes_online as f64 / 1e6,
            (p.relu_bytes_offline + p.relu_bytes_online) as f64 / 1e4
        );
        println!(
            "10,000 OT ReLUs     {:>8.1} ms offline (silent OT amortized) + {:.1} ms online over loopback TCP, {} flights",
            p.ot_relu_10k_offline_ms, p.ot_relu_10k_online_ms, p.ot_relu_flights
        );
        println!(
            "OT ReLU bytes       {:>8.2} MB online + {:.3} MB silent OT ({:.0} B per ReLU)",
            p.ot_relu_bytes_online as f64 / 1e6,
            p.ot_relu_bytes_silent_amortized / 1e6,
            (p.ot_relu_bytes_online as f64 + p.ot_relu_bytes_silent_amortized) / 1e4
        );
    }
    Ok(())
}

fn preprocessing(a: &BenchArgs) -> Result<()> {
    let ma = ModelArg::new(a.network.clone(), a.frac_bits, a.bn);
    let (m, q) = ma.load()?;
    let name = m.name;
    let shapes = Plan::new(&q, Deployment::TwoServer)?.linear_shapes();
    let r = blindfold_he::bench::bench(&shapes, a.queries.max(1))?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["network"] = serde_json::Value::String(name);
        println!("{v}");
        return Ok(());
    }
    println!(
        "homomorphic preprocessing, network {name}, one query, both directions (median of {} runs)",
        r.runs
    );
    println!("{:<44} {:>9} {:>12}", "layer", "ms", "bytes");
    for l in &r.layers {
        println!("{:<44} {:>9.1} {:>12}", l.layer, l.ms, l.bytes);
    }
    println!("{:<44} {:>9.1} {:>12}", "total", r.total_ms, r.total_bytes);
    println!(
        "one-off: session setup {:.1} ms ({} bytes), weight encoding {:.1} ms",
        r.setup_ms, r.setup_bytes, r.encode_weights_ms
    );
    Ok(())
}

fn secure(a: &BenchArgs) -> Result<()> {
    let mode = a.mode.mode()?;
    let ma = ModelArg::new(a.network.clone(), a.frac_bits, a.bn);
    let (m, q) = ma.load()?;
    let n_q = a.queries.max(1);
    let roles = match (a.garbler, mode) {
        (None, _) => None,
        (Some(g), Mode::Secure(blindfold_engine::Deployment::ClientServer)) => {
            use blindfold_core::PartyId;
            use blindfold_engine::plan::{Garbling, Roles};
            Some(Roles::single_weight_holder(
                PartyId::P0,
                match g {
                    GarblerArg::Server => Garbling::Fixed(PartyId::P0),
                    GarblerArg::Client => Garbling::Fixed(PartyId::P1),
                    GarblerArg::Alternate => Garbling::Alternate,
                },
            ))
        }
        (Some(_), _) => anyhow::bail!("--garbler is for --mode client-server"),
    };
    let run = |link: infer::Link| -> Result<infer::BenchReport> {
        let pb = crate::plain_cmds::progress(
            n_q,
            &format!("network {}: {mode} over loopback {link:?}", m.name),
        );
        if a.json {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut r = infer::bench_with_roles(&q, mode, roles, n_q, link, &mut |k| {
            pb.set_position(k as u64)
        })?;
        pb.finish_and_clear();
        r.network = m.name.clone();
        Ok(r)
    };
    let base = match a.bn.link {
        Some(l) => infer::Link::Shaped(l),
        None => infer::Link::Tcp,
    };
    let tcp = run(base)?;
    let tls = if a.tls {
        Some(run(infer::Link::Tls)?)
    } else {
        None
    };
    if a.json {
        match &tls {
            None => println!("{}", serde_json::to_string(&tcp)?),
            Some(t) => println!(
                "{}",
                serde_json::json!({
                    "tcp": tcp,
                    "tls": t,
                    "tls_extra_total_ms": t.total_ms - tcp.total_ms,
                    "tls_extra_setup_ms": t.setup_ms - tcp.setup_ms,
                })
            ),
        }
        return Ok(());
    }
    let r = tls.as_ref().unwrap_or(&tcp);
    if let Mode::Secure(d) = mode {
        let plan = Plan::new(&q, d)?;
        let (mut ot, mut gc) = (0, 0);
        for st in plan.steps() {
            match st.spec {
                blindfold_engine::plan::StepSpec::Ot(_) => ot += 1,
                blindfold_engine::plan::StepSpec::Gc(_) => gc += 1,
                _ => {}
            }
        }
        println!(
            "non-linear layers: {ot} by OT comparisons, {gc} garbled{} (--nonlinear {})",
            if plan.label().is_some() {
                " (+ the label circuit when asked)"
            } else {
                ""
            },
            q.nonlinear.name()
        );
    }
    println!(
        "{:>3} {:<26} {:>10} {:>12} {:>10} {:>12} {:>7}",
        "#", "layer", "offline ms", "offline B", "online ms", "online B", "flights"
    );
    for l in &r.layers {
        if l.offline_bytes == 0 && l.online_bytes == 0 && l.online_ms < 0.05 {
            continue;
        }
        println!(
            "{:>3} {:<26} {:>10.2} {:>12} {:>10.2} {:>12} {:>7}",
            l.index,
            l.op,
            l.offline_ms,
            l.offline_bytes,
            l.online_ms,
            l.online_bytes,
            l.online_rounds
        );
    }
    println!(
        "per query over {} (median of {}): offline {:.1} ms, online {:.1} ms, total {:.1} ms; {:.2} MB ({:.2} offline + {:.2} online); {} flights online; session setup {:.1} ms once",
        r.transport,
        r.queries,
        r.offline_ms,
        r.online_ms,
        r.total_ms,
        r.bytes as f64 / 1e6,
        r.offline_bytes as f64 / 1e6,
        r.online_bytes as f64 / 1e6,
        r.rounds,
        r.setup_ms
    );
    if let Some(t) = &tls {
        println!(
            "plain TCP, same run: offline {:.1} ms, online {:.1} ms, total {:.1} ms, setup {:.1} ms; TLS adds {:+.1} ms per query ({:+.1}%) and {:+.1} ms to the session setup",
            tcp.offline_ms,
            tcp.online_ms,
            tcp.total_ms,
            tcp.setup_ms,
            t.total_ms - tcp.total_ms,
            100.0 * (t.total_ms - tcp.total_ms) / tcp.total_ms,
            t.setup_ms - tcp.setup_ms
        );
    }
    Ok(())
}
