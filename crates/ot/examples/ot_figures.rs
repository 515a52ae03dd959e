//! Prints the figures `blindfold bench primitives` reports for OT:
//! `cargo run --profile bench -p blindfold-ot --example ot_figures`.

fn main() {
    let base = blindfold_ot::bench::base_ot_128_ms();
    println!("base_ot_128_ms {base:.2}");
    for n in [1 << 20, 1 << 22, 10_000_000] {
        let r = blindfold_ot::bench::cot_per_s(n);
        println!("cot_per_s n={n} {:.1} M/s", r / 1e6);
    }
}
