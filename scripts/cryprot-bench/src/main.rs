//! cryprot-ot 0.3.2 semi-honest silent random OT throughput, both parties in
//! one process over cryprot-net's QUIC loopback test connection (`local_conn`).
//!
//! For each batch size (2^20, 2^21, 2^22): a fresh sender/receiver pair, one
//! untimed warm-up batch (it runs the base OTs and is checked for
//! correctness), then RUNS timed batches. Bytes are cryprot-net's own
//! application-stream counters (the `cryprot_metrics` tracing layer), both
//! directions summed; QUIC/UDP framing is not included.
//!
//! Usage: cryprot-bench [RUNS] (default 3). Env CRYPROT_BENCH_POWERS="20,21,22".

use std::time::{Duration, Instant};

use cryprot_core::{Block, alloc::HugePageMemory};
use cryprot_net::{
    Connection,
    metrics::{CommLayerData, new_comm_layer},
    testing::local_conn,
};
use cryprot_ot::silent_ot::{SemiHonestSilentOtReceiver, SemiHonestSilentOtSender};
use tracing::{Instrument, Level};
use tracing_subscriber::{Layer, Registry, filter::LevelFilter, fmt, layer::SubscriberExt};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Bytes written by both parties inside the span with this phase, once it has closed.
async fn phase_bytes(comm: &CommLayerData, phase: &str) -> u64 {
    for _ in 0..1000 {
        if let Some(d) = comm.comm_data().get(phase) {
            let (w, r) = (d.write.bytes_with_sub_comm, d.read.bytes_with_sub_comm);
            if w != r {
                eprintln!("warning: phase {phase}: {w} bytes written but {r} read");
            }
            return w;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no comm data for phase {phase}");
}

struct Run {
    secs: f64,
    bytes: u64,
}

async fn one_batch(
    sender: SemiHonestSilentOtSender,
    receiver: SemiHonestSilentOtReceiver,
    count: usize,
    comm: &CommLayerData,
    phase: &str,
    check: bool,
) -> (SemiHonestSilentOtSender, SemiHonestSilentOtReceiver, Run) {
    let span = tracing::span!(target: "cryprot_metrics", Level::TRACE, "bench", phase = phase);
    let (mut sender, mut receiver) = (sender, receiver);
    let t = Instant::now();
    let (s, r) = tokio::try_join!(
        tokio::spawn(
            async move {
                // Same as `random_send`, which returns a buffer borrowing the sender.
                let mut ots = HugePageMemory::<[Block; 2]>::zeroed(count);
                sender.random_sent_into(count, &mut ots).await.expect("sender");
                (sender, ots)
            }
            .instrument(span.clone())
        ),
        tokio::spawn(
            async move {
                // Same as `random_receive`.
                let mut ots =
                    HugePageMemory::<Block>::zeroed(SemiHonestSilentOtReceiver::ots_buf_size(count));
                let choices = receiver.random_receive_into(count, &mut ots).await.expect("receiver");
                (receiver, ots, choices)
            }
            .instrument(span.clone())
        ),
    )
    .expect("join");
    let secs = t.elapsed().as_secs_f64();
    drop(span);
    let (sender, s_ots) = s;
    let (receiver, r_ots, choices) = r;
    assert_eq!(s_ots.len(), count);
    assert!(r_ots.len() >= count);
    assert_eq!(choices.len(), count);
    if check {
        let mut ones = 0usize;
        for i in 0..count {
            let c = choices[i].unwrap_u8() as usize;
            ones += c;
            assert_eq!(r_ots[i], s_ots[i][c], "OT {i} wrong");
            assert_ne!(s_ots[i][0], s_ots[i][1]);
        }
        assert!(ones > count / 3 && ones < 2 * count / 3, "choice bits skewed");
    }
    drop((s_ots, r_ots, choices));
    let bytes = phase_bytes(comm, phase).await;
    (sender, receiver, Run { secs, bytes })
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args().nth(1).map(|s| s.parse().expect("RUNS")).unwrap_or(3);
    let powers: Vec<u32> = std::env::var("CRYPROT_BENCH_POWERS")
        .unwrap_or_else(|_| "20,21,22".into())
        .split(',')
        .map(|s| s.trim().parse().expect("power"))
        .collect();

    let (comm_layer, comm) = new_comm_layer();
    let subscriber = Registry::default()
        .with(fmt::layer().with_writer(std::io::stderr).with_filter(LevelFilter::WARN))
        .with(comm_layer);
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");

    let (mut c1, mut c2): (Connection, Connection) = local_conn().await.expect("local_conn");
    println!(
        "cryprot-ot 0.3.2 SemiHonestSilentOt random OT, QUIC loopback (local_conn), one process, {} tokio workers",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut summary = Vec::new();
    for p in powers {
        let count = 1usize << p;
        let sender = SemiHonestSilentOtSender::new(c1.sub_connection());
        let receiver = SemiHonestSilentOtReceiver::new(c2.sub_connection());
        let (mut sender, mut receiver, w) =
            one_batch(sender, receiver, count, &comm, &format!("warmup-{p}"), true).await;
        println!(
            "2^{p} warm-up (incl. base OTs, checked): {:.3} s, {:.2} M OT/s, {:.4} bytes/OT",
            w.secs,
            count as f64 / w.secs / 1e6,
            w.bytes as f64 / count as f64
        );
        let mut rates = Vec::new();
        let mut bpo = Vec::new();
        for i in 0..runs {
            let r;
            (sender, receiver, r) =
                one_batch(sender, receiver, count, &comm, &format!("run-{p}-{i}"), false).await;
            let rate = count as f64 / r.secs;
            let b = r.bytes as f64 / count as f64;
            println!(
                "2^{p} run {}: {:.3} s, {:.2} M OT/s, {} bytes = {:.4} bytes/OT ({:.3} bits/OT)",
                i + 1,
                r.secs,
                rate / 1e6,
                r.bytes,
                b,
                8.0 * b
            );
            rates.push(rate);
            bpo.push(b);
        }
        let best = rates.iter().cloned().fold(0.0, f64::max);
        let med = median(&mut rates);
        let medb = median(&mut bpo);
        summary.push((p, med, best, medb));
    }
    println!("summary (median of {runs}; best in brackets):");
    for (p, med, best, b) in summary {
        println!(
            "  2^{p}: {:.2} M OT/s (best {:.2}), {:.4} bytes/OT ({:.3} bits/OT)",
            med / 1e6,
            best / 1e6,
            b,
            8.0 * b
        );
    }
}
