//! Clients whose share reaches only one server must not hold up anyone else, and
//! a query whose P0 client expired after P1 committed must not wedge the servers
//! (both found in review). Short timeouts; every scenario bounded.

use blindfold_core::{FracBits, Prg};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::server::{self, ModelInfo, ServeConfig};
use blindfold_engine::share::split;
use blindfold_model::data::load_idx_dir;
use blindfold_model::engine::run_plain;
use blindfold_model::load_onnx;
use blindfold_model::quant::quantize;
use blindfold_net::{Channel, TcpChannel};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Greet a server as a client; returns the channel after the model info.
fn raw(addr: &str) -> TcpChannel {
    let mut ch = TcpChannel::connect_with_retry(addr, Duration::from_secs(5)).unwrap();
    ch.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    ch.send(b"BFCLIENT1").unwrap();
    ch.flush().unwrap();
    let _: ModelInfo = serde_json::from_slice(&ch.recv().unwrap()).unwrap();
    ch
}

#[test]
fn half_sent_queries_neither_block_others_nor_wedge_the_servers() {
    let m = load_onnx(root().join("models/ppml_b.onnx")).unwrap();
    let q = quantize(&m, FracBits::DEFAULT).unwrap();
    let [s0, s1] = split(&q, &mut Prg::from_seed([9; 16]));
    let n = q.input_shape().numel();
    let l0 = TcpListener::bind("127.0.0.1:0").unwrap();
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let a0 = l0.local_addr().unwrap().to_string();
    let a1 = l1.local_addr().unwrap().to_string();
    let timeout = Duration::from_secs(1);
    let cfg0 = ServeConfig {
        peer: None,
        pool: 1,
        timeout,
        verbose: false,
    };
    let cfg1 = ServeConfig {
        peer: Some(a0.clone()),
        ..cfg0.clone()
    };
    let sd = Arc::new(AtomicBool::new(false));
    let (e0, e1) = (PartyEngine::new(s0).unwrap(), PartyEngine::new(s1).unwrap());
    let (d0, d1) = (sd.clone(), sd.clone());
    let h0 = std::thread::spawn(move || server::run(e0, l0, cfg0, d0));
    let h1 = std::thread::spawn(move || server::run(e1, l1, cfg1, d1));
    let ds = load_idx_dir(&root().join("data/mnist-test-1k")).unwrap();
    let x = ds.image_f32(0);
    let want = run_plain(&q, &x).unwrap();
    let normal = |seed: u8| {
        server::query(
            [&a0, &a1],
            &x,
            Duration::from_secs(10),
            &mut Prg::from_seed([seed; 16]),
        )
    };
    assert_eq!(normal(1).unwrap().ring, want);

    // Two clients send their share to P0 only and wait; a normal client comes
    // right after them and must be served long before they expire.
    let mut stuck = Vec::new();
    for k in 0..2u8 {
        let mut c = raw(&a0);
        let mut msg = vec![0xa0 + k; 16];
        msg.extend([k; 16]);
        c.send(&msg).unwrap();
        c.flush().unwrap();
        stuck.push(c);
    }
    let t = Instant::now();
    assert_eq!(normal(2).unwrap().ring, want);
    assert!(
        t.elapsed() < timeout,
        "a half-sent query held up a normal one for {:?}",
        t.elapsed()
    );

    // A query whose P0 side expires before its P1 share arrives.
    let qid = [0xbb; 16];
    let mut c0 = raw(&a0);
    let mut m0 = qid.to_vec();
    m0.extend([7u8; 16]);
    c0.send(&m0).unwrap();
    c0.flush().unwrap();
    std::thread::sleep(timeout * 2 + Duration::from_millis(300));
    let mut c1 = raw(&a1);
    let mut m1 = qid.to_vec();
    m1.extend(vec![0u8; n * 8]);
    c1.send(&m1).unwrap();
    c1.flush().unwrap();
    let r0 = c0.recv().unwrap();
    assert_eq!(
        r0.first(),
        Some(&1u8),
        "P0 reports an error for its expired query"
    );
    let r1 = c1.recv().unwrap();
    assert_eq!(
        r1.first(),
        Some(&1u8),
        "P1 reports an error for the orphaned query"
    );

    // The servers still serve.
    let t = Instant::now();
    assert_eq!(normal(3).unwrap().ring, want);
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(stuck);
    sd.store(true, Ordering::SeqCst);
    h0.join().unwrap().unwrap();
    h1.join().unwrap().unwrap();
}
