//! The second, browser-facing listener of a two-server server
//! (`serve::run_with_browsers`, what `serve --ws-listen` runs on a WebSocket
//! listener): client queries through it are answered exactly as through the
//! main port; a peer-link or client-server greeting there is
//! refused, so a browser port never becomes a way to pose as P1; browsers
//! have their own connection budget, so silent browsers do not lock out the
//! main port.

mod common;

use blindfold_core::Prg;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::serve::wire::{Hello, LinkKind, Reply};
use blindfold_engine::serve::{self};
use blindfold_engine::share::split;
use blindfold_model::engine::run_plain;
use blindfold_net::{Channel, Connection, Listener, MemoryNetwork, Transport};
use common::{config, digit, within};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn browser_port_answers_queries_and_refuses_peer_greetings() {
    within(180, "browser port", || {
        let q = common::model("ppml_b");
        let [s0, s1] = split(&q, &mut Prg::from_seed([5; 16]));
        // Links and the main ports on one network, the browser ports on another.
        let (net, web) = (MemoryNetwork::new(), MemoryNetwork::new());
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = vec![];
        let mut web_addrs = vec![];
        let mut threads = vec![];
        let mut peer = None;
        for share in [s0, s1] {
            let (l, b) = (net.listen(), web.listen());
            addrs.push(l.local_addr());
            web_addrs.push(b.local_addr());
            let cfg = serve::ServeConfig {
                max_connections: 8,
                max_connections_per_source: 8,
                ..config(peer.clone(), Duration::from_secs(5))
            };
            let (n, s) = (net.clone(), stop.clone());
            let engine = PartyEngine::new(share).unwrap();
            threads.push(std::thread::spawn(move || {
                serve::run_with_browsers(engine, n, l, Some(b), cfg, s)
            }));
            peer = Some(addrs[0].clone());
        }
        let timeout = Duration::from_secs(30);
        for i in 0..3 {
            let x = digit(i);
            let want = run_plain(&q, &x).unwrap();
            // Both shares through the browser ports.
            let a = serve::query_on(
                &web,
                [&web_addrs[0], &web_addrs[1]],
                &x,
                timeout,
                OutputKind::Logits,
            )
            .unwrap();
            assert_eq!(a.ring, want, "digit {i} through the browser ports");
            // And through the main ports: the same servers and pool.
            let a = serve::query_on(
                &net,
                [&addrs[0], &addrs[1]],
                &x,
                timeout,
                OutputKind::Logits,
            )
            .unwrap();
            assert_eq!(a.ring, want, "digit {i} through the main ports");
        }
        // A peer-link greeting on P0's browser port is refused with an error
        // reply, before any pairing message.
        let mut ch = web
            .connect(&web_addrs[0], Instant::now() + Duration::from_secs(5))
            .unwrap();
        ch.set_deadline(Some(Instant::now() + Duration::from_secs(10)))
            .unwrap();
        ch.send_vec(
            Hello::Link {
                kind: LinkKind::Online,
                attempt: [7; 16],
            }
            .encode(),
        )
        .unwrap();
        ch.flush().unwrap();
        match Reply::decode(&ch.recv().unwrap()).unwrap() {
            Reply::Error { message, .. } => {
                assert!(message.contains("client queries only"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Browsers have their own connection budget (half the limit): ten
        // silent browser connections at each server (more than the whole
        // limit of 8) do not stop the main ports from serving.
        let silent: Vec<_> = (0..10)
            .flat_map(|_| {
                web_addrs
                    .iter()
                    .map(|a| {
                        web.connect(a, Instant::now() + Duration::from_secs(5))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300)); // the servers take them
                                                        // The cluster still answers.
        let x = digit(3);
        let a = serve::query_on(
            &net,
            [&addrs[0], &addrs[1]],
            &x,
            timeout,
            OutputKind::Logits,
        )
        .unwrap();
        assert_eq!(a.ring, run_plain(&q, &x).unwrap());
        drop(silent);
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap().unwrap();
        }
    });
}
