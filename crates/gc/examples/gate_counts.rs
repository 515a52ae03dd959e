//! Print the gate counts of every gadget as a markdown table (docs/gc.md):
//! `cargo run --release -p blindfold-gc --example gate_counts`.
use blindfold_core::FracBits;
use blindfold_gc::Gadget;

fn main() {
    let f = FracBits(12);
    println!("| gadget | input bits | AND | XOR | NOT | projections | table bytes | AND depth |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for g in [
        Gadget::ReluTruncMask { f },
        Gadget::MaxPoolReluTruncMask { k: 4, f },
        Gadget::MaxPoolTruncMask { k: 4, f },
        Gadget::MaxPoolReluTruncMask { k: 9, f },
        Gadget::SignMask { width: 64 },
        Gadget::ThresholdSignMask,
        Gadget::ArgmaxMask { k: 2 },
        Gadget::ArgmaxMask { k: 10 },
        Gadget::TruncMask { f },
    ] {
        let c = g.circuit().counts();
        println!(
            "| `{g:?}` | {} | {} | {} | {} | {} | {} | {} |",
            g.input_bits(),
            c.and,
            c.xor,
            c.not,
            c.proj,
            c.table_bytes,
            c.and_depth
        );
    }
}
