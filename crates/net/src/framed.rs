//! Length-prefixed framing over any byte stream.
//!
//! ```text
//!   ┌──────────────── frame ────────────────┐
//!   │ len: u32 little endian │ len bytes     │
//!   └───────────────────────────────────────┘
//! ```
//!
//! A receiver never trusts `len`: above the channel's maximum frame size it is an
//! error ([`NetError::FrameTooLarge`]) and nothing is allocated; below it, the
//! payload buffer grows with the bytes that actually arrive (at most
//! [`READ_CHUNK`] ahead), so a lying length followed by a short stream costs at
//! most one chunk before [`NetError::Truncated`]. A clean end of stream between
//! frames is [`NetError::Closed`]. A read timeout ([`NetError::Timeout`]) is
//! recoverable: a frame half read is kept and the next `recv` resumes it.
//!
//! [`FramedChannel`] is generic over a `Read` half and a `Write` half, which is
//! where TLS (or a compressing, or a rate-limited, stream) slots in.
//! [`BackgroundWriter`] moves writes to a thread of their own, so that both parties
//! sending a large message at the same time (e.g. the masked shares of the online
//! linear layer) cannot deadlock on full socket buffers.

use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::{Channel, Meter, NetError, Result, Stats};

/// Bytes of the frame header.
pub const FRAME_HEADER: usize = 4;
/// Default maximum payload of one frame: 256 MiB.
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;
/// How far ahead of the received bytes a payload buffer may be allocated.
pub const READ_CHUNK: usize = 4 << 20;
/// Read buffer size.
const READ_BUF: usize = 256 << 10;

/// Framed messages over a reader and a writer.
pub struct FramedChannel<R: Read, W: Write> {
    reader: BufReader<R>,
    writer: W,
    max_frame: usize,
    meter: Meter,
    partial: Partial,
}

impl<R: Read + Send, W: Write + Send> FramedChannel<R, W> {
    /// Framing over `reader` and `writer`. `writer` should buffer (a
    /// `BufWriter` or a [`BackgroundWriter`]): a frame is written as two calls.
    pub fn new(reader: R, writer: W) -> Self {
        FramedChannel {
            reader: BufReader::with_capacity(READ_BUF, reader),
            writer,
            max_frame: DEFAULT_MAX_FRAME,
            meter: Meter::new(),
            partial: Partial::default(),
        }
    }

    /// Set the largest payload this end accepts *and* sends (at most `u32::MAX`).
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max.min(u32::MAX as usize);
    }

    /// The largest payload this end accepts and sends.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The reader (e.g. to set a socket option).
    pub fn reader(&self) -> &R {
        self.reader.get_ref()
    }

    /// The reader, mutably (e.g. to change a timeout it applies).
    pub fn reader_mut(&mut self) -> &mut R {
        self.reader.get_mut()
    }

    /// The writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }
}

fn io_err(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout,
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => NetError::Closed,
        _ => NetError::Io(e),
    }
}

/// One `read`, retrying on `Interrupted`.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// A frame being read. Kept across calls so that a read timeout in the middle
/// of a frame loses nothing: the next `recv` resumes where this one stopped.
#[derive(Default)]
struct Partial {
    hdr: [u8; FRAME_HEADER],
    hdr_got: usize,
    /// Payload length, once the header is complete and checked.
    len: Option<usize>,
    /// Allocated payload (grows by at most `READ_CHUNK` beyond `got`).
    body: Vec<u8>,
    got: usize,
}

impl<R: Read + Send, W: Write + Send> Channel for FramedChannel<R, W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max_frame {
            return Err(NetError::FrameTooLarge {
                len: msg.len(),
                max: self.max_frame,
            });
        }
        let hdr = (msg.len() as u32).to_le_bytes();
        self.writer.write_all(&hdr).map_err(io_err)?;
        self.writer.write_all(msg).map_err(io_err)?;
        self.meter.on_send(msg.len() + FRAME_HEADER);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let p = &mut self.partial;
        while p.hdr_got < FRAME_HEADER {
            match read_some(&mut self.reader, &mut p.hdr[p.hdr_got..])? {
                0 if p.hdr_got == 0 => return Err(NetError::Closed),
                0 => {
                    return Err(NetError::Truncated {
                        expected: FRAME_HEADER,
                        got: p.hdr_got,
                    })
                }
                n => p.hdr_got += n,
            }
        }
        let len = match p.len {
            Some(len) => len,
            None => {
                let len = u32::from_le_bytes(p.hdr) as usize;
                if len > self.max_frame {
                    return Err(NetError::FrameTooLarge {
                        len,
                        max: self.max_frame,
                    });
                }
                p.len = Some(len);
                p.body = Vec::with_capacity(len.min(READ_CHUNK));
                len
            }
        };
        while p.got < len {
            if p.got == p.body.len() {
                let step = (len - p.got).min(READ_CHUNK);
                p.body.resize(p.got + step, 0);
            }
            match read_some(&mut self.reader, &mut p.body[p.got..])? {
                0 => {
                    return Err(NetError::Truncated {
                        expected: len,
                        got: p.got,
                    })
                }
                n => p.got += n,
            }
        }
        let body = std::mem::take(&mut p.body);
        *p = Partial::default();
        self.meter.on_recv(len + FRAME_HEADER);
        Ok(body)
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(io_err)
    }

    fn set_phase(&mut self, label: &str) {
        self.meter.set_phase(label)
    }

    fn stats(&self) -> Stats {
        self.meter.stats()
    }
}

/// Buffers written bytes and hands them to a writer thread on `flush` (or when
/// the buffer fills). Writes return as soon as the bytes are queued; at most
/// `QUEUE_DEPTH` buffers of about `CHUNK` bytes wait, after which writes block
/// (back-pressure). An error of the thread surfaces on the next write or flush.
/// Dropping it sends what is buffered and waits for the thread to finish.
pub struct BackgroundWriter {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

const CHUNK: usize = 256 << 10;
const QUEUE_DEPTH: usize = 256;

impl BackgroundWriter {
    /// Start the writer thread on `inner`.
    pub fn new<W: Write + Send + 'static>(mut inner: W) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_DEPTH);
        let (back_tx, recycled) = mpsc::sync_channel::<Vec<u8>>(4);
        let thread = std::thread::Builder::new()
            .name("blindfold-net-writer".into())
            .spawn(move || -> io::Result<()> {
                while let Ok(mut b) = rx.recv() {
                    inner.write_all(&b)?;
                    // Drain what else is queued before flushing the inner writer.
                    let mut more = rx.try_recv();
                    loop {
                        b.clear();
                        let _ = back_tx.try_send(b);
                        match more {
                            Ok(next) => {
                                b = next;
                                inner.write_all(&b)?;
                                more = rx.try_recv();
                            }
                            Err(_) => break,
                        }
                    }
                    inner.flush()?;
                }
                inner.flush()
            })?;
        Ok(BackgroundWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            recycled,
            thread: Some(thread),
        })
    }

    fn thread_error(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("writer thread panicked"),
            _ => io::Error::new(io::ErrorKind::BrokenPipe, "writer thread stopped"),
        }
    }

    fn ship(&mut self, data: Vec<u8>) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(data).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.thread_error())
        }
    }

    fn ship_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, fresh);
        self.ship(full)
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() >= CHUNK {
            self.ship_buf()?;
            self.ship(data.to_vec())?;
        } else {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= CHUNK {
                self.ship_buf()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ship_buf()
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        let _ = self.ship_buf();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn reader_of(bytes: Vec<u8>) -> FramedChannel<Cursor<Vec<u8>>, Vec<u8>> {
        FramedChannel::new(Cursor::new(bytes), Vec::new())
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip_and_clean_close() {
        let mut bytes = frame(b"hello");
        bytes.extend(frame(b""));
        let mut ch = reader_of(bytes);
        assert_eq!(ch.recv().unwrap(), b"hello");
        assert_eq!(ch.recv().unwrap(), b"");
        assert!(matches!(ch.recv(), Err(NetError::Closed)));
    }

    #[test]
    fn oversized_length_is_rejected_without_allocating() {
        let mut ch = reader_of(u32::MAX.to_le_bytes().to_vec());
        assert!(matches!(
            ch.recv(),
            Err(NetError::FrameTooLarge { len, .. }) if len == u32::MAX as usize
        ));
        let mut ch = reader_of(frame(&[1, 2, 3]));
        ch.set_max_frame(2);
        assert!(matches!(
            ch.recv(),
            Err(NetError::FrameTooLarge { len: 3, max: 2 })
        ));
        assert!(matches!(
            ch.send(&[0; 3]),
            Err(NetError::FrameTooLarge { len: 3, max: 2 })
        ));
    }

    #[test]
    fn lying_length_with_short_stream_is_truncated() {
        // Claims 200 MiB, delivers 10 bytes.
        let mut bytes = (200u32 << 20).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[7; 10]);
        let mut ch = reader_of(bytes);
        assert!(matches!(
            ch.recv(),
            Err(NetError::Truncated { expected, got: 10 }) if expected == 200 << 20
        ));
        // Half a header.
        let mut ch = reader_of(vec![1, 0]);
        assert!(matches!(
            ch.recv(),
            Err(NetError::Truncated {
                expected: 4,
                got: 2
            })
        ));
    }

    #[test]
    fn multi_chunk_payload() {
        let payload: Vec<u8> = (0..(READ_CHUNK * 2 + 123)).map(|i| i as u8).collect();
        let mut ch = reader_of(frame(&payload));
        assert_eq!(ch.recv().unwrap(), payload);
    }
}
