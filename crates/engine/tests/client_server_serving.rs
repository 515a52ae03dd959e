//! Client-server serving: the server holding the plaintext model, clients on
//! their own connections (in-memory transport, TCP, TLS). Answers equal the
//! reference; the client's pool decides whether a query preprocesses first; a
//! client that sends garbage, speaks the two-server protocol or vanishes in the
//! middle of a query ends only its own connection.

mod common;

use blindfold_engine::party::OutputKind;
use blindfold_engine::serve::wire::Hello;
use blindfold_engine::serve::{ErrorCode, LocalCsServer, ServeConfig};
use blindfold_engine::EngineError;
use blindfold_model::engine::{argmax_ring, run_plain};
use blindfold_net::{Channel, Transport};
use std::time::{Duration, Instant};

fn cfg(pool: usize) -> ServeConfig {
    ServeConfig {
        pool,
        timeout: Duration::from_secs(10),
        verbose: std::env::var_os("BLINDFOLD_TEST_VERBOSE").is_some(),
        ..ServeConfig::default()
    }
}

#[test]
fn answers_match_the_reference_and_the_pool_is_used() {
    let q = common::model("ppml_c");
    let ds = common::digits();
    let server = LocalCsServer::start_in_memory(&q, cfg(2)).unwrap();
    let mut client = server.client().unwrap();
    assert_eq!(client.max_pool(), 2);
    // The client sees the architecture, never the weights.
    assert!(client
        .program()
        .nodes
        .iter()
        .filter_map(|n| n.op.secrets())
        .all(|s| s.weight.iter().chain(s.bias).all(|&v| v == 0)));
    // Empty pool: the first query preprocesses first.
    let x = ds.image_f32(0);
    let a = client.query(&x, OutputKind::Logits).unwrap();
    assert!(a.preprocessed_first);
    assert_eq!(a.ring, run_plain(&q, &x).unwrap());
    // A filled pool: the next queries pay only the online phase.
    client.preprocess(5).unwrap();
    assert_eq!(client.pooled(), 2, "the pool stops at the server's limit");
    for i in 1..3 {
        let x = ds.image_f32(i);
        let a = client.query(&x, OutputKind::Logits).unwrap();
        assert!(!a.preprocessed_first);
        assert_eq!(a.ring, run_plain(&q, &x).unwrap(), "digit {i}");
        assert!(a.online_bytes > 0 && a.offline_bytes > a.online_bytes);
    }
    assert_eq!(client.pooled(), 0);
    // Label only: the argmax leaves the protocol, nothing else.
    let x = ds.image_f32(3);
    let a = client.query(&x, OutputKind::Label).unwrap();
    assert_eq!(a.label, argmax_ring(&run_plain(&q, &x).unwrap()));
    assert!(a.scores.is_empty() && a.ring.len() == 1);
    // A second client has its own session and pool.
    let mut other = server.client().unwrap();
    let x = ds.image_f32(4);
    assert_eq!(
        other.query(&x, OutputKind::Logits).unwrap().ring,
        run_plain(&q, &x).unwrap()
    );
}

#[test]
fn label_only_server_refuses_scores_and_keeps_serving() {
    let q = common::model("ppml_c");
    let ds = common::digits();
    let server = LocalCsServer::start_in_memory(
        &q,
        ServeConfig {
            label_only: true,
            ..cfg(1)
        },
    )
    .unwrap();
    let mut client = server.client().unwrap();
    assert!(client.label_only());
    let x = ds.image_f32(0);
    match client.query(&x, OutputKind::Logits) {
        Err(EngineError::Remote { code, .. }) => assert_eq!(code, ErrorCode::BadInput),
        other => panic!("scores from a label-only server: {other:?}"),
    }
    // The same connection (its bundle still pooled) answers a label query.
    let a = client.query(&x, OutputKind::Label).unwrap();
    assert_eq!(a.label, argmax_ring(&run_plain(&q, &x).unwrap()));
}

/// Open a raw connection and greet as a client-server client; returns the
/// channel after the server's `CsInfo`.
fn raw<T: Transport>(t: &T, addr: &str) -> T::Conn {
    let mut ch = t
        .connect(addr, Instant::now() + Duration::from_secs(5))
        .unwrap();
    ch.send_vec(Hello::CsClient.encode()).unwrap();
    ch.flush().unwrap();
    let info = ch.recv().unwrap();
    blindfold_engine::serve::wire::CsInfo::decode(&info).unwrap();
    ch
}

#[test]
fn garbage_wrong_protocol_and_vanishing_clients_do_not_stop_the_server() {
    let q = common::model("ppml_c");
    let x = common::digit(0);
    let want = run_plain(&q, &x).unwrap();
    let server = LocalCsServer::start(&q, cfg(1)).unwrap();
    let t = *server.transport();

    // Garbage as a greeting.
    let mut ch = t
        .connect(&server.addr, Instant::now() + Duration::from_secs(5))
        .unwrap();
    ch.send(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    ch.flush().unwrap();
    assert!(
        ch.recv().is_err(),
        "a stranger's bytes get the connection closed"
    );

    // A two-server client is told which mode this server runs.
    let mut ch = t
        .connect(&server.addr, Instant::now() + Duration::from_secs(5))
        .unwrap();
    ch.send_vec(Hello::Client.encode()).unwrap();
    ch.flush().unwrap();
    let r = blindfold_engine::serve::wire::Reply::decode(&ch.recv().unwrap()).unwrap();
    assert!(format!("{r:?}").contains("client-server"), "{r:?}");

    // Garbage after the greeting, in place of the session setup.
    let mut ch = raw(&t, &server.addr);
    ch.send(&[0xff; 40]).unwrap();
    ch.flush().unwrap();
    drop(ch);

    // A client that sets up, asks for preprocessing and vanishes halfway.
    let mut client = server.client().unwrap();
    client.preprocess(1).unwrap();
    drop(client);
    let mut ch = raw(&t, &server.addr);
    // The server sends its PeerHello and waits for ours: hang up instead.
    let _ = ch.recv();
    drop(ch);

    // After all of it, a normal client is served.
    let mut client = server.client().unwrap();
    let a = client.query(&x, OutputKind::Logits).unwrap();
    assert_eq!(a.ring, want);
    let a = client.query(&x, OutputKind::Logits).unwrap();
    assert_eq!(a.ring, want);
}

#[test]
fn over_tls_the_server_is_p0_and_the_client_a_client() {
    let q = common::model("ppml_c");
    let x = common::digit(1);
    let certs = blindfold_net::tls::DeploymentCerts::generate(1).unwrap();
    let server = LocalCsServer::start_tls(&q, &certs, cfg(1)).unwrap();
    let mut client = server.client().unwrap();
    let a = client.query(&x, OutputKind::Logits).unwrap();
    assert_eq!(a.ring, run_plain(&q, &x).unwrap());
    // A client presenting P1's certificate is refused.
    let p1 = certs
        .identity(blindfold_net::TlsRole::P1)
        .unwrap()
        .transport(Some(blindfold_net::TlsRole::P0))
        .unwrap();
    let r =
        blindfold_engine::serve::CsClient::connect_on(&p1, &server.addr, Duration::from_secs(5));
    assert!(r.is_err(), "a server's certificate is not a client's");
}
