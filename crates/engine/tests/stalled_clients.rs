//! Clients whose share reaches only one server must not hold up anyone else, and
//! a query whose P0 client expired after P1 committed must not wedge the servers
//! (both found in review). Short timeouts; every scenario bounded.

mod common;

use blindfold_engine::party::OutputKind;
use blindfold_engine::serve;
use blindfold_engine::serve::wire::{ErrorCode, Query, Reply, Share};
use blindfold_model::engine::run_plain;
use blindfold_net::{Channel, TcpChannel};
use common::{digit, raw_client, within, Pair};
use std::time::{Duration, Instant};

fn send(ch: &mut TcpChannel, id: [u8; 16], share: Share) {
    let q = Query {
        id,
        kind: OutputKind::Logits,
        share,
    };
    ch.send(&q.encode()).unwrap();
    ch.flush().unwrap();
}

fn expect_refusal(ch: &mut TcpChannel, code: ErrorCode, what: &str) {
    match Reply::decode(&ch.recv().unwrap()).unwrap() {
        Reply::Error { code: c, .. } if c == code => {}
        other => panic!("{what}: expected a {code} refusal, got {other:?}"),
    }
}

#[test]
fn half_sent_queries_neither_block_others_nor_wedge_the_servers() {
    within(120, "half-sent queries", || {
        let timeout = Duration::from_secs(1);
        let pair = Pair::start(common::model("ppml_b"), 9, timeout);
        let n = pair.q.input_shape().numel();
        let x = digit(0);
        let want = run_plain(&pair.q, &x).unwrap();
        let normal = || serve::query(pair.addrs(), &x, Duration::from_secs(10));
        assert_eq!(normal().unwrap().ring, want);

        // Two clients send their share to P0 only and wait; a normal client comes
        // right after them and must be served long before they expire.
        let mut stuck = Vec::new();
        for k in 0..2u8 {
            let (mut c, _) = raw_client(&pair.p0.addr);
            send(&mut c, [0xa0 + k; 16], Share::Seed([k; 16]));
            stuck.push(c);
        }
        let t = Instant::now();
        assert_eq!(normal().unwrap().ring, want);
        assert!(
            t.elapsed() < timeout,
            "a half-sent query held up a normal one for {:?}",
            t.elapsed()
        );

        // A query whose P0 side ends before its P1 share arrives: P0 drops it
        // after its two probes (a grace period apart), P1's orphaned share
        // expires at P1's timeout.
        let qid = [0xbb; 16];
        let (mut c0, _) = raw_client(&pair.p0.addr);
        send(&mut c0, qid, Share::Seed([7; 16]));
        std::thread::sleep(timeout * 2 + Duration::from_millis(300));
        let (mut c1, _) = raw_client(&pair.p1.addr);
        send(&mut c1, qid, Share::Values(vec![0; n]));
        expect_refusal(&mut c0, ErrorCode::MissingShare, "P0, its dropped query");
        expect_refusal(&mut c1, ErrorCode::Expired, "P1, the orphaned query");

        // The servers still serve.
        let t = Instant::now();
        assert_eq!(normal().unwrap().ring, want);
        assert!(t.elapsed() < Duration::from_secs(5));
        drop(stuck);
        let Pair { mut p0, mut p1, .. } = pair;
        p0.stop().expect("P0 stops").expect("P0 returns Ok");
        p1.stop().expect("P1 stops").expect("P1 returns Ok");
    });
}
