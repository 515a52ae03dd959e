//! Client-server mode on the command line: `serve --mode client-server`,
//! `query --mode client-server` and `demo --mode client-server`. The server
//! holds the plaintext model; the client holds the input and alone learns the
//! answer.

use crate::paths;
use crate::plain_cmds::ModelArg;
use crate::secure_cmds::{DemoArgs, QueryArgs, ServeArgs};
use anyhow::{bail, Context, Result};
use blindfold_engine::party::OutputKind;
use blindfold_engine::serve::wire::MAX_CS_POOL;
use blindfold_engine::serve::{self, CsAnswer, CsClient, CsServer, LocalCsServer, ServeConfig};
use blindfold_model::data;
use blindfold_net::{TcpAcceptor, TlsRole, Transport};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn serve(a: ServeArgs) -> Result<()> {
    let Some(model) = a.model.clone() else {
        bail!("--mode client-server needs --model MODEL (zoo name or .onnx): the server holds the model in clear");
    };
    if a.share.is_some() || a.party.is_some() || a.peer.is_some() {
        bail!("--share, --party and --peer are for two-server mode; a client-server server has no peer");
    }
    let (m, q) = ModelArg::new(model, a.frac_bits, a.bn).load()?;
    let identity = a.tls.identity(TlsRole::P0)?;
    let max_connections = a.max_connections as usize;
    let cfg = ServeConfig {
        peer: None,
        pool: a.pool.clamp(1, MAX_CS_POOL),
        timeout: Duration::from_secs(a.timeout.max(1)),
        verbose: !a.quiet,
        label_only: a.label_only,
        max_connections,
        max_connections_per_source: (max_connections / 4).max(2),
        ..ServeConfig::default()
    };
    let server = CsServer::new(&q, &cfg)?;
    let listener = TcpListener::bind(&a.listen).with_context(|| format!("binding {}", a.listen))?;
    eprintln!(
        "serving model {} in client-server mode on {} over {} (up to {} preprocessed queries per client connection){}",
        m.name,
        listener.local_addr()?,
        if identity.is_some() {
            "mutually authenticated TLS 1.3 (certificate p0)"
        } else {
            "PLAINTEXT TCP"
        },
        cfg.pool,
        if a.label_only { ", labels only" } else { "" }
    );
    let stop = Arc::new(AtomicBool::new(false));
    match identity {
        None => serve::run_client_server(server, TcpAcceptor::new(listener)?, cfg, stop)?,
        Some(id) => serve::run_client_server(server, id.acceptor(listener)?, cfg, stop)?,
    }
    Ok(())
}

pub fn query(a: QueryArgs) -> Result<()> {
    let Some(addr) = a.server.clone() else {
        bail!("--mode client-server needs --server ADDR (the server's --listen address)");
    };
    if !a.servers.is_empty() {
        bail!("--servers is for two-server mode; client-server mode takes --server ADDR");
    }
    let timeout = Duration::from_secs(a.timeout);
    match a.tls.identity(TlsRole::Client)? {
        None => query_over(&blindfold_net::TcpTransport, &addr, &a, timeout),
        Some(id) => query_over(&id.transport(Some(TlsRole::P0))?, &addr, &a, timeout),
    }
}

fn query_over<T: Transport>(t: &T, addr: &str, a: &QueryArgs, timeout: Duration) -> Result<()> {
    let kind = if a.label_only {
        OutputKind::Label
    } else {
        OutputKind::Logits
    };
    let t0 = Instant::now();
    let mut client = CsClient::connect_on(t, addr, timeout)
        .with_context(|| format!("connecting to the client-server server at {addr}"))?;
    if !a.json {
        eprintln!(
            "connected to {addr}: model {}, session set up in {:.1} ms",
            client.program().name,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    if a.preprocess > 0 {
        let t = Instant::now();
        client.preprocess(a.preprocess)?;
        if !a.json {
            eprintln!(
                "preprocessed {} queries in {:.1} ms",
                client.pooled(),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    let shape = client.program().input_shape().dims().to_vec();
    for input in &a.input {
        let x = data::load_input(input, &shape)?;
        let ans = client.query(&x, kind)?;
        if a.json {
            println!("{}", serde_json::to_string(&ans)?);
        } else {
            if a.input.len() > 1 {
                println!("{}:", input.display());
            }
            print_answer(&ans);
        }
    }
    Ok(())
}

fn print_answer(a: &CsAnswer) {
    match &a.mask {
        Some(mask) => {
            let classes = mask.iter().copied().max().unwrap_or(0) as usize + 1;
            let mut counts = vec![0usize; classes];
            for &c in mask {
                counts[c as usize] += 1;
            }
            let parts: Vec<String> = counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            println!(
                "mask of {} pixels, per class {{{}}}",
                mask.len(),
                parts.join(", ")
            );
        }
        None => println!("label {}", a.label),
    }
    if !a.scores.is_empty() {
        let parts: Vec<String> = a.scores.iter().map(|v| format!("{v:.4}")).collect();
        println!("scores [{}]", parts.join(", "));
    }
    println!(
        "latency {:.1} ms at the client ({}); online {:.1} ms, {:.2} MB, {} rounds; offline {:.1} ms, {:.2} MB",
        a.latency_ms,
        if a.preprocessed_first {
            "preprocessed first: no bundle was ready"
        } else {
            "from the pool: online phase only"
        },
        a.online_ms,
        a.online_bytes as f64 / 1e6,
        a.online_rounds,
        a.offline_ms,
        a.offline_bytes as f64 / 1e6
    );
}

pub fn demo(m: &blindfold_model::Model, q: &blindfold_model::QModel, a: &DemoArgs) -> Result<()> {
    let ds = data::load_idx_dir(&a.data.clone().unwrap_or_else(paths::default_data))?;
    println!(
        "blindfold demo, client-server mode: a server holding model {} in clear and a client on loopback, mutually authenticated TLS 1.3",
        m.name
    );
    println!("the server never sees the digit or the answer; the client learns the answer and the architecture, never the weights");
    println!("offline = preprocessing on the connection ahead of the query (HE products, garbled circuits, OTs)\n");
    let n = a.count.min(ds.len());
    let pool = n.clamp(1, 16);
    let certs = blindfold_net::tls::DeploymentCerts::generate(1)?;
    let cfg = ServeConfig {
        pool,
        ..ServeConfig::default()
    };
    let server = LocalCsServer::start_tls(q, &certs, cfg)?;
    let mut client = server.client()?;
    let t = Instant::now();
    eprint!("client preprocessing {pool} queries on its connection... ");
    client.preprocess(pool)?;
    eprintln!("{:.1} s", t.elapsed().as_secs_f64());
    crate::secure_cmds::digit_table(q, &ds, n, |x| {
        let ans = client.query(x, OutputKind::Logits)?;
        Ok(crate::secure_cmds::DigitAnswer {
            label: ans.label,
            latency_ms: ans.latency_ms,
            online_ms: ans.online_ms,
            offline_ms: ans.offline_ms,
            online_bytes: ans.online_bytes,
            total_bytes: ans.offline_bytes + ans.online_bytes,
            preprocessed_first: ans.preprocessed_first,
        })
    })
}
