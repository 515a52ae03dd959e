//! Both parties on two threads over the in-memory channel, fixed seeds.

use std::thread;
use std::time::Instant;

use blindfold_core::{Block, Prg};
use blindfold_net::{Channel, MemoryChannel, TcpChannel};
use blindfold_ot::{base, CotReceiver, CotSender, OtError};

fn bits(seed: u8, n: usize) -> Vec<bool> {
    let mut p = Prg::from_seed([seed; 16]);
    (0..n).map(|_| p.gen_u64() & 1 == 1).collect()
}

/// Run `sender` and `receiver` on two threads over a memory channel.
fn run<S, R, A, B>(sender: S, receiver: R) -> (A, B)
where
    S: FnOnce(&mut MemoryChannel) -> A + Send + 'static,
    R: FnOnce(&mut MemoryChannel) -> B,
    A: Send + 'static,
{
    let (mut a, mut b) = MemoryChannel::pair();
    let h = thread::spawn(move || sender(&mut a));
    let rb = receiver(&mut b);
    drop(b); // a sender still waiting must see the channel close
    (h.join().unwrap(), rb)
}

fn delta() -> Block {
    // A free-XOR offset: lsb set for point-and-permute.
    Block(Prg::from_seed([42; 16]).gen_block().0 | 1)
}

#[test]
fn base_ot_over_channel() {
    let choices = bits(5, 128);
    let c2 = choices.clone();
    let (pairs, keys) = run(
        |ch| base::send_random(ch, 128, &mut Prg::from_seed([1; 16])).unwrap(),
        move |ch| base::receive_random(ch, &c2, &mut Prg::from_seed([2; 16])).unwrap(),
    );
    for j in 0..128 {
        assert_eq!(keys[j], if choices[j] { pairs[j].1 } else { pairs[j].0 });
    }
}

#[test]
fn correlated_ot_holds_for_all_and_sessions_extend() {
    let d = delta();
    // Sizes exercise padding, several chunks and repeated extension.
    let sizes = [1usize, 127, 128, 1000, (1 << 16) + 77, 3];
    let choices: Vec<Vec<bool>> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| bits(k as u8, n))
        .collect();
    let ch2 = choices.clone();
    let (qs, ts) = run(
        move |ch| {
            let mut s = CotSender::setup(ch, d, &mut Prg::from_seed([1; 16])).unwrap();
            assert_eq!(s.delta(), d);
            sizes
                .iter()
                .map(|&n| s.send_correlated(ch, n).unwrap())
                .collect::<Vec<_>>()
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut Prg::from_seed([2; 16])).unwrap();
            let out: Vec<_> = ch2
                .iter()
                .map(|c| r.receive_correlated(ch, c).unwrap())
                .collect();
            assert_eq!(r.index(), sizes.iter().sum::<usize>() as u64);
            out
        },
    );
    let mut all_q = std::collections::HashSet::new();
    for ((q, t), c) in qs.iter().zip(&ts).zip(&choices) {
        assert_eq!(q.len(), c.len());
        for i in 0..c.len() {
            assert_eq!(t[i], q[i] ^ d.and_bit(c[i]), "OT {i}");
            assert!(all_q.insert(q[i]), "q repeats across extensions");
        }
    }
}

#[test]
fn random_ot_receiver_gets_chosen_key_only() {
    let n = 5000;
    let choices = bits(7, n);
    let c2 = choices.clone();
    let (pairs, got) = run(
        move |ch| {
            let mut s = CotSender::setup(ch, delta(), &mut Prg::from_seed([3; 16])).unwrap();
            s.send_correlated(ch, 10).unwrap(); // tweaks continue after other OTs
            s.send_random(ch, n).unwrap()
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut Prg::from_seed([4; 16])).unwrap();
            r.receive_correlated(ch, &[true; 10]).unwrap();
            r.receive_random(ch, &c2).unwrap()
        },
    );
    for i in 0..n {
        let (m0, m1) = pairs[i];
        assert_ne!(m0, m1);
        assert_ne!(m0 ^ m1, delta(), "hash must break the correlation");
        assert_eq!(got[i], if choices[i] { m1 } else { m0 });
        assert_ne!(got[i], if choices[i] { m0 } else { m1 });
    }
}

#[test]
fn chosen_ot_delivers_exactly_the_chosen_messages() {
    let n = 3000;
    let choices = bits(8, n);
    let mut p = Prg::from_seed([8; 16]);
    let msgs: Vec<(Block, Block)> = (0..n).map(|_| (p.gen_block(), p.gen_block())).collect();
    let (m2, c2) = (msgs.clone(), choices.clone());
    let ((), got) = run(
        move |ch| {
            let mut s = CotSender::setup(ch, delta(), &mut Prg::from_seed([5; 16])).unwrap();
            s.send_chosen(ch, &m2).unwrap()
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut Prg::from_seed([6; 16])).unwrap();
            r.receive_chosen(ch, &c2).unwrap()
        },
    );
    for i in 0..n {
        assert_eq!(got[i], if choices[i] { msgs[i].1 } else { msgs[i].0 });
    }
}

#[test]
fn u64_correlated_ot_and_a_gilboa_product() {
    let n = 2000;
    let choices = bits(9, n);
    let mut p = Prg::from_seed([9; 16]);
    let xs = p.gen_u64s(n);
    // A Gilboa product a*b: a at the sender, the bits of b at the receiver.
    let (a, b) = (0x1234_5678_9abc_def1u64, 0xfedc_ba98_7654_3211u64);
    let b_bits: Vec<bool> = (0..64).map(|k| (b >> k) & 1 == 1).collect();
    let xa: Vec<u64> = (0..64).map(|k| a << k).collect();
    let (x2, c2) = (xs.clone(), choices.clone());
    let ((r, ra), (y, yb)) = run(
        move |ch| {
            let mut s = CotSender::setup(ch, delta(), &mut Prg::from_seed([7; 16])).unwrap();
            (
                s.send_correlated_u64(ch, &x2).unwrap(),
                s.send_correlated_u64(ch, &xa).unwrap(),
            )
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut Prg::from_seed([8; 16])).unwrap();
            (
                r.receive_correlated_u64(ch, &c2).unwrap(),
                r.receive_correlated_u64(ch, &b_bits).unwrap(),
            )
        },
    );
    for i in 0..n {
        assert_eq!(y[i], r[i].wrapping_add(xs[i] * choices[i] as u64));
    }
    let sum = |v: &[u64]| v.iter().fold(0u64, |s, &x| s.wrapping_add(x));
    assert_eq!(sum(&yb).wrapping_sub(sum(&ra)), a.wrapping_mul(b));
}

#[test]
fn million_cots_over_memory() {
    let n = 1_000_000;
    let d = delta();
    let choices = bits(11, n);
    let c2 = choices.clone();
    let start = Instant::now();
    let (q, t) = run(
        move |ch| {
            let mut s = CotSender::setup(ch, d, &mut Prg::from_seed([1; 16])).unwrap();
            s.send_correlated(ch, n).unwrap()
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut Prg::from_seed([2; 16])).unwrap();
            r.receive_correlated(ch, &c2).unwrap()
        },
    );
    eprintln!("1M COTs incl. base OTs: {:?}", start.elapsed());
    assert!((0..n).all(|i| t[i] == q[i] ^ d.and_bit(choices[i])));
}

#[test]
fn cot_over_loopback_tcp() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = delta();
    let n = 200_000;
    let h = thread::spawn(move || {
        let mut ch = TcpChannel::accept(&listener).unwrap();
        let mut s = CotSender::setup(&mut ch, d, &mut Prg::from_seed([1; 16])).unwrap();
        s.send_correlated(&mut ch, n).unwrap()
    });
    let mut ch = TcpChannel::connect(addr).unwrap();
    ch.set_phase("ot");
    let choices = bits(12, n);
    let mut r = CotReceiver::setup(&mut ch, &mut Prg::from_seed([2; 16])).unwrap();
    let t = r.receive_correlated(&mut ch, &choices).unwrap();
    let q = h.join().unwrap();
    assert!((0..n).all(|i| t[i] == q[i] ^ d.and_bit(choices[i])));
    let st = ch.stats().total();
    // Base OT (this side is its sender): A out, 128 points in; extension: 16
    // bytes per (padded) OT out, one message per chunk.
    let chunks = n.div_ceil(blindfold_ot::CHUNK) as u64;
    assert_eq!(st.bytes_received, 4 + 128 * 32);
    assert_eq!(
        (st.bytes_sent, st.messages_sent),
        ((4 + 32) + 16 * 200_064 + 4 * chunks, 1 + chunks)
    );
    assert_eq!(st.rounds(), 3); // A →, ← B_j, u →
}

#[test]
fn malformed_peer_messages_are_errors() {
    // An extension message of the wrong size.
    let (res, ()) = run(
        |ch| {
            let mut s = CotSender::setup(ch, delta(), &mut Prg::from_seed([1; 16])).unwrap();
            s.send_correlated(ch, 1000)
        },
        |ch| {
            let _r = CotReceiver::setup(ch, &mut Prg::from_seed([2; 16])).unwrap();
            ch.send(&[0u8; 17]).unwrap();
        },
    );
    assert!(matches!(res, Err(OtError::BadMessage { .. })));
    // A garbage point in the base OT.
    let (res, ()) = run(
        |ch| CotSender::setup(ch, delta(), &mut Prg::from_seed([1; 16])).map(|_| ()),
        |ch| ch.send(&[0xee; 32]).unwrap(),
    );
    assert!(matches!(res, Err(OtError::InvalidPoint { .. })));
    // The peer vanishes.
    let (res, ()) = run(
        |ch| CotReceiver::setup(ch, &mut Prg::from_seed([1; 16])).map(|_| ()),
        |ch| drop(ch.recv()),
    );
    assert!(matches!(res, Err(OtError::Net(_))));
}
