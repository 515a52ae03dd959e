//! Client-server mode, the server: it holds the plaintext quantized model
//! (never split) and runs the two-party engine as party 0, the weight holder,
//! with each client as party 1 on the client's own connection.
//!
//! ```text
//!   client ── Hello::CsClient ──▶ server          (greeting deadline, 256-byte frames)
//!          ◀─ CsInfo {weightless program, roles, label-only, max pool}
//!   both:     PeerHello + session setup (HE key of the client, IKNP)
//!   loop:  ── CsRequest::Preprocess ──▶ ◀─ CsGo ; both run one offline phase,
//!                                          each keeps its half of the bundle (FIFO)
//!          ── CsRequest::Online{kind} ─▶ ◀─ CsGo ; both run the online phase on
//!                                          the oldest bundle (server input share 0)
//!          ◀─ Reply::Ok {server's output share, costs}
//! ```
//!
//! Each connection has its own thread, session and bundle pool (at most
//! `ServeConfig::pool` bundles, [`MAX_CS_POOL`] in any case); a client that
//! errs, sends garbage, stops reading or vanishes ends its own connection
//! only. Every exchange, its reads and its writes, runs under a deadline
//! (`timeout`, at least [`super::PEER_EXCHANGE_MIN`] for protocol work);
//! between requests a connection may stay idle for [`IDLE`].

use super::wire::{CsGo, CsInfo, CsRequest, ErrorCode, Hello, QueryCost, Reply, MAX_CS_POOL};
use super::{source_of, ConnCount, ConnSlot, ServeConfig, POLL};
use crate::party::{Bundle, OutputKind, PartyEngine};
use crate::plan::{Deployment, Plan, Roles};
use crate::share::{ModelShare, PairingKey};
use crate::{EngineError, Result};
use blindfold_core::{PartyId, Prg};
use blindfold_model::quant::QModel;
use blindfold_net::{Connection, Listener, DEFAULT_MAX_FRAME};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a client-server connection may sit idle between requests.
pub const IDLE: Duration = Duration::from_secs(300);
/// The largest frame before the greeting says what a connection is.
const GREETING_FRAME: usize = 256;
/// The largest request frame.
const REQUEST_FRAME: usize = 64;

/// The server's side of client-server mode: the engine of the weight holder
/// and the public program it hands to clients.
pub struct CsServer {
    engine: PartyEngine,
    info: CsInfo,
}

impl CsServer {
    /// Plan `q` for client-server mode with its default roles (the server
    /// garbles every circuit).
    pub fn new(q: &QModel, cfg: &ServeConfig) -> Result<CsServer> {
        CsServer::with_roles(q, Roles::client_server(), cfg)
    }

    /// Plan `q` with explicit roles (benchmarks compare garbling policies).
    /// The roles must make the server (party 0) the only weight holder.
    pub fn with_roles(q: &QModel, roles: Roles, cfg: &ServeConfig) -> Result<CsServer> {
        if !roles.is_client_server() {
            return Err(EngineError::PeerMismatch(crate::PeerMismatch::OtherRoles));
        }
        let plan = Plan::with_roles(q, Deployment::ClientServer, roles)?;
        let mut rng = Prg::from_entropy();
        let mut model_id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rng, &mut model_id);
        // The client's program: the architecture and scales, every secret
        // parameter zero (validation still sees every length).
        let public = crate::share::weightless(q);
        let client_share = ModelShare {
            party: PartyId::P1,
            model_id,
            pairing_key: PairingKey([0; 32]),
            program: public,
        };
        let info = CsInfo {
            label_only: cfg.label_only,
            max_pool: cfg.pool.clamp(1, MAX_CS_POOL),
            roles: roles.to_wire(),
            program: client_share.to_bytes(),
        };
        if info.encode().len() > blindfold_net::DEFAULT_MAX_FRAME {
            return Err(EngineError::ProgramTooLarge(format!(
                "its public program is {} bytes, more than one frame ({} bytes) carries",
                info.program.len(),
                blindfold_net::DEFAULT_MAX_FRAME
            )));
        }
        let share = ModelShare {
            party: PartyId::P0,
            model_id,
            pairing_key: PairingKey([0; 32]),
            program: q.clone(),
        };
        let engine = PartyEngine::with_plan(share, plan)?;
        Ok(CsServer { engine, info })
    }

    /// The engine (party 0, the weight holder).
    pub fn engine(&self) -> &PartyEngine {
        &self.engine
    }
}

/// Serve client-server mode on `listener` until `shutdown` is set.
pub fn run_client_server<L: Listener>(
    server: CsServer,
    listener: L,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<()> {
    let server = Arc::new(server);
    let cfg = Arc::new(cfg);
    let counts = Arc::new(Mutex::new(ConnCount::default()));
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept(Instant::now() + POLL) {
            Ok(Some(conn)) => {
                let peer = conn.peer();
                let Some(slot) = ConnSlot::take(&counts, source_of(&peer), &cfg) else {
                    log(&cfg, &format!("connection from {peer} refused: too many"));
                    continue;
                };
                let (sv, cf, sd) = (server.clone(), cfg.clone(), shutdown.clone());
                std::thread::spawn(move || {
                    match serve_connection(&sv, &cf, &sd, conn) {
                        Ok(n) => log(&cf, &format!("{peer}: closed after {n} queries")),
                        Err(e) => log(&cf, &format!("{peer}: {e}")),
                    }
                    drop(slot);
                });
            }
            Ok(None) => {}
            Err(e) => {
                log(&cfg, &format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn log(cfg: &ServeConfig, msg: &str) {
    if cfg.verbose {
        eprintln!("[server] {msg}");
    }
}

fn send<C: Connection>(ch: &mut C, b: Vec<u8>) -> Result<()> {
    ch.send_vec(b)?;
    ch.flush()?;
    Ok(())
}

/// Refuse a request: tell the client why and go on serving it.
fn refuse<C: Connection>(ch: &mut C, code: ErrorCode, why: &str) -> Result<()> {
    send(ch, Reply::error(code, why).encode())
}

/// One client's connection; returns the number of queries answered.
fn serve_connection<C: Connection>(
    sv: &CsServer,
    cfg: &ServeConfig,
    shutdown: &AtomicBool,
    mut ch: C,
) -> Result<usize> {
    ch.set_deadline(Some(Instant::now() + cfg.timeout))?;
    ch.set_max_frame(GREETING_FRAME);
    match Hello::decode(&ch.recv()?)? {
        Hello::CsClient => {}
        Hello::Client => {
            refuse(
                &mut ch,
                ErrorCode::BadRequest,
                "this server runs client-server mode; query it with --mode client-server",
            )?;
            return Err(EngineError::UnexpectedMessage {
                what: "two-server client greeting",
                place: "a client-server server",
            });
        }
        Hello::Link { .. } => {
            return Err(EngineError::UnexpectedMessage {
                what: "peer-link greeting",
                place: "a client-server server",
            })
        }
    }
    if let Some(id) = ch.peer_identity() {
        if id != "client" {
            return Err(EngineError::WrongIdentity {
                what: "client-server greeting",
                got: Some(id.to_string()),
                want: "client",
            });
        }
    }
    ch.set_max_frame(DEFAULT_MAX_FRAME);
    send(&mut ch, sv.info.encode())?;
    log(cfg, &format!("client {}: setting up", ch.peer()));
    let mut rng = Prg::from_entropy();
    ch.set_deadline(Some(cfg.peer_deadline()))?;
    let mut session = sv.engine.setup(&mut ch, &mut rng)?;
    let engine = &sv.engine;
    let input_len = engine.program().input_shape().numel();
    let mut pool: VecDeque<Bundle> = VecDeque::new();
    let mut answered = 0usize;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            return Ok(answered);
        }
        ch.set_deadline(Some(Instant::now() + IDLE))?;
        ch.set_max_frame(REQUEST_FRAME);
        let msg = match ch.recv() {
            Ok(m) => m,
            // The client hung up (or stayed idle too long) between requests.
            Err(_) => return Ok(answered),
        };
        ch.set_max_frame(DEFAULT_MAX_FRAME);
        let req = match CsRequest::decode(&msg) {
            Ok(r) => r,
            Err(e) => {
                refuse(&mut ch, ErrorCode::BadRequest, &e.to_string())?;
                return Err(e.into());
            }
        };
        ch.set_deadline(Some(cfg.peer_deadline()))?;
        match req {
            CsRequest::Preprocess => {
                if pool.len() >= sv.info.max_pool {
                    refuse(
                        &mut ch,
                        ErrorCode::Busy,
                        &format!("{} bundles are ready already", pool.len()),
                    )?;
                    continue;
                }
                send(&mut ch, CsGo::encode())?;
                pool.push_back(engine.offline(&mut ch, &mut session, &mut rng)?);
            }
            CsRequest::Online { kind } => {
                let refusal = if kind == OutputKind::Logits && sv.info.label_only {
                    Some((
                        ErrorCode::BadInput,
                        "this server answers labels only (query with --label-only)",
                    ))
                } else if kind == OutputKind::Label && !engine.supports_label() {
                    Some((
                        ErrorCode::BadInput,
                        "this model's output has no class axis; ask for the full output",
                    ))
                } else if pool.is_empty() {
                    Some((
                        ErrorCode::BadRequest,
                        "no preprocessed bundle: preprocess first",
                    ))
                } else {
                    None
                };
                if let Some((code, why)) = refusal {
                    refuse(&mut ch, code, why)?;
                    continue;
                }
                let Some(bundle) = pool.pop_front() else {
                    continue;
                };
                send(&mut ch, CsGo::encode())?;
                let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
                let t0 = Instant::now();
                let st0 = ch.stats().total();
                let (y, _) = engine.online_with(&mut ch, bundle, vec![0u64; input_len], kind)?;
                let st1 = ch.stats().total();
                let cost = QueryCost {
                    offline_ms,
                    offline_bytes,
                    online_ms: t0.elapsed().as_secs_f64() * 1e3,
                    online_bytes: st1.bytes() - st0.bytes(),
                    online_rounds: st1.rounds() - st0.rounds(),
                    queue_ms: 0.0,
                };
                send(&mut ch, Reply::Ok { cost, output: y }.encode())?;
                answered += 1;
            }
        }
    }
}
