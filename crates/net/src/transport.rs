//! Transports: how connections are made, so that serving code is the same over
//! TCP, over in-memory pipes (whole-server tests) and, later, over TLS.
//!
//! ```text
//!   Transport::connect(addr, deadline) ──▶ Conn ◀── Listener::accept(deadline)
//!   TcpTransport:    TcpStream      → StreamChannel<TcpStream>  (TcpChannel)
//!   MemoryNetwork:   PipeStream     → StreamChannel<PipeStream> (PipeChannel)
//! ```
//!
//! A connection is a [`Connection`]: a framed, metered [`Channel`](crate::Channel)
//! with whole-exchange deadlines. Both built-in transports frame, meter and
//! write in the background in the same code ([`StreamChannel`]), so figures
//! measured over pipes equal those over sockets.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pipe::{pipe, PipeStream};
use crate::stream::{Connection, StreamChannel};
use crate::{NetError, Result};

/// How often connecting is retried while the peer is not listening.
const RETRY: Duration = Duration::from_millis(50);
/// How often a non-blocking TCP listener is polled.
const POLL: Duration = Duration::from_millis(10);

/// Makes outgoing connections.
pub trait Transport: Clone + Send + Sync + 'static {
    type Conn: Connection;
    /// Connect to `addr`, retrying until `deadline` while nobody listens there;
    /// then the last error.
    fn connect(&self, addr: &str, deadline: Instant) -> Result<Self::Conn>;
}

/// Accepts incoming connections.
pub trait Listener: Send + 'static {
    type Conn: Connection;
    /// The next connection, waiting at most until `deadline` (`Ok(None)`:
    /// none came). Errors of one incoming connection (it reset at once) are
    /// `Err` and do not close the listener.
    fn accept(&self, deadline: Instant) -> Result<Option<Self::Conn>>;
    /// Where peers connect to.
    fn local_addr(&self) -> String;
}

/// A framed channel over an in-memory pipe.
pub type PipeChannel = StreamChannel<PipeStream>;

/// Blocking TCP (`TCP_NODELAY`, background writer).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl TcpTransport {
    /// The connected stream, retrying until `deadline` while nobody listens.
    pub fn connect_stream(&self, addr: &str, deadline: Instant) -> Result<TcpStream> {
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() + RETRY >= deadline => return Err(NetError::Io(e)),
                Err(_) => std::thread::sleep(RETRY),
            }
        }
    }
}

impl Transport for TcpTransport {
    type Conn = crate::TcpChannel;
    fn connect(&self, addr: &str, deadline: Instant) -> Result<crate::TcpChannel> {
        crate::TcpChannel::from_stream(self.connect_stream(addr, deadline)?)
    }
}

/// A TCP listener polled without blocking, so `accept` honours its deadline.
pub struct TcpAcceptor {
    listener: TcpListener,
    addr: String,
}

impl TcpAcceptor {
    pub fn new(listener: TcpListener) -> Result<TcpAcceptor> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        Ok(TcpAcceptor { listener, addr })
    }
}

impl Listener for TcpAcceptor {
    type Conn = crate::TcpChannel;
    fn accept(&self, deadline: Instant) -> Result<Option<crate::TcpChannel>> {
        self.accept_stream(deadline)?
            .map(crate::TcpChannel::from_stream)
            .transpose()
    }
    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

impl TcpAcceptor {
    /// The next connection's stream (blocking again), waiting at most until
    /// `deadline`.
    pub fn accept_stream(&self, deadline: Instant) -> Result<Option<TcpStream>> {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return Ok(Some(s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(POLL);
                }
                Err(e) => return Err(NetError::Io(e)),
            }
        }
    }
}

/// Connections waiting for a [`MemoryListener`]'s `accept`.
const BACKLOG: usize = 64;

/// An in-memory network of named listeners (addresses `mem:1`, `mem:2`, ...).
/// Cheap to clone; clones share the network.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<NetInner>,
}

#[derive(Default)]
struct NetInner {
    listeners: Mutex<HashMap<String, SyncSender<PipeStream>>>,
    next: AtomicU64,
}

impl MemoryNetwork {
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// Listen on a fresh address.
    pub fn listen(&self) -> MemoryListener {
        let addr = format!("mem:{}", self.inner.next.fetch_add(1, Ordering::SeqCst) + 1);
        let (tx, rx) = mpsc::sync_channel(BACKLOG);
        self.lock().insert(addr.clone(), tx);
        MemoryListener {
            net: self.clone(),
            addr,
            rx: Mutex::new(rx),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SyncSender<PipeStream>>> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A raw byte stream to `addr` (tests that send malformed bytes), retrying
    /// until `deadline` while nobody listens there.
    pub fn connect_stream(&self, addr: &str, deadline: Instant) -> Result<PipeStream> {
        let mut n = 0u64;
        loop {
            let tx = self.lock().get(addr).cloned();
            if let Some(tx) = tx {
                n += 1;
                let (mine, theirs) = pipe(addr, &format!("{addr}/client{n}"));
                match tx.try_send(theirs) {
                    Ok(()) => return Ok(mine),
                    Err(mpsc::TrySendError::Disconnected(_)) => {
                        self.lock().remove(addr);
                    }
                    Err(mpsc::TrySendError::Full(_)) => {}
                }
            }
            if Instant::now() + RETRY >= deadline {
                return Err(NetError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on {addr}"),
                )));
            }
            std::thread::sleep(RETRY);
        }
    }
}

impl Transport for MemoryNetwork {
    type Conn = PipeChannel;
    fn connect(&self, addr: &str, deadline: Instant) -> Result<PipeChannel> {
        StreamChannel::new(self.connect_stream(addr, deadline)?)
    }
}

/// A listener on a [`MemoryNetwork`]; dropping it frees the address.
pub struct MemoryListener {
    net: MemoryNetwork,
    addr: String,
    rx: Mutex<Receiver<PipeStream>>,
}

impl Listener for MemoryListener {
    type Conn = PipeChannel;
    fn accept(&self, deadline: Instant) -> Result<Option<PipeChannel>> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => StreamChannel::new(s).map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(NetError::Closed),
        }
    }
    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        self.net.lock().remove(&self.addr);
    }
}
