//! Framed channels over any byte stream that splits into an owned reader and
//! writer half, with whole-exchange deadlines.
//!
//! ```text
//!   S: SplitStream ──split()──▶ (S::Reader, S::Writer)
//!        reader: this thread, BufReader, every read re-armed with the time left
//!        writer: a BackgroundWriter thread (sends never block on a busy peer)
//! ```
//!
//! [`SplitStream`] is implemented for `TcpStream` (by `try_clone`) and for the
//! in-memory [`PipeStream`](crate::PipeStream). A stream that cannot be cloned
//! (TLS) implements it with two halves sharing the connection under a lock.
//!
//! A *deadline* ([`Connection::set_deadline`]) bounds a whole exchange (a
//! handshake, a session setup, one job): each read waits at most until it, the
//! OS read timeout being set to the time that remains before every read. Past
//! the deadline `recv` fails with [`NetError::Timeout`] (recoverable, like every
//! timeout: a frame half read is kept).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::framed::{BackgroundWriter, FramedChannel};
use crate::{Channel, NetError, Result, Stats};

/// A reader whose blocking reads can be bounded in time.
pub trait TimedRead: Read {
    /// Make the next reads fail with `TimedOut` or `WouldBlock` after `t`
    /// without data (`None`: wait forever). `t` is never zero.
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()>;
    /// Bound each blocking write on the same socket (`None`: block). A peer
    /// that stops reading then fails the writer instead of holding it (and
    /// the connection's thread) forever. Sources without a socket ignore it.
    fn set_write_timeout(&mut self, _t: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// A byte stream that splits into an owned reader half and an owned writer
/// half, usable from two threads at once.
pub trait SplitStream: Send + 'static {
    type Reader: TimedRead + Send + 'static;
    type Writer: Write + Send + 'static;
    /// The peer, for log lines (an address, a name).
    fn peer(&self) -> String;
    /// Who the peer proved to be (the role its certificate names), if the
    /// stream authenticates peers at all.
    fn identity(&self) -> Option<String> {
        None
    }
    fn split(self) -> io::Result<(Self::Reader, Self::Writer)>;
}

impl TimedRead for TcpStream {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
}

impl SplitStream for TcpStream {
    type Reader = TcpStream;
    type Writer = TcpStream;
    fn peer(&self) -> String {
        self.peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    }
    fn split(self) -> io::Result<(TcpStream, TcpStream)> {
        Ok((self.try_clone()?, self))
    }
}

/// A channel whose reads can be bounded by a deadline; what the serving layer
/// needs of a connection besides [`Channel`].
pub trait Connection: Channel + 'static {
    /// Bound every following read by `deadline` (`None`: no deadline). A read
    /// waits at most until the deadline (and at most the per-read timeout, if
    /// one is set); past it, `recv` fails with [`NetError::Timeout`].
    fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<()>;
    /// The largest payload this end accepts and sends from now on (at most
    /// `u32::MAX`; default [`crate::DEFAULT_MAX_FRAME`]). A longer frame is
    /// [`NetError::FrameTooLarge`] before anything is allocated for it: a
    /// server keeps the limit small while it does not know who is on the
    /// other end.
    fn set_max_frame(&mut self, max: usize);
    /// The peer, for log lines.
    fn peer(&self) -> String;
    /// Who the peer proved to be (a TLS certificate's role), `None` on an
    /// unauthenticated transport.
    fn peer_identity(&self) -> Option<&str> {
        None
    }
}

/// Re-arms the reader's OS timeout before every read.
pub(crate) struct Timed<R: TimedRead> {
    inner: R,
    deadline: Option<Instant>,
    per_read: Option<Duration>,
    /// The timeout currently set on `inner`.
    armed: Option<Duration>,
}

impl<R: TimedRead> Timed<R> {
    fn new(inner: R) -> Timed<R> {
        Timed {
            inner,
            deadline: None,
            per_read: None,
            armed: None,
        }
    }
}

impl<R: TimedRead> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = match self.deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(io::ErrorKind::TimedOut.into()),
            },
        };
        let wait = match (left, self.per_read) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if wait != self.armed || self.deadline.is_some() {
            self.inner.set_read_timeout(wait)?;
            self.armed = wait;
        }
        self.inner.read(buf)
    }
}

/// A framed, metered channel over one [`SplitStream`].
pub struct StreamChannel<S: SplitStream> {
    inner: FramedChannel<Timed<S::Reader>, BackgroundWriter>,
    peer: String,
    identity: Option<String>,
}

impl<S: SplitStream> StreamChannel<S> {
    /// Split `stream` and start the writer thread.
    pub fn new(stream: S) -> Result<StreamChannel<S>> {
        let peer = stream.peer();
        let identity = stream.identity();
        let (r, w) = stream.split()?;
        let writer = BackgroundWriter::new(w)?;
        Ok(StreamChannel {
            inner: FramedChannel::new(Timed::new(r), writer),
            peer,
            identity,
        })
    }

    /// Make each `recv` fail with [`NetError::Timeout`] after `t` without data
    /// (`None`: wait forever), deadline or not. A timeout is recoverable:
    /// calling `recv` again resumes a frame that was half read.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        if t.is_some_and(|t| t.is_zero()) {
            return Err(NetError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero read timeout",
            )));
        }
        self.inner.reader_mut().per_read = t;
        Ok(())
    }

    /// Largest payload accepted and sent (default [`crate::DEFAULT_MAX_FRAME`]).
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.set_max_frame(max)
    }
}

impl<S: SplitStream> Channel for StreamChannel<S> {
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

impl<S: SplitStream> Connection for StreamChannel<S> {
    fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        let r = self.inner.reader_mut();
        r.deadline = deadline;
        // Writes get the same bound (the socket option is shared with the
        // writer thread's handle): a peer that stops reading cannot keep the
        // writer, and so the connection, blocked past the exchange's deadline.
        let write_limit = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10))
        });
        r.inner
            .set_write_timeout(write_limit)
            .map_err(NetError::Io)?;
        Ok(())
    }
    fn set_max_frame(&mut self, max: usize) {
        self.inner.set_max_frame(max)
    }
    fn peer(&self) -> String {
        self.peer.clone()
    }
    fn peer_identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }
}
