//! Whole servers over the in-memory transport (no sockets): both servers and
//! the client run the serving code of production over `MemoryNetwork` pipes,
//! with the same framing, metering and background writers as TCP. Answers are
//! compared bit for bit with the plaintext reference (ppml_b is a ReLU
//! network), and faults are injected on raw pipes.

mod common;

use blindfold_core::Prg;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::serve::wire::{ErrorCode, Hello, LinkKind, Query, Reply, Share};
use blindfold_engine::serve::{self, LocalCluster, ServeConfig};
use blindfold_engine::share::split;
use blindfold_engine::EngineError;
use blindfold_model::engine::{argmax_ring, run_plain};
use blindfold_model::quant::NonLinear;
use blindfold_net::{
    Channel, Connection, Listener, MemoryNetwork, NetError, PipeChannel, StreamChannel, Transport,
};
use common::{config, digit, greet, send_query, within};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);

fn connect(net: &MemoryNetwork, addr: &str) -> PipeChannel {
    net.connect(addr, Instant::now() + Duration::from_secs(5))
        .unwrap()
}

#[test]
fn in_memory_cluster_answers_bit_exact() {
    // Garbled-circuit ReLUs: a fixed sequence of flights, so both servers count
    // the same rounds (up to the flight under way at the start).
    cluster_answers_bit_exact(NonLinear::Gc, 1);
    // OT comparisons: in some exchanges both servers send before they receive,
    // so the two ends split the crossing messages into flights differently; the
    // bound below says the counts stay close, not equal.
    cluster_answers_bit_exact(NonLinear::Ot, 8);
}

fn cluster_answers_bit_exact(nonlinear: NonLinear, rounds_slack: u64) {
    within(120, "in-memory cluster", move || {
        let mut q = common::model("ppml_b");
        q.nonlinear = nonlinear;
        let cfg = ServeConfig {
            pool: 2,
            ..config(None, TIMEOUT)
        };
        let cluster = LocalCluster::start_in_memory(&q, cfg, &mut Prg::from_seed([1; 16])).unwrap();
        assert!(cluster.addrs[0].starts_with("mem:"));
        let info = cluster.info().unwrap();
        assert_eq!(info.input_len(), q.input_shape().numel());
        for i in 0..4 {
            let x = digit(i);
            let want = run_plain(&q, &x).unwrap();
            let a = cluster.query(&x).unwrap();
            assert_eq!(a.ring, want, "{nonlinear:?} digit {i}");
            assert_eq!(a.label, argmax_ring(&want));
            assert!(a.cost[0].online_bytes > 0 && a.cost[0].online_rounds > 0);
            // Both servers measured the same online bytes between them.
            assert_eq!(a.cost[0].online_bytes, a.cost[1].online_bytes);
            let (r0, r1) = (a.cost[0].online_rounds, a.cost[1].online_rounds);
            assert!(
                r0.abs_diff(r1) <= rounds_slack,
                "{nonlinear:?}: rounds {r0} / {r1}"
            );
            let l = cluster.query_kind(&x, OutputKind::Label).unwrap();
            assert_eq!(l.label, argmax_ring(&want));
            assert!(l.scores.is_empty());
        }
    });
}

/// A server over the in-memory network, with its own stop flag.
struct MemServer {
    addr: String,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<blindfold_engine::Result<()>>>,
}

impl MemServer {
    fn start(net: &MemoryNetwork, engine: PartyEngine, peer: Option<String>) -> MemServer {
        let l = net.listen();
        let addr = l.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (net.clone(), stop.clone());
        let cfg = config(peer, TIMEOUT);
        let handle = Some(std::thread::spawn(move || {
            serve::run_on(engine, n, l, cfg, s)
        }));
        MemServer { addr, stop, handle }
    }

    fn stop(&mut self) -> blindfold_engine::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take() {
            Some(h) => h.join().expect("server thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for MemServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[test]
fn faults_over_in_memory_transport() {
    within(180, "faults over pipes", || {
        let q = common::model("ppml_b");
        let n = q.input_shape().numel();
        let [s0, s1] = split(&q, &mut Prg::from_seed([3; 16]));
        let net = MemoryNetwork::new();
        let p0 = MemServer::start(&net, PartyEngine::new(s0).unwrap(), None);
        let mut p1 = MemServer::start(
            &net,
            PartyEngine::new(s1.clone()).unwrap(),
            Some(p0.addr.clone()),
        );
        let x = digit(4);
        let want = run_plain(&q, &x).unwrap();
        let normal = |addrs: [&str; 2]| {
            serve::query_on(&net, addrs, &x, Duration::from_secs(10), OutputKind::Logits)
        };
        assert_eq!(normal([&p0.addr, &p1.addr]).unwrap().ring, want);

        // Raw bytes: a length prefix above the frame limit, and half a frame
        // followed by silence. Both connections are dropped (the second when
        // its deadline passes), and service continues meanwhile.
        let mut junk = net
            .connect_stream(&p0.addr, Instant::now() + Duration::from_secs(1))
            .unwrap();
        junk.write_all(&u32::MAX.to_le_bytes()).unwrap();
        let mut slow = net
            .connect_stream(&p1.addr, Instant::now() + Duration::from_secs(1))
            .unwrap();
        slow.write_all(&100u32.to_le_bytes()).unwrap();
        slow.write_all(&[1; 10]).unwrap();
        assert_eq!(normal([&p0.addr, &p1.addr]).unwrap().ring, want);
        let mut buf = [0u8; 16];
        assert_eq!(junk.read(&mut buf).unwrap(), 0, "junk connection kept open");
        let t0 = Instant::now();
        assert_eq!(slow.read(&mut buf).unwrap(), 0, "slow connection kept open");
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(5));

        // A link greeting to P1 is refused; a P0 client without a P1 share
        // expires; a share of the wrong size is refused.
        let mut ch = connect(&net, &p1.addr);
        ch.send_vec(
            Hello::Link {
                kind: LinkKind::Online,
                attempt: [9; 16],
            }
            .encode(),
        )
        .unwrap();
        ch.flush().unwrap();
        ch.set_deadline(Some(Instant::now() + Duration::from_secs(10)))
            .unwrap();
        assert!(matches!(ch.recv(), Err(NetError::Closed)));
        let mut c0 = connect(&net, &p0.addr);
        greet(&mut c0);
        let r = send_query(
            &mut c0,
            &Query {
                id: [5; 16],
                kind: OutputKind::Logits,
                share: Share::Seed([6; 16]),
            },
        );
        assert!(
            matches!(
                r,
                Reply::Error {
                    code: ErrorCode::MissingShare,
                    ..
                }
            ),
            "{r:?}"
        );
        // While a P1 share waits for its P0 half, a second query with the same
        // id is refused.
        let mut waiting = connect(&net, &p1.addr);
        greet(&mut waiting);
        let q = Query {
            id: [8; 16],
            kind: OutputKind::Logits,
            share: Share::Values(vec![0; n]),
        };
        waiting.send_vec(q.encode()).unwrap();
        waiting.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut dup = connect(&net, &p1.addr);
        greet(&mut dup);
        let r = send_query(&mut dup, &q);
        assert!(
            matches!(
                &r,
                Reply::Error {
                    code: ErrorCode::BadRequest,
                    message
                } if message.contains("duplicate")
            ),
            "{r:?}"
        );
        drop(waiting);
        let mut c1 = connect(&net, &p1.addr);
        greet(&mut c1);
        let r = send_query(
            &mut c1,
            &Query {
                id: [7; 16],
                kind: OutputKind::Logits,
                share: Share::Values(vec![0; n + 1]),
            },
        );
        assert!(
            matches!(
                r,
                Reply::Error {
                    code: ErrorCode::BadInput,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(normal([&p0.addr, &p1.addr]).unwrap().ring, want);

        // P1 goes away: clients get an error naming the unavailable peer (or a
        // refused connection), and once a new P1 pairs, service resumes.
        p1.stop().unwrap();
        let old = p1.addr.clone();
        match normal([&p0.addr, &old]) {
            Err(EngineError::Net(_)) => {}
            other => panic!("P1 is gone, yet: {other:?}"),
        }
        let p1b = MemServer::start(&net, PartyEngine::new(s1).unwrap(), Some(p0.addr.clone()));
        let mut errors = Vec::new();
        loop {
            match normal([&p0.addr, &p1b.addr]) {
                Ok(a) => {
                    assert_eq!(a.ring, want);
                    break;
                }
                Err(e @ EngineError::Remote { .. }) => errors.push(e.to_string()),
                Err(e) => panic!("after P1 restarted: {e}"),
            }
            assert!(errors.len() < 3, "no answer after P1 restarted: {errors:?}");
        }
        drop(p1b);
        drop(p0);
    });
}

/// The in-memory link a test holds open, to check the pipe itself (not just
/// the servers) reports a closed peer.
#[test]
fn pipe_channel_reports_closed_peer() {
    let net = MemoryNetwork::new();
    let l = net.listen();
    let c = connect(&net, &l.local_addr());
    let mut s: PipeChannel = l
        .accept(Instant::now() + Duration::from_secs(1))
        .unwrap()
        .unwrap();
    drop(c);
    assert!(matches!(s.recv(), Err(NetError::Closed)));
    let _ = StreamChannel::new(blindfold_net::pipe("a", "b").0).unwrap();
}

#[test]
fn party_one_without_a_peer_address_is_refused() {
    let q = common::model("ppml_b");
    let [_, s1] = split(&q, &mut Prg::from_seed([4; 16]));
    let net = MemoryNetwork::new();
    let r = serve::run_on(
        PartyEngine::new(s1).unwrap(),
        net.clone(),
        net.listen(),
        config(None, TIMEOUT),
        Arc::new(AtomicBool::new(false)),
    );
    assert!(matches!(r, Err(EngineError::MissingPeerAddress)), "{r:?}");
}

/// The traffic between the servers is metered the same over pipes and over
/// loopback TCP: the costs a query reports do not depend on the transport.
#[test]
fn costs_are_the_same_over_pipes_and_tcp() {
    within(120, "costs over two transports", || {
        let q = common::model("ppml_b");
        let x = digit(6);
        let mem = LocalCluster::start_in_memory(
            &q,
            config(None, Duration::from_secs(30)),
            &mut Prg::from_seed([1; 16]),
        )
        .unwrap();
        let tcp = LocalCluster::start(&q, 1, &mut Prg::from_seed([1; 16])).unwrap();
        let a = mem.query(&x).unwrap();
        let b = tcp.query(&x).unwrap();
        assert_eq!(a.ring, b.ring);
        for p in 0..2 {
            assert_eq!(a.cost[p].online_bytes, b.cost[p].online_bytes, "P{p}");
            assert_eq!(a.cost[p].online_rounds, b.cost[p].online_rounds, "P{p}");
            assert_eq!(a.cost[p].offline_bytes, b.cost[p].offline_bytes, "P{p}");
        }
        assert_eq!(a.client_bytes, b.client_bytes);
    });
}
