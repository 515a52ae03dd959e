//! Blocking TCP channels.
//!
//! ```text
//!   P0: TcpChannel::accept(&listener)      P1: TcpChannel::connect_with_retry(addr, 10s)
//!        │                                      │
//!        └──────────── one TCP stream ──────────┘
//!   reads: this thread, through a 256 KiB buffer
//!   writes: a BackgroundWriter thread (flush hands the buffer over and returns)
//! ```
//!
//! `TCP_NODELAY` is set: protocols flush whole flights themselves, and Nagle's
//! algorithm would add a delay to every round.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::framed::{BackgroundWriter, FramedChannel};
use crate::{Channel, NetError, Result, Stats};

/// A framed, metered channel over one TCP stream.
pub struct TcpChannel {
    inner: FramedChannel<TcpStream, BackgroundWriter>,
    peer: Option<std::net::SocketAddr>,
}

impl TcpChannel {
    /// Wrap a connected stream (sets `TCP_NODELAY`, starts the writer thread).
    pub fn from_stream(stream: TcpStream) -> Result<TcpChannel> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        let writer = BackgroundWriter::new(stream.try_clone()?)?;
        Ok(TcpChannel {
            inner: FramedChannel::new(stream, writer),
            peer,
        })
    }

    /// Connect once.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<TcpChannel> {
        TcpChannel::from_stream(TcpStream::connect(addr)?)
    }

    /// Connect, retrying every 50 ms until `timeout` has passed (the peer may
    /// not be listening yet). Returns the last connection error on timeout.
    pub fn connect_with_retry(addr: impl ToSocketAddrs, timeout: Duration) -> Result<TcpChannel> {
        let deadline = Instant::now() + timeout;
        loop {
            match TcpStream::connect(&addr) {
                Ok(s) => return TcpChannel::from_stream(s),
                Err(e) if Instant::now() >= deadline => return Err(NetError::Io(e)),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Accept one connection on `listener`.
    pub fn accept(listener: &TcpListener) -> Result<TcpChannel> {
        let (s, _) = listener.accept()?;
        TcpChannel::from_stream(s)
    }

    /// Make `recv` fail with [`NetError::Timeout`] after `t` without data
    /// (`None`: wait forever). A timeout is recoverable: calling `recv` again
    /// resumes a frame that was half read.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.inner.reader().set_read_timeout(t)?;
        Ok(())
    }

    /// Largest payload accepted and sent (default [`crate::DEFAULT_MAX_FRAME`]).
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.set_max_frame(max)
    }

    /// The peer's address, if known.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer
    }
}

impl Channel for TcpChannel {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        self.inner.recv()
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn set_phase(&mut self, label: &str) {
        self.inner.set_phase(label)
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}
