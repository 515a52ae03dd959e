//! The serving layer: two server processes and any number of clients over TCP.
//!
//! ```text
//!   client ──BFCLIENT──▶ P0 listen ◀──BFLINK── P1 (dials P0's listen address)
//!   client ──BFCLIENT──▶ P1 listen
//!
//!   per client connection:  server ── info (JSON) ─▶ client
//!                           client ── query id + share ─▶ server
//!                           server ── output share + costs ─▶ client
//!
//!   peer link, driven by P0 (the leader), one job at a time:
//!     OFFLINE          both produce one bundle into their FIFO pool
//!     ONLINE qid seq   P1 answers READY once it holds the client's share for
//!                      qid (or MISSING after a timeout); then both run the
//!                      online phase on their oldest bundle (sequence seq)
//! ```
//!
//! The pool holds at most `pool` bundles and is refilled whenever no query is
//! waiting. Queries from many clients are accepted at once and served one after
//! another on the peer link. If the peer link fails, the pool is dropped (its
//! material is tied to the session) and P1 dials again; waiting clients get an
//! error. A bundle is never used twice: it is moved out of the pool into the
//! online phase, whatever the outcome.

use crate::party::{Bundle, OutputKind, PartyEngine, Session};
use crate::{EngineError, Result};
use blindfold_core::{PartyId, Prg};
use blindfold_net::{Channel, TcpChannel};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const CLIENT_HELLO: &[u8] = b"BFCLIENT1";
const LINK_HELLO: &[u8] = b"BFLINK1";
const LINK_OFFLINE: u8 = b'F';
const LINK_ONLINE: u8 = b'N';
const RESULT_OK: u8 = 0;
const RESULT_ERR: u8 = 1;
const JOB_OFFLINE: u8 = 1;
const JOB_ONLINE: u8 = 2;
const JOB_HAVE: u8 = 3;
/// How long P1 waits for a client's share before answering a probe.
const HAVE_WAIT: Duration = Duration::from_millis(50);
const READY: u8 = 1;
const MISSING: u8 = 0;

/// What a server tells a client about the model it serves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub party: u8,
    pub model_id: String,
    pub input_shape: Vec<usize>,
    pub frac_bits: u32,
    pub output_frac_bits: u32,
    pub output_len: usize,
    /// Preprocessed queries ready at this server right now.
    #[serde(default)]
    pub ready: usize,
}

/// Costs a server reports with its output share.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct QueryCost {
    /// Offline phase of the bundle used (this server's view).
    pub offline_ms: f64,
    pub offline_bytes: u64,
    /// Online phase between the servers.
    pub online_ms: f64,
    pub online_bytes: u64,
    pub online_rounds: u64,
    /// Time the query waited for a bundle and the peer link.
    pub queue_ms: f64,
}

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
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            peer: None,
            pool: 2,
            timeout: Duration::from_secs(30),
            verbose: false,
        }
    }
}

/// A link greeting from P1: kind (offline/online), dial-attempt nonce, channel.
type PeerLink = (u8, [u8; 16], TcpChannel);

struct Pending {
    share: Vec<u64>,
    kind: OutputKind,
    reply: mpsc::Sender<std::result::Result<(Vec<u64>, QueryCost), String>>,
    arrived: Instant,
}

#[derive(Default)]
struct State {
    /// Queries whose share has arrived, by id.
    pending: HashMap<[u8; 16], Pending>,
    /// P0: arrival order of queries.
    order: VecDeque<[u8; 16]>,
}

struct Shared {
    engine: PartyEngine,
    state: Mutex<State>,
    cv: Condvar,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
    /// Bundles in the pool (reported to clients).
    ready: std::sync::atomic::AtomicUsize,
    /// P0: peer links handed over by the acceptor.
    links: Mutex<Option<mpsc::SyncSender<PeerLink>>>,
}

impl Shared {
    fn log(&self, msg: &str) {
        if self.cfg.verbose {
            eprintln!("[{}] {msg}", self.engine.party());
        }
    }
}

/// Run a server until `shutdown` is set. P0 accepts clients and P1's link on
/// `listener`; P1 accepts clients on `listener` and dials `cfg.peer`.
pub fn run(
    engine: PartyEngine,
    listener: TcpListener,
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<()> {
    let party = engine.party();
    if party == PartyId::P1 && cfg.peer.is_none() {
        return Err(EngineError::Protocol(
            "party 1 needs the address of party 0 (--peer)".into(),
        ));
    }
    listener
        .set_nonblocking(true)
        .map_err(blindfold_net::NetError::Io)?;
    // Bounded: greetings beyond a few waiting ones are dropped.
    let (link_tx, link_rx) = mpsc::sync_channel(4);
    let shared = Arc::new(Shared {
        engine,
        state: Mutex::new(State::default()),
        cv: Condvar::new(),
        cfg,
        shutdown: shutdown.clone(),
        ready: std::sync::atomic::AtomicUsize::new(0),
        links: Mutex::new(Some(link_tx)),
    });
    let worker = {
        let sh = shared.clone();
        std::thread::spawn(move || match party {
            PartyId::P0 => leader_loop(&sh, link_rx),
            PartyId::P1 => follower_loop(&sh),
        })
    };
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, addr)) => {
                let sh = shared.clone();
                std::thread::spawn(move || {
                    if let Err(e) = handle_connection(&sh, stream, addr) {
                        sh.log(&format!("connection from {addr}: {e}"));
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => shared.log(&format!("accept: {e}")),
        }
    }
    shared.cv.notify_all();
    shared.links.lock().expect("lock").take();
    let _ = worker.join();
    Ok(())
}

fn handle_connection(sh: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) -> Result<()> {
    stream
        .set_nonblocking(false)
        .map_err(blindfold_net::NetError::Io)?;
    stream
        .set_read_timeout(Some(sh.cfg.timeout))
        .map_err(blindfold_net::NetError::Io)?;
    let mut ch = TcpChannel::from_stream(stream)?;
    let hello = ch.recv()?;
    if hello.len() == LINK_HELLO.len() + 17
        && hello.starts_with(LINK_HELLO)
        && matches!(hello[LINK_HELLO.len()], LINK_OFFLINE | LINK_ONLINE)
        && sh.engine.party() == PartyId::P0
    {
        sh.log(&format!("peer link from {addr}"));
        // The read timeout stays until the session is set up (a silent impostor
        // cannot block pairing); the leader clears it afterwards.
        let kind = hello[LINK_HELLO.len()];
        let nonce: [u8; 16] = hello[LINK_HELLO.len() + 1..].try_into().expect("16 bytes");
        if let Some(tx) = sh.links.lock().expect("lock").as_ref() {
            if tx.try_send((kind, nonce, ch)).is_err() {
                sh.log("link greeting dropped: too many waiting");
            }
        }
        return Ok(());
    }
    if hello != CLIENT_HELLO {
        return Err(EngineError::Protocol(
            "unknown greeting; dropping the connection".into(),
        ));
    }
    let q = sh.engine.program();
    let info = ModelInfo {
        name: q.name.clone(),
        party: sh.engine.party().index() as u8,
        model_id: hex(&sh.engine.model_id()),
        input_shape: q.input_shape().dims().to_vec(),
        frac_bits: q.frac.0,
        output_frac_bits: q.output_frac().0,
        output_len: q.output_shape().numel(),
        ready: sh.ready.load(Ordering::SeqCst),
    };
    ch.send(&serde_json::to_vec(&info).expect("serializable"))?;
    ch.flush()?;
    let msg = ch.recv()?;
    let len = q.input_shape().numel();
    let share = match parse_query(&msg, sh.engine.party(), len, sh.engine.supports_label()) {
        Ok(v) => v,
        Err(e) => {
            send_error(&mut ch, &e)?;
            return Err(EngineError::Protocol(e));
        }
    };
    let (qid, kind, share) = share;
    let (tx, rx) = mpsc::channel();
    {
        let mut st = sh.state.lock().expect("lock");
        if st.pending.contains_key(&qid) {
            drop(st);
            send_error(&mut ch, "duplicate query id")?;
            return Ok(());
        }
        st.pending.insert(
            qid,
            Pending {
                share,
                kind,
                reply: tx,
                arrived: Instant::now(),
            },
        );
        if sh.engine.party() == PartyId::P0 {
            st.order.push_back(qid);
        }
    }
    sh.cv.notify_all();
    // Wait for the worker (bounded: queue + offline + online).
    let res = rx.recv_timeout(sh.cfg.timeout.saturating_mul(2));
    // Whatever happened, the query is no longer pending.
    sh.state.lock().expect("lock").pending.remove(&qid);
    match res {
        Ok(Ok((y, cost))) => {
            let mut out = vec![RESULT_OK];
            let c = serde_json::to_vec(&cost).expect("serializable");
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
            for v in y {
                out.extend_from_slice(&v.to_le_bytes());
            }
            ch.send(&out)?;
            ch.flush()?;
        }
        Ok(Err(e)) => send_error(&mut ch, &e)?,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            send_error(&mut ch, "timed out waiting for the other server")?
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => send_error(
            &mut ch,
            "the link between the servers failed during this query; try again",
        )?,
    }
    Ok(())
}

fn send_error(ch: &mut TcpChannel, msg: &str) -> Result<()> {
    let mut out = vec![RESULT_ERR];
    out.extend_from_slice(msg.as_bytes());
    ch.send(&out)?;
    ch.flush()?;
    Ok(())
}

/// Query message: 16-byte id, then P0: a 16-byte seed; P1: `len` u64 values.
/// An optional kind byte (0: logits, 1: label only) may precede the share.
fn parse_query(
    msg: &[u8],
    party: PartyId,
    len: usize,
    label_ok: bool,
) -> std::result::Result<([u8; 16], OutputKind, Vec<u64>), String> {
    if msg.len() < 16 {
        return Err("query message too short".into());
    }
    let qid: [u8; 16] = msg[..16].try_into().expect("16 bytes");
    let mut body = &msg[16..];
    let mut kind = OutputKind::Logits;
    let with_kind = match party {
        PartyId::P0 => body.len() == 17,
        PartyId::P1 => body.len() % 8 == 1,
    };
    if with_kind {
        kind = match body[0] {
            0 => OutputKind::Logits,
            1 if label_ok => OutputKind::Label,
            1 => return Err("this model's output is not a vector; ask for the full output".into()),
            b => return Err(format!("unknown output kind {b}")),
        };
        body = &body[1..];
    }
    let share = match party {
        PartyId::P0 => {
            let seed: [u8; 16] = body
                .try_into()
                .map_err(|_| format!("party 0 expects a 16-byte seed, got {} bytes", body.len()))?;
            crate::client::share0_from_seed(seed, len)
        }
        PartyId::P1 => {
            if body.len() != len * 8 {
                return Err(format!(
                    "input share has {} bytes, the model takes {} values ({} bytes)",
                    body.len(),
                    len,
                    len * 8
                ));
            }
            blindfold_net::bytes_to_u64s(body)
        }
    };
    Ok((qid, kind, share))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Take a pending query's share and reply channel.
fn take_pending(sh: &Shared, qid: &[u8; 16]) -> Option<Pending> {
    sh.state.lock().expect("lock").pending.remove(qid)
}

/// The bundles of one session, in production order, shared by the offline
/// worker (which fills it) and the online worker (which drains it).
#[derive(Default)]
struct Pool {
    bundles: VecDeque<(u64, Bundle)>,
    /// Sequence number of the next bundle produced.
    produced: u64,
}

/// One session's shared state between its two worker threads.
struct Link {
    pool: Mutex<Pool>,
    cv: Condvar,
    /// Set when either link fails: both workers stop and the pool is dropped.
    broken: AtomicBool,
    /// P0: a query's online phase is running.
    online_busy: AtomicBool,
}

impl Link {
    fn new() -> Link {
        Link {
            pool: Mutex::new(Pool::default()),
            cv: Condvar::new(),
            broken: AtomicBool::new(false),
            online_busy: AtomicBool::new(false),
        }
    }
    fn stop(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
    fn push(&self, b: Bundle) {
        let mut p = self.pool.lock().expect("lock");
        let seq = p.produced;
        p.produced += 1;
        p.bundles.push_back((seq, b));
        self.cv.notify_all();
    }
    /// The oldest bundle, waiting for it (while the session lives). On P1 the
    /// leader's sequence number `want` must match.
    fn pop(&self, sh: &Shared, want: Option<u64>) -> Result<(u64, Bundle)> {
        let mut p = self.pool.lock().expect("lock");
        loop {
            if self.stop() || sh.shutdown.load(Ordering::SeqCst) {
                return Err(EngineError::Protocol("session closing".into()));
            }
            if let Some((seq, _)) = p.bundles.front() {
                match want {
                    Some(w) if *seq != w => {
                        return Err(EngineError::Protocol(format!(
                            "bundle sequence mismatch: leader wants {w}, next here is {seq}"
                        )))
                    }
                    _ => return Ok(p.bundles.pop_front().expect("non-empty")),
                }
            }
            p = self
                .cv
                .wait_timeout(p, Duration::from_millis(50))
                .expect("lock")
                .0;
        }
    }
    fn len(&self) -> usize {
        self.pool.lock().expect("lock").bundles.len()
    }
}

fn leader_loop(sh: &Arc<Shared>, links: mpsc::Receiver<PeerLink>) {
    let mut rng = Prg::from_entropy();
    // Latest offline and online link per dial attempt (nonce) of P1.
    let mut offline: HashMap<[u8; 16], TcpChannel> = HashMap::new();
    let mut online: HashMap<[u8; 16], TcpChannel> = HashMap::new();
    while !sh.shutdown.load(Ordering::SeqCst) {
        let nonce = match links.recv_timeout(Duration::from_millis(100)) {
            Ok((kind, nonce, ch)) => {
                let map = if kind == LINK_OFFLINE {
                    &mut offline
                } else {
                    &mut online
                };
                map.insert(nonce, ch);
                // Bound what unpaired (possibly bogus) greetings can hold.
                for m in [&mut offline, &mut online] {
                    if m.len() > 8 {
                        let keep = nonce;
                        m.retain(|k, _| *k == keep);
                    }
                }
                nonce
            }
            Err(_) => {
                fail_waiting(sh, "the other server is not connected");
                continue;
            }
        };
        // Pair only an offline and an online link from the same dial attempt.
        if !(offline.contains_key(&nonce) && online.contains_key(&nonce)) {
            continue;
        }
        let (Some(mut off), Some(mut on)) = (offline.remove(&nonce), online.remove(&nonce)) else {
            continue;
        };
        let session = match sh.engine.setup(&mut off, &mut rng) {
            Ok(s) => s,
            Err(e) => {
                sh.log(&format!("peer setup failed: {e}"));
                continue;
            }
        };
        if off.set_read_timeout(None).is_err() || on.set_read_timeout(None).is_err() {
            continue;
        }
        offline.clear();
        online.clear();
        sh.log("session established");
        run_session(sh, off, on, session, lead_offline, lead_online);
        if !sh.shutdown.load(Ordering::SeqCst) {
            sh.log("peer link lost; preprocessed material dropped; waiting for the other server");
            fail_waiting(sh, "server link failed");
        }
    }
}

fn fail_waiting(sh: &Shared, why: &str) {
    let mut st = sh.state.lock().expect("lock");
    let expired: Vec<[u8; 16]> = st
        .pending
        .iter()
        .filter(|(_, p)| p.arrived.elapsed() > sh.cfg.timeout)
        .map(|(k, _)| *k)
        .collect();
    for k in expired {
        if let Some(p) = st.pending.remove(&k) {
            let _ = p.reply.send(Err(why.to_string()));
        }
        st.order.retain(|q| *q != k);
    }
}

/// P0's offline worker: keep the pool full.
fn lead_offline(
    sh: &Shared,
    link: &Link,
    ch: &mut TcpChannel,
    session: &mut Session,
    rng: &mut Prg,
) -> Result<()> {
    loop {
        if link.stop() || sh.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Online work has priority: refill only when no query is waiting or
        // running, unless the pool is empty (then a query needs a bundle now).
        let queries_waiting = !sh.state.lock().expect("lock").order.is_empty();
        let have = link.len();
        if have >= sh.cfg.pool
            || (have > 0 && (queries_waiting || link.online_busy.load(Ordering::SeqCst)))
        {
            let p = link.pool.lock().expect("lock");
            let _ = link
                .cv
                .wait_timeout(p, Duration::from_millis(50))
                .expect("lock");
            continue;
        }
        ch.send(&[JOB_OFFLINE])?;
        ch.flush()?;
        ch.set_read_timeout(Some(sh.cfg.timeout))?;
        let b = sh.engine.offline(ch, session, rng)?;
        link.push(b);
        sh.ready.store(link.len(), Ordering::SeqCst);
    }
}

/// P0's online worker: serve queries in arrival order with the oldest bundle.
fn lead_online(sh: &Shared, link: &Link, ch: &mut TcpChannel) -> Result<()> {
    loop {
        let next = {
            let mut st = sh.state.lock().expect("lock");
            loop {
                if link.stop() || sh.shutdown.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if let Some(q) = st.order.pop_front() {
                    if st.pending.contains_key(&q) {
                        break q;
                    }
                    continue;
                }
                st = sh
                    .cv
                    .wait_timeout(st, Duration::from_millis(50))
                    .expect("lock")
                    .0;
            }
        };
        let qid = next;
        let t_wait = Instant::now();
        link.online_busy.store(true, Ordering::SeqCst);
        let res = lead_one_query(sh, link, ch, qid, t_wait);
        link.online_busy.store(false, Ordering::SeqCst);
        link.cv.notify_all();
        if res.is_err() {
            // If the link failed before the query's share was taken, it goes back
            // to the front of the queue for the next session.
            let mut st = sh.state.lock().expect("lock");
            if st.pending.contains_key(&qid) {
                st.order.push_front(qid);
            }
        }
        res?;
    }
}

fn lead_one_query(
    sh: &Shared,
    link: &Link,
    ch: &mut TcpChannel,
    qid: [u8; 16],
    t_wait: Instant,
) -> Result<()> {
    {
        // Does P1 hold this query's share yet? If not, the query goes to the back
        // of the queue (it expires at its client's deadline) and others go first;
        // no bundle is spent on it.
        ch.set_read_timeout(Some(sh.cfg.timeout))?;
        let mut probe = vec![JOB_HAVE];
        probe.extend_from_slice(&qid);
        ch.send(&probe)?;
        ch.flush()?;
        if ch.recv()? != [READY] {
            let mut st = sh.state.lock().expect("lock");
            if st.pending.contains_key(&qid) {
                st.order.push_back(qid);
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(5));
            return Ok(());
        }
        let (seq, bundle) = link.pop(sh, None)?;
        sh.ready.store(link.len(), Ordering::SeqCst);
        let kind = sh
            .state
            .lock()
            .expect("lock")
            .pending
            .get(&qid)
            .map_or(OutputKind::Logits, |p| p.kind);
        let mut job = vec![JOB_ONLINE];
        job.extend_from_slice(&qid);
        job.extend_from_slice(&seq.to_le_bytes());
        job.push((kind == OutputKind::Label) as u8);
        ch.send(&job)?;
        ch.flush()?;
        let ack = ch.recv()?;
        let p = take_pending(sh, &qid);
        if ack != [READY] {
            if let Some(p) = p {
                let _ = p.reply.send(Err(
                    "the other server did not receive this query's share".into()
                ));
            }
            // The bundle is dropped unused: material is never reused.
            return Ok(());
        }
        // P1 is committed to the online phase: run it even if our client left
        // (with a zero share), so the two servers stay in step.
        let (share, reply, arrived) = match p {
            Some(p) => (p.share, Some(p.reply), p.arrived),
            None => (
                vec![0; sh.engine.program().input_shape().numel()],
                None,
                t_wait,
            ),
        };
        let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
        let queue_ms = arrived.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        let s0 = ch.stats().total();
        let (y, _) = sh.engine.online_with(ch, bundle, share, kind)?;
        let s1 = ch.stats().total();
        let online_ms = t0.elapsed().as_secs_f64() * 1e3;
        let cost = QueryCost {
            offline_ms,
            offline_bytes,
            online_ms,
            online_bytes: s1.bytes() - s0.bytes(),
            online_rounds: s1.rounds() - s0.rounds(),
            queue_ms: (queue_ms - online_ms).max(0.0),
        };
        sh.log(&format!(
            "query {} (bundle {seq}): offline {:.1} ms {} B ahead of time; online {:.1} ms {} B",
            hex(&qid[..4]),
            cost.offline_ms,
            cost.offline_bytes,
            cost.online_ms,
            cost.online_bytes
        ));
        if let Some(r) = reply {
            let _ = r.send(Ok((y, cost)));
        }
    }
    Ok(())
}

fn follower_loop(sh: &Arc<Shared>) {
    let mut rng = Prg::from_entropy();
    let peer = sh.cfg.peer.clone().expect("checked in run");
    while !sh.shutdown.load(Ordering::SeqCst) {
        let attempt = rng.gen_seed();
        let dial = |kind: u8| -> Result<TcpChannel> {
            let mut ch = TcpChannel::connect_with_retry(peer.as_str(), Duration::from_millis(500))?;
            let mut hello = LINK_HELLO.to_vec();
            hello.push(kind);
            hello.extend_from_slice(&attempt);
            ch.send(&hello)?;
            ch.flush()?;
            Ok(ch)
        };
        let (mut off, on) = match (dial(LINK_OFFLINE), dial(LINK_ONLINE)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                fail_waiting(sh, "the other server is not reachable");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if off.set_read_timeout(Some(sh.cfg.timeout)).is_err() {
            continue;
        }
        let session = match sh.engine.setup(&mut off, &mut rng) {
            Ok(s) => s,
            Err(e) => {
                sh.log(&format!("peer setup failed: {e}"));
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if off.set_read_timeout(None).is_err() {
            continue;
        }
        sh.log("session established");
        run_session(sh, off, on, session, follow_offline, follow_online);
        if !sh.shutdown.load(Ordering::SeqCst) {
            sh.log("peer link lost; preprocessed material dropped; reconnecting");
            fail_waiting(sh, "server link failed");
        }
    }
}

type OfflineWorker = fn(&Shared, &Link, &mut TcpChannel, &mut Session, &mut Prg) -> Result<()>;
type OnlineWorker = fn(&Shared, &Link, &mut TcpChannel) -> Result<()>;

/// Run one session: the offline worker on its own thread, the online worker on
/// this one; when either stops (error, shutdown), both do and the pool is dropped.
fn run_session(
    sh: &Shared,
    mut off: TcpChannel,
    mut on: TcpChannel,
    mut session: Session,
    offline: OfflineWorker,
    online: OnlineWorker,
) {
    let link = Link::new();
    let mut off_rng = Prg::from_entropy();
    /// Stops the session when dropped, so a worker that errs or panics always
    /// takes its partner down with it (never a half-alive session).
    struct StopOnDrop<'a>(&'a Link, &'a Shared);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.broken.store(true, Ordering::SeqCst);
            self.0.cv.notify_all();
            self.1.cv.notify_all();
        }
    }
    std::thread::scope(|sc| {
        let l = &link;
        let worker = sc.spawn(move || {
            let _stop = StopOnDrop(l, sh);
            if let Err(e) = offline(sh, l, &mut off, &mut session, &mut off_rng) {
                if !l.stop() {
                    sh.log(&format!("offline link: {e}"));
                }
            }
        });
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _stop = StopOnDrop(l, sh);
            online(sh, l, &mut on)
        }));
        match res {
            Ok(Err(e)) if !l.stop() => sh.log(&format!("online link: {e}")),
            Err(_) => sh.log("online worker panicked; session dropped"),
            _ => {}
        }
        if worker.join().is_err() {
            sh.log("offline worker panicked; session dropped");
        }
    });
    sh.ready.store(0, Ordering::SeqCst);
}

/// Receive one job, polling so a closing session or server is noticed.
fn recv_job(sh: &Shared, link: &Link, ch: &mut TcpChannel) -> Result<Option<Vec<u8>>> {
    ch.set_read_timeout(Some(Duration::from_millis(100)))?;
    loop {
        if link.stop() || sh.shutdown.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match ch.recv() {
            Ok(j) => {
                // A peer that stalls mid-protocol ends the session, not the server.
                ch.set_read_timeout(Some(sh.cfg.timeout))?;
                return Ok(Some(j));
            }
            Err(blindfold_net::NetError::Timeout) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn follow_offline(
    sh: &Shared,
    link: &Link,
    ch: &mut TcpChannel,
    session: &mut Session,
    rng: &mut Prg,
) -> Result<()> {
    while let Some(job) = recv_job(sh, link, ch)? {
        if job != [JOB_OFFLINE] {
            return Err(EngineError::Protocol(
                "unknown job on the offline link".into(),
            ));
        }
        let b = sh.engine.offline(ch, session, rng)?;
        link.push(b);
        sh.ready.store(link.len(), Ordering::SeqCst);
    }
    Ok(())
}

fn follow_online(sh: &Shared, link: &Link, ch: &mut TcpChannel) -> Result<()> {
    while let Some(job) = recv_job(sh, link, ch)? {
        if job.len() == 17 && job[0] == JOB_HAVE {
            let qid: [u8; 16] = job[1..17].try_into().expect("16 bytes");
            let deadline = Instant::now() + HAVE_WAIT;
            let mut have = false;
            while Instant::now() < deadline {
                if sh.state.lock().expect("lock").pending.contains_key(&qid) {
                    have = true;
                    break;
                }
                let st = sh.state.lock().expect("lock");
                let _ = sh
                    .cv
                    .wait_timeout(st, Duration::from_millis(5))
                    .expect("lock");
            }
            ch.send(&[if have { READY } else { MISSING }])?;
            ch.flush()?;
            continue;
        }
        if job.len() != 26 || job[0] != JOB_ONLINE || job[25] > 1 {
            return Err(EngineError::Protocol(
                "unknown job on the online link".into(),
            ));
        }
        let qid: [u8; 16] = job[1..17].try_into().expect("16 bytes");
        let seq = u64::from_le_bytes(job[17..25].try_into().expect("8 bytes"));
        let kind = if job[25] == 1 {
            OutputKind::Label
        } else {
            OutputKind::Logits
        };
        // The probe said we hold the share; wait briefly in case it was taken by
        // an expiring client in between.
        let deadline = Instant::now() + HAVE_WAIT;
        let mut p = None;
        while Instant::now() < deadline && !link.stop() {
            if let Some(x) = take_pending(sh, &qid) {
                p = Some(x);
                break;
            }
            let st = sh.state.lock().expect("lock");
            let _ = sh
                .cv
                .wait_timeout(st, Duration::from_millis(20))
                .expect("lock");
        }
        // The leader's bundle `seq` is our next one; it is consumed either way.
        let (_, bundle) = match link.pop(sh, Some(seq)) {
            Ok(b) => b,
            Err(e) => {
                if let Some(p) = p {
                    let _ = p.reply.send(Err(format!("server error: {e}")));
                }
                return Err(e);
            }
        };
        sh.ready.store(link.len(), Ordering::SeqCst);
        let p = match p {
            Some(p) if p.kind == kind => p,
            other => {
                if let Some(p) = other {
                    let _ = p.reply.send(Err(
                        "the two servers were asked for different kinds of answer".into(),
                    ));
                }
                ch.send(&[MISSING])?;
                ch.flush()?;
                continue;
            }
        };
        ch.send(&[READY])?;
        ch.flush()?;
        let (offline_ms, offline_bytes) = (bundle.offline_ms, bundle.offline_bytes);
        let t0 = Instant::now();
        let s0 = ch.stats().total();
        let (y, _) = sh.engine.online_with(ch, bundle, p.share, kind)?;
        let s1 = ch.stats().total();
        let cost = QueryCost {
            offline_ms,
            offline_bytes,
            online_ms: t0.elapsed().as_secs_f64() * 1e3,
            online_bytes: s1.bytes() - s0.bytes(),
            online_rounds: s1.rounds() - s0.rounds(),
            queue_ms: 0.0,
        };
        let _ = p.reply.send(Ok((y, cost)));
    }
    Ok(())
}

/// The client's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub label: usize,
    pub scores: Vec<f64>,
    pub ring: Vec<u64>,
    /// Wall-clock time of the whole query at the client.
    pub latency_ms: f64,
    /// Bytes the client sent and received.
    pub client_bytes: u64,
    /// Costs reported by P0 and P1.
    pub cost: [QueryCost; 2],
    pub info: ModelInfo,
}

/// Ask a server what it serves (a connection that sends no query).
pub fn info(addr: &str, timeout: Duration) -> Result<ModelInfo> {
    let mut ch = TcpChannel::connect_with_retry(addr, timeout)?;
    ch.set_read_timeout(Some(timeout))?;
    ch.send(CLIENT_HELLO)?;
    ch.flush()?;
    serde_json::from_slice(&ch.recv()?)
        .map_err(|e| EngineError::Protocol(format!("{addr}: bad model info: {e}")))
}

/// Query two servers with one input (floats of the model's input shape) for
/// the full output.
pub fn query(
    servers: [&str; 2],
    input: &[f32],
    timeout: Duration,
    rng: &mut Prg,
) -> Result<Answer> {
    query_with(servers, input, timeout, OutputKind::Logits, rng)
}

/// Query two servers; with [`OutputKind::Label`] the servers compute the argmax
/// in a garbled circuit and return shares of the label only (no scores).
pub fn query_with(
    servers: [&str; 2],
    input: &[f32],
    timeout: Duration,
    kind: OutputKind,
    rng: &mut Prg,
) -> Result<Answer> {
    let t0 = Instant::now();
    let mut chs = Vec::with_capacity(2);
    let mut infos = Vec::with_capacity(2);
    for addr in servers {
        let mut ch = TcpChannel::connect_with_retry(addr, timeout)?;
        ch.set_read_timeout(Some(timeout.saturating_mul(3)))?;
        ch.send(CLIENT_HELLO)?;
        ch.flush()?;
        let info: ModelInfo = serde_json::from_slice(&ch.recv()?)
            .map_err(|e| EngineError::Protocol(format!("{addr}: bad model info: {e}")))?;
        chs.push(ch);
        infos.push(info);
    }
    if infos[0].party != 0 || infos[1].party != 1 {
        return Err(EngineError::Protocol(format!(
            "the first server must be party 0 and the second party 1 (got {} and {})",
            infos[0].party, infos[1].party
        )));
    }
    if infos[0].model_id != infos[1].model_id {
        return Err(EngineError::Protocol(
            "the two servers hold shares of different models".into(),
        ));
    }
    let info = infos.swap_remove(0);
    let n: usize = info.input_shape.iter().product();
    blindfold_model::engine::check_input(n, input)?;
    let f = blindfold_core::FracBits(info.frac_bits);
    let x: Vec<u64> = input
        .iter()
        .map(|&v| blindfold_core::ring::encode(v as f64, f))
        .collect();
    let (seed, x1) = crate::client::share_input(&x, rng);
    let qid = rng.gen_seed();
    let k = (kind == OutputKind::Label) as u8;
    let mut m0 = qid.to_vec();
    m0.push(k);
    m0.extend_from_slice(&seed);
    let mut m1 = qid.to_vec();
    m1.push(k);
    for v in &x1 {
        m1.extend_from_slice(&v.to_le_bytes());
    }
    chs[0].send(&m0)?;
    chs[0].flush()?;
    chs[1].send(&m1)?;
    chs[1].flush()?;
    let mut shares = Vec::with_capacity(2);
    let mut costs = Vec::with_capacity(2);
    for (i, ch) in chs.iter_mut().enumerate() {
        let r = ch.recv()?;
        match r.first() {
            Some(&RESULT_OK) if r.len() >= 5 => {
                let cl = u32::from_le_bytes(r[1..5].try_into().expect("4 bytes")) as usize;
                let body = r
                    .get(5..5 + cl)
                    .ok_or_else(|| EngineError::Protocol("truncated result".into()))?;
                let cost: QueryCost = serde_json::from_slice(body)
                    .map_err(|e| EngineError::Protocol(format!("bad cost report: {e}")))?;
                let y = &r[5 + cl..];
                let want = if kind == OutputKind::Label {
                    1
                } else {
                    info.output_len
                };
                if y.len() != want * 8 {
                    return Err(EngineError::Protocol(format!(
                        "server {i} sent {} result bytes",
                        y.len()
                    )));
                }
                shares.push(blindfold_net::bytes_to_u64s(y));
                costs.push(cost);
            }
            Some(&RESULT_ERR) => {
                return Err(EngineError::Protocol(format!(
                    "server {i}: {}",
                    String::from_utf8_lossy(&r[1..])
                )))
            }
            _ => {
                return Err(EngineError::Protocol(format!(
                    "server {i} sent a malformed result"
                )))
            }
        }
    }
    let ring = crate::client::reconstruct(&shares[0], &shares[1]);
    let of = blindfold_core::FracBits(info.output_frac_bits);
    let (label, scores) = match kind {
        OutputKind::Label => {
            let l = ring[0] as usize;
            if l >= info.output_len {
                return Err(EngineError::Protocol(format!(
                    "reconstructed label {l} is out of range"
                )));
            }
            (l, Vec::new())
        }
        OutputKind::Logits => (
            blindfold_model::engine::argmax_ring(&ring),
            ring.iter()
                .map(|&v| blindfold_core::ring::decode(v, of))
                .collect(),
        ),
    };
    let client_bytes = chs.iter().map(|c| c.stats().total().bytes()).sum();
    Ok(Answer {
        label,
        scores,
        ring,
        latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        client_bytes,
        cost: [costs[0].clone(), costs[1].clone()],
        info,
    })
}

/// Two servers on loopback in this process (demo, eval, tests): split `q`, bind
/// both on port 0, run them on threads. Dropping the cluster stops them.
pub struct LocalCluster {
    pub addrs: [String; 2],
    shutdown: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Result<()>>>,
}

impl LocalCluster {
    pub fn start(q: &blindfold_model::QModel, pool: usize, rng: &mut Prg) -> Result<LocalCluster> {
        let [s0, s1] = crate::share::split(q, rng);
        let e0 = PartyEngine::new(s0)?;
        let e1 = PartyEngine::new(s1)?;
        let l0 = TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?;
        let l1 = TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?;
        let a0 = l0
            .local_addr()
            .map_err(blindfold_net::NetError::Io)?
            .to_string();
        let a1 = l1
            .local_addr()
            .map_err(blindfold_net::NetError::Io)?
            .to_string();
        let shutdown = Arc::new(AtomicBool::new(false));
        let cfg0 = ServeConfig {
            pool,
            ..ServeConfig::default()
        };
        let cfg1 = ServeConfig {
            peer: Some(a0.clone()),
            ..cfg0.clone()
        };
        let (sd0, sd1) = (shutdown.clone(), shutdown.clone());
        let h0 = std::thread::spawn(move || run(e0, l0, cfg0, sd0));
        let h1 = std::thread::spawn(move || run(e1, l1, cfg1, sd1));
        Ok(LocalCluster {
            addrs: [a0, a1],
            shutdown,
            handles: vec![h0, h1],
        })
    }

    /// Model info and readiness as P0 reports it.
    pub fn info(&self) -> Result<ModelInfo> {
        info(&self.addrs[0], Duration::from_secs(10))
    }

    /// Wait until both servers report at least `n` preprocessed queries, or `timeout`.
    pub fn wait_ready(&self, n: usize, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let a = info(&self.addrs[0], Duration::from_secs(10))?.ready;
            let b = info(&self.addrs[1], Duration::from_secs(10))?.ready;
            if a.min(b) >= n {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(false)
    }

    /// Query the cluster for the label only.
    pub fn query_label(&self, input: &[f32], rng: &mut Prg) -> Result<Answer> {
        query_with(
            [self.addrs[0].as_str(), self.addrs[1].as_str()],
            input,
            Duration::from_secs(30),
            OutputKind::Label,
            rng,
        )
    }

    /// Query the cluster.
    pub fn query(&self, input: &[f32], rng: &mut Prg) -> Result<Answer> {
        query(
            [self.addrs[0].as_str(), self.addrs[1].as_str()],
            input,
            Duration::from_secs(30),
            rng,
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
