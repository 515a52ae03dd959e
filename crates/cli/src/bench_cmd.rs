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
        None => secure(&a),
    }
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
}

fn primitives(json: bool) -> Result<()> {
    if !json {
        eprintln!("measuring (about half a minute)...");
    }
    let relu = blindfold_gc::bench::relu_10k()?;
    let silent = blindfold_ot::bench::silent(3);
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
            "ReLU bytes          {:>8.2} MB offline, {:.2} MB online",
            p.relu_bytes_offline as f64 / 1e6,
            p.relu_bytes_online as f64 / 1e6
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
            if plan.label().is_some() { " (+ the label circuit when asked)" } else { "" },
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
