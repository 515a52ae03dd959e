//! FHE over the network: the same files as [`crate::files`], carried over any
//! `blindfold-net` transport (TCP, mutually authenticated TLS, in-memory).
//!
//! ```text
//!  client                                   server (model in clear, no secret key)
//!  HELLO ──────────────────────────────────▶
//!        ◀────────────────────────────────── profile (shapes, quantization, parameters)
//!  evaluation keys (blob) ─────────────────▶ checked against the model
//!        ◀────────────────────────────────── OK | ERR message
//!  query ciphertexts (blob) ───────────────▶ evaluate
//!        ◀────────────────────────────────── result ciphertexts (blob) | ERR message
//!  ... more queries on the same keys ...
//! ```
//!
//! Blobs (keys reach hundreds of MB) go as a length frame and chunks of at
//! most 16 MiB; the server caps a blob at [`MAX_BLOB`] before reading it. The
//! server never decrypts: it holds no secret key.

use crate::files::{self, ClientKeys, Server, ServerKeys};
use crate::{FheError, Profile, Progress};
use blindfold_net::{Channel, Connection, Listener, Transport};
use rand_core::{CryptoRng, RngCore};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HELLO: &[u8] = b"BFFHE-HELLO\x01";
const CHUNK: usize = 16 << 20;
/// Largest blob a client reads (a result); the server bounds what it reads by
/// its own parameters ([`Server::max_eval_key_bytes`], [`Server::max_query_bytes`]).
pub const MAX_BLOB: u64 = 4 << 30;

fn net(e: blindfold_net::NetError) -> FheError {
    FheError::Io(format!("network: {e}"))
}

fn send_blob(ch: &mut impl Channel, b: &[u8]) -> Result<(), FheError> {
    ch.send(&(b.len() as u64).to_le_bytes()).map_err(net)?;
    for c in b.chunks(CHUNK) {
        ch.send(c).map_err(net)?;
    }
    ch.flush().map_err(net)
}

fn recv_blob(ch: &mut impl Channel, max: u64) -> Result<Vec<u8>, FheError> {
    let len = ch.recv_exact(8).map_err(net)?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    if len > max {
        return Err(FheError::Format(format!(
            "a message of {len} bytes exceeds the limit of {max}"
        )));
    }
    let mut out = Vec::with_capacity(len.min(CHUNK as u64) as usize);
    while (out.len() as u64) < len {
        let c = ch.recv().map_err(net)?;
        if c.is_empty() || out.len() as u64 + c.len() as u64 > len {
            return Err(FheError::Format(
                "a message chunk has the wrong size".into(),
            ));
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn reply(ch: &mut impl Channel, r: Result<Vec<u8>, FheError>) -> Result<(), FheError> {
    match r {
        Ok(b) => {
            ch.send(b"OK").map_err(net)?;
            send_blob(ch, &b)
        }
        Err(e) => {
            ch.send(format!("ERR:{e}").as_bytes()).map_err(net)?;
            ch.flush().map_err(net)
        }
    }
}

fn expect_ok(ch: &mut impl Channel) -> Result<(), FheError> {
    let m = ch.recv().map_err(net)?;
    if m == b"OK" {
        return Ok(());
    }
    match m.strip_prefix(b"ERR:") {
        Some(e) => Err(FheError::Io(format!(
            "server: {}",
            String::from_utf8_lossy(e)
        ))),
        None => Err(FheError::Format("malformed server reply".into())),
    }
}

/// Serving limits.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Deadline for each exchange (a slow peer is dropped).
    pub timeout: Duration,
    pub max_connections: usize,
    pub verbose: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            timeout: Duration::from_secs(300),
            max_connections: 8,
            verbose: true,
        }
    }
}

/// One client session on the server side.
pub fn handle<C: Connection>(
    server: &Server,
    mut ch: C,
    cfg: &ServiceConfig,
) -> Result<usize, FheError> {
    let deadline = || Some(Instant::now() + cfg.timeout);
    ch.set_deadline(deadline()).map_err(net)?;
    ch.set_max_frame(1 << 10);
    let hello = ch.recv().map_err(net)?;
    if hello != HELLO {
        return Err(FheError::Format("not an FHE client".into()));
    }
    // a hello is small; from here on frames are chunks (the limit bounds
    // what this end sends too: a latency profile lists the first layer's
    // connections and can be hundreds of KB)
    ch.set_max_frame(CHUNK);
    let profile = files::profile_to_bytes(&server.model.profile());
    send_blob(&mut ch, &profile)?;
    ch.set_deadline(deadline()).map_err(net)?;
    let ek = recv_blob(&mut ch, server.max_eval_key_bytes())?;
    let keys = ServerKeys::for_server(&ek, server);
    let keys = match keys {
        Ok(k) => {
            ch.send(b"OK").map_err(net)?;
            ch.flush().map_err(net)?;
            k
        }
        Err(e) => {
            reply(&mut ch, Err(e))?;
            return Ok(0);
        }
    };
    let mut served = 0;
    loop {
        // an idle client (or one that stops reading) frees its slot after
        // `timeout`: every exchange has a deadline, evaluation itself none
        ch.set_deadline(deadline()).map_err(net)?;
        let q = match recv_blob(&mut ch, server.max_query_bytes()) {
            Ok(q) => q,
            Err(FheError::Io(_)) => return Ok(served),
            Err(e) => return Err(e),
        };
        ch.set_deadline(None).map_err(net)?;
        let r = server.evaluate(&keys, &q, &Progress::none());
        if r.is_ok() {
            served += 1;
        }
        ch.set_deadline(deadline()).map_err(net)?;
        reply(&mut ch, r)?;
    }
}

/// Serve clients from `listener` until `stop` is set, one thread per client.
pub fn run<L: Listener>(
    server: Arc<Server>,
    listener: L,
    cfg: ServiceConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), FheError> {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let Some(ch) = listener
            .accept(Instant::now() + Duration::from_millis(200))
            .map_err(net)?
        else {
            continue;
        };
        if active.load(Ordering::Relaxed) >= cfg.max_connections {
            drop(ch);
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (server, cfg, active) = (server.clone(), cfg.clone(), active.clone());
        std::thread::spawn(move || {
            // released even if the session panics, so no session can hold a slot
            struct Slot(Arc<AtomicUsize>);
            impl Drop for Slot {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _slot = Slot(active);
            let peer = ch.peer();
            let t = Instant::now();
            match handle(&server, ch, &cfg) {
                Ok(n) if cfg.verbose => eprintln!(
                    "client {peer}: {n} encrypted quer{} answered in {:.1} s",
                    if n == 1 { "y" } else { "ies" },
                    t.elapsed().as_secs_f64()
                ),
                Err(e) if cfg.verbose => eprintln!("client {peer}: {e}"),
                _ => {}
            }
        });
    }
    Ok(())
}

/// What a query brings back.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Per input, the output integers (decode with [`Profile::decode`]).
    pub outputs: Vec<Vec<i128>>,
    /// Noise budget left (bits) in the tightest result ciphertext.
    pub noise_budget: i64,
    pub upload_bytes: usize,
    pub download_bytes: usize,
}

/// A client session: keys made locally, evaluation keys sent once.
pub struct FheClient<C: Connection> {
    ch: C,
    pub keys: ClientKeys,
    pub key_bytes: usize,
}

impl<C: Connection> FheClient<C> {
    /// Connect, read the profile, make keys, upload the evaluation keys.
    pub fn connect<T: Transport<Conn = C>, R: RngCore + CryptoRng>(
        t: &T,
        addr: &str,
        timeout: Duration,
        rng: &mut R,
    ) -> Result<FheClient<C>, FheError> {
        let mut ch = t.connect(addr, Instant::now() + timeout).map_err(net)?;
        ch.set_max_frame(CHUNK);
        ch.send(HELLO).map_err(net)?;
        ch.flush().map_err(net)?;
        let profile: Profile = files::profile_from_bytes(&recv_blob(&mut ch, 1 << 30)?)?;
        let (keys, _, eval) = files::generate(&profile, rng)?;
        send_blob(&mut ch, &eval)?;
        expect_ok(&mut ch)?;
        Ok(FheClient {
            ch,
            keys,
            key_bytes: eval.len(),
        })
    }

    pub fn profile(&self) -> &Profile {
        &self.keys.profile
    }

    /// Encrypt, send, wait, decrypt.
    pub fn query<R: RngCore + CryptoRng>(
        &mut self,
        inputs: &[Vec<f32>],
        rng: &mut R,
    ) -> Result<Answer, FheError> {
        let q = self.keys.encrypt(inputs, rng)?;
        send_blob(&mut self.ch, &q)?;
        expect_ok(&mut self.ch)?;
        let r = recv_blob(&mut self.ch, MAX_BLOB)?;
        let (outputs, noise_budget) = self.keys.decrypt(&r)?;
        Ok(Answer {
            outputs,
            noise_budget,
            upload_bytes: q.len(),
            download_bytes: r.len(),
        })
    }
}
