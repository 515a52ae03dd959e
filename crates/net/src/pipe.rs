//! An in-memory duplex byte stream: two bounded pipes, one per direction.
//!
//! [`pipe`] returns two connected ends. Each end is a [`SplitStream`]; the
//! framing, metering and background writer on top are those of TCP, so traffic
//! figures over a pipe equal those over a socket. Writes block while the
//! direction holds [`PIPE_CAPACITY`] unread bytes (back-pressure, as a full
//! socket buffer). Dropping the writing half is an end of stream for the reader;
//! dropping the reading half makes writes fail with `BrokenPipe`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stream::{SplitStream, TimedRead};

/// Unread bytes one direction holds before writes block.
pub const PIPE_CAPACITY: usize = 1 << 20;

#[derive(Default)]
struct Buf {
    data: VecDeque<u8>,
    writer_gone: bool,
    reader_gone: bool,
}

#[derive(Default)]
struct Dir {
    buf: Mutex<Buf>,
    cv: Condvar,
}

impl Dir {
    fn lock(&self) -> MutexGuard<'_, Buf> {
        // A poisoned lock only means a peer thread panicked; the bytes are intact.
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One end of an in-memory duplex byte stream.
pub struct PipeStream {
    read: Arc<Dir>,
    write: Arc<Dir>,
    name: String,
    /// Split into halves: they close the directions, not this.
    split: bool,
}

/// Two connected ends; `a`'s writes are `b`'s reads and the other way round.
/// The names are what each end reports as its peer.
pub fn pipe(name_a: &str, name_b: &str) -> (PipeStream, PipeStream) {
    let ab = Arc::new(Dir::default());
    let ba = Arc::new(Dir::default());
    (
        PipeStream {
            read: ba.clone(),
            write: ab.clone(),
            name: name_b.to_string(),
            split: false,
        },
        PipeStream {
            read: ab,
            write: ba,
            name: name_a.to_string(),
            split: false,
        },
    )
}

/// The reading half of a [`PipeStream`].
pub struct PipeReader {
    dir: Arc<Dir>,
    timeout: Option<Duration>,
}

/// The writing half of a [`PipeStream`].
pub struct PipeWriter {
    dir: Arc<Dir>,
}

impl SplitStream for PipeStream {
    type Reader = PipeReader;
    type Writer = PipeWriter;
    fn peer(&self) -> String {
        self.name.clone()
    }
    fn split(mut self) -> io::Result<(PipeReader, PipeWriter)> {
        self.split = true;
        Ok((
            PipeReader {
                dir: self.read.clone(),
                timeout: None,
            },
            PipeWriter {
                dir: self.write.clone(),
            },
        ))
    }
}

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_dir(&self.read, buf, None)
    }
}

impl Write for PipeStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        write_dir(&self.write, data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeStream {
    fn drop(&mut self) {
        if !self.split {
            close_read(&self.read);
            close_write(&self.write);
        }
    }
}

fn close_read(d: &Dir) {
    d.lock().reader_gone = true;
    d.cv.notify_all();
}

fn close_write(d: &Dir) {
    d.lock().writer_gone = true;
    d.cv.notify_all();
}

fn read_dir(d: &Dir, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut b = d.lock();
    loop {
        if !b.data.is_empty() {
            let n = b.data.read(buf)?;
            d.cv.notify_all();
            return Ok(n);
        }
        if b.writer_gone {
            return Ok(0);
        }
        b = match deadline {
            None => d.cv.wait(b).unwrap_or_else(|e| e.into_inner()),
            Some(dl) => {
                let left = dl.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                d.cv.wait_timeout(b, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

fn write_dir(d: &Dir, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    let mut b = d.lock();
    loop {
        if b.reader_gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = PIPE_CAPACITY.saturating_sub(b.data.len());
        if room > 0 {
            let n = room.min(data.len());
            b.data.extend(&data[..n]);
            d.cv.notify_all();
            return Ok(n);
        }
        b = d.cv.wait(b).unwrap_or_else(|e| e.into_inner());
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_dir(&self.dir, buf, self.timeout)
    }
}

impl TimedRead for PipeReader {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.timeout = t;
        Ok(())
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        close_read(&self.dir);
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        write_dir(&self.dir, data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        close_write(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_flow_both_ways_and_close_is_eof() {
        let (mut a, mut b) = pipe("a", "b");
        a.write_all(b"hello").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        b.write_all(b"x").unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), 1);
        drop(a);
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert_eq!(b.write(b"y").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn split_halves_time_out_and_apply_back_pressure() {
        let (a, b) = pipe("a", "b");
        let (mut ra, mut wa) = a.split().unwrap();
        let (_rb, _wb) = b.split().unwrap();
        ra.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            ra.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        // A full direction blocks the writer until the reader drains it.
        let big = vec![1u8; PIPE_CAPACITY + 10];
        let t = std::thread::spawn(move || {
            wa.write_all(&big).unwrap();
            wa
        });
        let mut rb = _rb;
        let mut got = 0;
        let mut chunk = vec![0u8; 64 << 10];
        while got < PIPE_CAPACITY + 10 {
            got += rb.read(&mut chunk).unwrap();
        }
        drop(t.join().unwrap());
        assert_eq!(rb.read(&mut chunk).unwrap(), 0);
    }
}
