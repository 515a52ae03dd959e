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
use blindfold_net::{TlsIdentity, TlsRole};
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
    #[arg(long, conflicts_with_all = ["out0", "out1"])]
    pub out: Option<PathBuf>,
    /// Where P0's share goes (with --out1: each share straight to its own
    /// destination, for example two mounted volumes, never side by side).
    #[arg(long, requires = "out1")]
    pub out0: Option<PathBuf>,
    /// Where P1's share goes.
    #[arg(long, requires = "out0")]
    pub out1: Option<PathBuf>,
}

/// Write `bytes` to a new file readable by its owner only (0600), refusing to
/// replace an existing one.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    blindfold_engine::share::write_new_private(path, bytes).with_context(|| {
        format!(
            "creating {} (an existing file is never overwritten: remove it first)",
            path.display()
        )
    })
}

pub fn split_cmd(a: SplitArgs) -> Result<()> {
    let (_, q) = a.model.load()?;
    let dests: [PathBuf; 2] = match (&a.out, &a.out0, &a.out1) {
        (Some(d), None, None) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            [d.join("party0.share"), d.join("party1.share")]
        }
        (None, Some(p0), Some(p1)) => [p0.clone(), p1.clone()],
        _ => bail!("give --out DIR, or --out0 FILE and --out1 FILE"),
    };
    let mut rng = Prg::from_entropy();
    let shares = split_for(&q, Deployment::TwoServer, &mut rng)?;
    for (s, p) in shares.iter().zip(&dests) {
        write_private(p, &s.to_bytes())?;
        println!(
            "wrote {} ({} bytes, owner read/write only)",
            p.display(),
            std::fs::metadata(p)?.len()
        );
    }
    if a.out.is_some() {
        println!(
            "note: both shares are in one directory; together they are the model. Move each to its own server and delete them here (or split with --out0/--out1 straight to separate destinations)"
        );
    }
    let s = summary::summarize(&q);
    println!(
        "model {}: {} parameters, each file holds the architecture and one uniformly random additive share of every weight",
        q.name, s.parameters
    );
    println!("next: give party0.share to server P0 and party1.share to server P1, then `blindfold serve` on each (certificates: `blindfold certs`)");
    Ok(())
}

#[derive(Args)]
pub struct CertsArgs {
    /// Directory for ca.pem and each role's certificate and key (created if
    /// missing; existing files are never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Also a browser-facing certificate for P0 (p0-web.pem/.key) for these
    /// host names or IP addresses: the names browsers use to reach P0
    /// (`serve --ws-listen`); repeat or separate by commas.
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub web_host_p0: Vec<String>,
    /// The same for P1 (p1-web.pem/.key), with P1's own names.
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub web_host_p1: Vec<String>,
    /// Both servers' web certificates for the same names: only where both run
    /// on one machine (a loopback test). On two machines give each its own
    /// names: a certificate valid for the other's name lets one server pose
    /// as both to a browser.
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub web_host: Vec<String>,
}

pub fn certs(a: CertsArgs) -> Result<()> {
    let clean = |v: &[String]| -> Vec<String> {
        v.iter()
            .chain(&a.web_host)
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect()
    };
    let (h0, h1) = (clean(&a.web_host_p0), clean(&a.web_host_p1));
    if let Some(both) = a.web_host_p0.iter().find(|h| {
        a.web_host_p1
            .iter()
            .any(|g| g.trim().eq_ignore_ascii_case(h.trim()))
    }) {
        bail!("'{both}' is in both --web-host-p0 and --web-host-p1: each server's web certificate must carry only its own names (one machine for both: --web-host)");
    }
    if !a.web_host.is_empty() {
        eprintln!("note: --web-host gives P0 and P1 web certificates for the same names: right for one machine only; on two, use --web-host-p0 and --web-host-p1");
    }
    let c = blindfold_net::tls::DeploymentCerts::generate_with_web(a.days, [&h0, &h1])?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for (name, _, _) in &c.files {
        let p = a.out.join(name);
        if p.exists() {
            bail!(
                "{} exists; certificates are never overwritten (use a new --out)",
                p.display()
            );
        }
    }
    for (name, pem, _) in &c.files {
        write_private(&a.out.join(name), pem.as_bytes())?;
    }
    println!(
        "wrote a deployment CA and certificates valid {} days to {} (files owner read/write only):",
        a.days,
        a.out.display()
    );
    println!("  P0 needs      ca.pem p0.pem p0.key");
    println!("  P1 needs      ca.pem p1.pem p1.key");
    println!("  clients need  ca.pem client.pem client.key");
    for (p, hosts) in [(0, &h0), (1, &h1)] {
        if !hosts.is_empty() {
            println!(
                "  P{p}'s browser port (serve --ws-listen): p{p}-web.pem p{p}-web.key, for {}",
                hosts.join(", ")
            );
        }
    }
    if !h0.is_empty() || !h1.is_empty() {
        println!("  browsers must trust ca.pem (import it) or pin the web certificates");
    }
    println!("copy each set to its machine's --tls-dir; the CA's private key was not kept, so no one can issue more");
    Ok(())
}

#[derive(Args)]
pub struct ServeArgs {
    /// two-server: one of two servers holding a share each (--party, --share);
    /// client-server: one server holding the plaintext model (--model).
    #[arg(long, value_enum, default_value_t = DeployArg::TwoServer)]
    pub mode: DeployArg,
    /// Which server this is: 0 or 1 (two-server mode).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub party: Option<u8>,
    /// This server's share file (from `blindfold split`; two-server mode).
    #[arg(long)]
    pub share: Option<PathBuf>,
    /// Client-server mode: the model served in clear (zoo name or .onnx).
    #[arg(long)]
    pub model: Option<String>,
    /// Client-server mode: fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
    /// Client-server mode: integer batch normalization of binarized layers.
    #[command(flatten)]
    pub bn: crate::plain_cmds::BnArgs,
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
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Answer label-only queries only (the scores never leave the servers).
    #[arg(long)]
    pub label_only: bool,
    /// Connections served at once (in all; per source address: a quarter).
    /// With --ws-listen, browsers have their own budget on top: half as many.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(4..=65536))]
    pub max_connections: u64,
    /// Queries waiting at once (in all; per source address: 16 or fewer).
    /// With --ws-listen, browsers have their own budget on top: half as many.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_pending: u64,
    #[command(flatten)]
    pub fhe: crate::fhe_cmds::FheArgs,
    /// Two-server mode: also accept browser clients over WebSocket on this
    /// address and serve the browser client page there. With --tls-dir it is
    /// `https://ADDR/` and `wss://` with the web certificate (--ws-cert, or
    /// `p0-web.pem` / `p1-web.pem` from `blindfold certs --web-host-p0/-p1`); with
    /// --insecure-plaintext, plain `http://` and `ws://`.
    #[arg(long, value_name = "ADDR")]
    pub ws_listen: Option<String>,
    /// The browser port's certificate chain (PEM), for example one from a
    /// public CA for this server's host name (default: `p<N>-web.pem` in
    /// --tls-dir).
    #[arg(long, value_name = "PEM", requires = "ws_listen")]
    pub ws_cert: Option<PathBuf>,
    /// Its private key (PEM; default: `p<N>-web.key` in --tls-dir).
    #[arg(long, value_name = "PEM", requires = "ws_cert")]
    pub ws_key: Option<PathBuf>,
}

/// The browser port's TLS: --ws-cert/--ws-key, else the web certificate of
/// this role in --tls-dir; `None` for plain `ws://` (--insecure-plaintext).
fn browser_tls(
    a: &ServeArgs,
    role: TlsRole,
) -> Result<Option<blindfold_net::tls::BrowserTlsConfig>> {
    use blindfold_net::tls::{browser_server_config, web_cert_file, web_key_file};
    let (cert, key) = match (&a.ws_cert, &a.ws_key, &a.tls.tls_dir) {
        (Some(c), Some(k), _) => (c.clone(), k.clone()),
        (Some(_), None, _) => bail!("--ws-cert needs --ws-key"),
        (None, _, Some(dir)) => (dir.join(web_cert_file(role)), dir.join(web_key_file(role))),
        (None, _, None) => return Ok(None),
    };
    if !cert.exists() {
        bail!(
            "no browser certificate {}: make them with `blindfold certs --out DIR --web-host-p0 HOST --web-host-p1 HOST` (the names browsers use for each server), or give --ws-cert/--ws-key",
            cert.display()
        );
    }
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    Ok(Some(
        browser_server_config(&read(&cert)?, &read(&key)?)
            .with_context(|| format!("loading the browser certificate {}", cert.display()))?,
    ))
}

/// The browser client (web/): the page and its script, served by `--ws-listen`.
pub fn web_pages() -> Vec<blindfold_net::ws::Page> {
    use blindfold_net::ws::Page;
    vec![
        Page {
            path: "/",
            content_type: "text/html; charset=utf-8",
            body: include_bytes!("../../../web/index.html"),
        },
        Page {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            body: include_bytes!("../../../web/index.html"),
        },
        Page {
            path: "/client.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_bytes!("../../../web/client.js"),
        },
    ]
}

/// How a process secures its links: `--tls-dir` (the deployment's
/// certificates, from `blindfold certs`) or an explicit `--insecure-plaintext`.
#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// Directory with ca.pem and this role's certificate and key (from
    /// `blindfold certs`); only this role's files are read.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Plain TCP, no authentication: anyone on the network path reads the
    /// input and the answer and can pose as a server. Loopback demos only.
    #[arg(long, conflicts_with = "tls_dir")]
    pub insecure_plaintext: bool,
}

impl TlsArgs {
    /// This role's identity, or `None` for the explicit plaintext choice.
    pub fn identity(&self, role: TlsRole) -> Result<Option<TlsIdentity>> {
        match (&self.tls_dir, self.insecure_plaintext) {
            (Some(dir), _) => Ok(Some(TlsIdentity::load(dir, role).with_context(|| {
                format!("loading the {role} TLS identity from {}", dir.display())
            })?)),
            (None, true) => {
                eprintln!("WARNING: --insecure-plaintext: links are neither encrypted nor authenticated; anyone on the path can read inputs and answers and pose as a server. Use --tls-dir outside a loopback demo.");
                Ok(None)
            }
            (None, false) => bail!(
                "give --tls-dir DIR (certificates from `blindfold certs --out DIR`), or --insecure-plaintext for a loopback test"
            ),
        }
    }
}

/// The secure deployments a server or client can run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployArg {
    TwoServer,
    ClientServer,
    /// Non-interactive FHE: one server evaluates on the client's ciphertexts.
    Fhe,
}

pub fn serve(a: ServeArgs) -> Result<()> {
    if a.ws_listen.is_some() && a.mode != DeployArg::TwoServer {
        bail!("--ws-listen is for two-server mode (the browser client queries two servers)");
    }
    if a.mode == DeployArg::ClientServer {
        return crate::cs_cmds::serve(a);
    }
    if a.mode == DeployArg::Fhe {
        return crate::fhe_cmds::serve(&a);
    }
    if a.model.is_some() {
        bail!("--model is for --mode client-server; a two-server server serves a share file (--share)");
    }
    let (Some(share_path), Some(party)) = (a.share.clone(), a.party) else {
        bail!("two-server mode needs --party 0|1 and --share FILE (from `blindfold split`); for one server holding the model in clear use --mode client-server --model MODEL");
    };
    let a = ServeArgs {
        party: Some(party),
        ..a
    };
    let share = ModelShare::load(&share_path)?;
    if share.party.index() != party as usize {
        bail!(
            "{} is party {}'s share, but this server was started as --party {}",
            share_path.display(),
            share.party.index(),
            party
        );
    }
    if party == 1 && a.peer.is_none() {
        bail!("party 1 needs --peer ADDR (party 0's --listen address) and its own --listen ADDR");
    }
    if party == 0 && a.peer.is_some() {
        eprintln!("note: party 0 waits for party 1 to connect; --peer is not used");
    }
    let role = if party == 0 { TlsRole::P0 } else { TlsRole::P1 };
    let identity = a.tls.identity(role)?;
    // Checked before anything starts: a missing web certificate is a usage error.
    let web_tls = match &a.ws_listen {
        Some(_) => browser_tls(&a, role)?,
        None => None,
    };
    let name = share.program.name.clone();
    let engine = PartyEngine::new(share)?;
    let listener = TcpListener::bind(&a.listen).with_context(|| {
        format!(
            "binding {} (two servers on one machine need different --listen ports)",
            a.listen
        )
    })?;
    eprintln!(
        "P{} serving model {} on {} over {} (pool of {} preprocessed queries){}{}",
        party,
        name,
        listener.local_addr()?,
        if identity.is_some() {
            "mutually authenticated TLS 1.3"
        } else {
            "PLAINTEXT TCP"
        },
        a.pool,
        match &a.peer {
            Some(p) if party == 1 => format!(", peer {p}"),
            _ => ", waiting for P1".into(),
        },
        if a.label_only { ", labels only" } else { "" }
    );
    let max_connections = a.max_connections as usize;
    let max_pending = a.max_pending as usize;
    let cfg = ServeConfig {
        peer: a.peer.clone(),
        pool: a.pool.max(1),
        timeout: Duration::from_secs(a.timeout.max(1)),
        verbose: !a.quiet,
        label_only: a.label_only,
        max_connections,
        max_connections_per_source: (max_connections / 4).max(2),
        max_pending,
        max_pending_per_source: max_pending.clamp(1, 16),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let browsers = match &a.ws_listen {
        Some(ws) => {
            let l = TcpListener::bind(ws).with_context(|| format!("binding --ws-listen {ws}"))?;
            let b = blindfold_net::ws::WsListener::start(l, web_tls, web_pages())?;
            let (page, note) = if b.scheme() == "wss" {
                (
                    "https",
                    "TLS with the web certificate, no client certificate",
                )
            } else {
                ("http", "PLAINTEXT")
            };
            let (scheme, addr) = (b.scheme(), b.local_addr());
            eprintln!(
                "P{party}: browser clients over WebSocket on {scheme}://{addr}/ (the page: {page}://{addr}/), {note}"
            );
            Some(b)
        }
        None => None,
    };
    match identity {
        None => serve::run_with_browsers(
            engine,
            blindfold_net::TcpTransport,
            blindfold_net::TcpAcceptor::new(listener)?,
            browsers,
            cfg,
            stop,
        )?,
        Some(id) => {
            let acceptor = id.acceptor(listener)?;
            let transport = id.transport(Some(TlsRole::P0))?;
            serve::run_with_browsers(engine, transport, acceptor, browsers, cfg, stop)?
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct QueryArgs {
    /// two-server (--servers P0,P1) or client-server (--server ADDR).
    #[arg(long, value_enum, default_value_t = DeployArg::TwoServer)]
    pub mode: DeployArg,
    /// P0's and P1's addresses, comma-separated (two-server mode).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The server's address (client-server mode).
    #[arg(long)]
    pub server: Option<String>,
    /// Client-server mode: preprocess this many queries on the connection
    /// before the first (so each input pays only the online phase).
    #[arg(long, default_value_t = 0)]
    pub preprocess: usize,
    /// Inputs: .npy (float32, the model's input shape) or grayscale PNGs.
    #[arg(required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the servers.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// Ask for the label only: the servers compute the argmax in a garbled
    /// circuit and the client learns nothing but the label.
    #[arg(long)]
    pub label_only: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub fn query(a: QueryArgs) -> Result<()> {
    if a.mode == DeployArg::ClientServer {
        return crate::cs_cmds::query(a);
    }
    if a.mode == DeployArg::Fhe {
        return crate::fhe_cmds::query(&a);
    }
    if a.server.is_some() {
        bail!("--server is for --mode client-server; two-server mode takes --servers P0,P1");
    }
    if a.servers.len() != 2 {
        bail!("--servers takes two addresses: P0,P1");
    }
    let kind = if a.label_only {
        blindfold_engine::party::OutputKind::Label
    } else {
        blindfold_engine::party::OutputKind::Logits
    };
    let servers = [a.servers[0].as_str(), a.servers[1].as_str()];
    let timeout = Duration::from_secs(a.timeout);
    let identity = a.tls.identity(TlsRole::Client)?;
    for input in &a.input {
        let ans = match &identity {
            None => query_over(&blindfold_net::TcpTransport, servers, input, timeout, kind)?,
            Some(id) => query_over(&id.transport(None)?, servers, input, timeout, kind)?,
        };
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

/// Ask P0 for the input shape, load the input, query both servers.
fn query_over<T: blindfold_net::Transport>(
    transport: &T,
    servers: [&str; 2],
    input: &std::path::Path,
    timeout: Duration,
    kind: blindfold_engine::party::OutputKind,
) -> Result<Answer> {
    let shape = serve::info_on(transport, servers[0], timeout)
        .with_context(|| format!("asking {} for the model's input shape", servers[0]))?
        .input_shape;
    let x = data::load_input(input, &shape)?;
    Ok(serve::query_on(transport, servers, &x, timeout, kind)?)
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
    /// two-server (two servers holding shares) or client-server (one server
    /// holding the model in clear).
    #[arg(long, value_enum, default_value_t = DeployArg::TwoServer)]
    pub mode: DeployArg,
    /// Zoo model or .onnx file (default: minionn; with --segment, unet, i.e.
    /// models/unet.onnx). A model whose output is a [classes, rows, cols]
    /// map runs the segmentation demo.
    #[arg(long)]
    pub model: Option<String>,
    /// How many bundled digits (canvases, with --segment) to run.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
    #[command(flatten)]
    pub bn: crate::plain_cmds::BnArgs,
    /// The segmentation demo: canvases of digits segmented privately and in
    /// plaintext, Dice against the truth, one picture per canvas.
    #[arg(long)]
    pub segment: bool,
    /// IDX dataset directory: images.idx3-ubyte with labels.idx1-ubyte, or
    /// with masks.idx3-ubyte for the segmentation demo (default: the bundled
    /// data/mnist-test-1k, or data/mnist-seg-test-100).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub seg: crate::segment_cmds::SegmentDemoArgs,
    #[command(flatten)]
    pub fhe: crate::fhe_cmds::FheArgs,
}

/// Both servers on loopback over mutually authenticated TLS 1.3 (a
/// throwaway deployment CA, what `blindfold certs` writes to files), with
/// bundles for `n` queries (at most 16) preprocessed before it returns.
pub fn demo_cluster(
    q: &blindfold_model::QModel,
    n: usize,
) -> Result<LocalCluster<blindfold_net::tls::TlsTransport>> {
    let mut rng = Prg::from_entropy();
    let pool = n.clamp(1, 16);
    let certs = blindfold_net::tls::DeploymentCerts::generate(1)?;
    let cfg = ServeConfig {
        pool,
        ..ServeConfig::default()
    };
    let cluster = LocalCluster::start_tls(q, &certs, cfg, &mut rng)?;
    let t = std::time::Instant::now();
    eprint!("servers preprocessing {pool} queries ahead of time (HE products, garbled circuits, OTs)... ");
    cluster.wait_ready(pool, Duration::from_secs(120))?;
    eprintln!("{:.1} s", t.elapsed().as_secs_f64());
    Ok(cluster)
}

pub fn demo(a: DemoArgs) -> Result<()> {
    if a.mode == DeployArg::Fhe {
        let name = a.model.clone().unwrap_or_else(|| "sok_mnist".into());
        return crate::fhe_cmds::demo(&name, a.count, a.data.clone(), &a.fhe);
    }
    let segment_default = a.segment && a.model.is_none();
    let name = a.model.clone().unwrap_or_else(|| {
        if a.segment {
            paths::DEFAULT_SEGMENTATION_MODEL.into()
        } else {
            "minionn".into()
        }
    });
    let ma = ModelArg::new(name, a.frac_bits, a.bn);
    let loaded = ma.load();
    let (m, q) = if segment_default {
        loaded.context(
            "the segmentation demo's model is models/unet.onnx; give another with --model FILE",
        )?
    } else {
        loaded?
    };
    if a.segment || blindfold_model::segment::MapShape::of(m.output_shape().dims()).is_some() {
        return crate::segment_cmds::demo(&m, &q, a.mode, a.count, a.data.clone(), &a.seg);
    }
    if a.mode == DeployArg::ClientServer {
        return crate::cs_cmds::demo(&m, &q, &a);
    }
    let ds = data::load_idx_dir(&a.data.clone().unwrap_or_else(paths::default_data))?;
    println!("blindfold demo: model {} split into two shares; servers P0 and P1 and a client on loopback, every link mutually authenticated TLS 1.3", m.name);
    println!("each server holds one random share of every weight; the client sends each a random share of the digit");
    println!("offline = preprocessing done ahead of time for that query (HE products, garbled circuits, OTs)\n");
    let n = a.count.min(ds.len());
    let cluster = demo_cluster(&q, n)?;
    digit_table(&q, &ds, n, |x| {
        let ans = cluster.query(x)?;
        let c = &ans.cost[0];
        Ok(DigitAnswer {
            label: ans.label,
            latency_ms: ans.latency_ms,
            online_ms: c.online_ms,
            offline_ms: c.offline_ms,
            online_bytes: c.online_bytes + ans.client_bytes,
            total_bytes: c.offline_bytes + c.online_bytes + ans.client_bytes,
            preprocessed_first: false,
        })
    })
}

/// One secure answer in a demo's digit table.
pub struct DigitAnswer {
    pub label: usize,
    pub latency_ms: f64,
    pub online_ms: f64,
    pub offline_ms: f64,
    pub online_bytes: u64,
    pub total_bytes: u64,
    /// Client-server: the query had to run its offline phase first.
    pub preprocessed_first: bool,
}

/// The demos' table: `n` bundled digits through `query` beside the plaintext
/// reference, one row each, then the agreement and median costs; fails if a
/// secure label differs from the reference's.
pub fn digit_table(
    q: &blindfold_model::QModel,
    ds: &data::Dataset,
    n: usize,
    mut query: impl FnMut(&[f32]) -> Result<DigitAnswer>,
) -> Result<()> {
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
    let (mut agree, mut correct, mut first) = (0, 0, 0);
    let (mut lat, mut onl, mut offl, mut bytes) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let x = ds.image_f32(i);
        let ans = query(&x)?;
        let pl = argmax_ring(&plain::run_plain(q, &x)?);
        agree += (pl == ans.label) as usize;
        correct += (ans.label == ds.labels[i] as usize) as usize;
        first += ans.preprocessed_first as usize;
        println!(
            "{:>5} {:>6} {:>7} {:>7} {:>11.1} {:>10.1} {:>11.1} {:>10.2} {:>9.2}{}",
            i,
            ds.labels[i],
            ans.label,
            pl,
            ans.latency_ms,
            ans.online_ms,
            ans.offline_ms,
            ans.online_bytes as f64 / 1e6,
            ans.total_bytes as f64 / 1e6,
            if ans.preprocessed_first {
                "  (preprocessed first)"
            } else {
                ""
            }
        );
        lat.push(ans.latency_ms);
        onl.push(ans.online_ms);
        offl.push(ans.offline_ms);
        bytes.push(ans.total_bytes as f64);
    }
    println!();
    println!(
        "{n} digits: secure label = plaintext reference label on {agree}/{n}; correct {correct}/{n}{}",
        if first > 0 {
            format!("; {first} had to preprocess first")
        } else {
            String::new()
        }
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
