//! Both lowerings of transposed convolutions (dilated input, sub-pixel) on
//! typical UNet up-sampling layers: ciphertexts, bytes and one direction's
//! milliseconds (encrypt, answer, decrypt), and which form `LayerPlan::new` picks.
//!
//! ```text
//! cargo run -p blindfold-he --example conv_transpose_forms [-- --runs 3]
//! ```

use std::time::Instant;

use blindfold_core::Prg;
use blindfold_he::packing::{linear_reference, ConvTransposeGeom, Lowering};
use blindfold_he::protocol::{answer_query, decrypt_response, encrypt_query};
use blindfold_he::{EncodedWeights, HeParams, LayerPlan, LinearShape, SecretKey};

fn conv_t(
    c_in: usize,
    hw: usize,
    c_out: usize,
    k: usize,
    s: usize,
    p: usize,
    op: usize,
) -> LinearShape {
    LinearShape::ConvTranspose2d(ConvTransposeGeom {
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: k,
        kw: k,
        stride: [s, s],
        pads: [p; 4],
        output_padding: [op; 2],
    })
}

fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let params = HeParams::new().expect("parameters");
    let n = params.degree();
    let mut rng = Prg::from_seed([9; 16]);
    let sk = SecretKey::generate(&params, &mut rng).expect("key");
    let pk = sk.public_key(&mut rng).expect("public key");
    let layers = [
        conv_t(16, 16, 16, 2, 2, 0, 0),
        conv_t(32, 16, 16, 2, 2, 0, 0),
        conv_t(8, 32, 8, 3, 2, 1, 1),
        conv_t(64, 8, 32, 2, 2, 0, 0),
        conv_t(16, 32, 8, 4, 2, 1, 0),
    ];
    println!(
        "{:<44} {:<32} {:>3} {:>3} {:>5} {:>8} {:>8} {:>8}",
        "layer", "lowering", "in", "out", "prod", "kB", "ms", "model MB"
    );
    for shape in &layers {
        let chosen = LayerPlan::new(shape, n).expect("plan");
        for lowering in shape.lowerings() {
            let plan = LayerPlan::with_cheapest_tiling(shape, n, lowering).expect("plan");
            let w = rng.gen_u64s(shape.weight_len());
            let ew = EncodedWeights::new(&params, &plan, &w).expect("weights");
            let r = rng.gen_u64s(shape.input_len());
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let start = Instant::now();
                let q = encrypt_query(&sk, &plan, 0, &r, &mut rng).expect("query");
                let (resp, t) = answer_query(&params, &pk, &ew, 0, &q, &mut rng).expect("answer");
                let m = decrypt_response(&sk, &plan, 0, &resp).expect("decrypt");
                times.push(start.elapsed().as_secs_f64() * 1e3);
                let got: Vec<u64> = m
                    .iter()
                    .zip(t.iter())
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect();
                assert_eq!(got, linear_reference(shape, &r, &w).expect("reference"));
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let bytes = plan.query_bytes(&params) + plan.response_bytes(&params);
            let name = match lowering {
                Lowering::SubPixel { aligned } => format!("sub-pixel aligned {aligned:?}"),
                other => format!("{other:?}"),
            };
            println!(
                "{:<44} {:<32} {:>3} {:>3} {:>5} {:>8.1} {:>8.1} {:>8.2}{}",
                shape.describe(),
                name,
                plan.input_cts(),
                plan.output_cts(),
                plan.products(),
                bytes as f64 / 1e3,
                times[times.len() / 2],
                plan.cost() / 1e6,
                if plan == chosen { "  <- chosen" } else { "" }
            );
        }
    }
}
