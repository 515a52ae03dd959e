//! TLS links: mutual authentication by the deployment's CA, roles read from
//! certificates, and the split session carrying heavy traffic both ways at once.

use blindfold_net::tls::{DeploymentCerts, TlsError};
use blindfold_net::{Channel, Connection, Listener, TlsIdentity, TlsRole, Transport};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn server(certs: &DeploymentCerts, role: TlsRole) -> blindfold_net::TlsAcceptor {
    certs
        .identity(role)
        .unwrap()
        .acceptor(TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap()
}

#[test]
fn roles_are_read_from_certificates_both_ways() {
    let certs = DeploymentCerts::generate(1).unwrap();
    let p0 = server(&certs, TlsRole::P0);
    let addr = p0.local_addr();
    let t = std::thread::spawn(move || {
        let mut ch = p0.accept(soon()).unwrap().unwrap();
        assert_eq!(ch.peer_identity(), Some("p1"));
        let x = ch.recv().unwrap();
        ch.send(&x).unwrap();
        ch.flush().unwrap();
    });
    let p1 = certs.identity(TlsRole::P1).unwrap();
    let mut ch = p1
        .transport(Some(TlsRole::P0))
        .unwrap()
        .connect(&addr, soon())
        .unwrap();
    assert_eq!(ch.peer_identity(), Some("p0"));
    ch.send(b"hello").unwrap();
    ch.flush().unwrap();
    assert_eq!(ch.recv().unwrap(), b"hello");
    t.join().unwrap();
}

#[test]
fn both_directions_stream_at_once_without_deadlock() {
    // Each side sends 16 MiB while the other does too: the writer must never
    // hold the session while blocked on a full socket.
    let certs = DeploymentCerts::generate(1).unwrap();
    let p0 = server(&certs, TlsRole::P0);
    let addr = p0.local_addr();
    let frames = 64usize;
    let frame: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 + 3) as u8).collect();
    let f2 = frame.clone();
    let t = std::thread::spawn(move || {
        let mut ch = p0.accept(soon()).unwrap().unwrap();
        for _ in 0..frames {
            ch.send(&f2).unwrap();
        }
        ch.flush().unwrap();
        for _ in 0..frames {
            assert_eq!(ch.recv().unwrap(), f2);
        }
        ch.stats().total().bytes()
    });
    let client = certs.identity(TlsRole::Client).unwrap();
    let mut ch = client
        .transport(None)
        .unwrap()
        .connect(&addr, soon())
        .unwrap();
    ch.set_deadline(Some(Instant::now() + Duration::from_secs(60)))
        .unwrap();
    for _ in 0..frames {
        ch.send(&frame).unwrap();
    }
    ch.flush().unwrap();
    for _ in 0..frames {
        assert_eq!(ch.recv().unwrap(), frame);
    }
    let server_bytes = t.join().unwrap();
    // Metering counts framed payload bytes, as over TCP.
    assert_eq!(server_bytes, ch.stats().total().bytes());
}

#[test]
fn a_certificate_of_another_deployment_is_refused() {
    let ours = DeploymentCerts::generate(1).unwrap();
    let theirs = DeploymentCerts::generate(1).unwrap();
    let p0 = server(&ours, TlsRole::P0);
    let addr = p0.local_addr();
    // A stranger's client certificate: the server refuses the handshake.
    let stranger = theirs.identity(TlsRole::Client).unwrap();
    let r = stranger
        .transport(None)
        .unwrap()
        .connect(&addr, soon())
        .and_then(|mut ch| {
            ch.send(b"x")?;
            ch.flush()?;
            ch.recv()
        });
    assert!(r.is_err(), "a foreign client certificate was accepted");
    // The failed handshake surfaces at the acceptor as an error, not a connection.
    assert!(p0.accept(soon()).is_err());
    // A stranger's server: our client refuses it.
    let fake = server(&theirs, TlsRole::P0);
    let client = ours.identity(TlsRole::Client).unwrap();
    let r = client
        .transport(None)
        .unwrap()
        .connect(&fake.local_addr(), soon());
    assert!(
        matches!(r, Err(blindfold_net::NetError::Tls(_))),
        "a foreign server was accepted"
    );
}

#[test]
fn p1_refuses_anything_but_p0_as_its_peer() {
    let certs = DeploymentCerts::generate(1).unwrap();
    // P1 dials an address where P1's own certificate answers (a replayed or
    // misconfigured address): the name check fails.
    let other = server(&certs, TlsRole::P1);
    let p1 = certs.identity(TlsRole::P1).unwrap();
    let r = p1
        .transport(Some(TlsRole::P0))
        .unwrap()
        .connect(&other.local_addr(), soon());
    assert!(matches!(r, Err(blindfold_net::NetError::Tls(_))));
}

#[test]
fn bad_material_is_refused_with_a_reason() {
    let certs = DeploymentCerts::generate(1).unwrap();
    let theirs = DeploymentCerts::generate(1).unwrap();
    let g = |c: &DeploymentCerts, n: &str| c.get(n).unwrap().to_vec();
    let ca = g(&certs, "ca.pem");
    // The client's certificate loaded as P0's.
    let e = TlsIdentity::from_pem(
        TlsRole::P0,
        &ca,
        &g(&certs, "client.pem"),
        &g(&certs, "client.key"),
    )
    .unwrap_err();
    assert!(
        matches!(e, TlsError::WrongRole { .. } | TlsError::Certificate { .. }),
        "{e}"
    );
    // A certificate of another CA.
    let e = TlsIdentity::from_pem(
        TlsRole::P0,
        &ca,
        &g(&theirs, "p0.pem"),
        &g(&theirs, "p0.key"),
    )
    .unwrap_err();
    assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
    // Our certificate with another key.
    let e = TlsIdentity::from_pem(TlsRole::P0, &ca, &g(&certs, "p0.pem"), &g(&certs, "p1.key"))
        .unwrap_err();
    assert!(matches!(e, TlsError::Rustls(_)), "{e}");
    // Not PEM at all, and empty.
    let e = TlsIdentity::from_pem(TlsRole::P0, b"garbage", b"", b"").unwrap_err();
    assert!(matches!(e, TlsError::NoPem { .. }), "{e}");
    let e = TlsIdentity::from_pem(TlsRole::P0, &ca, &g(&certs, "p0.pem"), b"").unwrap_err();
    assert!(matches!(e, TlsError::NoPem { .. }), "{e}");
    // A truncated certificate.
    let pem = g(&certs, "p0.pem");
    let cut = &pem[..pem.len() / 2];
    assert!(TlsIdentity::from_pem(TlsRole::P0, &ca, cut, &g(&certs, "p0.key")).is_err());
}

#[test]
fn a_plaintext_client_does_not_hold_up_the_acceptor() {
    let certs = DeploymentCerts::generate(1).unwrap();
    let p0 = server(&certs, TlsRole::P0);
    let addr = p0.local_addr();
    // Silent plaintext connections sit in their own handshake threads...
    let silent: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // ...while a real client completes its handshake at once.
    let client = certs.identity(TlsRole::Client).unwrap();
    let t = std::thread::spawn(move || {
        let mut ch = client
            .transport(None)
            .unwrap()
            .connect(&addr, soon())
            .unwrap();
        ch.send(b"q").unwrap();
        ch.flush().unwrap();
    });
    let t0 = Instant::now();
    let mut ch = p0.accept(soon()).unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(ch.recv().unwrap(), b"q");
    t.join().unwrap();
    drop(silent);
}
