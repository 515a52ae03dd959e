//! Both ends on two threads, over memory and loopback TCP.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use blindfold_net::{Block, Channel, MemoryChannel, NetError, TcpChannel, DEFAULT_PHASE};

fn tcp_pair() -> (TcpChannel, TcpChannel) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || TcpChannel::accept(&listener).unwrap());
    let b = TcpChannel::connect_with_retry(addr, Duration::from_secs(5)).unwrap();
    (h.join().unwrap(), b)
}

/// A ping-pong protocol with typed helpers and phases; returns what each side saw.
fn exercise<C: Channel + 'static>(mut a: C, mut b: C) {
    let h = thread::spawn(move || {
        b.set_phase("offline");
        let x = b.recv_u64s(3).unwrap();
        assert_eq!(x, vec![1, 2, u64::MAX]);
        let blocks = b.recv_blocks(2).unwrap();
        assert_eq!(blocks, vec![Block(5), Block(u128::MAX)]);
        b.send(b"pong").unwrap();
        b.flush().unwrap();
        b.set_phase("online");
        let big = b.recv().unwrap();
        assert_eq!(big.len(), 10 << 20);
        assert!(big.iter().enumerate().all(|(i, &v)| v == (i % 251) as u8));
        b.send_vec(big).unwrap();
        b.flush().unwrap();
        b.stats()
    });
    a.set_phase("offline");
    a.send_u64s(&[1, 2, u64::MAX]).unwrap();
    a.send_blocks(&[Block(5), Block(u128::MAX)]).unwrap();
    a.flush().unwrap();
    assert_eq!(a.recv().unwrap(), b"pong");
    a.set_phase("online");
    let big: Vec<u8> = (0..10 << 20).map(|i| (i % 251) as u8).collect();
    a.send(&big).unwrap();
    a.flush().unwrap();
    assert_eq!(a.recv().unwrap(), big);
    let sb = h.join().unwrap();
    let sa = a.stats();

    let off = sa.phase("offline").unwrap();
    assert_eq!(off.bytes_sent, (4 + 24) + (4 + 32));
    assert_eq!(off.bytes_received, 4 + 4);
    assert_eq!((off.messages_sent, off.messages_received), (2, 1));
    assert_eq!((off.rounds_sent, off.rounds_received), (1, 1));
    let on = sa.phase("online").unwrap();
    assert_eq!(on.bytes_sent, 4 + (10 << 20));
    assert_eq!((on.rounds_sent, on.rounds_received), (1, 1));
    assert_eq!(sa.phase(DEFAULT_PHASE).unwrap().bytes(), 0);
    // The two ends agree, mirrored.
    let (ta, tb) = (sa.total(), sb.total());
    assert_eq!(ta.bytes_sent, tb.bytes_received);
    assert_eq!(ta.bytes_received, tb.bytes_sent);
    assert_eq!(ta.rounds_sent, tb.rounds_received);
    assert_eq!(ta.rounds(), 4);
    assert_eq!(tb.rounds(), 4);
}

#[test]
fn memory_two_threads() {
    let (a, b) = MemoryChannel::pair();
    exercise(a, b);
}

#[test]
fn tcp_two_threads() {
    let (a, b) = tcp_pair();
    exercise(a, b);
}

#[test]
fn boxed_dyn_channel_works() {
    let (a, b) = MemoryChannel::pair();
    let a: Box<dyn Channel> = Box::new(a);
    let b: Box<dyn Channel> = Box::new(b);
    exercise(a, b);
}

#[test]
fn simultaneous_large_sends_do_not_deadlock_over_tcp() {
    // Both parties send 32 MiB before reading: more than socket buffers hold.
    let (mut a, mut b) = tcp_pair();
    let h = thread::spawn(move || {
        b.send(&vec![2u8; 32 << 20]).unwrap();
        b.flush().unwrap();
        b.recv().unwrap()
    });
    a.send(&vec![1u8; 32 << 20]).unwrap();
    a.flush().unwrap();
    assert!(a.recv().unwrap().iter().all(|&x| x == 2));
    assert!(h.join().unwrap().iter().all(|&x| x == 1));
}

#[test]
fn peer_disconnect_is_closed() {
    let (mut a, b) = MemoryChannel::pair();
    drop(b);
    assert!(matches!(a.recv(), Err(NetError::Closed)));
    assert!(matches!(a.send(b"x"), Err(NetError::Closed)));

    let (mut a, mut b) = tcp_pair();
    b.send(b"last words").unwrap();
    b.flush().unwrap();
    drop(b);
    assert_eq!(a.recv().unwrap(), b"last words");
    assert!(matches!(a.recv(), Err(NetError::Closed)));
}

/// A raw TCP peer that writes arbitrary bytes, then closes.
fn raw_peer(bytes: Vec<u8>) -> TcpChannel {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&bytes).unwrap();
    });
    let ch = TcpChannel::accept(&listener).unwrap();
    h.join().unwrap();
    ch
}

#[test]
fn malformed_frames_over_tcp() {
    // Garbage length: 0xffffffff.
    let mut ch = raw_peer(vec![0xff; 8]);
    assert!(matches!(ch.recv(), Err(NetError::FrameTooLarge { .. })));
    // Under the maximum but a lie: 100 MiB claimed, 3 bytes sent.
    let mut bytes = (100u32 << 20).to_le_bytes().to_vec();
    bytes.extend_from_slice(&[1, 2, 3]);
    let mut ch = raw_peer(bytes);
    assert!(matches!(ch.recv(), Err(NetError::Truncated { got: 3, .. })));
    // A smaller configured maximum.
    let mut bytes = 1000u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 1000]);
    let mut ch = raw_peer(bytes);
    ch.set_max_frame(999);
    assert!(matches!(
        ch.recv(),
        Err(NetError::FrameTooLarge {
            len: 1000,
            max: 999
        })
    ));
    // Typed helpers check lengths.
    let mut bytes = 5u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 5]);
    let mut ch = raw_peer(bytes);
    assert!(matches!(
        ch.recv_u64s(1),
        Err(NetError::UnexpectedLength {
            expected: 8,
            got: 5
        })
    ));
}

#[test]
fn read_timeouts() {
    let (mut a, _b) = MemoryChannel::pair();
    a.set_read_timeout(Some(Duration::from_millis(20)));
    assert!(matches!(a.recv(), Err(NetError::Timeout)));
    let (mut a, _b) = tcp_pair();
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert!(matches!(a.recv(), Err(NetError::Timeout)));
}

#[test]
fn timeout_mid_frame_is_recoverable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut frame = 6u32.to_le_bytes().to_vec();
        frame.extend_from_slice(b"abcdef");
        // Half a header, then half a payload, then the rest, with pauses.
        for part in [&frame[..2], &frame[2..7], &frame[7..]] {
            s.write_all(part).unwrap();
            s.flush().unwrap();
            thread::sleep(Duration::from_millis(150));
        }
    });
    let mut ch = TcpChannel::accept(&listener).unwrap();
    ch.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let mut timeouts = 0;
    let msg = loop {
        match ch.recv() {
            Ok(m) => break m,
            Err(NetError::Timeout) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(msg, b"abcdef");
    assert!(timeouts >= 2);
    h.join().unwrap();
}
