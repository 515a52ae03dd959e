//! `blindfold bench`: measured costs, printed as a table or JSON.
//!
//! * `bench primitives`: garbling / evaluation / OT rates and 10,000 fused ReLUs;
//! * `bench preprocessing --network NAME`: the homomorphic preprocessing of one
//!   query's linear layers, both directions, per layer;
//! * `bench --network NAME --mode two-server`: the whole two-party protocol, both
//!   servers on threads of this process over loopback TCP, per query (medians)
//!   and per layer.

use crate::plain_cmds::ModelArg;
use crate::secure_cmds::median;
use anyhow::{bail, Result};
use blindfold_core::Prg;
use blindfold_engine::party::{LayerCost, PartyEngine};
use blindfold_engine::share::split;
use blindfold_net::{Channel, TcpChannel};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::net::TcpListener;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// OT, garbling and ReLU rates.
    Primitives,
    /// Homomorphic preprocessing of a network's linear layers.
    Preprocessing,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum BenchMode {
    TwoServer,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to measure; without it, the whole protocol (--mode).
    pub kind: Option<BenchKind>,
    /// Zoo model name or .onnx file.
    #[arg(long, default_value = "minionn")]
    pub network: String,
    #[arg(long, value_enum, default_value_t = BenchMode::TwoServer)]
    pub mode: BenchMode,
    /// Queries (the medians are over these).
    #[arg(long, default_value_t = 10)]
    pub queries: usize,
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
    #[arg(long)]
    pub json: bool,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    match a.kind {
        Some(BenchKind::Primitives) => primitives(a.json),
        Some(BenchKind::Preprocessing) => preprocessing(&a),
        None => two_server(&a),
    }
}

#[derive(Serialize)]
struct Primitives {
    garble_and_per_s: f64,
    eval_and_per_s: f64,
    cot_per_s: f64,
    base_ot_128_ms: f64,
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
    let p = Primitives {
        garble_and_per_s: blindfold_gc::bench::garble_and_per_s(),
        eval_and_per_s: blindfold_gc::bench::eval_and_per_s(),
        cot_per_s: blindfold_ot::bench::cot_per_s(1 << 22),
        base_ot_128_ms: blindfold_ot::bench::base_ot_128_ms(),
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

fn engines(a: &BenchArgs) -> Result<(String, PartyEngine, PartyEngine)> {
    let ma = ModelArg {
        model: a.network.clone(),
        frac_bits: a.frac_bits,
    };
    let (m, q) = ma.load()?;
    let mut rng = Prg::from_entropy();
    let [s0, s1] = split(&q, &mut rng);
    Ok((m.name, PartyEngine::new(s0)?, PartyEngine::new(s1)?))
}

fn preprocessing(a: &BenchArgs) -> Result<()> {
    let (name, e0, _) = engines(a)?;
    let r = blindfold_he::bench::bench(&e0.linear_shapes(), a.queries.max(1))?;
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

#[derive(Serialize, Default, Clone)]
struct LayerRow {
    index: usize,
    op: String,
    offline_ms: f64,
    offline_bytes: u64,
    online_ms: f64,
    online_bytes: u64,
    online_rounds: u64,
}

#[derive(Serialize)]
struct TwoServerReport {
    network: String,
    mode: &'static str,
    transport: &'static str,
    queries: usize,
    setup_ms: f64,
    offline_ms: f64,
    online_ms: f64,
    total_ms: f64,
    bytes: u64,
    offline_bytes: u64,
    online_bytes: u64,
    rounds: u64,
    layers: Vec<LayerRow>,
}

fn two_server(a: &BenchArgs) -> Result<()> {
    let (name, e0, e1) = engines(a)?;
    let n_q = a.queries.max(1);
    let len = e0.program().input_shape().numel();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let h1 = std::thread::spawn(move || -> Result<()> {
        let mut ch = TcpChannel::connect_with_retry(addr, Duration::from_secs(10))?;
        let mut rng = Prg::from_entropy();
        let mut s = e1.setup(&mut ch, &mut rng)?;
        for _ in 0..n_q {
            let b = e1.offline(&mut ch, &mut s, &mut rng)?;
            let x: Vec<u64> = rng.gen_u64s(len);
            e1.online(&mut ch, b, x)?;
        }
        Ok(())
    });
    let mut ch = TcpChannel::accept(&listener)?;
    let mut rng = Prg::from_entropy();
    let t = std::time::Instant::now();
    let mut s = e0.setup(&mut ch, &mut rng)?;
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    if !a.json {
        eprintln!("network {name}: {n_q} queries over loopback TCP...");
    }
    let mut off_ms = Vec::new();
    let mut on_ms = Vec::new();
    let mut off_b = Vec::new();
    let mut on_b = Vec::new();
    let mut rounds = Vec::new();
    let mut per_layer: Vec<Vec<LayerRow>> = Vec::new();
    for _ in 0..n_q {
        let b = e0.offline(&mut ch, &mut s, &mut rng)?;
        off_ms.push(b.offline_ms);
        off_b.push(b.offline_bytes as f64);
        let offl: Vec<LayerCost> = b.offline_layers.clone();
        let x: Vec<u64> = rng.gen_u64s(len);
        let st0 = ch.stats().total();
        let t = std::time::Instant::now();
        let (_, onl) = e0.online(&mut ch, b, x)?;
        on_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let st1 = ch.stats().total();
        on_b.push((st1.bytes() - st0.bytes()) as f64);
        rounds.push((st1.rounds() - st0.rounds()) as f64);
        let mut rows: Vec<LayerRow> = onl
            .iter()
            .map(|c| LayerRow {
                index: c.index,
                op: c.op.clone(),
                online_ms: c.ms,
                online_bytes: c.bytes,
                online_rounds: c.rounds,
                ..LayerRow::default()
            })
            .collect();
        for o in &offl {
            if let Some(r) = rows.iter_mut().find(|r| r.index == o.index) {
                r.offline_ms += o.ms;
                r.offline_bytes += o.bytes;
            }
        }
        per_layer.push(rows);
    }
    match h1.join() {
        Ok(r) => r?,
        Err(_) => bail!("party 1 panicked"),
    }
    // Per-layer medians across queries.
    let n_layers = per_layer[0].len();
    let layers: Vec<LayerRow> = (0..n_layers)
        .map(|l| {
            let col = |f: &dyn Fn(&LayerRow) -> f64| -> f64 {
                let mut v: Vec<f64> = per_layer.iter().map(|q| f(&q[l])).collect();
                median(&mut v)
            };
            LayerRow {
                index: per_layer[0][l].index,
                op: per_layer[0][l].op.clone(),
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
    let r = TwoServerReport {
        network: name,
        mode: "two-server",
        transport: "tcp-loopback",
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
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
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
        "per query (median of {}): offline {:.1} ms, online {:.1} ms, total {:.1} ms; {:.2} MB ({:.2} offline + {:.2} online); {} flights online; session setup {:.1} ms once",
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
    Ok(())
}
