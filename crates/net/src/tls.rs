//! Mutually authenticated TLS 1.3 (rustls, ring provider) for every link of a
//! deployment: client to P0 and P1, P1 to P0.
//!
//! ```text
//!   ca.pem ──signs──▶ p0.pem   names p0.blindfold, server.blindfold   (server + client auth)
//!                     p1.pem   names p1.blindfold, server.blindfold   (server + client auth)
//!                     client.pem names client.blindfold               (client auth)
//!
//!   TlsTransport::connect ── TCP ── handshake (deadline) ──▶ StreamChannel<TlsStream>
//!   TlsAcceptor: accept thread ─▶ one handshake thread per connection (bounded,
//!                per source) ─▶ accept() hands out finished, verified connections
//! ```
//!
//! Every certificate is checked against the deployment's CA, both ways. A
//! connection's [`Connection::peer_identity`](crate::Connection::peer_identity)
//! is the role its certificate names ([`TlsRole`]), which the serving layer
//! checks (only P1 may open a peer link, the client checks that its two servers
//! are P0 and P1). Clients verify a server against `server.blindfold` and then
//! read its role; P1 verifies P0 against `p0.blindfold` directly.
//!
//! [`TlsStream`] is a [`SplitStream`]: a rustls session is one object, so the
//! two halves share it under a lock, which is never held while blocking on the
//! socket: the reader reads ciphertext unlocked and feeds it in; the writer
//! encrypts under the lock and writes the records while holding only a second,
//! socket-writing lock (taken before the session lock is released, so records
//! leave in the order they were sealed).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::stream::{SplitStream, StreamChannel, TimedRead};
use crate::transport::{Listener, Transport};
use crate::{NetError, Result};

/// The name every server certificate carries besides its role's.
pub const SERVER_NAME: &str = "server.blindfold";

/// How long a TLS handshake may take at most.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes a [`TlsAcceptor`] runs at once, and per source address.
pub const MAX_HANDSHAKES: usize = 64;
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 8;

/// Ciphertext read from the socket at a time: at most one record's worth of
/// plaintext comes out of it, so rustls's received-plaintext buffer (filled
/// only when empty) never overflows.
const READ_CHUNK: usize = 16 * 1024;

/// The roles of a deployment, each with its own certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsRole {
    P0,
    P1,
    Client,
}

impl TlsRole {
    pub const ALL: [TlsRole; 3] = [TlsRole::P0, TlsRole::P1, TlsRole::Client];

    /// The DNS name this role's certificate is issued for.
    pub fn dns_name(self) -> &'static str {
        match self {
            TlsRole::P0 => "p0.blindfold",
            TlsRole::P1 => "p1.blindfold",
            TlsRole::Client => "client.blindfold",
        }
    }

    /// The file stem of this role's certificate and key (`p0.pem`, `p0.key`).
    pub fn stem(self) -> &'static str {
        match self {
            TlsRole::P0 => "p0",
            TlsRole::P1 => "p1",
            TlsRole::Client => "client",
        }
    }

    /// Servers accept connections; P1 also dials P0.
    fn is_server(self) -> bool {
        self != TlsRole::Client
    }

    /// The role named by `s` (`p0`, `p1`, `client`, or a DNS name).
    pub fn parse(s: &str) -> Option<TlsRole> {
        TlsRole::ALL
            .into_iter()
            .find(|r| s == r.stem() || s == r.dns_name())
    }
}

impl std::fmt::Display for TlsRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.stem())
    }
}

/// Why TLS material is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{what}: no PEM {kind} found")]
    NoPem { what: String, kind: &'static str },
    #[error("{what}: malformed PEM: {detail}")]
    BadPem { what: String, detail: String },
    #[error("{what}: {source}")]
    Certificate { what: String, source: webpki::Error },
    #[error(
        "{what} is not the {role} certificate of this deployment (it is not issued for {name})"
    )]
    WrongRole {
        what: String,
        role: TlsRole,
        name: &'static str,
    },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("making certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("web host name '{0}': empty, or a name of the deployment's own roles (*.blindfold)")]
    WebHost(String),
}

/// What one role of a deployment needs: the CA, its certificate chain and its
/// private key. Built from PEM; each process loads only its own role's files.
pub struct TlsIdentity {
    role: TlsRole,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Drop for TlsIdentity {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_from_pem(
    what: &str,
    pem: &[u8],
) -> std::result::Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what: what.into(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: what.into(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

/// The role a verified end-entity certificate is issued for, if any.
fn role_of(cert: &CertificateDer<'_>) -> Option<TlsRole> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    TlsRole::ALL.into_iter().find(|r| {
        ServerName::try_from(r.dns_name())
            .ok()
            .is_some_and(|n| ee.verify_is_valid_for_subject_name(&n).is_ok())
    })
}

impl TlsIdentity {
    /// Parse and check PEM material for `role`: the certificate must chain to
    /// the CA and be issued for the role's name, and the key must be its key.
    pub fn from_pem(
        role: TlsRole,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> std::result::Result<TlsIdentity, TlsError> {
        let cas = certs_from_pem("ca.pem", ca_pem)?;
        let what = format!("{}.pem", role.stem());
        let chain = certs_from_pem(&what, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
                what: format!("{}.key", role.stem()),
                kind: "private key",
            },
            e => TlsError::BadPem {
                what: format!("{}.key", role.stem()),
                detail: e.to_string(),
            },
        })?;
        let mut roots = RootCertStore::empty();
        for c in cas {
            roots.add(c)?;
        }
        // The chain must verify against the CA now, not at the first handshake.
        let anchors: Vec<_> = roots.roots.to_vec();
        let ee =
            webpki::EndEntityCert::try_from(&chain[0]).map_err(|source| TlsError::Certificate {
                what: what.clone(),
                source,
            })?;
        let usage = if role.is_server() {
            webpki::KeyUsage::server_auth()
        } else {
            webpki::KeyUsage::client_auth()
        };
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        ee.verify_for_usage(
            algs.all,
            &anchors,
            &chain[1..],
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map_err(|source| TlsError::Certificate {
            what: what.clone(),
            source,
        })?;
        if role_of(&chain[0]) != Some(role) {
            return Err(TlsError::WrongRole {
                what,
                role,
                name: role.dns_name(),
            });
        }
        let id = TlsIdentity {
            role,
            roots: Arc::new(roots),
            chain,
            key,
        };
        // Building a config checks that the key is the certificate's.
        if role.is_server() {
            id.server_config()?;
        } else {
            id.client_config()?;
        }
        Ok(id)
    }

    /// Read `ca.pem`, `<role>.pem` and `<role>.key` from `dir` (nothing else).
    pub fn load(dir: &Path, role: TlsRole) -> std::result::Result<TlsIdentity, TlsError> {
        let read = |name: String| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| TlsError::Io { path, source })
        };
        let ca = read("ca.pem".into())?;
        let cert = read(format!("{}.pem", role.stem()))?;
        let key = zeroize::Zeroizing::new(read(format!("{}.key", role.stem()))?);
        TlsIdentity::from_pem(role, &ca, &cert, &key)
    }

    pub fn role(&self) -> TlsRole {
        self.role
    }

    fn server_config(&self) -> std::result::Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        // No resumption: every connection is a full, mutually verified handshake.
        cfg.send_tls13_tickets = 0;
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(cfg))
    }

    fn client_config(&self) -> std::result::Result<Arc<ClientConfig>, TlsError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }

    /// A transport that dials servers of this deployment: `to = Some(role)`
    /// verifies that the server is that role (P1 dialling P0); `None` accepts
    /// either server (a client, which then checks each one's
    /// [`peer_identity`](crate::Connection::peer_identity)).
    pub fn transport(&self, to: Option<TlsRole>) -> std::result::Result<TlsTransport, TlsError> {
        let name = to.map_or(SERVER_NAME, TlsRole::dns_name);
        Ok(TlsTransport {
            config: self.client_config()?,
            server_name: ServerName::try_from(name)
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?
                .to_owned(),
        })
    }

    /// Accept TLS connections on `listener` (servers only).
    pub fn acceptor(&self, listener: TcpListener) -> Result<TlsAcceptor> {
        let cfg = self
            .server_config()
            .map_err(|e| NetError::Tls(e.to_string()))?;
        TlsAcceptor::new(listener, cfg)
    }
}

/// The file of a server's browser-facing certificate (`p0-web.pem`).
pub fn web_cert_file(role: TlsRole) -> String {
    format!("{}-web.pem", role.stem())
}

/// The file of its key (`p0-web.key`).
pub fn web_key_file(role: TlsRole) -> String {
    format!("{}-web.key", role.stem())
}

/// The PEM files of a deployment, as `blindfold certs` writes them (the
/// private keys are zeroized on drop).
pub struct DeploymentCerts {
    /// `(file name, contents, secret)`: `ca.pem`, then per role `<role>.pem`
    /// and `<role>.key`. The CA's key is not kept (nobody needs it after).
    pub files: Vec<(String, String, bool)>,
}

impl DeploymentCerts {
    /// A fresh CA and a certificate per role, valid for `days`.
    pub fn generate(days: u32) -> std::result::Result<DeploymentCerts, TlsError> {
        DeploymentCerts::generate_with_web(days, [&[], &[]])
    }

    /// As [`DeploymentCerts::generate`], and a browser-facing certificate for
    /// each server whose list in `web_hosts` (P0's, P1's) is not empty
    /// (`p0-web.pem`/`.key`, `p1-web.pem`/`.key`), for those host names or IP
    /// addresses, signed by the same CA, for server authentication only
    /// (`serve --ws-listen`). Each server's names should be its own: a
    /// certificate valid for the other server's name lets one server pose as
    /// both to a browser. Names of the deployment's roles (`*.blindfold`) are
    /// refused.
    pub fn generate_with_web(
        days: u32,
        web_hosts: [&[String]; 2],
    ) -> std::result::Result<DeploymentCerts, TlsError> {
        for h in web_hosts.iter().flat_map(|l| l.iter()) {
            let lower = h.to_ascii_lowercase();
            if h.is_empty() || lower == "blindfold" || lower.ends_with(".blindfold") {
                return Err(TlsError::WebHost(h.clone()));
            }
        }
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        };
        let now = time_now();
        let until = now + std::time::Duration::from_secs(u64::from(days) * 86_400);
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "blindfold deployment CA");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now.into();
        ca.not_after = until.into();
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let mut files = vec![("ca.pem".to_string(), ca_cert.pem(), false)];
        for role in TlsRole::ALL {
            let mut names = vec![role.dns_name().to_string()];
            if role.is_server() {
                names.push(SERVER_NAME.to_string());
            }
            let mut p = CertificateParams::new(names)?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, format!("blindfold {}", role.stem()));
            p.distinguished_name = dn;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = match role {
                TlsRole::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
                _ => vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            };
            p.not_before = now.into();
            p.not_after = until.into();
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
            files.push((format!("{}.pem", role.stem()), cert.pem(), false));
            files.push((format!("{}.key", role.stem()), key.serialize_pem(), true));
        }
        for (role, hosts) in [TlsRole::P0, TlsRole::P1].into_iter().zip(web_hosts) {
            if !hosts.is_empty() {
                let mut p = CertificateParams::new(hosts.to_vec())?;
                let mut dn = DistinguishedName::new();
                dn.push(
                    DnType::CommonName,
                    format!("blindfold {} (browsers)", role.stem()),
                );
                p.distinguished_name = dn;
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                p.not_before = now.into();
                p.not_after = until.into();
                let key = KeyPair::generate()?;
                let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
                files.push((web_cert_file(role), cert.pem(), false));
                files.push((web_key_file(role), key.serialize_pem(), true));
            }
        }
        Ok(DeploymentCerts { files })
    }

    /// The contents of file `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, _)| c.as_bytes())
    }

    /// The identity of `role` from these files.
    pub fn identity(&self, role: TlsRole) -> std::result::Result<TlsIdentity, TlsError> {
        let get = |n: String| self.get(&n).unwrap_or_default();
        TlsIdentity::from_pem(
            role,
            get("ca.pem".into()),
            get(format!("{}.pem", role.stem())),
            get(format!("{}.key", role.stem())),
        )
    }
}

impl Drop for DeploymentCerts {
    fn drop(&mut self) {
        for (_, contents, secret) in &mut self.files {
            if *secret {
                zeroize::Zeroize::zeroize(contents);
            }
        }
    }
}

/// Now, a minute ago (clock skew between the machines of a deployment).
fn time_now() -> std::time::SystemTime {
    std::time::SystemTime::now() - Duration::from_secs(60)
}

/// Closes a socket when a deadline passes unless disarmed first: bounds a
/// whole handshake (TLS, an HTTP head, a page write) however its bytes are
/// dribbled in, where socket timeouts bound only each read or write.
pub(crate) struct Watchdog {
    state: Arc<AtomicU8>,
    done: Option<mpsc::Sender<()>>,
}

const ARMED: u8 = 0;
const DISARMED: u8 = 1;
const FIRED: u8 = 2;

impl Watchdog {
    pub(crate) fn arm(tcp: &TcpStream, deadline: Instant) -> io::Result<Watchdog> {
        let sock = tcp.try_clone()?;
        let (tx, rx) = mpsc::channel::<()>();
        let state = Arc::new(AtomicU8::new(ARMED));
        let st = state.clone();
        std::thread::Builder::new()
            .name("handshake-watchdog".into())
            .spawn(move || {
                let wait = deadline.saturating_duration_since(Instant::now());
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                    // Only if the exchange has not finished meanwhile.
                    if st
                        .compare_exchange(ARMED, FIRED, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        let _ = sock.shutdown(std::net::Shutdown::Both);
                    }
                }
            })?;
        Ok(Watchdog {
            state,
            done: Some(tx),
        })
    }

    /// The exchange finished: leave the socket open, unless the deadline
    /// fired first (then the socket is closed and this is a timeout).
    pub(crate) fn disarm(mut self) -> Result<()> {
        let won = self
            .state
            .compare_exchange(ARMED, DISARMED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
        if won {
            Ok(())
        } else {
            Err(NetError::Timeout)
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropped armed (an error path): the thread wakes on the hang-up and
        // leaves the socket to its owner, which is dropping it.
        self.done.take();
    }
}

/// Both halves' view of one TLS session.
struct Shared {
    session: Mutex<rustls::Connection>,
    /// Held while writing records to the socket (never the session lock).
    socket: Mutex<TcpStream>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tls_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Seal whatever the session has to send and write it, in order.
fn drain(shared: &Shared, mut session: MutexGuard<'_, rustls::Connection>) -> io::Result<()> {
    let mut out = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut out)?;
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut sock = lock(&shared.socket);
    drop(session);
    sock.write_all(&out)
}

/// A TLS connection over TCP whose handshake has completed and whose peer
/// presented a certificate of this deployment.
pub struct TlsStream {
    shared: Arc<Shared>,
    reader: TcpStream,
    peer: String,
    /// `None` only on a browser link (server-authenticated, see
    /// [`accept_browser`]); every link of the deployment has a role.
    role: Option<TlsRole>,
}

impl TlsStream {
    /// Run the handshake on `tcp` until `deadline`; the peer's role (required
    /// unless `browser`: a browser presents no certificate).
    fn handshake(
        tcp: TcpStream,
        mut session: rustls::Connection,
        deadline: Instant,
        browser: bool,
    ) -> Result<TlsStream> {
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tcp.set_nodelay(true)?;
        let mut io = tcp.try_clone()?;
        // Socket timeouts bound each read; rustls's complete_io reads many
        // times, so the watchdog bounds the handshake as a whole.
        let watchdog = Watchdog::arm(&tcp, deadline)?;
        while session.is_handshaking() {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(NetError::Timeout)?;
            io.set_read_timeout(Some(left))?;
            io.set_write_timeout(Some(left))?;
            match session.complete_io(&mut io) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NetError::Timeout)
                }
                Err(e) => return Err(NetError::Tls(e.to_string())),
            }
        }
        // Anything still queued (the client's Finished) goes out now.
        while session.wants_write() {
            session.write_tls(&mut io)?;
        }
        watchdog.disarm()?;
        io.set_read_timeout(None)?;
        io.set_write_timeout(None)?;
        let role = if browser {
            None
        } else {
            Some(
                session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(role_of)
                    .ok_or_else(|| NetError::Tls("the peer's certificate names no role".into()))?,
            )
        };
        Ok(TlsStream {
            shared: Arc::new(Shared {
                session: Mutex::new(session),
                socket: Mutex::new(io),
            }),
            reader: tcp,
            peer,
            role,
        })
    }

    /// The role the peer's certificate is issued for (`None`: a browser).
    pub fn peer_role(&self) -> Option<TlsRole> {
        self.role
    }
}

/// The reading half: ciphertext is read unlocked, then fed to the session.
pub struct TlsReader {
    shared: Arc<Shared>,
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Ciphertext read but not yet taken by the session.
    pending: (usize, usize),
    eof: bool,
    /// The time one read may take (the last `set_read_timeout`): one read
    /// here may read the socket many times (a record dribbled in), so the
    /// allowance is checked, and the socket's timeout re-armed to what is
    /// left of it, before each. Ciphertext already read is kept, so a
    /// timeout stays recoverable.
    limit: Option<Duration>,
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let until = self.limit.map(|t| Instant::now() + t);
        loop {
            {
                let mut s = lock(&self.shared.session);
                match s.reader().read(out) {
                    Ok(n) if n > 0 || out.is_empty() => return Ok(n),
                    Ok(_) => return Ok(0), // close_notify
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.eof {
                    return Ok(0);
                }
                let (a, b) = self.pending;
                if a < b {
                    let mut slice = &self.buf[a..b];
                    let took = s.read_tls(&mut slice)?;
                    self.pending.0 += took;
                    s.process_new_packets().map_err(tls_io)?;
                    if s.wants_write() {
                        // A post-handshake message wants an answer: send it if the
                        // writer is not mid-write (else it goes with the next write).
                        if let Ok(mut sock) = self.shared.socket.try_lock() {
                            let mut rec = Vec::new();
                            while s.wants_write() {
                                s.write_tls(&mut rec)?;
                            }
                            drop(s);
                            sock.write_all(&rec)?;
                        }
                    }
                    continue;
                }
            }
            if let Some(until) = until {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.tcp.set_read_timeout(Some(left))?;
            }
            let n = self.tcp.read(&mut self.buf)?;
            if n == 0 {
                self.eof = true;
                let mut s = lock(&self.shared.session);
                let _ = s.read_tls(&mut &[][..]);
                let _ = s.process_new_packets();
                continue;
            }
            self.pending = (0, n);
        }
    }
}

impl TimedRead for TlsReader {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.limit = t;
        self.tcp.set_read_timeout(t)
    }
    fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(t)
    }
}

/// The writing half: plaintext is sealed under the session lock and written
/// under the socket lock.
pub struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = lock(&self.shared.session);
        let n = s.writer().write(buf)?;
        drain(&self.shared, s)?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        drain(&self.shared, lock(&self.shared.session))?;
        lock(&self.shared.socket).flush()
    }
}

impl Drop for TlsWriter {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.session);
        s.send_close_notify();
        let _ = drain(&self.shared, s);
    }
}

impl SplitStream for TlsStream {
    type Reader = TlsReader;
    type Writer = TlsWriter;
    fn peer(&self) -> String {
        match self.role {
            Some(r) => format!("{} ({r})", self.peer),
            None => format!("{} (browser)", self.peer),
        }
    }
    /// The role's name, or `browser` for a server-authenticated browser link
    /// (which therefore never passes a check for a deployment role).
    fn identity(&self) -> Option<String> {
        Some(self.role.map_or("browser", |r| r.stem()).to_string())
    }
    fn split(self) -> io::Result<(TlsReader, TlsWriter)> {
        let reader = TlsReader {
            shared: self.shared.clone(),
            tcp: self.reader,
            buf: vec![0; READ_CHUNK],
            pending: (0, 0),
            eof: false,
            limit: None,
        };
        Ok((
            reader,
            TlsWriter {
                shared: self.shared,
            },
        ))
    }
}

/// A framed channel over TLS.
pub type TlsChannel = StreamChannel<TlsStream>;

/// Dials servers of a deployment over TLS (see [`TlsIdentity::transport`]).
#[derive(Clone)]
pub struct TlsTransport {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// How often connecting is retried while nobody listens.
const RETRY: Duration = Duration::from_millis(50);

impl TlsTransport {
    /// A verified TLS byte stream without framing (tests and tools that must
    /// send malformed frames).
    pub fn connect_stream(&self, addr: &str, deadline: Instant) -> Result<TlsStream> {
        let tcp = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() + RETRY >= deadline => return Err(NetError::Io(e)),
                Err(_) => std::thread::sleep(RETRY),
            }
        };
        let session = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| NetError::Tls(e.to_string()))?;
        let hs = deadline.min(Instant::now() + HANDSHAKE_TIMEOUT);
        TlsStream::handshake(tcp, rustls::Connection::Client(session), hs, false)
    }
}

impl Transport for TlsTransport {
    type Conn = TlsChannel;
    fn connect(&self, addr: &str, deadline: Instant) -> Result<TlsChannel> {
        StreamChannel::new(self.connect_stream(addr, deadline)?)
    }
}

/// Accepts TLS connections: a thread accepts TCP connections and runs each
/// handshake on its own thread (at most [`MAX_HANDSHAKES`] at once, and
/// [`MAX_HANDSHAKES_PER_SOURCE`] per source address; others are closed at once),
/// so a slow or silent stranger never holds up anyone else.
pub struct TlsAcceptor {
    rx: Mutex<Receiver<Result<TlsChannel>>>,
    addr: String,
    stop: Arc<AtomicBool>,
}

/// Handshakes under way, in all and per source address.
struct Handshakes {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// One handshake's place in [`Handshakes`], given back when dropped.
struct HandshakeSlot {
    active: Arc<Mutex<Handshakes>>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut a = lock(&self.active);
        a.total -= 1;
        if let Some(n) = a.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                a.per_source.remove(&self.ip);
            }
        }
    }
}

/// Accept TCP connections on `listener` (non-blocking, polled) until `stop`,
/// each handed to `handshake` on its own thread: at most `max` at once and
/// `per_source` per address (others are closed at once); what a handshake
/// returns (`Some`) goes to `tx`, dropped if the queue is full. The accept
/// loop of [`TlsAcceptor`] and of the browsers' `ws::WsListener`.
pub(crate) fn accept_loop<T, F>(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    tx: mpsc::SyncSender<T>,
    (max, per_source): (usize, usize),
    handshake: F,
) where
    T: Send + 'static,
    F: Fn(TcpStream) -> Option<T> + Send + Sync + 'static,
{
    let handshake = Arc::new(handshake);
    let active = Arc::new(Mutex::new(Handshakes {
        total: 0,
        per_source: HashMap::new(),
    }));
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let (tcp, from) = match listener.accept() {
                Ok(x) => x,
                Err(_) => {
                    // Nothing waiting, or out of descriptors: do not spin.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let ip = from.ip();
            {
                let mut a = lock(&active);
                let n = a.per_source.get(&ip).copied().unwrap_or(0);
                if a.total >= max || n >= per_source {
                    continue; // dropped: closes the socket
                }
                a.total += 1;
                *a.per_source.entry(ip).or_insert(0) += 1;
            }
            let (tx, handshake) = (tx.clone(), handshake.clone());
            // The place is given back however the handshake ends (a panic too).
            let slot = HandshakeSlot {
                active: active.clone(),
                ip,
            };
            let spawned = std::thread::Builder::new().spawn(move || {
                let _slot = slot;
                if let Some(r) = handshake(tcp) {
                    let _ = tx.try_send(r);
                }
            });
            if spawned.is_err() {
                // No thread to be had: the connection (moved into the failed
                // closure) is closed and its place given back.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
}

impl TlsAcceptor {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> Result<TlsAcceptor> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let (tx, rx) = mpsc::sync_channel(MAX_HANDSHAKES);
        let stop = Arc::new(AtomicBool::new(false));
        accept_loop(
            listener,
            stop.clone(),
            tx,
            (MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE),
            move |tcp: TcpStream| {
                Some((|| {
                    tcp.set_nonblocking(false)?;
                    let session = ServerConnection::new(config.clone())
                        .map_err(|e| NetError::Tls(e.to_string()))?;
                    let stream = TlsStream::handshake(
                        tcp,
                        rustls::Connection::Server(session),
                        Instant::now() + HANDSHAKE_TIMEOUT,
                        false,
                    )?;
                    StreamChannel::new(stream)
                })())
            },
        );
        Ok(TlsAcceptor {
            rx: Mutex::new(rx),
            addr,
            stop,
        })
    }
}

/// A browser port's TLS configuration ([`browser_server_config`]).
pub type BrowserTlsConfig = Arc<ServerConfig>;

/// TLS for browser clients (`wss://`, `https://`): server-authenticated only
/// (a browser presents no certificate), with the certificate chain and key
/// given (`blindfold certs --web-host-p0/-p1`, or one from a public CA for the
/// servers' host names). TLS 1.3 only, as every other link; ALPN `http/1.1`.
pub fn browser_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> std::result::Result<BrowserTlsConfig, TlsError> {
    let chain = certs_from_pem("web certificate", cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadPem {
        what: "web certificate key".into(),
        detail: e.to_string(),
    })?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The server side of a browser's TLS handshake on `tcp`, until `deadline`.
/// The stream has no peer role ([`TlsStream::peer_role`] is `None`).
pub fn accept_browser(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    deadline: Instant,
) -> Result<TlsStream> {
    let session = ServerConnection::new(config).map_err(|e| NetError::Tls(e.to_string()))?;
    TlsStream::handshake(tcp, rustls::Connection::Server(session), deadline, true)
}

impl Drop for TlsAcceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Listener for TlsAcceptor {
    type Conn = TlsChannel;
    fn accept(&self, deadline: Instant) -> Result<Option<TlsChannel>> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match lock(&self.rx).recv_timeout(wait) {
            Ok(r) => r.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(NetError::Closed),
        }
    }
    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}
