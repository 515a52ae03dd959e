//! Both parties on two threads over an in-memory channel, fixed seeds, small
//! (insecure, fast) LPN parameters; every result compared with the integer
//! semantics of the op.

use blindfold_cmp::{CmpSession, Op, Role};
use blindfold_core::Prg;
use blindfold_net::{Channel, MemoryChannel};
use blindfold_ot::LpnParams;
use proptest::prelude::*;

const FIRST: LpnParams = LpnParams {
    k: 400,
    t: 64,
    h: 7,
};
const NEXT: LpnParams = LpnParams {
    k: 600,
    t: 80,
    h: 9,
};
/// A→B with extensions beyond setup (refilled), B→A at the first size only.
const DIRS: [(LpnParams, LpnParams, bool); 2] = [(FIRST, NEXT, true), (FIRST, FIRST, false)];

/// Run `op` on shares of `xs` (windows consecutive); returns the reconstructed
/// outputs and the bytes both parties sent online.
fn run(op: Op, xs: &[u64], seed: u8) -> (Vec<u64>, u64) {
    let n = xs.len() / op.arity();
    let mut sp = Prg::from_seed([seed; 16]);
    let x0: Vec<u64> = xs
        .iter()
        .map(|_| rand_core::RngCore::next_u64(&mut sp))
        .collect();
    let x1: Vec<u64> = xs
        .iter()
        .zip(&x0)
        .map(|(x, a)| x.wrapping_sub(*a))
        .collect();
    let (mut a, mut b) = MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([seed.wrapping_add(1); 16]);
        let mut s = CmpSession::setup_with(&mut a, Role::A, DIRS, &mut rng).unwrap();
        let m = s.offline(&mut a, op, n, &mut rng).unwrap();
        let b0 = a.stats().total().bytes();
        let y = m.online(&mut a, &x0).unwrap();
        (y, a.stats().total().bytes() - b0)
    });
    let mut rng = Prg::from_seed([seed.wrapping_add(2); 16]);
    let mut s = CmpSession::setup_with(&mut b, Role::B, DIRS, &mut rng).unwrap();
    let m = s.offline(&mut b, op, n, &mut rng).unwrap();
    let y1 = m.online(&mut b, &x1).unwrap();
    let (y0, bytes) = t.join().unwrap();
    (
        y0.iter()
            .zip(&y1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect(),
        bytes,
    )
}

fn check(op: Op, xs: &[u64]) {
    let (got, _) = run(op, xs, 7);
    let want: Vec<u64> = xs.chunks(op.arity()).map(|w| op.plain(w)).collect();
    assert_eq!(got, want, "{op:?}");
}

fn edge_values(k: u32) -> Vec<u64> {
    let half = 1i64.checked_shl(k - 1).unwrap_or(i64::MIN);
    let mut v: Vec<i64> = vec![
        0,
        1,
        -1,
        2,
        -2,
        4095,
        4096,
        -4096,
        -4097,
        123_456_789,
        -987_654_321,
    ];
    if k == 64 {
        v.extend([i64::MAX, i64::MIN, i64::MIN + 1, i64::MAX - 1]);
    } else {
        v.extend([half - 1, -half, -half + 1, half - 2]);
    }
    v.into_iter()
        .filter(|&x| k == 64 || (x >= -half && x < half))
        .map(|x| x as u64)
        .collect()
}

#[test]
fn relu_trunc_edges() {
    for (k, f) in [(64, 12), (64, 0), (64, 1), (32, 8), (20, 13), (64, 63)] {
        check(Op::ReluTrunc { k, f }, &edge_values(k));
    }
}

#[test]
fn trunc_edges() {
    for (k, f) in [(64, 12), (64, 1), (40, 16), (64, 63)] {
        check(Op::Trunc { k, f }, &edge_values(k));
    }
}

#[test]
fn sign_edges() {
    for k in [64, 32, 17, 2] {
        let xs: Vec<u64> = edge_values(k);
        check(Op::Sign { k }, &xs);
    }
    // Sign reads only the low k bits: high garbage is ignored.
    check(
        Op::Sign { k: 16 },
        &[0xdead_0000_0000_7fff, 0x1234_0000_0000_8000],
    );
}

#[test]
fn max_pool_windows() {
    let xs: Vec<u64> = [5i64, -3, 9, 9, -100, -7, -8, -9, 0, 1 << 20, -(1 << 20), 3]
        .iter()
        .map(|&v| v as u64)
        .collect();
    for window in [1, 2, 3, 4] {
        let m = xs.len() / window * window;
        for (relu, f) in [(true, 3), (false, 3), (true, 0), (false, 0)] {
            check(Op::MaxPool { window, relu, f }, &xs[..m]);
        }
    }
}

#[test]
fn relu_costs_a_small_fraction_of_a_garbled_circuit() {
    let xs: Vec<u64> = (0..1000i64)
        .map(|i| (i * 7919 - 3_000_000) as u64)
        .collect();
    let (_, bytes) = run(Op::ReluTrunc { k: 64, f: 12 }, &xs, 3);
    // Online bytes both ways (A's count: sent + received): about 220 B per
    // ReLU at 64 bits, against 6-7 KB garbled.
    let per = bytes as f64 / 1000.0;
    assert!(per < 400.0, "{per} bytes per ReLU online");
}

#[test]
fn bad_message_is_an_error_not_a_panic() {
    let (mut a, mut b) = MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = CmpSession::setup_with(&mut a, Role::A, DIRS, &mut rng).unwrap();
        let m = s
            .offline(&mut a, Op::ReluTrunc { k: 64, f: 4 }, 10, &mut rng)
            .unwrap();
        m.online(&mut a, &[0; 10]).map(|_| ())
    });
    let mut rng = Prg::from_seed([2; 16]);
    let mut s = CmpSession::setup_with(&mut b, Role::B, DIRS, &mut rng).unwrap();
    let _m = s
        .offline(&mut b, Op::ReluTrunc { k: 64, f: 4 }, 10, &mut rng)
        .unwrap();
    b.send(&[1, 2, 3]).unwrap();
    b.flush().unwrap();
    let r = t.join().unwrap();
    assert!(r.is_err());
}

#[test]
fn material_for_another_size_is_refused() {
    let (mut a, mut b) = MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = CmpSession::setup_with(&mut a, Role::A, DIRS, &mut rng).unwrap();
        let m = s.offline(&mut a, Op::Sign { k: 8 }, 4, &mut rng).unwrap();
        m.online(&mut a, &[0; 5]).map(|_| ())
    });
    let mut rng = Prg::from_seed([2; 16]);
    let mut s = CmpSession::setup_with(&mut b, Role::B, DIRS, &mut rng).unwrap();
    let _m = s.offline(&mut b, Op::Sign { k: 8 }, 4, &mut rng).unwrap();
    assert!(t.join().unwrap().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn relu_trunc_random(xs in proptest::collection::vec(any::<i64>(), 1..40), f in 0u32..20) {
        let xs: Vec<u64> = xs.into_iter().map(|x| x as u64).collect();
        let op = Op::ReluTrunc { k: 64, f };
        let (got, _) = run(op, &xs, 11);
        let want: Vec<u64> = xs.iter().map(|x| op.plain(&[*x])).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn narrow_ring_random(xs in proptest::collection::vec(-(1i64 << 29)..(1i64 << 29), 1..40), f in 1u32..12) {
        let xs: Vec<u64> = xs.into_iter().map(|x| x as u64).collect();
        for op in [Op::ReluTrunc { k: 30, f }, Op::Trunc { k: 30, f }, Op::Sign { k: 30 }] {
            let (got, _) = run(op, &xs, 13);
            let want: Vec<u64> = xs.iter().map(|x| op.plain(&[*x])).collect();
            prop_assert_eq!(got, want, "{:?}", op);
        }
    }
}
