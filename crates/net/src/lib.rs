//! # blindfold-net
//!
//! Protocol code never touches sockets: it talks to a [`Channel`], an ordered,
//! reliable, authenticated duplex pipe of *messages* (frames) to the other party.
//!
//! ```text
//!   party A                                   party B
//!   ───────                                   ───────
//!   send(m1) ─┐  (queued, counted)
//!   send(m2) ─┤
//!   flush()  ─┴──── [len m1][m1][len m2][m2] ───▶ recv() = m1, recv() = m2
//!   recv()   ◀───────────── [len m3][m3] ──────── send(m3); flush()
//! ```
//!
//! * [`MemoryChannel::pair`]: an in-memory duplex pair for two-thread tests.
//! * [`TcpChannel`]: blocking TCP with `TCP_NODELAY`, a background writer thread
//!   (sends never block on a peer that is itself busy sending), and length-prefixed
//!   framing with a maximum frame size ([`framed`]).
//! * [`FramedChannel`]: the framing over any `Read` / `Write` pair, so TLS (or any
//!   other byte stream) slots in later without touching protocols.
//! * [`StreamChannel`]: framing, metering and a background writer over any
//!   [`SplitStream`] (a stream with an owned reader and writer half: TCP by
//!   `try_clone`, the in-memory [`pipe`]), with whole-exchange deadlines
//!   ([`Connection::set_deadline`]). [`TcpChannel`] is one.
//! * [`Transport`] / [`Listener`]: making and accepting connections, over TCP
//!   ([`TcpTransport`], [`TcpAcceptor`]) or an in-memory network
//!   ([`MemoryNetwork`]), so whole servers run in tests without sockets.
//! * Every channel meters bytes, messages and rounds per direction and per labelled
//!   phase ([`Channel::set_phase`], [`Channel::stats`], [`Stats`]).
//!
//! A frame on the wire is a little-endian `u32` payload length followed by the
//! payload. Byte counters count wire bytes (payload + 4) on every channel, the
//! memory channel included, so figures measured in tests equal those over TCP.
//!
//! ```
//! use blindfold_net::{Channel, MemoryChannel};
//! let (mut a, mut b) = MemoryChannel::pair();
//! let peer = std::thread::spawn(move || {
//!     let x = b.recv_u64s(2).unwrap();
//!     b.send_u64(x[0].wrapping_add(x[1])).unwrap();
//!     b.flush().unwrap();
//! });
//! a.set_phase("online");
//! a.send_u64s(&[40, 2]).unwrap();
//! a.flush().unwrap();
//! assert_eq!(a.recv_u64().unwrap(), 42);
//! peer.join().unwrap();
//! let online = a.stats().phase("online").copied().unwrap();
//! assert_eq!((online.bytes_sent, online.rounds()), (4 + 16, 2));
//! ```
#![deny(unsafe_code)]

pub mod framed;
mod memory;
mod meter;
mod pipe;
pub mod shaped;
mod stream;
mod tcp;
pub mod tls;
mod transport;
pub mod ws;

pub use blindfold_core::Block;
pub use framed::{BackgroundWriter, FramedChannel, DEFAULT_MAX_FRAME, FRAME_HEADER};
pub use memory::MemoryChannel;
pub use meter::{Counters, Meter, Stats, DEFAULT_PHASE};
pub use pipe::{pipe, PipeReader, PipeStream, PipeWriter, PIPE_CAPACITY};
pub use shaped::{ShapedAcceptor, ShapedChannel, ShapedTransport};
pub use stream::{Connection, SplitStream, StreamChannel, TimedRead};
pub use tcp::TcpChannel;
pub use tls::{TlsAcceptor, TlsChannel, TlsIdentity, TlsRole, TlsTransport};
pub use transport::{
    Listener, MemoryListener, MemoryNetwork, PipeChannel, TcpAcceptor, TcpTransport, Transport,
};

/// Errors of a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The TLS handshake or a TLS record failed (a certificate refused, a
    /// record tampered with).
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer closed the connection cleanly (between two frames).
    #[error("peer closed the connection")]
    Closed,
    /// The peer announced a frame longer than this channel accepts.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {got} of {expected} bytes received")]
    Truncated { expected: usize, got: usize },
    /// A message did not have the length the protocol step expects.
    #[error("message of {got} bytes where {expected} were expected")]
    UnexpectedLength { expected: usize, got: usize },
    /// No (complete) message arrived within the read timeout. Recoverable: a
    /// frame half read is kept, and the next `recv` resumes it.
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, NetError>;

/// A reliable, ordered, authenticated duplex message channel to the other party.
///
/// Only [`send`](Channel::send), [`recv`](Channel::recv) and
/// [`flush`](Channel::flush) are required; the typed helpers have default
/// implementations in terms of them. `send` may buffer: call `flush` before
/// waiting for an answer, or the peer may wait forever.
pub trait Channel: Send {
    /// Queue one message (a frame) to the peer.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receive the next message from the peer.
    fn recv(&mut self) -> Result<Vec<u8>>;
    /// Push queued messages out.
    fn flush(&mut self) -> Result<()>;

    /// Queue one owned message; channels that can take ownership avoid a copy.
    fn send_vec(&mut self, msg: Vec<u8>) -> Result<()> {
        self.send(&msg)
    }

    /// Label the traffic that follows (e.g. `"offline"`, `"layer3/relu"`) for
    /// [`stats`](Channel::stats). Channels without a meter ignore it.
    fn set_phase(&mut self, _label: &str) {}

    /// A snapshot of the traffic counters, per phase. Channels without a meter
    /// return empty statistics.
    fn stats(&self) -> Stats {
        Stats::default()
    }

    /// Receive a message that must be exactly `len` bytes long.
    fn recv_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        let m = self.recv()?;
        if m.len() != len {
            return Err(NetError::UnexpectedLength {
                expected: len,
                got: m.len(),
            });
        }
        Ok(m)
    }

    /// Send ring elements (little endian) as one message.
    fn send_u64s(&mut self, xs: &[u64]) -> Result<()> {
        let mut buf = Vec::with_capacity(xs.len() * 8);
        for x in xs {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        self.send_vec(buf)
    }

    /// Receive exactly `n` ring elements sent by [`send_u64s`](Channel::send_u64s).
    fn recv_u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let len = n.checked_mul(8).ok_or(NetError::FrameTooLarge {
            len: usize::MAX,
            max: DEFAULT_MAX_FRAME,
        })?;
        let m = self.recv_exact(len)?;
        Ok(bytes_to_u64s(&m))
    }

    /// Send one ring element as one message.
    fn send_u64(&mut self, x: u64) -> Result<()> {
        self.send(&x.to_le_bytes())
    }

    /// Receive one ring element.
    fn recv_u64(&mut self) -> Result<u64> {
        Ok(self.recv_u64s(1)?[0])
    }

    /// Send 128-bit blocks (little endian) as one message.
    fn send_blocks(&mut self, bs: &[Block]) -> Result<()> {
        let mut buf = Vec::with_capacity(bs.len() * 16);
        for b in bs {
            buf.extend_from_slice(&b.to_bytes());
        }
        self.send_vec(buf)
    }

    /// Receive exactly `n` blocks sent by [`send_blocks`](Channel::send_blocks).
    fn recv_blocks(&mut self, n: usize) -> Result<Vec<Block>> {
        let len = n.checked_mul(16).ok_or(NetError::FrameTooLarge {
            len: usize::MAX,
            max: DEFAULT_MAX_FRAME,
        })?;
        let m = self.recv_exact(len)?;
        Ok(bytes_to_blocks(&m))
    }
}

/// Decode little-endian `u64`s; a trailing partial word is ignored.
pub fn bytes_to_u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect()
}

/// Decode little-endian blocks; a trailing partial block is ignored.
pub fn bytes_to_blocks(b: &[u8]) -> Vec<Block> {
    b.chunks_exact(16)
        .map(|c| {
            let mut w = [0u8; 16];
            w.copy_from_slice(c);
            Block::from_bytes(w)
        })
        .collect()
}

impl<C: Channel + ?Sized> Channel for &mut C {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn send_vec(&mut self, msg: Vec<u8>) -> Result<()> {
        (**self).send_vec(msg)
    }
    fn set_phase(&mut self, label: &str) {
        (**self).set_phase(label)
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn send_vec(&mut self, msg: Vec<u8>) -> Result<()> {
        (**self).send_vec(msg)
    }
    fn set_phase(&mut self, label: &str) {
        (**self).set_phase(label)
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
}
