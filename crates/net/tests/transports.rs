//! Transports and deadlines: the same exchanges over TCP and the in-memory
//! network, identical traffic figures, and deadlines that bound a whole
//! exchange rather than each read.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use blindfold_net::{
    pipe, Channel, Connection, Listener, MemoryNetwork, NetError, PipeChannel, StreamChannel,
    TcpAcceptor, TcpTransport, Transport,
};

/// Connect and accept over `t`; run a small exchange; return both ends' stats.
fn exchange<T: Transport, L: Listener<Conn = T::Conn>>(
    t: T,
    l: L,
) -> (blindfold_net::Stats, blindfold_net::Stats) {
    let addr = l.local_addr();
    let h = thread::spawn(move || {
        let mut c = l
            .accept(Instant::now() + Duration::from_secs(5))
            .unwrap()
            .expect("a connection");
        let m = c.recv().unwrap();
        c.send_vec(m.iter().rev().copied().collect()).unwrap();
        c.send(&vec![3u8; 3 << 20]).unwrap();
        c.flush().unwrap();
        c.stats()
    });
    let mut c = t
        .connect(&addr, Instant::now() + Duration::from_secs(5))
        .unwrap();
    c.set_phase("x");
    c.send(b"abc").unwrap();
    c.flush().unwrap();
    assert_eq!(c.recv().unwrap(), b"cba");
    assert_eq!(c.recv().unwrap().len(), 3 << 20);
    (c.stats(), h.join().unwrap())
}

#[test]
fn tcp_and_memory_transports_meter_the_same() {
    let tcp = exchange(
        TcpTransport,
        TcpAcceptor::new(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap(),
    );
    let net = MemoryNetwork::new();
    let mem = exchange(net.clone(), net.listen());
    assert_eq!(tcp, mem);
    let x = mem.0.phase("x").unwrap();
    assert_eq!(x.bytes_sent, 4 + 3);
    assert_eq!(x.bytes_received, (4 + 3) + (4 + (3 << 20)));
    assert_eq!(x.rounds(), 2);
}

#[test]
fn accept_honours_its_deadline_and_connect_retries() {
    let net = MemoryNetwork::new();
    let l = net.listen();
    let t0 = Instant::now();
    assert!(l
        .accept(Instant::now() + Duration::from_millis(50))
        .unwrap()
        .is_none());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    // Nobody listens: connect gives up at its deadline.
    let t0 = Instant::now();
    assert!(net
        .connect("mem:404", Instant::now() + Duration::from_millis(200))
        .is_err());
    assert!(t0.elapsed() < Duration::from_secs(2));
    // A dropped listener frees its address.
    let addr = l.local_addr();
    drop(l);
    assert!(net
        .connect(&addr, Instant::now() + Duration::from_millis(100))
        .is_err());

    let a = TcpAcceptor::new(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    assert!(a
        .accept(Instant::now() + Duration::from_millis(30))
        .unwrap()
        .is_none());
}

/// A peer that trickles a frame in pieces, each well within any per-read
/// timeout: the deadline still ends the exchange on time.
fn trickle(mut w: impl Write + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut frame = 20u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[7u8; 20]);
        for b in frame {
            if w.write_all(&[b]).and_then(|_| w.flush()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(40));
        }
    })
}

fn deadline_bounds_whole_exchange(c: &mut impl Connection) {
    c.set_deadline(Some(Instant::now() + Duration::from_millis(300)))
        .unwrap();
    let t0 = Instant::now();
    let r = c.recv();
    let took = t0.elapsed();
    assert!(matches!(r, Err(NetError::Timeout)), "{r:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
    // Without the deadline the rest of the frame arrives; the half-read frame
    // was kept.
    c.set_deadline(None).unwrap();
    assert_eq!(c.recv().unwrap(), vec![7u8; 20]);
}

#[test]
fn deadline_over_tcp() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let w = TcpStream::connect(addr).unwrap();
    w.set_nodelay(true).unwrap();
    let h = trickle(w);
    let mut c = blindfold_net::TcpChannel::accept(&l).unwrap();
    assert!(c.peer_addr().is_some_and(|a| a.ip().is_loopback()));
    // A per-read timeout longer than the pieces' spacing does not fire.
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    deadline_bounds_whole_exchange(&mut c);
    h.join().unwrap();
}

#[test]
fn deadline_over_pipe_and_memory_channel() {
    let (a, b) = pipe("a", "b");
    let h = trickle(a);
    let mut c: PipeChannel = StreamChannel::new(b).unwrap();
    deadline_bounds_whole_exchange(&mut c);
    h.join().unwrap();

    let (mut a, _b) = blindfold_net::MemoryChannel::pair();
    a.set_deadline(Some(Instant::now() + Duration::from_millis(30)))
        .unwrap();
    assert!(matches!(a.recv(), Err(NetError::Timeout)));
    a.set_deadline(Some(Instant::now() - Duration::from_millis(1)))
        .unwrap();
    assert!(matches!(a.recv(), Err(NetError::Timeout)));
}

#[test]
fn pipe_end_of_stream_is_closed() {
    let net = MemoryNetwork::new();
    let l = net.listen();
    let mut c = net
        .connect(&l.local_addr(), Instant::now() + Duration::from_secs(1))
        .unwrap();
    let s = l
        .accept(Instant::now() + Duration::from_secs(1))
        .unwrap()
        .unwrap();
    c.send(b"bye").unwrap();
    c.flush().unwrap();
    drop(s);
    // Our message may or may not have been read; the peer is gone either way.
    assert!(matches!(c.recv(), Err(NetError::Closed)));
}

#[test]
fn max_frame_through_the_connection_trait() {
    fn check(a: &mut impl Connection, b: &mut impl Connection) {
        b.set_max_frame(8);
        a.send(&[1; 9]).unwrap();
        a.flush().unwrap();
        assert!(matches!(
            b.recv(),
            Err(NetError::FrameTooLarge { len: 9, max: 8 })
        ));
        assert!(matches!(
            b.send(&[0; 9]),
            Err(NetError::FrameTooLarge { len: 9, max: 8 })
        ));
    }
    let (mut a, mut b) = blindfold_net::MemoryChannel::pair();
    check(&mut a, &mut b);
    let (pa, pb) = pipe("a", "b");
    let (mut a, mut b) = (
        StreamChannel::new(pa).unwrap(),
        StreamChannel::new(pb).unwrap(),
    );
    check(&mut a, &mut b);
}

/// A peer that connects and never reads: with a deadline set, the sender's
/// writes fail once the kernel buffers and the writer's queue are full and
/// the deadline has passed, instead of blocking the sender forever (a client
/// must not be able to hold a server's connection thread by not reading).
#[test]
fn a_peer_that_never_reads_cannot_block_a_writer_past_its_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let idle = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        // Hold the connection open, read nothing (20 s at most).
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
        drop(s);
    });
    let mut c = blindfold_net::TcpChannel::connect(addr).unwrap();
    c.set_deadline(Some(Instant::now() + Duration::from_secs(1)))
        .unwrap();
    let t0 = Instant::now();
    let frame = vec![7u8; 1 << 20];
    let mut failed = false;
    // Far more than the writer's queue (64 MiB) and the socket buffers.
    for _ in 0..512 {
        if c.send(&frame).and_then(|_| c.flush()).is_err() {
            failed = true;
            break;
        }
    }
    let took = t0.elapsed();
    assert!(failed, "512 MiB written to a peer that reads nothing");
    assert!(
        took < Duration::from_secs(10),
        "the writer was held {took:?}"
    );
    drop(c);
    let _ = done_tx.send(());
    let _ = idle.join();
}
