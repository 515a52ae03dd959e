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
//! algorithm would add a delay to every round. A [`TcpChannel`] is the generic
//! [`StreamChannel`] over a `TcpStream`; [`crate::TcpTransport`] and
//! [`crate::TcpAcceptor`] make them for the serving layer.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::stream::StreamChannel;
use crate::{NetError, Result};

/// A framed, metered channel over one TCP stream.
pub type TcpChannel = StreamChannel<TcpStream>;

impl StreamChannel<TcpStream> {
    /// Wrap a connected stream (sets `TCP_NODELAY`, starts the writer thread).
    pub fn from_stream(stream: TcpStream) -> Result<TcpChannel> {
        stream.set_nodelay(true)?;
        StreamChannel::new(stream)
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

    /// The peer's address, if known.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        crate::Connection::peer(self).parse().ok()
    }

    /// Accept one connection on `listener` (blocking).
    pub fn accept(listener: &TcpListener) -> Result<TcpChannel> {
        let (s, _) = listener.accept()?;
        TcpChannel::from_stream(s)
    }
}
