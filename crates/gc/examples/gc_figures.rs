//! Print the gc benchmark figures as JSON: `cargo run --release -p blindfold-gc --example gc_figures`.
use blindfold_core::FracBits;
use blindfold_gc::{bench, Gadget};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("garble_and_per_s {:.3e}", bench::garble_and_per_s());
    println!("eval_and_per_s   {:.3e}", bench::eval_and_per_s());
    let (g, e) = bench::gadget_and_per_s(Gadget::ReluTruncMask { f: FracBits(12) });
    println!("relu circuit: garble {g:.3e} AND/s, eval {e:.3e} AND/s");
    let r = bench::relu_10k()?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
