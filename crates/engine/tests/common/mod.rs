//! Helpers shared by the engine's integration tests: models and digits from
//! the repository, a bounded runner, servers on threads (TCP or in-memory),
//! and raw clients that speak the wire format by hand.
//!
//! Each test binary uses a different subset.
#![allow(dead_code)]

use blindfold_core::{FracBits, Prg};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::serve::wire::{Hello, ModelInfo, Query, Reply};
use blindfold_engine::serve::{self, ServeConfig};
use blindfold_engine::share::{split, ModelShare};
use blindfold_model::data::{load_idx_dir, Dataset};
use blindfold_model::engine::{argmax_ring, run_plain};
use blindfold_model::load_onnx;
use blindfold_model::quant::{quantize, QModel};
use blindfold_net::{Channel, Connection, TcpChannel};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Client timeout of a normal query.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A zoo model, quantized with the default fractional bits.
pub fn model(name: &str) -> QModel {
    let m = load_onnx(root().join(format!("models/{name}.onnx"))).unwrap();
    quantize(&m, FracBits::DEFAULT).unwrap()
}

/// The bundled MNIST test digits.
pub fn digits() -> Dataset {
    load_idx_dir(&root().join("data/mnist-test-1k")).unwrap()
}

/// Bundled digit `i` as floats.
pub fn digit(i: usize) -> Vec<f32> {
    digits().image_f32(i)
}

/// Run `f` on a thread; fail if it panics or takes longer than `secs`.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked (see above)"),
    }
}

/// Settings of a test server: pool of one, `timeout`, quiet unless
/// `BLINDFOLD_TEST_VERBOSE` is set.
pub fn config(peer: Option<String>, timeout: Duration) -> ServeConfig {
    ServeConfig {
        peer,
        pool: 1,
        timeout,
        verbose: std::env::var_os("BLINDFOLD_TEST_VERBOSE").is_some(),
        ..ServeConfig::default()
    }
}

/// One TCP server on a thread, with its own stop flag.
pub struct Server {
    pub addr: String,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<blindfold_engine::Result<()>>>,
}

impl Server {
    pub fn start(share: ModelShare, peer: Option<String>, timeout: Duration) -> Server {
        Server::start_with(share, config(peer, timeout))
    }

    /// A server with settings of its own.
    pub fn start_with(share: ModelShare, cfg: ServeConfig) -> Server {
        let engine = PartyEngine::new(share).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = Some(std::thread::spawn(move || serve::run(engine, l, cfg, s)));
        Server { addr, stop, handle }
    }

    /// Stop and wait (bounded) for the server to return; its result.
    pub fn stop(&mut self) -> Option<blindfold_engine::Result<()>> {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take()?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(h.join());
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(r)) => Some(r),
            Ok(Err(_)) => panic!("server {} panicked", self.addr),
            Err(_) => {
                eprintln!("server {} did not stop within 10 s", self.addr);
                None
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// P0 and P1 of one split of `q`, over TCP.
pub struct Pair {
    pub q: QModel,
    pub p0: Server,
    pub p1: Server,
}

impl Pair {
    pub fn start(q: QModel, seed: u8, timeout: Duration) -> Pair {
        let [s0, s1] = split(&q, &mut Prg::from_seed([seed; 16]));
        let p0 = Server::start(s0, None, timeout);
        let p1 = Server::start(s1, Some(p0.addr.clone()), timeout);
        Pair { q, p0, p1 }
    }

    pub fn addrs(&self) -> [&str; 2] {
        [self.p0.addr.as_str(), self.p1.addr.as_str()]
    }

    pub fn query(&self, x: &[f32]) -> blindfold_engine::Result<serve::Answer> {
        serve::query(self.addrs(), x, CLIENT_TIMEOUT)
    }

    /// A normal query must return the reference output, bit for bit.
    pub fn check_normal(&self, i: usize, after: &str) {
        let x = digit(i);
        let want = run_plain(&self.q, &x).unwrap();
        let ans = self
            .query(&x)
            .unwrap_or_else(|e| panic!("normal query after {after}: {e}"));
        assert_eq!(ans.label, argmax_ring(&want), "label after {after}");
        assert_eq!(ans.ring, want, "output after {after}");
    }
}

/// Greet a server over an open connection; its model info.
pub fn greet(ch: &mut impl Connection) -> ModelInfo {
    ch.set_deadline(Some(Instant::now() + Duration::from_secs(30)))
        .unwrap();
    ch.send_vec(Hello::Client.encode()).unwrap();
    ch.flush().unwrap();
    ModelInfo::decode(&ch.recv().unwrap()).unwrap()
}

/// A raw TCP client connection: hello sent, model info read.
pub fn raw_client(addr: &str) -> (TcpChannel, ModelInfo) {
    let mut ch = TcpChannel::connect_with_retry(addr, CLIENT_TIMEOUT).unwrap();
    let info = greet(&mut ch);
    (ch, info)
}

/// Send `msg` (bytes of a query, well formed or not); the server's reply.
pub fn send_raw(ch: &mut impl Channel, msg: &[u8]) -> Reply {
    ch.send(msg).unwrap();
    ch.flush().unwrap();
    Reply::decode(&ch.recv().expect("a reply")).expect("a well-formed reply")
}

/// Send a query; the server's reply.
pub fn send_query(ch: &mut impl Channel, q: &Query) -> Reply {
    send_raw(ch, &q.encode())
}

/// Wait until the server closes `s` (read returns 0 or an error); panic after `secs`.
pub fn expect_closed(s: &mut TcpStream, secs: u64, what: &str) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: the server kept the connection open for {secs} s"
        );
    }
}

/// Both engines on two threads over an in-memory channel with fixed seeds: one
/// session, one fresh offline bundle per input. Shares each encoded input as a
/// client would and returns the reconstructed outputs.
pub fn run_two_party(e0: PartyEngine, e1: PartyEngine, inputs: &[Vec<u64>]) -> Vec<Vec<u64>> {
    use blindfold_engine::sharing::{reconstruct, share0_from_seed, share_input};
    let mut rng = Prg::from_seed([42; 16]);
    let shares: Vec<_> = inputs.iter().map(|x| share_input(x, &mut rng)).collect();
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let (mut c0, mut c1) = blindfold_net::MemoryChannel::pair();
    let (seeds, x1s): (Vec<_>, Vec<_>) = shares.into_iter().unzip();
    let t1 = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut sess = e1.setup(&mut c1, &mut rng).unwrap();
        x1s.into_iter()
            .map(|x1| {
                let b = e1.offline(&mut c1, &mut sess, &mut rng).unwrap();
                e1.online(&mut c1, b, x1).unwrap().0
            })
            .collect::<Vec<_>>()
    });
    let mut rng0 = Prg::from_seed([0; 16]);
    let mut sess = e0.setup(&mut c0, &mut rng0).unwrap();
    let y0s: Vec<Vec<u64>> = seeds
        .into_iter()
        .zip(lens)
        .map(|(seed, len)| {
            let b = e0.offline(&mut c0, &mut sess, &mut rng0).unwrap();
            e0.online(&mut c0, b, share0_from_seed(seed, len))
                .unwrap()
                .0
        })
        .collect();
    let y1s = t1.join().unwrap();
    y0s.iter()
        .zip(&y1s)
        .map(|(a, b)| reconstruct(a, b))
        .collect()
}

/// Client-server engines (`e0` the server, `e1` the client) on two threads over
/// the in-memory channel: the client's share is the input, the server's zero. Returns the reconstructed outputs.
pub fn run_client_server(
    e0: PartyEngine,
    e1: PartyEngine,
    xs: &[Vec<u64>],
    kind: blindfold_engine::party::OutputKind,
) -> Vec<Vec<u64>> {
    use blindfold_engine::sharing::reconstruct;
    let (mut c0, mut c1) = blindfold_net::MemoryChannel::pair();
    let inputs = xs.to_vec();
    let client = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut sess = e1.setup(&mut c1, &mut rng).unwrap();
        inputs
            .into_iter()
            .map(|x| {
                let b = e1.offline(&mut c1, &mut sess, &mut rng).unwrap();
                e1.online_with(&mut c1, b, x, kind).unwrap().0
            })
            .collect::<Vec<_>>()
    });
    let mut rng = Prg::from_seed([0; 16]);
    let mut sess = e0.setup(&mut c0, &mut rng).unwrap();
    let ys0: Vec<Vec<u64>> = xs
        .iter()
        .map(|x| {
            let b = e0.offline(&mut c0, &mut sess, &mut rng).unwrap();
            e0.online_with(&mut c0, b, vec![0; x.len()], kind)
                .unwrap()
                .0
        })
        .collect();
    let ys1 = client.join().unwrap();
    ys0.iter()
        .zip(&ys1)
        .map(|(a, b)| reconstruct(a, b))
        .collect()
}
