//! Browser clients over WebSocket: a bridge in front of a server's client port.
//!
//! A browser cannot open a TCP connection, but it can open a WebSocket. The
//! bridge accepts WebSocket connections (RFC 6455, binary messages) and, for
//! each, dials the server's own client address and copies bytes both ways: a
//! browser speaks exactly the framed byte stream a TCP client does, split into
//! WebSocket messages however it likes. Plain HTTP `GET`s for the pages given
//! at start (the static browser client) are answered on the same port.
//!
//! The bridge carries plain `ws://` only and so runs beside a server in
//! `--insecure-plaintext` mode (loopback, or behind a TLS-terminating proxy);
//! connections are bounded in number and every handshake in time.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest HTTP request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time allowed for a request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// WebSocket connections bridged at once; more are refused (HTTP 503).
pub const MAX_BRIDGED: usize = 64;
/// Largest WebSocket frame payload accepted from a browser (the framed
/// stream inside is bounded again by the server).
const MAX_FRAME: u64 = 64 << 20;

/// A static file the bridge serves: path (`/`, `/client.js`), content type, body.
#[derive(Clone, Debug)]
pub struct Page {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// A running bridge; dropping it stops accepting (bridged connections finish).
pub struct WsBridge {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl WsBridge {
    /// Accept on `listener`, bridge WebSocket clients to `target` (a TCP
    /// address), answer `GET`s for `pages`.
    pub fn start(listener: TcpListener, target: String, pages: Vec<Page>) -> io::Result<WsBridge> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let pages = Arc::new(pages);
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let tcp = match listener.accept() {
                    Ok((tcp, _)) => tcp,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                let (target, pages, active) = (target.clone(), pages.clone(), active.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(tcp, &target, &pages, &active);
                });
            }
        });
        Ok(WsBridge { addr, stop })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
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

/// Read a request head (up to the blank line), bounded in size.
fn read_request(tcp: &mut impl Read) -> io::Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
        if tcp.read(&mut byte)? == 0 {
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

fn respond(tcp: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes())?;
    tcp.write_all(body)?;
    tcp.flush()
}

/// Decrements the active count when a bridged connection ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(
    mut tcp: TcpStream,
    target: &str,
    pages: &[Page],
    active: &AtomicUsize,
) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let req = read_request(&mut tcp)?;
    if req.method != "GET" {
        return respond(
            &mut tcp,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
    }
    let upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let path = req.path.split('?').next().unwrap_or("/");
        return match pages.iter().find(|p| p.path == path) {
            Some(p) => respond(&mut tcp, "200 OK", p.content_type, p.body),
            None => respond(&mut tcp, "404 Not Found", "text/plain", b"not found\n"),
        };
    }
    let Some(key) = req.header("sec-websocket-key") else {
        return respond(&mut tcp, "400 Bad Request", "text/plain", b"no key\n");
    };
    if active.fetch_add(1, Ordering::SeqCst) >= MAX_BRIDGED {
        active.fetch_sub(1, Ordering::SeqCst);
        return respond(&mut tcp, "503 Service Unavailable", "text/plain", b"busy\n");
    }
    let _slot = Slot(active);
    let upstream = match TcpStream::connect(target) {
        Ok(s) => s,
        Err(_) => {
            return respond(&mut tcp, "502 Bad Gateway", "text/plain", b"server down\n");
        }
    };
    upstream.set_nodelay(true)?;
    tcp.set_nodelay(true)?;
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    tcp.write_all(head.as_bytes())?;
    tcp.set_read_timeout(None)?;
    tcp.set_write_timeout(None)?;
    // Browser -> server: unframe WebSocket messages; server -> browser: one
    // binary message per read.
    // Both directions write to the browser (data here, pongs there): one lock.
    let mut from_browser = tcp.try_clone()?;
    let to_browser = Arc::new(Mutex::new(tcp));
    let pongs = to_browser.clone();
    let (mut to_server, mut from_server) = (upstream.try_clone()?, upstream);
    let up = std::thread::spawn(move || {
        let r = pump_in(&mut from_browser, &mut to_server, &pongs);
        let _ = to_server.shutdown(Shutdown::Write);
        let _ = from_browser.shutdown(Shutdown::Both);
        r
    });
    let mut buf = vec![0u8; 64 * 1024];
    let send = |opcode: u8, payload: &[u8]| -> io::Result<()> {
        let mut w = to_browser.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut *w, opcode, payload)
    };
    loop {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if send(0x2, &buf[..n]).is_err() {
            break;
        }
    }
    let _ = send(0x8, &[]);
    let _ = to_browser
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .shutdown(Shutdown::Both);
    let _ = from_server.shutdown(Shutdown::Both);
    let _ = up.join();
    Ok(())
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

/// Copy the payload of the browser's frames (which must be masked) to `out`
/// until a close frame or the end of the stream; pings are answered.
fn pump_in<W: Write>(r: &mut impl Read, out: &mut impl Write, pong: &Mutex<W>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h)?;
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
                r.read_exact(&mut b)?;
                u16::from_be_bytes(b) as u64
            }
            127 => {
                let mut b = [0u8; 8];
                r.read_exact(&mut b)?;
                u64::from_be_bytes(b)
            }
            n => n as u64,
        };
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        let mut mask = [0u8; 4];
        r.read_exact(&mut mask)?;
        let mut left = len;
        let mut pos = 0usize;
        let mut control = Vec::new();
        while left > 0 {
            let n = (left as usize).min(buf.len());
            r.read_exact(&mut buf[..n])?;
            for b in buf[..n].iter_mut() {
                *b ^= mask[pos % 4];
                pos += 1;
            }
            match opcode {
                0x0..=0x2 => out.write_all(&buf[..n])?,
                _ => control.extend_from_slice(&buf[..n]),
            }
            left -= n as u64;
        }
        match opcode {
            0x8 => return Ok(()),
            0x9 => {
                let mut w = pong.lock().unwrap_or_else(|p| p.into_inner());
                write_frame(&mut *w, 0xA, &control)?
            }
            _ => {}
        }
    }
}

/// What the bridge makes of a browser's bytes, for fuzzing and tests: the
/// request head (method, path, whether it asks for a WebSocket), then, for an
/// upgrade, the payload bytes its frames carry (what would reach the server)
/// and the pongs it would send back. Never panics; errors end the stream as
/// they end a connection.
pub fn decode_client_bytes(data: &[u8]) -> io::Result<ClientBytes> {
    let mut r = data;
    let req = read_request(&mut r)?;
    let upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut payload = Vec::new();
    let pongs = Mutex::new(Vec::new());
    if upgrade {
        let _ = pump_in(&mut r, &mut payload, &pongs);
    }
    let pongs = pongs.into_inner().unwrap_or_else(|p| p.into_inner());
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
    /// The pong frames the bridge would send back.
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
        // An unmasked frame, a frame longer than the limit, a truncated
        // frame: the stream ends, nothing of them is forwarded.
        for frame in [
            vec![0x82, 0x03, 1, 2, 3],
            [&[0x82u8, 0xff][..], &u64::MAX.to_be_bytes(), &[0; 4]].concat(),
            client_frame(0x2, b"hello")[..7].to_vec(),
        ] {
            let got = decode_client_bytes(&[&head[..], &frame].concat()).unwrap();
            assert!(got.upgrade);
            assert!(got.payload.is_empty(), "{frame:?}");
        }
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

    /// An echo server behind the bridge: bytes sent as WebSocket frames come
    /// back as frames; pages are served; a plain request for another path is 404.
    #[test]
    fn bridges_frames_both_ways_and_serves_pages() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let page = Page {
            path: "/",
            content_type: "text/html",
            body: b"<p>hi</p>",
        };
        let bridge = WsBridge::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            target,
            vec![page],
        )
        .unwrap();
        let addr = bridge.local_addr().to_string();

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
        ws.write_all(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        // Split over a ping and two frames, one of them long (16-bit length).
        ws.write_all(&client_frame(0x2, &payload[..5])).unwrap();
        ws.write_all(&client_frame(0x9, b"p")).unwrap();
        ws.write_all(&client_frame(0x2, &payload[5..])).unwrap();
        let mut got = Vec::new();
        let mut pongs = 0;
        while got.len() < payload.len() {
            let mut h = [0u8; 2];
            ws.read_exact(&mut h).unwrap();
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    ws.read_exact(&mut l).unwrap();
                    u16::from_be_bytes(l) as usize
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
        assert_eq!(got, payload);
        assert_eq!(pongs, 1);
        // An unmasked client frame ends the connection.
        ws.write_all(&[0x82, 0x01, 0x00]).unwrap();
        let mut rest = Vec::new();
        let _ = ws.read_to_end(&mut rest);
    }
}
