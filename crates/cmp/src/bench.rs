//! Figures for `blindfold bench primitives`: `n` ReLUs with truncation by OT
//! comparisons, both parties on two threads over loopback TCP, the silent OT
//! sessions set up first (as a server pair does once).

use std::time::Instant;

use blindfold_core::Prg;
use blindfold_net::{Channel, TcpChannel};

use crate::{CmpSession, Op, Result, Role};

/// One run of OT-based ReLUs.
#[derive(Clone, Copy, Debug)]
pub struct OtReluBench {
    pub relus: usize,
    /// Offline (drawing the random OTs, with the silent extension amortized)
    /// and online milliseconds, as party A saw them.
    pub offline_ms: f64,
    pub online_ms: f64,
    /// Bytes both ways: online, and the amortized silent OT extension.
    pub online_bytes: u64,
    pub amortized_bytes: f64,
    /// Sequential flights online.
    pub rounds: u64,
    pub setup_ms: f64,
}

/// `n` ReLUs with `f = 12` on 64-bit shares; the reconstructed results are
/// checked against `relu(x >> 12)`.
pub fn relu(n: usize) -> Result<OtReluBench> {
    let op = Op::ReluTrunc { k: 64, f: 12 };
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?;
    let addr = listener.local_addr().map_err(blindfold_net::NetError::Io)?;
    let xs: Vec<u64> = (0..n).map(|i| ((i as i64 - 5000) * 300) as u64).collect();
    let mut p = Prg::from_seed([42; 16]);
    let x1: Vec<u64> = (0..n).map(|_| p.gen_u64()).collect();
    let x0: Vec<u64> = xs
        .iter()
        .zip(&x1)
        .map(|(x, y)| x.wrapping_sub(*y))
        .collect();
    let (ra, rb) = op.rots(n);
    let b = std::thread::spawn(move || -> Result<Vec<u64>> {
        let mut ch = TcpChannel::accept(&listener)?;
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = CmpSession::setup(&mut ch, Role::B, [ra, rb], &mut rng)?;
        let m = s.offline(&mut ch, op, n, &mut rng)?;
        m.online(&mut ch, &x1)
    });
    let mut ch = TcpChannel::connect_with_retry(addr, std::time::Duration::from_secs(10))?;
    let mut rng = Prg::from_seed([2; 16]);
    let t = Instant::now();
    let mut s = CmpSession::setup(&mut ch, Role::A, [ra, rb], &mut rng)?;
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let m = s.offline(&mut ch, op, n, &mut rng)?;
    let c = m.cost;
    let offline_ms = (t.elapsed().as_secs_f64() - c.extension_secs + c.amortized_secs) * 1e3;
    let st0 = ch.stats().total();
    let t = Instant::now();
    let y0 = m.online(&mut ch, &x0)?;
    let online_ms = t.elapsed().as_secs_f64() * 1e3;
    let st1 = ch.stats().total();
    let y1 = b
        .join()
        .map_err(|_| crate::CmpError::InvalidArgument("bench thread panicked"))??;
    for (i, x) in xs.iter().enumerate() {
        if y0[i].wrapping_add(y1[i]) != op.plain(&[*x]) {
            return Err(crate::CmpError::InvalidArgument("bench: wrong ReLU result"));
        }
    }
    Ok(OtReluBench {
        relus: n,
        offline_ms,
        online_ms,
        online_bytes: st1.bytes() - st0.bytes(),
        amortized_bytes: c.amortized_bytes,
        rounds: st1.rounds() - st0.rounds(),
        setup_ms,
    })
}
