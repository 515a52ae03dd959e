//! `cargo run --release -p blindfold-he --example bench_zoo -- [NAME ...] [--runs K]`:
//! one query's homomorphic preprocessing per zoo network, as JSON lines.
use blindfold_he::bench::{bench_network, ZOO};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5);
        args.drain(i..(i + 2).min(args.len()));
    }
    let names: Vec<String> = if args.is_empty() {
        ZOO.iter().map(|s| s.to_string()).collect()
    } else {
        args
    };
    for name in names {
        match bench_network(&name, runs) {
            Ok(r) => {
                println!(
                    "{name}: {:.1} ms, {:.2} MB",
                    r.total_ms,
                    r.total_bytes as f64 / 1e6
                );
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            }
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
}
