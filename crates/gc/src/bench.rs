//! Figures for `blindfold bench primitives` (and the criterion benches).
//!
//! * [`garble_and_per_s`], [`eval_and_per_s`]: one core (rates per second of this
//!   thread's CPU time, read from `/proc/thread-self/schedstat`, so other processes
//!   on a shared machine do not dilute them), in memory, no channel, on
//!   an AND-only circuit (every gate an AND, 64 instances side by side), i.e. the
//!   raw half-gates rate; [`gadget_and_per_s`] gives the rate on a real gadget
//!   (XOR and NOT gates included in the time, only ANDs counted).
//! * [`relu_10k`]: 10,000 fused ReLUs (`f = 12`), offline then online, garbler and
//!   evaluator on two threads over loopback TCP (`blindfold_net::TcpChannel`). The
//!   session setup (128 base OTs) happens once per session and is reported apart.
//!
//! Run in release mode: `cargo run --release -p blindfold-cli -- bench primitives`
//! or `cargo bench -p blindfold-gc`.

use crate::circuit::{Builder, Circuit, Owner};
use crate::gadgets::Gadget;
use crate::garble::{EvaluatedChunk, Evaluator, GarbledChunk, Garbler, CHUNK};
use crate::protocol::{EvaluatorSession, GarblerSession};
use crate::Result;
use blindfold_core::{Block, FracBits, Prg};
use blindfold_net::{Channel, TcpChannel};
use serde::Serialize;
use std::time::{Duration, Instant};

/// An AND-only circuit: 128 inputs, then `n_and` gates each ANDing two of the
/// previous 128 wires.
pub fn and_heavy_circuit(n_and: usize) -> Circuit {
    let mut b = Builder::new();
    let mut w = b.inputs(Owner::Garbler, 64);
    w.extend(b.inputs(Owner::Evaluator, 64));
    for i in 0..n_and {
        let l = w.len();
        let g = b.and(w[l - 128], w[l - 128 + (i * 37 + 1) % 127 + 1]);
        w.push(g);
    }
    let outs = w[w.len() - 64..].to_vec();
    b.outputs(&outs);
    b.finish()
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux; the
/// first field is nanoseconds on a CPU). `None` elsewhere.
pub fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A stopwatch of this thread's CPU time (wall-clock time where unavailable), so
/// single-core rates are not diluted by other processes on a shared machine.
struct CpuClock {
    cpu0: Option<Duration>,
    wall0: Instant,
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock {
            cpu0: thread_cpu_time(),
            wall0: Instant::now(),
        }
    }
    fn elapsed(&self) -> Duration {
        match (self.cpu0, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall0.elapsed(),
        }
    }
}

fn random_labels(prg: &mut Prg, n: usize) -> Vec<Block> {
    (0..n).map(|_| prg.gen_block()).collect()
}

/// Garble `c` over chunks of `CHUNK` instances for at least `min_time`; AND gates
/// per second.
pub fn garble_rate(c: &Circuit, min_time: Duration) -> f64 {
    let mut prg = Prg::from_seed([9; 16]);
    let g0 = random_labels(&mut prg, CHUNK * c.n_garbler_inputs());
    let e0 = random_labels(&mut prg, CHUNK * c.n_evaluator_inputs());
    let mut g = Garbler::new(c, prg.gen_block());
    let per_chunk = (CHUNK * (c.n_and() + c.n_proj())) as u64;
    let mut out = GarbledChunk::default();
    let start = CpuClock::start();
    let mut chunks = 0u64;
    while start.elapsed() < min_time || chunks < 4 {
        out.tables.clear();
        out.decode.clear();
        out.masks.clear();
        g.garble_chunk(chunks * per_chunk, &g0, &e0, &mut out);
        chunks += 1;
    }
    (chunks as f64 * (CHUNK * c.n_and()) as f64) / start.elapsed().as_secs_f64()
}

/// Evaluate `c` over chunks of `CHUNK` instances for at least `min_time`; AND
/// gates per second.
pub fn eval_rate(c: &Circuit, min_time: Duration) -> f64 {
    let mut prg = Prg::from_seed([9; 16]);
    let g0 = random_labels(&mut prg, CHUNK * c.n_garbler_inputs());
    let e0 = random_labels(&mut prg, CHUNK * c.n_evaluator_inputs());
    let mut g = Garbler::new(c, prg.gen_block());
    let per_chunk = (CHUNK * (c.n_and() + c.n_proj())) as u64;
    // Several distinct chunks of tables so they stream from memory, not L1.
    const DISTINCT: u64 = 8;
    let mut all = Vec::new();
    let mut decode = Vec::new();
    for k in 0..DISTINCT {
        let mut out = GarbledChunk::default();
        g.garble_chunk(k * per_chunk, &g0, &e0, &mut out);
        decode = std::mem::take(&mut out.decode);
        all.push(std::mem::take(&mut out.tables));
    }
    let mut ev = Evaluator::new(c);
    let mut out = EvaluatedChunk::default();
    let start = CpuClock::start();
    let mut chunks = 0u64;
    while start.elapsed() < min_time || chunks < 4 {
        out.bits.clear();
        out.ring.clear();
        let k = chunks % DISTINCT;
        ev.eval_chunk(k * per_chunk, &g0, &e0, &all[k as usize], &decode, &mut out)
            .expect("locally garbled tables have the right size");
        chunks += 1;
    }
    (chunks as f64 * (CHUNK * c.n_and()) as f64) / start.elapsed().as_secs_f64()
}

/// Trials per figure; the best is reported (the machine is shared, and the best
/// trial is the one least disturbed by other processes).
pub const TRIALS: usize = 5;

fn best_of(f: impl Fn() -> f64) -> f64 {
    (0..TRIALS).map(|_| f()).fold(0.0, f64::max)
}

/// Half-gates garbling rate, AND gates per second, one core (AND-only circuit;
/// best of [`TRIALS`] windows of 100 ms).
pub fn garble_and_per_s() -> f64 {
    let c = and_heavy_circuit(4096);
    best_of(|| garble_rate(&c, Duration::from_millis(100)))
}

/// Half-gates evaluation rate, AND gates per second, one core (AND-only circuit;
/// best of [`TRIALS`] windows of 100 ms).
pub fn eval_and_per_s() -> f64 {
    let c = and_heavy_circuit(4096);
    best_of(|| eval_rate(&c, Duration::from_millis(100)))
}

/// Garbling and evaluation rates on a gadget's own circuit: `(garble, eval)` in
/// AND gates per second (XOR, NOT and projection work included in the time;
/// best of [`TRIALS`]).
pub fn gadget_and_per_s(g: Gadget) -> (f64, f64) {
    let c = g.circuit();
    let t = Duration::from_millis(100);
    (best_of(|| garble_rate(&c, t)), best_of(|| eval_rate(&c, t)))
}

/// Result of [`relu_10k`] (and [`relu_batch`]): the fastest of [`TRIALS`] runs,
/// plus the median total.
#[derive(Clone, Debug, Serialize)]
pub struct ReluBench {
    /// Elements.
    pub n: usize,
    /// AND gates per fused ReLU (`f = 12`).
    pub and_per_relu: usize,
    /// Offline + online wall-clock time, ms (setup excluded).
    pub ms: f64,
    pub offline_ms: f64,
    pub online_ms: f64,
    /// One-time session setup (128 base OTs), ms.
    pub setup_ms: f64,
    /// Bytes on the wire, both directions, framing included.
    pub bytes_offline: u64,
    pub bytes_online: u64,
    /// `"tcp-loopback"`.
    pub transport: String,
    /// Median of the trials' totals, ms.
    pub ms_median: f64,
    pub trials: usize,
    /// CPU time of the garbler's and the evaluator's protocol threads over offline
    /// and online (the TCP writer threads not included), ms.
    pub garbler_cpu_ms: f64,
    pub evaluator_cpu_ms: f64,
}

/// 10,000 fused ReLUs over loopback TCP (best of [`TRIALS`]).
pub fn relu_10k() -> Result<ReluBench> {
    relu_batch(10_000)
}

/// `n` fused ReLUs, garbler and evaluator on two threads over loopback TCP; the
/// fastest of [`TRIALS`] runs, with the median total.
pub fn relu_batch(n: usize) -> Result<ReluBench> {
    let mut runs = (0..TRIALS)
        .map(|_| relu_once(n))
        .collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    let median = runs[runs.len() / 2].ms;
    let mut best = runs.swap_remove(0);
    best.ms_median = median;
    best.trials = TRIALS;
    Ok(best)
}

/// One run of `n` fused ReLUs over loopback TCP.
pub fn relu_once(n: usize) -> Result<ReluBench> {
    let gadget = Gadget::ReluTruncMask { f: FracBits(12) };
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(blindfold_net::NetError::Io)?;
    let addr = listener.local_addr().map_err(blindfold_net::NetError::Io)?;
    let mut p = Prg::from_seed([42; 16]);
    let y1: Vec<u64> = (0..n).map(|_| p.gen_u64()).collect();
    let y0: Vec<u64> = (0..n)
        .map(|i| ((i as i64 - 5000) * 300) as u64)
        .zip(&y1)
        .map(|(x, y)| x.wrapping_sub(*y))
        .collect();
    let garbler = std::thread::spawn(move || -> Result<(Vec<u64>, Duration)> {
        let mut ch = TcpChannel::accept(&listener)?;
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = GarblerSession::setup(&mut ch, &mut rng)?;
        ch.recv()?; // start signal
        let cpu = CpuClock::start();
        ch.set_phase("offline");
        let off = s.offline(&mut ch, gadget, n, &mut rng)?;
        ch.recv()?; // evaluator finished offline
        ch.set_phase("online");
        let r = off.online(&mut ch, &y0)?;
        Ok((r, cpu.elapsed()))
    });
    let mut ch = TcpChannel::connect_with_retry(addr, Duration::from_secs(10))?;
    let mut rng = Prg::from_seed([2; 16]);
    let t0 = Instant::now();
    let mut s = EvaluatorSession::setup(&mut ch, &mut rng)?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    ch.send(&[1])?;
    ch.flush()?;
    let t = Instant::now();
    let cpu = CpuClock::start();
    ch.set_phase("offline");
    let off = s.offline(&mut ch, gadget, n, &mut rng)?;
    let offline_ms = t.elapsed().as_secs_f64() * 1e3;
    ch.send(&[2])?;
    ch.set_phase("online");
    let t1 = Instant::now();
    let z = off.online(&mut ch, &y1)?;
    let online_ms = t1.elapsed().as_secs_f64() * 1e3;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let evaluator_cpu = cpu.elapsed();
    let (r, garbler_cpu) = garbler.join().expect("garbler thread panicked")?;
    // Sanity: shares reconstruct the ReLU.
    for i in (0..n).step_by(997) {
        let x = ((i as i64 - 5000) * 300) as u64;
        assert_eq!(r[i].wrapping_add(z[i]), gadget.plain(&[x]));
    }
    let stats = ch.stats();
    let phase = |l: &str| stats.phase(l).map(|c| c.bytes()).unwrap_or(0);
    Ok(ReluBench {
        n,
        and_per_relu: gadget.circuit().n_and(),
        ms,
        offline_ms,
        online_ms,
        setup_ms,
        // The sync bytes (5 bytes each) are counted in their phases; negligible.
        bytes_offline: phase("offline"),
        bytes_online: phase("online"),
        transport: "tcp-loopback".into(),
        ms_median: ms,
        trials: 1,
        garbler_cpu_ms: garbler_cpu.as_secs_f64() * 1e3,
        evaluator_cpu_ms: evaluator_cpu.as_secs_f64() * 1e3,
    })
}
