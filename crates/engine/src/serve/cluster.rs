//! Two servers in this process (demo, eval, tests): split a model, listen on
//! fresh addresses, run both servers on threads. Dropping the cluster stops
//! them.

use super::client::{info_on, query_on, Answer};
use super::wire::ModelInfo;
use super::{run_on, ServeConfig};
use crate::party::{OutputKind, PartyEngine};
use crate::Result;
use blindfold_core::Prg;
use blindfold_net::tls::DeploymentCerts;
use blindfold_net::{
    Listener, MemoryNetwork, TcpAcceptor, TcpTransport, TlsRole, TlsTransport, Transport,
};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two servers of one split, running on threads of this process.
pub struct LocalCluster<T: Transport = TcpTransport> {
    pub addrs: [String; 2],
    transport: T,
    shutdown: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Result<()>>>,
}

impl LocalCluster<TcpTransport> {
    /// Both servers on loopback TCP, port 0, default settings but `pool`.
    pub fn start(q: &blindfold_model::QModel, pool: usize, rng: &mut Prg) -> Result<LocalCluster> {
        let cfg = ServeConfig {
            pool,
            ..ServeConfig::default()
        };
        LocalCluster::start_tcp(q, cfg, rng)
    }

    /// Both servers on loopback TCP, port 0, with `cfg`.
    pub fn start_tcp(
        q: &blindfold_model::QModel,
        cfg: ServeConfig,
        rng: &mut Prg,
    ) -> Result<LocalCluster> {
        let l0 = TcpAcceptor::new(
            TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?,
        )?;
        let l1 = TcpAcceptor::new(
            TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?,
        )?;
        LocalCluster::start_on(q, [TcpTransport, TcpTransport], [l0, l1], cfg, rng)
    }
}

impl LocalCluster<TlsTransport> {
    /// Both servers on loopback, every link mutually authenticated TLS with
    /// the certificates of `certs` (P1 dials P0 as `p1`, the cluster's client
    /// connects as `client`).
    pub fn start_tls(
        q: &blindfold_model::QModel,
        certs: &DeploymentCerts,
        cfg: ServeConfig,
        rng: &mut Prg,
    ) -> Result<LocalCluster<TlsTransport>> {
        let tls = |e: blindfold_net::tls::TlsError| blindfold_net::NetError::Tls(e.to_string());
        let bind = || TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io);
        let l0 = certs
            .identity(TlsRole::P0)
            .map_err(tls)?
            .acceptor(bind()?)?;
        let l1 = certs
            .identity(TlsRole::P1)
            .map_err(tls)?
            .acceptor(bind()?)?;
        let peer = certs
            .identity(TlsRole::P1)
            .and_then(|i| i.transport(Some(TlsRole::P0)))
            .map_err(tls)?;
        let client = certs
            .identity(TlsRole::Client)
            .and_then(|i| i.transport(None))
            .map_err(tls)?;
        LocalCluster::start_on(q, [peer, client], [l0, l1], cfg, rng)
    }
}

impl LocalCluster<MemoryNetwork> {
    /// Both servers on a fresh in-memory network (no sockets); `cfg.peer` is
    /// set for P1.
    pub fn start_in_memory(
        q: &blindfold_model::QModel,
        cfg: ServeConfig,
        rng: &mut Prg,
    ) -> Result<LocalCluster<MemoryNetwork>> {
        let net = MemoryNetwork::new();
        let ls = [net.listen(), net.listen()];
        LocalCluster::start_on(q, [net.clone(), net], ls, cfg, rng)
    }
}

impl<T: Transport> LocalCluster<T> {
    /// Split `q` and serve the shares on `listeners` (P0's, P1's) with `cfg`
    /// (P1's `peer` is set to P0's address). `transports` are P1's, to dial P0,
    /// and the cluster's client's.
    pub fn start_on<L: Listener<Conn = T::Conn>>(
        q: &blindfold_model::QModel,
        transports: [T; 2],
        listeners: [L; 2],
        cfg: ServeConfig,
        rng: &mut Prg,
    ) -> Result<LocalCluster<T>> {
        let [s0, s1] = crate::share::split(q, rng);
        let e0 = PartyEngine::new(s0)?;
        let e1 = PartyEngine::new(s1)?;
        let [l0, l1] = listeners;
        let addrs = [l0.local_addr(), l1.local_addr()];
        let shutdown = Arc::new(AtomicBool::new(false));
        let cfg0 = ServeConfig {
            peer: None,
            ..cfg.clone()
        };
        let cfg1 = ServeConfig {
            peer: Some(addrs[0].clone()),
            ..cfg
        };
        let (sd0, sd1) = (shutdown.clone(), shutdown.clone());
        let [peer, transport] = transports;
        let (t0, t1) = (transport.clone(), peer);
        let h0 = std::thread::spawn(move || run_on(e0, t0, l0, cfg0, sd0));
        let h1 = std::thread::spawn(move || run_on(e1, t1, l1, cfg1, sd1));
        Ok(LocalCluster {
            addrs,
            transport,
            shutdown,
            handles: vec![h0, h1],
        })
    }

    /// The transport the servers listen on (to connect as a client).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn servers(&self) -> [&str; 2] {
        [self.addrs[0].as_str(), self.addrs[1].as_str()]
    }

    /// Model info and readiness as P0 reports it.
    pub fn info(&self) -> Result<ModelInfo> {
        info_on(&self.transport, &self.addrs[0], Duration::from_secs(10))
    }

    /// Wait until both servers report at least `n` preprocessed queries, or `timeout`.
    pub fn wait_ready(&self, n: usize, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let a = info_on(&self.transport, &self.addrs[0], Duration::from_secs(10))?.ready;
            let b = info_on(&self.transport, &self.addrs[1], Duration::from_secs(10))?.ready;
            if a.min(b) >= n {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(false)
    }

    /// Query the cluster for the label only.
    pub fn query_label(&self, input: &[f32]) -> Result<Answer> {
        self.query_kind(input, OutputKind::Label)
    }

    /// Query the cluster.
    pub fn query(&self, input: &[f32]) -> Result<Answer> {
        self.query_kind(input, OutputKind::Logits)
    }

    /// Query the cluster for `kind`.
    pub fn query_kind(&self, input: &[f32], kind: OutputKind) -> Result<Answer> {
        query_on(
            &self.transport,
            self.servers(),
            input,
            Duration::from_secs(30),
            kind,
        )
    }
}

impl<T: Transport> Drop for LocalCluster<T> {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A client-server server in this process (demo, eval, bench, tests): serves
/// `q` on `listener` from a thread; dropping it stops the server.
pub struct LocalCsServer<T: Transport = TcpTransport> {
    pub addr: String,
    transport: T,
    shutdown: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<()>>>,
}

impl LocalCsServer<TcpTransport> {
    /// On loopback TCP, port 0, with `cfg`.
    pub fn start(q: &blindfold_model::QModel, cfg: ServeConfig) -> Result<LocalCsServer> {
        let server = super::CsServer::new(q, &cfg)?;
        LocalCsServer::start_with(server, TcpTransport, tcp_loopback()?, cfg)
    }
}

impl LocalCsServer<TlsTransport> {
    /// On loopback with mutually authenticated TLS: the server presents the
    /// `p0` certificate of `certs`, the client the `client` one.
    pub fn start_tls(
        q: &blindfold_model::QModel,
        certs: &DeploymentCerts,
        cfg: ServeConfig,
    ) -> Result<LocalCsServer<TlsTransport>> {
        let tls = |e: blindfold_net::tls::TlsError| blindfold_net::NetError::Tls(e.to_string());
        let bind = TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?;
        let l = certs.identity(TlsRole::P0).map_err(tls)?.acceptor(bind)?;
        let client = certs
            .identity(TlsRole::Client)
            .and_then(|i| i.transport(Some(TlsRole::P0)))
            .map_err(tls)?;
        let server = super::CsServer::new(q, &cfg)?;
        LocalCsServer::start_with(server, client, l, cfg)
    }
}

impl LocalCsServer<MemoryNetwork> {
    /// On a fresh in-memory network.
    pub fn start_in_memory(
        q: &blindfold_model::QModel,
        cfg: ServeConfig,
    ) -> Result<LocalCsServer<MemoryNetwork>> {
        let net = MemoryNetwork::new();
        let l = net.listen();
        let server = super::CsServer::new(q, &cfg)?;
        LocalCsServer::start_with(server, net, l, cfg)
    }
}

fn tcp_loopback() -> Result<TcpAcceptor> {
    Ok(TcpAcceptor::new(
        TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?,
    )?)
}

impl<T: Transport> LocalCsServer<T> {
    /// Serve `server` on `listener`; `transport` is what clients connect with.
    pub fn start_with<L: Listener<Conn = T::Conn>>(
        server: super::CsServer,
        transport: T,
        listener: L,
        cfg: ServeConfig,
    ) -> Result<LocalCsServer<T>> {
        let addr = listener.local_addr();
        let shutdown = Arc::new(AtomicBool::new(false));
        let sd = shutdown.clone();
        let handle = std::thread::spawn(move || {
            super::cs_server::run_client_server(server, listener, cfg, sd)
        });
        Ok(LocalCsServer {
            addr,
            transport,
            shutdown,
            handle: Some(handle),
        })
    }

    /// The transport clients connect with.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// A new client connection (session set up, empty pool).
    pub fn client(&self) -> Result<super::CsClient<T::Conn>> {
        super::CsClient::connect_on(&self.transport, &self.addr, Duration::from_secs(30))
    }
}

impl<T: Transport> Drop for LocalCsServer<T> {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
