//! The attacks of the security review, each against real servers: an impostor
//! P1 that knows everything public, half-queries sent to P0 only, a peer-link
//! greeting followed by a huge frame or by a trickle of bytes, a flood of
//! idle connections, and TLS links with certificates of the wrong role or of
//! another deployment. Each test shows that real queries keep being answered
//! (bit-exact with the reference) while the attack runs.

mod common;

use blindfold_core::Prg;
use blindfold_engine::serve::wire::{ErrorCode, Hello, LinkKind, Query, Reply, Share};
use blindfold_engine::serve::{self, LocalCluster, ServeConfig};
use blindfold_engine::share::{split, PairingKey};
use blindfold_engine::EngineError;
use blindfold_model::engine::run_plain;
use blindfold_net::tls::DeploymentCerts;
use blindfold_net::{Channel, TlsRole, Transport};
use common::{config, digit, expect_closed, raw_client, within, Server, CLIENT_TIMEOUT};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODEL: &str = "ppml_b";

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn check(addrs: [&str; 2], q: &blindfold_model::QModel, i: usize) {
    let x = digit(i);
    let want = run_plain(q, &x).unwrap();
    let a =
        serve::query(addrs, &x, CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("real query {i}: {e}"));
    assert_eq!(a.ring, want, "query {i}");
}

#[test]
fn an_impostor_p1_that_knows_everything_public_is_refused() {
    within(180, "impostor P1", || {
        let q = common::model(MODEL);
        let [s0, s1] = split(&q, &mut Prg::from_seed([1; 16]));
        let p0 = Server::start(s0, None, Duration::from_secs(5));
        // Everything public: the split id (P0 tells every client), the party,
        // the architecture; the weights are irrelevant to pairing. Only the
        // pairing secret is a guess.
        let mut fake = s1.clone();
        fake.pairing_key = PairingKey([0x5a; 32]);
        let impostor = Server::start(fake, Some(p0.addr.clone()), Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(300));
        let p1 = Server::start(s1, Some(p0.addr.clone()), Duration::from_secs(5));
        // The impostor keeps dialling all along; every real query is answered.
        for i in 0..6 {
            check([&p0.addr, &p1.addr], &q, i);
        }
        // Nobody can use the impostor as P1.
        let x = digit(0);
        let r = serve::query([&p0.addr, &impostor.addr], &x, Duration::from_secs(3));
        assert!(r.is_err(), "a query through the impostor was answered");
    });
}

#[test]
fn half_queries_sent_to_p0_only_are_dropped_after_one_grace_period() {
    within(180, "half-query flood", || {
        let q = common::model(MODEL);
        let [s0, s1] = split(&q, &mut Prg::from_seed([2; 16]));
        let timeout = Duration::from_secs(20);
        let p0 = Server::start(s0, None, timeout);
        let p1 = Server::start(s1, Some(p0.addr.clone()), timeout);
        check([&p0.addr, &p1.addr], &q, 0);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let flooders: Vec<_> = (0..4)
            .map(|k| {
                let (addr, stop, dropped, slowest) = (
                    p0.addr.clone(),
                    stop.clone(),
                    dropped.clone(),
                    slowest.clone(),
                );
                std::thread::spawn(move || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let (mut ch, _) = raw_client(&addr);
                        let mut id = [k as u8; 16];
                        id[..4].copy_from_slice(&n.to_le_bytes());
                        n += 1;
                        let t0 = Instant::now();
                        let r = common::send_query(
                            &mut ch,
                            &Query {
                                id,
                                kind: blindfold_engine::party::OutputKind::Logits,
                                share: Share::Seed([7; 16]),
                            },
                        );
                        match r {
                            Reply::Error {
                                code: ErrorCode::MissingShare,
                                ..
                            } => {
                                dropped.fetch_add(1, Ordering::SeqCst);
                                let mut s = slowest.lock().unwrap();
                                *s = (*s).max(t0.elapsed());
                            }
                            other => panic!("half-query answered {other:?}"),
                        }
                    }
                })
            })
            .collect();
        let t0 = Instant::now();
        for i in 1..9 {
            check([&p0.addr, &p1.addr], &q, i);
        }
        let real = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        for f in flooders {
            f.join().unwrap();
        }
        let n = dropped.load(Ordering::SeqCst);
        let slowest = *slowest.lock().unwrap();
        eprintln!("8 real queries in {real:?} beside {n} half-queries (slowest dropped after {slowest:?})");
        assert!(n >= 4, "the flooders got no answers");
        // One probe, a grace period and a second probe: far less than the timeout.
        assert!(
            slowest < Duration::from_secs(3),
            "a half-query was held {slowest:?}"
        );
    });
}

#[test]
fn a_peer_greeting_followed_by_a_huge_frame_is_cut_at_once() {
    within(60, "huge frame after a link greeting", || {
        let q = common::model(MODEL);
        let [s0, _] = split(&q, &mut Prg::from_seed([3; 16]));
        let p0 = Server::start(s0, None, Duration::from_secs(20));
        for kind in [LinkKind::Offline, LinkKind::Online] {
            let mut s = TcpStream::connect(&p0.addr).unwrap();
            s.write_all(&frame(
                &Hello::Link {
                    kind,
                    attempt: [1; 16],
                }
                .encode(),
            ))
            .unwrap();
            // The header of a 200 MiB frame: refused before anything is allocated.
            s.write_all(&(200u32 << 20).to_le_bytes()).unwrap();
            s.write_all(&[0u8; 1024]).unwrap();
            expect_closed(&mut s, 3, "a huge frame after a link greeting");
        }
    });
}

#[test]
fn a_trickling_link_greeting_does_not_hold_up_pairing() {
    within(120, "trickling link greeting", || {
        let q = common::model(MODEL);
        let [s0, s1] = split(&q, &mut Prg::from_seed([4; 16]));
        let p0 = Server::start(s0, None, Duration::from_secs(30));
        // Both links of one attempt, then a byte a second on each.
        let stop = Arc::new(AtomicBool::new(false));
        let mut trickles = vec![];
        for kind in [LinkKind::Offline, LinkKind::Online] {
            let mut s = TcpStream::connect(&p0.addr).unwrap();
            s.write_all(&frame(
                &Hello::Link {
                    kind,
                    attempt: [9; 16],
                }
                .encode(),
            ))
            .unwrap();
            let stop = stop.clone();
            trickles.push(std::thread::spawn(move || {
                let _ = s.write_all(&64u32.to_le_bytes());
                while !stop.load(Ordering::SeqCst) {
                    if s.write_all(&[0]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let p1 = Server::start(s1, Some(p0.addr.clone()), Duration::from_secs(30));
        check([&p0.addr, &p1.addr], &q, 0);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pairing waited {:?} behind the trickling greeting",
            t0.elapsed()
        );
        stop.store(true, Ordering::SeqCst);
        for t in trickles {
            t.join().unwrap();
        }
    });
}

#[test]
fn connections_beyond_the_limit_are_closed_and_service_resumes() {
    within(120, "connection flood", || {
        let q = common::model(MODEL);
        let [s0, s1] = split(&q, &mut Prg::from_seed([5; 16]));
        let cfg = |peer| ServeConfig {
            max_connections_per_source: 6,
            ..config(peer, Duration::from_secs(2))
        };
        let p0 = Server::start_with(s0, cfg(None));
        let p1 = Server::start_with(s1, cfg(Some(p0.addr.clone())));
        check([&p0.addr, &p1.addr], &q, 0);
        // Six silent connections take every place this source has...
        let idle: Vec<_> = (0..6)
            .map(|_| TcpStream::connect(&p1.addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // ...so a seventh is closed at once, without waiting for a greeting.
        let mut extra = TcpStream::connect(&p1.addr).unwrap();
        expect_closed(&mut extra, 1, "a connection beyond the per-source limit");
        // The silent ones are dropped at their greeting deadline; then the
        // source is served again.
        std::thread::sleep(Duration::from_millis(2500));
        check([&p0.addr, &p1.addr], &q, 1);
        drop(idle);
    });
}

#[test]
fn a_label_only_server_refuses_requests_for_scores() {
    within(120, "label-only server", || {
        let q = common::model(MODEL);
        let [s0, s1] = split(&q, &mut Prg::from_seed([6; 16]));
        let cfg = |peer| ServeConfig {
            label_only: true,
            ..config(peer, Duration::from_secs(5))
        };
        let p0 = Server::start_with(s0, cfg(None));
        let p1 = Server::start_with(s1, cfg(Some(p0.addr.clone())));
        let x = digit(3);
        let r = serve::query([&p0.addr, &p1.addr], &x, CLIENT_TIMEOUT);
        assert!(
            matches!(
                r,
                Err(EngineError::Remote {
                    code: ErrorCode::BadInput,
                    ..
                })
            ),
            "{r:?}"
        );
        let a = serve::query_with(
            [&p0.addr, &p1.addr],
            &x,
            CLIENT_TIMEOUT,
            blindfold_engine::party::OutputKind::Label,
        )
        .unwrap();
        assert_eq!(
            a.label,
            blindfold_model::engine::argmax_ring(&run_plain(&q, &x).unwrap())
        );
        assert!(a.scores.is_empty());
    });
}

#[test]
fn tls_cluster_answers_bit_exact_and_checks_every_certificate() {
    within(180, "TLS cluster", || {
        let q = common::model(MODEL);
        let certs = DeploymentCerts::generate(1).unwrap();
        let cluster = LocalCluster::start_tls(
            &q,
            &certs,
            config(None, Duration::from_secs(10)),
            &mut Prg::from_seed([7; 16]),
        )
        .unwrap();
        for i in 0..3 {
            let x = digit(i);
            let a = cluster.query(&x).unwrap();
            assert_eq!(a.ring, run_plain(&q, &x).unwrap(), "query {i} over TLS");
        }
        let servers = [cluster.addrs[0].as_str(), cluster.addrs[1].as_str()];
        // A plaintext client gets nowhere.
        let r = serve::query(servers, &digit(0), Duration::from_secs(3));
        assert!(r.is_err(), "a plaintext client was served");
        // A client of another deployment is refused by the servers.
        let other = DeploymentCerts::generate(1).unwrap();
        let t = other
            .identity(TlsRole::Client)
            .unwrap()
            .transport(None)
            .unwrap();
        let r = serve::query_on(
            &t,
            servers,
            &digit(0),
            Duration::from_secs(3),
            blindfold_engine::party::OutputKind::Logits,
        );
        assert!(r.is_err(), "a foreign client was served");
        // Servers given in the wrong order: the client sees P1's certificate
        // where it expects P0's and sends nothing.
        let r = serve::query_on(
            cluster.transport(),
            [servers[1], servers[0]],
            &digit(0),
            Duration::from_secs(3),
            blindfold_engine::party::OutputKind::Logits,
        );
        assert!(
            matches!(r, Err(EngineError::ServerIdentity { .. })),
            "{r:?}"
        );
        // The client certificate cannot open a peer link: refused at P0 by role.
        let t = certs
            .identity(TlsRole::Client)
            .unwrap()
            .transport(Some(TlsRole::P0))
            .unwrap();
        let mut ch = t
            .connect(servers[0], Instant::now() + Duration::from_secs(3))
            .unwrap();
        ch.send_vec(
            Hello::Link {
                kind: LinkKind::Offline,
                attempt: [1; 16],
            }
            .encode(),
        )
        .unwrap();
        ch.flush().unwrap();
        assert!(
            ch.recv().is_err(),
            "a client certificate was challenged as P1"
        );
        // And the cluster still answers.
        let a = cluster.query(&digit(5)).unwrap();
        assert_eq!(a.ring, run_plain(&q, &digit(5)).unwrap());
    });
}

/// A TCP relay that records every byte it forwards (both directions).
fn recording_relay(target: String) -> (String, Arc<std::sync::Mutex<Vec<u8>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let Ok(s) = TcpStream::connect(&target) else {
                return;
            };
            for (mut from, mut to) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)] {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        match std::io::Read::read(&mut from, &mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = to.shutdown(std::net::Shutdown::Write);
                                return;
                            }
                            Ok(n) => {
                                rec.lock().unwrap().extend_from_slice(&buf[..n]);
                                if to.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
    });
    (addr, seen)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_observer_of_the_client_links_sees_only_ciphertext() {
    within(120, "observer of the client links", || {
        let q = common::model(MODEL);
        let certs = DeploymentCerts::generate(1).unwrap();
        let cluster = LocalCluster::start_tls(
            &q,
            &certs,
            config(None, Duration::from_secs(10)),
            &mut Prg::from_seed([8; 16]),
        )
        .unwrap();
        let (r0, seen0) = recording_relay(cluster.addrs[0].clone());
        let (r1, seen1) = recording_relay(cluster.addrs[1].clone());
        let x = digit(2);
        let a = serve::query_on(
            cluster.transport(),
            [&r0, &r1],
            &x,
            CLIENT_TIMEOUT,
            blindfold_engine::party::OutputKind::Logits,
        )
        .unwrap();
        assert_eq!(a.ring, run_plain(&q, &x).unwrap());
        for (i, seen) in [seen0, seen1].iter().enumerate() {
            let seen = seen.lock().unwrap();
            assert!(seen.len() > 1000, "relay {i} saw {} bytes", seen.len());
            // In plaintext, the greeting's magic, the model's name in the model
            // info and each output share would be there to read.
            assert!(
                !contains(&seen, b"BFSV"),
                "relay {i} saw a greeting in clear"
            );
            assert!(
                !contains(&seen, q.name.as_bytes()),
                "relay {i} saw the model name"
            );
        }
        // Over plain TCP the same observer reads everything.
        let plain = LocalCluster::start(&q, 1, &mut Prg::from_seed([9; 16])).unwrap();
        let (r0, seen0) = recording_relay(plain.addrs[0].clone());
        let (r1, _) = recording_relay(plain.addrs[1].clone());
        serve::query([&r0, &r1], &x, CLIENT_TIMEOUT).unwrap();
        let seen0 = seen0.lock().unwrap();
        assert!(contains(&seen0, b"BFSV") && contains(&seen0, q.name.as_bytes()));
    });
}
