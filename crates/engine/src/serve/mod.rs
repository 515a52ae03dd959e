//! The serving layer: two server processes and any number of clients, over any
//! [`Transport`] (TCP in production, in-memory pipes in tests, TLS next).
//!
//! ```text
//!   client ──Hello::Client──▶ P0 listen ◀──Hello::Link── P1 (dials P0's listen address)
//!   client ──Hello::Client──▶ P1 listen
//!
//!   per client connection:  server ── ModelInfo ─▶ client
//!                           client ── Query {id, kind, share} ─▶ server
//!                           server ── Reply (output share + costs | error) ─▶ client
//!
//!   peer links, driven by P0 (the leader), one job at a time each:
//!     offline link: Job::Offline          both produce one bundle into their pool
//!     online link:  Job::Have {qid}       P1: Ready once it holds qid's share
//!                                         (or Missing after a short wait)
//!                   Job::Online {qid,seq} P1: Ready, then both run the online
//!                                         phase on their oldest bundle (seq)
//! ```
//!
//! Files, one responsibility each:
//!
//! * [`wire`]: every message, typed, with its encoder and validating decoder;
//! * `frontend`: one client connection at a server (greeting, model info,
//!   query, reply);
//! * `handshake`: P1 dialling P0, and P0 pairing the two links of one dial
//!   attempt;
//! * `pool`: one session's bundle pool, shared by its two workers;
//! * `session`: running one session's two workers, stopping both together;
//! * `leader`, `follower`: P0's and P1's loops and workers;
//! * `client`: the client side ([`info`], [`query`], [`query_with`]);
//! * `cluster`: [`LocalCluster`], two servers in this process.
//!
//! The pool holds at most `pool` bundles and is refilled whenever no query is
//! waiting. Queries from many clients are accepted at once and served one after
//! another on the peer link. If the peer link fails, the pool is dropped (its
//! material is tied to the session) and P1 dials again; waiting clients get an
//! error. A bundle is never used twice: it is moved out of the pool into the
//! online phase, whatever the outcome.
//!
//! Deadlines cover whole exchanges: a client's greeting-to-query exchange gets
//! `timeout`; so does a peer link at P0 until its session is set up (the
//! dialer is a stranger until setup has checked its share); each job between
//! the servers of a session, and P1's side of the setup, get `timeout` but at
//! least [`PEER_EXCHANGE_MIN`].

mod client;
mod cluster;
mod cs_client;
mod cs_server;
mod follower;
mod frontend;
mod handshake;
mod leader;
mod pairing;
mod pool;
mod session;
pub mod wire;

pub use client::{info, info_on, query, query_on, query_with, Answer};
pub use cluster::{LocalCluster, LocalCsServer};
pub use cs_client::{CsAnswer, CsClient};
pub use cs_server::{run_client_server, CsServer};
pub use wire::{ErrorCode, ModelInfo, QueryCost, WireError};

use crate::party::{OutputKind, PartyEngine};
use crate::{EngineError, Result};
use blindfold_core::PartyId;
use blindfold_net::{Connection, Listener, TcpAcceptor, TcpTransport, Transport};
use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wire::{QueryId, Reply};

/// The shortest deadline of an exchange between the servers (a session setup,
/// one job), whatever `ServeConfig::timeout` says: a loaded machine must not
/// tear down a healthy session.
pub const PEER_EXCHANGE_MIN: Duration = Duration::from_secs(10);

/// How often waiting loops look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// P1 only: P0's listen address.
    pub peer: Option<String>,
    /// Bundles kept ready.
    pub pool: usize,
    /// How long a server waits for a client's share or a peer.
    pub timeout: Duration,
    /// Print a line per query and per event to stderr.
    pub verbose: bool,
    /// Answer label-only queries only (refuse requests for the scores).
    pub label_only: bool,
    /// Connections served at once, in all and per source address; more are
    /// closed at once.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// Queries waiting at once, in all and per source address; more are
    /// answered `Busy`.
    pub max_pending: usize,
    pub max_pending_per_source: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            peer: None,
            pool: 2,
            timeout: Duration::from_secs(30),
            verbose: false,
            label_only: false,
            max_connections: 256,
            max_connections_per_source: 64,
            max_pending: 256,
            max_pending_per_source: 16,
        }
    }
}

impl ServeConfig {
    /// The deadline of one exchange between the servers, starting now.
    fn peer_deadline(&self) -> Instant {
        Instant::now() + self.timeout.max(PEER_EXCHANGE_MIN)
    }
}

/// A query whose share has arrived at this server, waiting for its turn.
struct Pending {
    share: Vec<u64>,
    kind: OutputKind,
    reply: mpsc::Sender<Reply>,
    arrived: Instant,
    /// Where it came from (an address without its port).
    source: String,
    /// P0: times P1 was asked for the other share and did not have it.
    probes: u8,
    /// P0: not to be probed again before this.
    retry_at: Option<Instant>,
    /// It came through the browser listener (counted apart, see
    /// [`browser_share`]).
    browser: bool,
}

/// The source of a connection for per-source limits: its peer address
/// without the port (and without a TLS role suffix).
fn source_of(peer: &str) -> String {
    let addr = peer.split(' ').next().unwrap_or(peer);
    match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => addr.to_string(),
    }
}

/// Connections being served, in all and per source.
#[derive(Default)]
struct ConnCount {
    total: usize,
    per_source: HashMap<String, usize>,
}

/// Holds one connection's place in [`ConnCount`] until dropped.
struct ConnSlot {
    counts: Arc<Mutex<ConnCount>>,
    source: String,
}

impl ConnSlot {
    fn take(counts: &Arc<Mutex<ConnCount>>, source: String, cfg: &ServeConfig) -> Option<ConnSlot> {
        let mut c = lock(counts);
        let n = c.per_source.get(&source).copied().unwrap_or(0);
        if c.total >= cfg.max_connections || n >= cfg.max_connections_per_source {
            return None;
        }
        c.total += 1;
        *c.per_source.entry(source.clone()).or_insert(0) += 1;
        Some(ConnSlot {
            counts: counts.clone(),
            source,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total -= 1;
        if let Some(n) = c.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.per_source.remove(&self.source);
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// Queries whose share has arrived, by id.
    pending: HashMap<QueryId, Pending>,
    /// P0: arrival order of queries.
    order: VecDeque<QueryId>,
}

/// What a server's threads share.
struct Shared<C: Connection> {
    engine: PartyEngine,
    state: Mutex<State>,
    /// Signalled when a query arrives or a session stops.
    cv: Condvar,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
    /// Bundles in the pool (reported to clients).
    ready: AtomicUsize,
    /// P0: peer links handed over by the connection threads to the leader.
    links: Mutex<Option<mpsc::SyncSender<handshake::PeerLink<C>>>>,
}

/// Lock, ignoring poisoning: every critical section leaves the state whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C: Connection> Shared<C> {
    fn log(&self, msg: &str) {
        if self.cfg.verbose {
            eprintln!("[{}] {msg}", self.engine.party());
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Take a pending query's share and reply channel.
    fn take_pending(&self, qid: &QueryId) -> Option<Pending> {
        self.state().pending.remove(qid)
    }

    /// Wait on the query condition for at most `t`.
    fn wait<'a>(&self, st: MutexGuard<'a, State>, t: Duration) -> MutexGuard<'a, State> {
        self.cv
            .wait_timeout(st, t)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Answer with an error every query that has waited longer than the timeout.
    fn fail_waiting(&self, code: wire::ErrorCode, why: &str) {
        let mut st = self.state();
        let expired: Vec<QueryId> = st
            .pending
            .iter()
            .filter(|(_, p)| p.arrived.elapsed() > self.cfg.timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(p) = st.pending.remove(&k) {
                let _ = p.reply.send(Reply::error(code, why));
            }
            st.order.retain(|q| *q != k);
        }
    }
}

/// Run a server over TCP until `shutdown` is set. P0 accepts clients and P1's
/// links on `listener`; P1 accepts clients on `listener` and dials `cfg.peer`.
pub fn run(
    engine: PartyEngine,
    listener: TcpListener,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<()> {
    let acceptor = TcpAcceptor::new(listener)?;
    run_on(engine, TcpTransport, acceptor, cfg, shutdown)
}

/// Run a server over any transport until `shutdown` is set: connections come
/// from `listener`; P1 dials `cfg.peer` with `transport`.
pub fn run_on<T, L>(
    engine: PartyEngine,
    transport: T,
    listener: L,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<()>
where
    T: Transport,
    L: Listener<Conn = T::Conn>,
{
    run_with_browsers(engine, transport, listener, None::<L>, cfg, shutdown)
}

/// [`run_on`], and client queries from browsers on a second listener
/// (`blindfold_net::ws::WsListener`, any connection type): the greeting on
/// those connections must be a client's (no peer link, no client-server
/// session), and they share the connection limits of the first listener.
pub fn run_with_browsers<T, L, B>(
    engine: PartyEngine,
    transport: T,
    listener: L,
    browsers: Option<B>,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<()>
where
    T: Transport,
    L: Listener<Conn = T::Conn>,
    B: Listener,
{
    let party = engine.party();
    let peer = match (party, cfg.peer.clone()) {
        (PartyId::P1, None) => return Err(EngineError::MissingPeerAddress),
        (_, p) => p,
    };
    // Bounded: greetings beyond a few waiting ones are dropped.
    let (link_tx, link_rx) = mpsc::sync_channel(4);
    let shared = Arc::new(Shared {
        engine,
        state: Mutex::new(State::default()),
        cv: Condvar::new(),
        cfg,
        shutdown: shutdown.clone(),
        ready: AtomicUsize::new(0),
        links: Mutex::new(Some(link_tx)),
    });
    let worker = {
        let sh = shared.clone();
        std::thread::spawn(move || match (party, peer) {
            (PartyId::P1, Some(peer)) => follower::follower_loop(&sh, &transport, &peer),
            _ => leader::leader_loop(&sh, link_rx),
        })
    };
    let counts = Arc::new(Mutex::new(ConnCount::default()));
    let browser_counts = Arc::new(Mutex::new(ConnCount::default()));
    let browser_cfg = ServeConfig {
        max_connections: browser_share(shared.cfg.max_connections),
        ..shared.cfg.clone()
    };
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept(Instant::now() + POLL) {
            Ok(Some(conn)) => spawn_connection(
                &shared,
                &counts,
                &shared.cfg,
                conn,
                "connection",
                frontend::handle_connection,
            ),
            Ok(None) => {}
            Err(e) => {
                shared.log(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Browsers: what finished its handshake meanwhile, without waiting,
        // a few per pass (a flood of them cannot hold up the main port).
        for _ in 0..BROWSERS_PER_PASS {
            let Some(b) = &browsers else { break };
            let conn = match b.accept(Instant::now()) {
                Ok(Some(conn)) => conn,
                Ok(None) => break,
                Err(e) => {
                    shared.log(&format!("browser accept: {e}"));
                    break;
                }
            };
            // Their own budget: unauthenticated browsers never take the slots
            // of the main port (P1's links, clients with certificates).
            spawn_connection(
                &shared,
                &browser_counts,
                &browser_cfg,
                conn,
                "browser connection",
                frontend::handle_browser,
            );
        }
    }
    shared.cv.notify_all();
    lock(&shared.links).take();
    let _ = worker.join();
    Ok(())
}

/// Serve `conn` on its own thread with `handle`, holding a place in `counts`
/// (bounded by `limits`) until it ends; beyond the limits the connection is
/// closed before anything is read from it.
fn spawn_connection<C: Connection, D: Connection>(
    shared: &Arc<Shared<C>>,
    counts: &Arc<Mutex<ConnCount>>,
    limits: &ServeConfig,
    conn: D,
    what: &'static str,
    handle: fn(&Shared<C>, D) -> Result<()>,
) {
    let peer = conn.peer();
    let Some(slot) = ConnSlot::take(counts, source_of(&peer), limits) else {
        shared.log(&format!("{what} from {peer} refused: too many connections"));
        return;
    };
    let sh = shared.clone();
    std::thread::spawn(move || {
        if let Err(e) = handle(&sh, conn) {
            sh.log(&format!("{what} from {peer}: {e}"));
        }
        drop(slot);
    });
}

/// Browser connections taken per pass of the accept loop (the browser
/// listener's whole queue: a burst is taken at once, and the main port waits
/// at most one pass of that).
const BROWSERS_PER_PASS: usize = blindfold_net::ws::MAX_HANDSHAKES;

/// What browsers (unauthenticated, on the browser listener) may hold of a
/// limit, on top of it and apart from it: half.
fn browser_share(limit: usize) -> usize {
    (limit / 2).max(1)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
