//! Browser clients over WebSocket, on a second listener of a server.
//!
//! A browser cannot open a TCP connection or present the deployment's client
//! certificate, but it can open a WebSocket, over TLS (`wss://`) when the page
//! came over `https://`. [`WsListener`] accepts those connections (RFC 6455,
//! binary messages), answers plain `GET`s for the pages given at start (the
//! static browser client) on the same port, and hands every upgraded
//! connection to the server as a [`Connection`](crate::Connection) carrying
//! exactly the framed byte stream a TCP client sends, split into WebSocket
//! messages however the browser likes. No second hop, no plaintext port:
//!
//! ```text
//!   browser ── TCP ── [TLS, server-authenticated: browser_server_config] ── HTTP GET
//!      ├─ page  ──▶ 200 (web/index.html, web/client.js), closed
//!      └─ upgrade ─▶ 101 ─▶ WsStream (frames ⇄ bytes) ─▶ StreamChannel ─▶ Listener::accept
//! ```
//!
//! The connection's identity is `browser`: the server accepts only client
//! queries on it (no peer link, no client-server session). Handshakes (TLS,
//! the HTTP head, a page) are bounded in number, per source and, as a whole,
//! in time (a watchdog closes the socket at the deadline); reads after the
//! upgrade keep the connection's deadline however the frames are dribbled.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::stream::{SplitStream, StreamChannel, TimedRead};
use crate::tls::{TlsReader, TlsWriter};
use crate::transport::Listener;
use crate::{NetError, Result};

/// Largest HTTP request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time allowed for the TLS handshake and the request head together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes (TLS and HTTP head) under way at once, and per source address;
/// beyond them a connection is closed at once. Upgraded connections are then
/// bounded by the server's own connection limits.
pub const MAX_HANDSHAKES: usize = 64;
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 8;
/// Largest WebSocket frame payload accepted from a browser (the framed
/// stream inside is bounded again by the server).
const MAX_FRAME: u64 = 64 << 20;
/// Largest control frame payload (RFC 6455: 125 bytes).
const MAX_CONTROL: u64 = 125;

/// A static file served on the listener: path (`/`, `/client.js`), content
/// type, body.
#[derive(Clone, Debug)]
pub struct Page {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// A framed channel over a browser's WebSocket.
pub type WsChannel = StreamChannel<WsStream>;

/// Accepts browser connections (see the module documentation); dropping it
/// stops accepting (connections handed out live on).
pub struct WsListener {
    rx: Mutex<Receiver<WsChannel>>,
    addr: String,
    tls: bool,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WsListener {
    /// Accept on `listener`: over TLS with `tls` (a
    /// [`browser_server_config`](crate::tls::browser_server_config)), else
    /// plain `ws://` (loopback, or behind a TLS-terminating proxy); answer
    /// `GET`s for `pages`.
    pub fn start(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        pages: Vec<Page>,
    ) -> io::Result<WsListener> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let is_tls = tls.is_some();
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(pages);
        let (tx, rx) = mpsc::sync_channel(MAX_HANDSHAKES);
        crate::tls::accept_loop(
            listener,
            stop.clone(),
            tx,
            (MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE),
            move |tcp| match handshake(tcp, tls.clone(), &pages) {
                Ok(Some(stream)) => StreamChannel::new(stream).ok(),
                _ => None,
            },
        );
        Ok(WsListener {
            rx: Mutex::new(rx),
            addr,
            tls: is_tls,
            stop,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> &str {
        &self.addr
    }

    /// `wss` or `ws`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "wss"
        } else {
            "ws"
        }
    }
}

impl Drop for WsListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Listener for WsListener {
    type Conn = WsChannel;
    fn accept(&self, deadline: Instant) -> Result<Option<WsChannel>> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match lock(&self.rx).recv_timeout(wait) {
            Ok(ch) => Ok(Some(ch)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(NetError::Closed),
        }
    }
    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// The byte stream under the WebSocket: TCP, or TLS over TCP.
pub enum Inner {
    Tcp(TcpStream),
    Tls(TlsReader),
}

/// The writing half of [`Inner`].
pub enum InnerWriter {
    Tcp(TcpStream),
    Tls(TlsWriter),
}

impl Read for Inner {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Inner::Tcp(s) => s.read(buf),
            Inner::Tls(s) => s.read(buf),
        }
    }
}

impl TimedRead for Inner {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Inner::Tcp(s) => TimedRead::set_read_timeout(s, t),
            Inner::Tls(s) => s.set_read_timeout(t),
        }
    }
    fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Inner::Tcp(s) => TimedRead::set_write_timeout(s, t),
            Inner::Tls(s) => s.set_write_timeout(t),
        }
    }
}

impl Write for InnerWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            InnerWriter::Tcp(s) => s.write(buf),
            InnerWriter::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            InnerWriter::Tcp(s) => s.flush(),
            InnerWriter::Tls(s) => s.flush(),
        }
    }
}

/// TLS (if configured), the request head, then the page or the upgrade.
fn handshake(
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    pages: &[Page],
) -> Result<Option<WsStream>> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    // TLS, the request head and a page, however slowly their bytes come, end
    // at the deadline: the watchdog closes the socket then.
    let watchdog = crate::tls::Watchdog::arm(&tcp, deadline)?;
    let peer = tcp
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let (mut r, mut w) = match tls {
        None => {
            let w = tcp.try_clone()?;
            (Inner::Tcp(tcp), InnerWriter::Tcp(w))
        }
        Some(cfg) => {
            let (r, w) = crate::tls::accept_browser(tcp, cfg, deadline)?.split()?;
            (Inner::Tls(r), InnerWriter::Tls(w))
        }
    };
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(NetError::Timeout)?;
    r.set_read_timeout(Some(left))?;
    r.set_write_timeout(Some(left))?;
    let req = read_request(&mut r, deadline)?;
    if req.method != "GET" {
        respond(
            &mut w,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        )?;
        return Ok(None);
    }
    let upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let path = req.path.split('?').next().unwrap_or("/");
        match pages.iter().find(|p| p.path == path) {
            Some(p) => respond(&mut w, "200 OK", p.content_type, p.body)?,
            None => respond(&mut w, "404 Not Found", "text/plain", b"not found\n")?,
        }
        return Ok(None);
    }
    let Some(key) = req.header("sec-websocket-key") else {
        respond(&mut w, "400 Bad Request", "text/plain", b"no key\n")?;
        return Ok(None);
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    w.write_all(head.as_bytes())?;
    w.flush()?;
    watchdog.disarm()?;
    r.set_read_timeout(None)?;
    r.set_write_timeout(None)?;
    Ok(Some(WsStream { r, w, peer }))
}

/// A parsed request head.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read a request head (up to the blank line), bounded in size and, on a
/// socket, by `deadline` as a whole (a byte a second does not keep it open).
fn read_request(r: &mut impl Read, deadline: Instant) -> io::Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if r.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request is not text"))?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Request {
        method,
        path,
        headers,
    })
}

fn respond(w: &mut impl Write, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// An upgraded browser connection: WebSocket frames in, bytes out.
pub struct WsStream {
    r: Inner,
    w: InnerWriter,
    peer: String,
}

impl SplitStream for WsStream {
    type Reader = WsReader<Inner, InnerWriter>;
    type Writer = WsWriter<InnerWriter>;
    fn peer(&self) -> String {
        format!("{} (browser)", self.peer)
    }
    /// Always `browser`: no certificate; the server takes client queries only.
    fn identity(&self) -> Option<String> {
        Some("browser".into())
    }
    fn split(self) -> io::Result<(Self::Reader, Self::Writer)> {
        let w = Arc::new(Mutex::new(self.w));
        Ok((WsReader::new(self.r, w.clone()), WsWriter { w }))
    }
}

/// Reads the payload of a browser's frames (which must be masked) as one byte
/// stream; answers pings; a close frame is the end of the stream.
///
/// Deadlines: the connection's timing wrapper sets the time one read may take
/// (`set_read_timeout`: what is left of the deadline, or the per-read
/// timeout); one read here may take several reads of the socket (a header,
/// then control frames), so the reader turns that allowance into an instant
/// at the start of each read and checks it before every socket read.
/// After a timeout or an error the reader is dead (every later read fails): a
/// frame header read halfway cannot be resumed.
pub struct WsReader<R, W> {
    r: R,
    pong: Arc<Mutex<W>>,
    /// Payload bytes left in the current data frame, and its mask position.
    left: u64,
    mask: [u8; 4],
    pos: usize,
    closed: bool,
    failed: bool,
    /// The time one read may take (the last `set_read_timeout`), and the end
    /// of the current read's allowance.
    limit: Option<Duration>,
    until: Option<Instant>,
}

/// A source the reader can bound in time (a socket; a byte slice is not).
pub trait Rearm {
    /// Bound the next read of the underlying stream by `t`.
    fn rearm(&mut self, t: Duration) -> io::Result<()>;
}

impl Rearm for Inner {
    fn rearm(&mut self, t: Duration) -> io::Result<()> {
        TimedRead::set_read_timeout(self, Some(t))
    }
}

impl Rearm for &[u8] {
    fn rearm(&mut self, _t: Duration) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Read + Rearm, W: Write> WsReader<R, W> {
    fn new(r: R, pong: Arc<Mutex<W>>) -> WsReader<R, W> {
        WsReader {
            r,
            pong,
            left: 0,
            mask: [0; 4],
            pos: 0,
            closed: false,
            failed: false,
            limit: None,
            until: None,
        }
    }

    /// Before each read of the socket: past the allowance is a timeout, else
    /// the socket waits at most for what is left of it.
    fn check_time(&mut self) -> io::Result<()> {
        if let Some(until) = self.until {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.r.rearm(left)?;
        }
        Ok(())
    }

    fn read_exact_timed(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            self.check_time()?;
            match self.r.read(&mut buf[got..])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        Ok(())
    }

    /// The next data frame's header (answering control frames on the way);
    /// `false` at a close frame.
    fn next_data_frame(&mut self) -> io::Result<bool> {
        loop {
            let mut h = [0u8; 2];
            self.read_exact_timed(&mut h)?;
            let opcode = h[0] & 0x0f;
            if h[1] & 0x80 == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unmasked client frame",
                ));
            }
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.read_exact_timed(&mut b)?;
                    u16::from_be_bytes(b) as u64
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.read_exact_timed(&mut b)?;
                    u64::from_be_bytes(b)
                }
                n => n as u64,
            };
            let control = opcode & 0x8 != 0;
            if len > MAX_FRAME || (control && len > MAX_CONTROL) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame too large",
                ));
            }
            let mut mask = [0u8; 4];
            self.read_exact_timed(&mut mask)?;
            if !control {
                if opcode > 0x2 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "reserved opcode",
                    ));
                }
                (self.left, self.mask, self.pos) = (len, mask, 0);
                if len > 0 {
                    return Ok(true);
                }
                continue;
            }
            let mut body = vec![0u8; len as usize];
            self.read_exact_timed(&mut body)?;
            for (i, b) in body.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            match opcode {
                0x8 => return Ok(false),
                0x9 => {
                    // Answered unless the writer is busy (a pong is a courtesy;
                    // a ping flood must not queue writes behind the data).
                    if let Ok(mut w) = self.pong.try_lock() {
                        write_frame(&mut *w, 0xA, &body)?
                    }
                }
                0xA => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "reserved opcode",
                    ))
                }
            }
        }
    }

    fn read_payload(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !self.next_data_frame()? {
            self.closed = true;
            return Ok(0);
        }
        let n = (self.left.min(out.len() as u64)) as usize;
        self.check_time()?;
        let n = self.r.read(&mut out[..n])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        for b in out[..n].iter_mut() {
            *b ^= self.mask[self.pos % 4];
            self.pos += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read + Rearm, W: Write> Read for WsReader<R, W> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket stream failed earlier",
            ));
        }
        if out.is_empty() || self.closed {
            return Ok(0);
        }
        self.until = self.limit.map(|t| Instant::now() + t);
        let r = self.read_payload(out);
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

impl<W: Write> TimedRead for WsReader<Inner, W> {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.limit = t;
        self.r.set_read_timeout(t)
    }
    fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.r.set_write_timeout(t)
    }
}

/// Writes each buffer as one unmasked binary frame (under the lock the
/// reader's pongs take too); a close frame when dropped.
pub struct WsWriter<W: Write> {
    w: Arc<Mutex<W>>,
}

impl<W: Write> Write for WsWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write_frame(&mut *lock(&self.w), 0x2, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        lock(&self.w).flush()
    }
}

impl<W: Write> Drop for WsWriter<W> {
    fn drop(&mut self) {
        let _ = write_frame(&mut *lock(&self.w), 0x8, &[]);
    }
}

/// One unmasked frame (server to browser), FIN set, in one write.
fn write_frame(w: &mut impl Write, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let mut head = Vec::with_capacity(payload.len() + 10);
    head.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => head.push(n as u8),
        n if n <= u16::MAX as usize => {
            head.push(126);
            head.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            head.push(127);
            head.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    head.extend_from_slice(payload);
    w.write_all(&head)?;
    w.flush()
}

/// What the listener makes of a browser's bytes, for fuzzing and tests: the
/// request head (method, path, whether it asks for a WebSocket), then, for an
/// upgrade, the payload bytes its frames carry (what would reach the server)
/// and the pongs it would send back, through the same reader as a live
/// connection. Never panics; errors end the stream as they end a connection.
pub fn decode_client_bytes(data: &[u8]) -> io::Result<ClientBytes> {
    let mut r = data;
    let req = read_request(&mut r, Instant::now() + HANDSHAKE_TIMEOUT)?;
    let upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut payload = Vec::new();
    let pongs = Arc::new(Mutex::new(Vec::new()));
    if upgrade {
        let mut ws = WsReader::new(r, pongs.clone());
        let mut buf = [0u8; 4096];
        while let Ok(n) = ws.read(&mut buf) {
            if n == 0 {
                break;
            }
            payload.extend_from_slice(&buf[..n]);
        }
    }
    let pongs = lock(&pongs).clone();
    Ok(ClientBytes {
        method: req.method,
        path: req.path,
        upgrade,
        payload,
        pongs,
    })
}

/// [`decode_client_bytes`]'s answer.
#[derive(Debug)]
pub struct ClientBytes {
    pub method: String,
    pub path: String,
    /// The request asked for a WebSocket.
    pub upgrade: bool,
    /// What the frames carried (what would reach the server).
    pub payload: Vec<u8>,
    /// The pong frames the listener would send back.
    pub pongs: Vec<u8>,
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key ‖ the RFC's GUID)).
pub fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-1, for the handshake only (not a security use: RFC 6455 fixes it).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_key_matches_the_rfc_example() {
        // RFC 6455, section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sha1_and_base64_known_answers() {
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        let h = sha1(b"abc");
        assert_eq!(h[..4], [0xa9, 0x99, 0x3e, 0x36]);
        assert_eq!(h[16..], [0x9c, 0xd0, 0xd8, 0x9d]);
    }

    #[test]
    fn malformed_browser_bytes_are_errors_or_end_the_stream() {
        // No blank line: the head is incomplete.
        assert!(decode_client_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n").is_err());
        // A head beyond the limit.
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
        assert!(decode_client_bytes(&big).is_err());
        // Not text.
        assert!(decode_client_bytes(b"GET /\xff HTTP/1.1\r\n\r\n").is_err());
        let head = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
        // An unmasked frame, a frame longer than the limit, a control frame
        // over 125 bytes, a reserved opcode: the stream ends, nothing of them
        // is forwarded.
        for frame in [
            vec![0x82, 0x03, 1, 2, 3],
            [&[0x82u8, 0xff][..], &u64::MAX.to_be_bytes(), &[0; 4]].concat(),
            client_frame(0x9, &[0u8; 126]),
            client_frame(0x3, b"x"),
        ] {
            let got = decode_client_bytes(&[&head[..], &frame].concat()).unwrap();
            assert!(got.upgrade);
            assert!(got.payload.is_empty(), "{frame:?}");
        }
        // A truncated frame: what arrived of it is forwarded (the stream is
        // read as it comes), then the stream ends.
        let cut = client_frame(0x2, b"hello")[..8].to_vec();
        let got = decode_client_bytes(&[&head[..], &cut].concat()).unwrap();
        assert_eq!(got.payload, b"he");
        // Frames before a close are forwarded; what follows the close is not.
        let bytes = [
            &head[..],
            &client_frame(0x2, b"ab"),
            &client_frame(0x8, b""),
            &client_frame(0x2, b"cd"),
        ]
        .concat();
        assert_eq!(decode_client_bytes(&bytes).unwrap().payload, b"ab");
    }

    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn upgrade_request() -> &'static [u8] {
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    /// Read server frames until `want` payload bytes arrived; (payload, pongs).
    fn read_server_frames(ws: &mut impl Read, want: usize) -> (Vec<u8>, usize) {
        let mut got = Vec::new();
        let mut pongs = 0;
        while got.len() < want {
            let mut h = [0u8; 2];
            ws.read_exact(&mut h).unwrap();
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    ws.read_exact(&mut l).unwrap();
                    u16::from_be_bytes(l) as usize
                }
                127 => {
                    let mut l = [0u8; 8];
                    ws.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l) as usize
                }
                n => n as usize,
            };
            let mut body = vec![0u8; len];
            ws.read_exact(&mut body).unwrap();
            match h[0] & 0x0f {
                0x2 => got.extend_from_slice(&body),
                0xA => pongs += 1,
                op => panic!("opcode {op}"),
            }
        }
        (got, pongs)
    }

    fn read_head(ws: &mut impl Read) -> String {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// A framed message sent by a "browser" in pieces (with a ping between)
    /// arrives whole on the accepted connection; the reply comes back as
    /// binary frames; pages are served and other paths are 404.
    fn exchange_over(ws: &mut (impl Read + Write), listener: &WsListener) {
        ws.write_all(upgrade_request()).unwrap();
        let head = read_head(ws);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let mut ch = listener
            .accept(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .expect("a connection");
        assert_eq!(crate::Connection::peer_identity(&ch), Some("browser"));
        let msg: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut framed = (msg.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&msg);
        ws.write_all(&client_frame(0x2, &framed[..5])).unwrap();
        ws.write_all(&client_frame(0x9, b"p")).unwrap();
        ws.write_all(&client_frame(0x2, &framed[5..])).unwrap();
        ws.flush().unwrap();
        use crate::Channel;
        assert_eq!(ch.recv().unwrap(), msg);
        ch.send(b"answer").unwrap();
        ch.flush().unwrap();
        let (got, pongs) = read_server_frames(ws, 4 + 6);
        assert_eq!(&got[4..], b"answer");
        assert_eq!(u32::from_le_bytes(got[..4].try_into().unwrap()), 6);
        assert_eq!(pongs, 1);
        // A close frame ends the stream: the server sees the end.
        ws.write_all(&client_frame(0x8, b"")).unwrap();
        ws.flush().unwrap();
        assert!(ch.recv().is_err());
    }

    /// The browser port's TLS with P0's web certificate of `certs`.
    fn p0_web_config(certs: &crate::tls::DeploymentCerts) -> crate::tls::BrowserTlsConfig {
        let role = crate::TlsRole::P0;
        crate::tls::browser_server_config(
            certs.get(&crate::tls::web_cert_file(role)).unwrap(),
            certs.get(&crate::tls::web_key_file(role)).unwrap(),
        )
        .unwrap()
    }

    /// What a browser that imported the deployment's `ca.pem` trusts.
    fn ca_roots(certs: &crate::tls::DeploymentCerts) -> rustls::RootCertStore {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(certs.get("ca.pem").unwrap()) {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// A browser's TLS: trusts `roots`, presents no certificate.
    fn browser_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    fn page() -> Page {
        Page {
            path: "/",
            content_type: "text/html",
            body: b"<p>hi</p>",
        }
    }

    #[test]
    fn plain_listener_hands_out_connections_and_serves_pages() {
        let l = WsListener::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            None,
            vec![page()],
        )
        .unwrap();
        assert_eq!(l.scheme(), "ws");
        let addr = l.local_addr().to_string();
        let mut get = TcpStream::connect(&addr).unwrap();
        get.write_all(b"GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        get.read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK") && text.ends_with("<p>hi</p>"),
            "{text}"
        );
        let mut get = TcpStream::connect(&addr).unwrap();
        get.write_all(b"GET /nope HTTP/1.1\r\n\r\n").unwrap();
        let mut text = String::new();
        get.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        let mut ws = TcpStream::connect(&addr).unwrap();
        exchange_over(&mut ws, &l);
        // An unmasked client frame ends a connection.
        let mut ws = TcpStream::connect(&addr).unwrap();
        ws.write_all(upgrade_request()).unwrap();
        read_head(&mut ws);
        let mut ch = l
            .accept(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .unwrap();
        ws.write_all(&[0x82, 0x05, 1, 0, 0, 0, 0]).unwrap();
        assert!(crate::Channel::recv(&mut ch).is_err());
    }

    #[test]
    fn tls_listener_serves_browsers_with_the_web_certificate() {
        use rustls::pki_types::ServerName;
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let certs = crate::tls::DeploymentCerts::generate_with_web(1, [&hosts, &[]]).unwrap();
        assert!(certs
            .get(&crate::tls::web_cert_file(crate::TlsRole::P1))
            .is_none());
        // Role names are not web names.
        for bad in ["p1.blindfold", "server.BLINDFOLD", ""] {
            let l = [bad.to_string()];
            assert!(crate::tls::DeploymentCerts::generate_with_web(1, [&l, &[]]).is_err());
        }
        let cfg = p0_web_config(&certs);
        let l = WsListener::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            Some(cfg),
            vec![page()],
        )
        .unwrap();
        assert_eq!(l.scheme(), "wss");
        // A browser: trusts the deployment CA, presents no certificate.
        let roots = ca_roots(&certs);
        let client_cfg = browser_config(roots);
        let connect = |name: &str| {
            let tcp = TcpStream::connect(l.local_addr()).unwrap();
            let conn = rustls::ClientConnection::new(
                client_cfg.clone(),
                ServerName::try_from(name.to_string()).unwrap(),
            )
            .unwrap();
            rustls::StreamOwned::new(conn, tcp)
        };
        let mut get = connect("127.0.0.1");
        get.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut text = Vec::new();
        let _ = get.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        let mut ws = connect("localhost");
        exchange_over(&mut ws, &l);
        // A name the web certificate does not carry fails the browser's check.
        let mut other = connect("p0.blindfold");
        assert!(
            other.write_all(b"GET / HTTP/1.1\r\n\r\n").is_err() || {
                let mut b = Vec::new();
                other.read_to_end(&mut b).is_err()
            }
        );
        // Plaintext on the TLS port gets no page.
        let mut plain = TcpStream::connect(l.local_addr()).unwrap();
        plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut text = Vec::new();
        let _ = plain.read_to_end(&mut text);
        assert!(!String::from_utf8_lossy(&text).contains("<p>hi</p>"));
    }

    /// Empty data frames and pings, sent faster than any socket timeout,
    /// do not keep a read past the connection's deadline.
    #[test]
    fn frames_that_carry_nothing_do_not_extend_a_deadline() {
        let l = WsListener::start(TcpListener::bind("127.0.0.1:0").unwrap(), None, vec![]).unwrap();
        let mut ws = TcpStream::connect(l.local_addr()).unwrap();
        ws.write_all(upgrade_request()).unwrap();
        read_head(&mut ws);
        let mut ch = l
            .accept(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let mut w = ws.try_clone().unwrap();
        let dribble = std::thread::spawn(move || {
            let (mut i, t) = (0, Instant::now());
            // For 3 s at most, then the socket is closed (so a reader that
            // ignores its deadline returns then, and fails the bound below).
            while !s2.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(3) {
                let f = if i % 2 == 0 {
                    client_frame(0x2, b"")
                } else {
                    client_frame(0x9, b"p")
                };
                if w.write_all(&f).is_err() {
                    break;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = w.shutdown(std::net::Shutdown::Both);
        });
        let t = Instant::now();
        crate::Connection::set_deadline(&mut ch, Some(t + Duration::from_millis(400))).unwrap();
        let r = crate::Channel::recv(&mut ch);
        let took = t.elapsed();
        stop.store(true, Ordering::SeqCst);
        dribble.join().unwrap();
        assert!(r.is_err(), "a read completed on empty frames");
        assert!(
            took < Duration::from_secs(2),
            "the deadline held for {took:?}"
        );
    }

    /// Dribble `bytes` (then filler) a byte every 250 ms; whether the server
    /// closed the connection within its handshake time (plus slack).
    fn cut_off_when_dribbled(addr: &str, bytes: Vec<u8>) -> bool {
        let mut s = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        for i in 0.. {
            let b = bytes.get(i).copied().unwrap_or(b'a');
            if s.write_all(&[b]).is_err() {
                return t.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(3);
            }
            std::thread::sleep(Duration::from_millis(250));
            if t.elapsed() > HANDSHAKE_TIMEOUT + Duration::from_secs(2) {
                break;
            }
        }
        // Closed by the peer: a read returns the end or a reset, not a timeout.
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut b = [0u8; 64];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue, // a TLS alert, say
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    )
                }
            }
        }
    }

    /// A request head, or a TLS ClientHello, sent a byte at a time (each well
    /// within any per-read timeout) is cut off when the handshake's time is up.
    #[test]
    fn dribbled_handshakes_are_cut_off() {
        let plain = WsListener::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            None,
            vec![page()],
        )
        .unwrap();
        let hosts = ["127.0.0.1".to_string()];
        let certs = crate::tls::DeploymentCerts::generate_with_web(1, [&hosts, &[]]).unwrap();
        let cfg = p0_web_config(&certs);
        let tls = WsListener::start(TcpListener::bind("127.0.0.1:0").unwrap(), Some(cfg), vec![])
            .unwrap();
        // A real ClientHello.
        let client_cfg = browser_config(rustls::RootCertStore::empty());
        let mut conn = rustls::ClientConnection::new(
            client_cfg,
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
        )
        .unwrap();
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).unwrap();
        }
        let (pa, ta) = (plain.local_addr().to_string(), tls.local_addr().to_string());
        let head = std::thread::spawn(move || {
            cut_off_when_dribbled(&pa, b"GET / HTTP/1.1\r\nX-Long: ".to_vec())
        });
        let hs = std::thread::spawn(move || cut_off_when_dribbled(&ta, hello));
        assert!(
            head.join().unwrap(),
            "a dribbled request head kept its connection"
        );
        assert!(
            hs.join().unwrap(),
            "a dribbled TLS handshake kept its connection"
        );
    }

    /// Over `wss://`: one TLS record carrying a frame, dribbled a byte at a
    /// time (each well within any socket timeout), does not keep a read past
    /// the connection's deadline.
    #[test]
    fn a_dribbled_tls_record_does_not_extend_a_deadline() {
        let hosts = ["127.0.0.1".to_string()];
        let certs = crate::tls::DeploymentCerts::generate_with_web(1, [&hosts, &[]]).unwrap();
        let cfg = p0_web_config(&certs);
        let l = WsListener::start(TcpListener::bind("127.0.0.1:0").unwrap(), Some(cfg), vec![])
            .unwrap();
        let roots = ca_roots(&certs);
        let conn = rustls::ClientConnection::new(
            browser_config(roots),
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
        )
        .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(l.local_addr()).unwrap());
        tls.write_all(upgrade_request()).unwrap();
        read_head(&mut tls);
        let mut ch = l
            .accept(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .unwrap();
        // A framed message in one WebSocket frame, sealed in TLS records,
        // whose bytes then go out one at a time.
        let mut framed = 3u32.to_le_bytes().to_vec();
        framed.extend_from_slice(b"abc");
        let (mut conn, sock) = (tls.conn, tls.sock);
        conn.writer()
            .write_all(&client_frame(0x2, &framed))
            .unwrap();
        let mut records = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut records).unwrap();
        }
        let mut w = sock.try_clone().unwrap();
        let dribble = std::thread::spawn(move || {
            let t = Instant::now();
            for b in records {
                if w.write_all(&[b]).is_err() || t.elapsed() > Duration::from_secs(3) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = w.shutdown(std::net::Shutdown::Both);
        });
        let t = Instant::now();
        crate::Connection::set_deadline(&mut ch, Some(t + Duration::from_millis(400))).unwrap();
        let r = crate::Channel::recv(&mut ch);
        let took = t.elapsed();
        dribble.join().unwrap();
        drop(sock);
        assert!(r.is_err(), "the dribbled record was read whole");
        // The record takes about 3 s to arrive; the deadline is 0.4 s.
        assert!(
            took < Duration::from_millis(1200),
            "the deadline held for {took:?}"
        );
    }
}
