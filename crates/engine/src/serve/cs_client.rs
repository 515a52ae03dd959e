//! Client-server mode, the client: party 1 of the two-party engine, holding
//! the input. It learns the model's public architecture from the server
//! ([`CsInfo`]), never its weights, and keeps a small pool of preprocessed
//! bundles on its connection so that repeated queries pay only the online
//! phase; [`CsAnswer::preprocessed_first`] says when a query had to run an
//! offline phase first.
//!
//! ```text
//!  CsClient::connect ── greeting, CsInfo, session setup (client's HE key, IKNP)
//!  preprocess(n)      ── n offline phases (pool, at most the server's limit)
//!  query(x, kind)     ── [offline if the pool is empty] ── online ── y = y0 + y1
//! ```

use super::client::decode_output;
use super::wire::{CsGo, CsInfo, CsRequest, Hello, QueryCost, Reply, WireError};
use crate::party::{Bundle, LayerCost, OutputKind, PartyEngine, Session};
use crate::plan::{Deployment, Plan, Roles};
use crate::share::ModelShare;
use crate::{EngineError, Result};
use blindfold_core::{PartyId, Prg};
use blindfold_model::quant::QModel;
use blindfold_net::{Connection, TcpTransport, Transport};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A client-server answer with its costs, as the client saw them.
#[derive(Clone, Debug, Serialize)]
pub struct CsAnswer {
    /// The argmax of a vector output (0 for a mask).
    pub label: usize,
    /// Decoded output values (empty for label- or mask-only answers).
    pub scores: Vec<f64>,
    /// The reconstructed ring output (the labels for label-only answers).
    pub ring: Vec<u64>,
    /// Per-pixel classes of a `[C, H, W]` output asked for with
    /// [`OutputKind::Label`].
    pub mask: Option<Vec<u32>>,
    /// The pool was empty: this query ran an offline phase first.
    pub preprocessed_first: bool,
    /// Wall-clock time at the client, including any offline phase it waited for.
    pub latency_ms: f64,
    /// The offline phase of the bundle this query used.
    pub offline_ms: f64,
    pub offline_bytes: u64,
    pub offline_rounds: u64,
    /// The online phase, request to reply.
    pub online_ms: f64,
    pub online_bytes: u64,
    pub online_rounds: u64,
    /// Per-layer costs of the bundle's offline phase and of the online phase.
    pub offline_layers: Vec<LayerCost>,
    pub online_layers: Vec<LayerCost>,
    /// What the server reported.
    pub server: QueryCost,
}

/// One preprocessed bundle with what making it cost.
struct Pooled {
    bundle: Bundle,
    rounds: u64,
}

/// A connection to a client-server server, with its session and pool.
pub struct CsClient<C: Connection> {
    ch: C,
    engine: PartyEngine,
    session: Session,
    pool: VecDeque<Pooled>,
    max_pool: usize,
    label_only: bool,
    timeout: Duration,
    rng: Prg,
    /// Why the connection failed in the middle of an exchange, if it did.
    broken: Option<String>,
}

/// Most values of one node, and most work (values times pooling window) of a
/// whole program, that a client plans from a server's program: a crafted
/// program must fail with an error, not make the client allocate gigabytes.
const MAX_NODE_VALUES: usize = 1 << 25;
const MAX_PROGRAM_WORK: usize = 1 << 27;
const MAX_WINDOW: usize = 1 << 12;

/// Refuse a server's program beyond the client's limits, before planning it.
fn check_program_size(q: &QModel) -> Result<()> {
    let mut work = 0usize;
    for (i, n) in q.nodes.iter().enumerate() {
        let values = n.shape.numel();
        let window = match &n.op {
            blindfold_model::quant::QOp::MaxPool { pool, .. } => {
                pool.kernel[0].saturating_mul(pool.kernel[1])
            }
            // 64 OTs per element (affine_ot.rs), each about as heavy as a
            // garbled comparison's worth of buffers.
            blindfold_model::quant::QOp::ChannelAffine { .. } => 64,
            _ => 1,
        };
        if values > MAX_NODE_VALUES || window > MAX_WINDOW {
            return Err(EngineError::ProgramTooLarge(format!(
                "node {i} has {values} values and a window of {window}"
            )));
        }
        work = work.saturating_add(values.saturating_mul(window));
    }
    if work > MAX_PROGRAM_WORK {
        return Err(EngineError::ProgramTooLarge(format!(
            "{work} values in all, at most {MAX_PROGRAM_WORK}"
        )));
    }
    Ok(())
}

impl CsClient<blindfold_net::TcpChannel> {
    /// Connect over plain TCP.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Self> {
        CsClient::connect_on(&TcpTransport, addr, timeout)
    }
}

impl<C: Connection> CsClient<C> {
    /// Connect over `transport`, read the public program and set up the
    /// session. Over TLS the server must present the `p0` certificate.
    pub fn connect_on<T: Transport<Conn = C>>(
        transport: &T,
        addr: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let mut ch = transport.connect(addr, deadline)?;
        if let Some(id) = ch.peer_identity() {
            if id != "p0" {
                return Err(EngineError::ServerIdentity {
                    server: PartyId::P0,
                    cert: id.to_string(),
                });
            }
        }
        ch.set_deadline(Some(deadline))?;
        ch.send_vec(Hello::CsClient.encode())?;
        ch.flush()?;
        let first = ch.recv()?;
        let info = match CsInfo::decode(&first) {
            Ok(i) => i,
            // A two-server server answers a client-server greeting with an error.
            Err(e) => {
                return Err(match Reply::decode(&first) {
                    Ok(Reply::Error { code, message }) => EngineError::Remote {
                        server: PartyId::P0,
                        code,
                        message,
                    },
                    _ => e.into(),
                })
            }
        };
        let roles = Roles::from_wire(info.roles)
            .filter(Roles::is_client_server)
            .ok_or(EngineError::PeerMismatch(crate::PeerMismatch::OtherRoles))?;
        let share = ModelShare::from_bytes(&info.program)?;
        if share.party != PartyId::P1 {
            return Err(EngineError::PeerMismatch(crate::PeerMismatch::SameParty(0)));
        }
        check_program_size(&share.program)?;
        let plan = Plan::with_roles(&share.program, Deployment::ClientServer, roles)?;
        let engine = PartyEngine::with_plan(share, plan)?;
        let mut rng = Prg::from_entropy();
        ch.set_deadline(Some(Instant::now() + exchange(timeout)))?;
        let session = engine.setup(&mut ch, &mut rng)?;
        Ok(CsClient {
            ch,
            engine,
            session,
            pool: VecDeque::new(),
            max_pool: info.max_pool.max(1),
            label_only: info.label_only,
            timeout,
            rng,
            broken: None,
        })
    }

    /// Refuse to go on after a failed exchange.
    fn usable(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(EngineError::ConnectionBroken(why.clone())),
            None => Ok(()),
        }
    }

    /// Run `f`; a failure marks the connection broken (its pools or stream
    /// may be out of step with the server's).
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.usable()?;
        let r = f(self);
        if let Err(e) = &r {
            // A refusal leaves both ends in step; anything else does not.
            if !matches!(e, EngineError::Remote { .. }) {
                self.broken = Some(e.to_string());
            }
        }
        r
    }

    /// The public program (architecture and scales; weights are zero).
    pub fn program(&self) -> &QModel {
        self.engine.program()
    }

    /// The plan both sides run.
    pub fn plan(&self) -> &Plan {
        self.engine.plan()
    }

    /// Whether the server answers labels (masks) only.
    pub fn label_only(&self) -> bool {
        self.label_only
    }

    /// Bundles ready for queries.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// The most bundles the server keeps for this connection.
    pub fn max_pool(&self) -> usize {
        self.max_pool
    }

    /// Preprocess until `n` bundles (at most the server's limit) are ready.
    pub fn preprocess(&mut self, n: usize) -> Result<()> {
        while self.pool.len() < n.min(self.max_pool) {
            self.guarded(|c| c.preprocess_one())?;
        }
        Ok(())
    }

    fn request(&mut self, r: CsRequest) -> Result<()> {
        self.ch
            .set_deadline(Some(Instant::now() + exchange(self.timeout)))?;
        self.ch.send_vec(r.encode())?;
        self.ch.flush()?;
        match CsGo::decode(&self.ch.recv()?)? {
            Ok(()) => Ok(()),
            Err(Reply::Error { code, message }) => Err(EngineError::Remote {
                server: PartyId::P0,
                code,
                message,
            }),
            Err(Reply::Ok { .. }) => Err(WireError::UnknownTag {
                what: "client-server go-ahead",
                tag: 0,
            }
            .into()),
        }
    }

    fn preprocess_one(&mut self) -> Result<()> {
        self.request(CsRequest::Preprocess)?;
        let r0 = self.ch.stats().total().rounds();
        let bundle = self
            .engine
            .offline(&mut self.ch, &mut self.session, &mut self.rng)?;
        let rounds = self.ch.stats().total().rounds() - r0;
        self.pool.push_back(Pooled { bundle, rounds });
        Ok(())
    }

    /// Ask for the full output (`Logits`) or the class per vector / pixel
    /// (`Label`). Runs an offline phase first when no bundle is ready.
    pub fn query(&mut self, input: &[f32], kind: OutputKind) -> Result<CsAnswer> {
        if kind == OutputKind::Logits && self.label_only {
            return Err(EngineError::Remote {
                server: PartyId::P0,
                code: super::ErrorCode::BadInput,
                message: "this server answers labels only (query with --label-only)".into(),
            });
        }
        self.guarded(|c| c.query_now(input, kind))
    }

    fn query_now(&mut self, input: &[f32], kind: OutputKind) -> Result<CsAnswer> {
        let t0 = Instant::now();
        let q = self.engine.program();
        let len = q.input_shape().numel();
        if input.len() != len {
            return Err(EngineError::InputLength {
                expected: len,
                got: input.len(),
            });
        }
        if kind == OutputKind::Label && !self.engine.supports_label() {
            return Err(EngineError::LabelNeedsVector);
        }
        let x: Vec<u64> = input
            .iter()
            .map(|&v| blindfold_core::ring::encode(v as f64, q.frac))
            .collect();
        let (output_len, output_frac) = (q.output_shape().numel(), q.output_frac());
        let preprocessed_first = self.pool.is_empty();
        if preprocessed_first {
            self.preprocess_one()?;
        }
        self.request(CsRequest::Online { kind })?;
        let Pooled { bundle, rounds } = self
            .pool
            .pop_front()
            .ok_or(EngineError::BundleMismatch { layer: 0 })?;
        let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
        let offline_layers = bundle.offline_layers.clone();
        let t1 = Instant::now();
        let st0 = self.ch.stats().total();
        let (mine, online_layers) = self.engine.online_with(&mut self.ch, bundle, x, kind)?;
        let (cost, theirs) = match Reply::decode(&self.ch.recv()?)? {
            Reply::Ok { cost, output } => (cost, output),
            Reply::Error { code, message } => {
                return Err(EngineError::Remote {
                    server: PartyId::P0,
                    code,
                    message,
                })
            }
        };
        let st1 = self.ch.stats().total();
        if theirs.len() != mine.len() {
            return Err(EngineError::OutputLength {
                server: PartyId::P0,
                got: theirs.len(),
                want: mine.len(),
            });
        }
        let ring = crate::sharing::reconstruct(&theirs, &mine);
        let (label, scores, mask) = decode_output(kind, &ring, output_len, output_frac)?;
        Ok(CsAnswer {
            label,
            scores,
            ring,
            mask,
            preprocessed_first,
            latency_ms: t0.elapsed().as_secs_f64() * 1e3,
            offline_ms,
            offline_bytes,
            offline_rounds: rounds,
            online_ms: t1.elapsed().as_secs_f64() * 1e3,
            online_bytes: st1.bytes() - st0.bytes(),
            online_rounds: st1.rounds() - st0.rounds(),
            offline_layers,
            online_layers,
            server: cost,
        })
    }
}

/// The deadline of one protocol exchange.
fn exchange(timeout: Duration) -> Duration {
    timeout.max(super::PEER_EXCHANGE_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A validated program whose planning would allocate gigabytes (a huge
    /// max-pool window, a huge map) is refused by size first.
    #[test]
    fn oversized_programs_are_refused_before_planning() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/onnx/maxpool_ts15.onnx");
        let m = blindfold_model::load_onnx(&path).unwrap();
        let q = blindfold_model::quant::quantize(&m, blindfold_core::FracBits(12)).unwrap();
        check_program_size(&q).unwrap();
        let mut big = q.clone();
        let i = big
            .nodes
            .iter()
            .position(|n| matches!(n.op, blindfold_model::quant::QOp::MaxPool { .. }))
            .unwrap();
        if let blindfold_model::quant::QOp::MaxPool { pool, .. } = &mut big.nodes[i].op {
            pool.kernel = [1 << 7, 1 << 7];
        }
        assert!(matches!(
            check_program_size(&big),
            Err(EngineError::ProgramTooLarge(_))
        ));
        let mut wide = q.clone();
        wide.nodes[1].shape = blindfold_core::Shape::new(vec![1 << 13, 1 << 13]);
        assert!(matches!(
            check_program_size(&wide),
            Err(EngineError::ProgramTooLarge(_))
        ));
    }
}
