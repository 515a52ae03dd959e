//! A link model for benchmarks: TCP whose outgoing bytes are paced at a rate
//! and delivered half a round trip late, both ways.
//!
//! ```text
//!  write(b) at t ──▶ departs  d = max(t, link_free) + |b|·8 / rate   (link_free = d)
//!                    arrives  d + rtt / 2  ──(delivery thread)──▶ socket
//! ```
//!
//! Writers never block (the queue is unbounded, as a sender's view of a long
//! fat pipe with big buffers is); the delivery thread writes each chunk to
//! the real socket when it is due, so the peer's reads see the shaped link.
//! The kernel's `tc` token bucket (`scripts/wan-netns.sh`) checks the same
//! figures on real sockets.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blindfold_core::LinkSpec;

use crate::stream::{SplitStream, StreamChannel};
use crate::transport::{Listener, Transport};
use crate::Result;

/// A TCP stream whose writes go through the link model.
pub struct ShapedStream {
    tcp: TcpStream,
    link: LinkSpec,
}

impl ShapedStream {
    pub fn new(tcp: TcpStream, link: LinkSpec) -> io::Result<ShapedStream> {
        tcp.set_nodelay(true)?;
        Ok(ShapedStream { tcp, link })
    }
}

/// A chunk of bytes and the instant it may reach the socket.
type Due = (Instant, Vec<u8>);

/// The writer half: queues chunks with their due times.
pub struct ShapedWriter {
    tx: Option<Sender<Due>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    link: LinkSpec,
    link_free: Instant,
}

impl ShapedWriter {
    fn new(mut sock: TcpStream, link: LinkSpec) -> ShapedWriter {
        let (tx, rx): (Sender<Due>, Receiver<Due>) = mpsc::channel();
        let thread = std::thread::spawn(move || -> io::Result<()> {
            for (due, buf) in rx {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                sock.write_all(&buf)?;
            }
            sock.flush()
        });
        ShapedWriter {
            tx: Some(tx),
            thread: Some(thread),
            link,
            link_free: Instant::now(),
        }
    }
}

impl Write for ShapedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = Instant::now();
        let start = self.link_free.max(now);
        let serial = Duration::from_secs_f64(8.0 * buf.len() as f64 / self.link.bits_per_s as f64);
        self.link_free = start + serial;
        let due = self.link_free + Duration::from_micros(self.link.rtt_us / 2);
        self.tx
            .as_ref()
            .ok_or_else(|| io::Error::other("shaped link closed"))?
            .send((due, buf.to_vec()))
            .map_err(|_| io::Error::other("shaped link's delivery thread ended"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ShapedWriter {
    fn drop(&mut self) {
        // Deliver what is queued, then end the thread.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SplitStream for ShapedStream {
    type Reader = TcpStream;
    type Writer = ShapedWriter;
    fn peer(&self) -> String {
        self.tcp
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| format!("{a} (shaped {})", self.link))
    }
    fn split(self) -> io::Result<(TcpStream, ShapedWriter)> {
        let w = self.tcp.try_clone()?;
        Ok((self.tcp, ShapedWriter::new(w, self.link)))
    }
}

/// A framed channel over a shaped link.
pub type ShapedChannel = StreamChannel<ShapedStream>;

/// Connects over TCP and shapes the connection's outgoing bytes.
#[derive(Clone, Copy, Debug)]
pub struct ShapedTransport(pub LinkSpec);

impl Transport for ShapedTransport {
    type Conn = ShapedChannel;
    fn connect(&self, addr: &str, deadline: Instant) -> Result<ShapedChannel> {
        let tcp = crate::TcpTransport.connect_stream(addr, deadline)?;
        StreamChannel::new(ShapedStream::new(tcp, self.0)?)
    }
}

/// Accepts TCP connections and shapes their outgoing bytes.
pub struct ShapedAcceptor {
    inner: crate::TcpAcceptor,
    link: LinkSpec,
}

impl ShapedAcceptor {
    pub fn new(listener: TcpListener, link: LinkSpec) -> Result<ShapedAcceptor> {
        Ok(ShapedAcceptor {
            inner: crate::TcpAcceptor::new(listener)?,
            link,
        })
    }
}

impl Listener for ShapedAcceptor {
    type Conn = ShapedChannel;
    fn accept(&self, deadline: Instant) -> Result<Option<ShapedChannel>> {
        match self.inner.accept_stream(deadline)? {
            Some(s) => Ok(Some(StreamChannel::new(ShapedStream::new(s, self.link)?)?)),
            None => Ok(None),
        }
    }
    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    #[test]
    fn latency_and_rate_are_applied() {
        let link = LinkSpec {
            bits_per_s: 80_000_000, // 10 MB/s
            rtt_us: 40_000,
        };
        let acc = ShapedAcceptor::new(TcpListener::bind("127.0.0.1:0").unwrap(), link).unwrap();
        let addr = acc.local_addr();
        let t = std::thread::spawn(move || {
            let mut c = ShapedTransport(link)
                .connect(&addr, Instant::now() + Duration::from_secs(5))
                .unwrap();
            // Echo twice.
            for _ in 0..2 {
                let m = c.recv().unwrap();
                c.send(&m).unwrap();
                c.flush().unwrap();
            }
        });
        let mut s = acc
            .accept(Instant::now() + Duration::from_secs(5))
            .unwrap()
            .unwrap();
        let t0 = Instant::now();
        s.send(&[7u8; 10]).unwrap();
        s.flush().unwrap();
        s.recv().unwrap();
        let rtt = t0.elapsed();
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        assert!(rtt < Duration::from_millis(200), "{rtt:?}");
        // 1 MB each way at 10 MB/s: at least 0.2 s plus the round trip.
        let t0 = Instant::now();
        s.send(&vec![1u8; 1_000_000]).unwrap();
        s.flush().unwrap();
        assert_eq!(s.recv().unwrap().len(), 1_000_000);
        let el = t0.elapsed();
        assert!(el >= Duration::from_millis(240), "{el:?}");
        assert!(el < Duration::from_millis(800), "{el:?}");
        t.join().unwrap();
    }
}
