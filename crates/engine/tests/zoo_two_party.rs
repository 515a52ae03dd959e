//! Every zoo network through the two-party engine: both parties on two threads
//! over an in-memory channel, fixed seeds, one session per network and a fresh
//! offline bundle per query (the real protocols: HE preprocessing, garbled
//! circuits, OT-based Beaver squares), 50 inputs each, compared with the
//! plaintext fixed-point reference `run_plain_all`.
//!
//! * Programs without `QOp::Trunc` (ReLU / max-pool networks, truncation fused
//!   into the garbled circuits, which is exact): the secure output must equal the
//!   reference bit for bit.
//! * Programs with `QOp::Trunc` (the x² networks, where a square is followed by a
//!   local share truncation): each local truncation is off by at most one unit of
//!   2^-f per element (the carry of the low bits of the two shares is lost), and
//!   that error then propagates through the following linear layers and squares.
//!   The reference truncates exactly, so the secure output differs from it by a
//!   few hundredths at most. For each network we measured the largest difference
//!   over the 50 inputs (in units of the output scale, 2^-output_frac) and set the
//!   bound about 4x above it (see the table above the square-network tests). The
//!   label must match wherever the reference's top-two margin exceeds twice that
//!   bound (for the MNIST networks that is every digit; the condition is there
//!   for sok_ecg's random weights).
//!
//! The (tiny) probability that a local truncation fails catastrophically (a wrap
//! of the shares across the ring's edge, about |x|/2^64 per element) is
//! negligible for 50 inputs.

mod common;

use blindfold_core::Prg;
use blindfold_engine::party::PartyEngine;
use blindfold_engine::share::split;
use blindfold_model::data::parse_npy;
use blindfold_model::engine::{argmax_ring, encode_input, run_plain_all};
use blindfold_model::quant::{QModel, QOp};
use common::{model as load, root};
use std::time::Instant;

/// Inputs per network.
const N: usize = 50;

/// The first `N` bundled MNIST digits.
fn digits() -> Vec<Vec<f32>> {
    let ds = common::digits();
    (0..N).map(|i| ds.image_f32(i)).collect()
}

/// `sok_ecg`: its sample input, then seeded uniform [0, 1) inputs (the model has
/// random weights and no data set; the sample input is drawn the same way).
fn ecg_inputs(len: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(root().join("models/sok_ecg.sample_input.npy")).unwrap();
    let (_, sample) = parse_npy(&bytes).unwrap();
    assert_eq!(sample.len(), len);
    let mut rng = Prg::from_seed([7; 16]);
    let mut v = vec![sample];
    while v.len() < N {
        v.push(
            (0..len)
                .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
                .collect(),
        );
    }
    v
}

/// Run every input through both parties (one session, one bundle per query)
/// and return the reconstructed outputs and the encoded inputs.
fn secure_outputs(q: &QModel, xs: &[Vec<f32>]) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let [s0, s1] = split(q, &mut Prg::from_seed([42; 16]));
    let e0 = PartyEngine::new(s0).unwrap();
    let e1 = PartyEngine::new(s1).unwrap();
    let inputs: Vec<Vec<u64>> = xs.iter().map(|x| encode_input(q, x).unwrap()).collect();
    (common::run_two_party(e0, e1, &inputs), inputs)
}

/// Largest |a - b| over the ring, in units of the last place.
fn max_units(a: &[u64], b: &[u64]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.wrapping_sub(*y) as i64).unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// Check `name` on `xs`. `tol_units`: `None` for bit-exact networks, else the
/// largest difference accepted, in units of 2^-output_frac.
fn check(name: &str, xs: Vec<Vec<f32>>, tol_units: Option<u64>) {
    let t0 = Instant::now();
    let q = load(name);
    let has_trunc = q.nodes.iter().any(|n| n.op == QOp::Trunc);
    assert_eq!(
        has_trunc,
        tol_units.is_some(),
        "{name}: the test's expectation (exact or not) no longer matches the program"
    );
    let (ys, inputs) = secure_outputs(&q, &xs);
    let mut worst = 0u64;
    let mut label_checked = 0;
    for (i, (got, x)) in ys.iter().zip(&inputs).enumerate() {
        let want = run_plain_all(&q, x).unwrap().swap_remove(q.output);
        assert_eq!(got.len(), want.len(), "{name} input {i}: output length");
        match tol_units {
            None => assert_eq!(
                got, &want,
                "{name} input {i}: secure output differs from the reference"
            ),
            Some(tol) => {
                let err = max_units(got, &want);
                worst = worst.max(err);
                assert!(
                    err <= tol,
                    "{name} input {i}: |secure - reference| = {err} units > {tol}"
                );
                // Margin between the reference's two largest logits.
                let mut s: Vec<i64> = want.iter().map(|&v| v as i64).collect();
                s.sort_unstable();
                let margin = (s[s.len() - 1] - s[s.len() - 2]) as u64;
                if margin > 2 * tol {
                    label_checked += 1;
                    assert_eq!(
                        argmax_ring(got),
                        argmax_ring(&want),
                        "{name} input {i}: label differs"
                    );
                }
            }
        }
    }
    let f = q.output_frac().0;
    eprintln!(
        "{name}: {} inputs, {}; {:.1} s",
        ys.len(),
        match tol_units {
            None => "bit-exact".to_string(),
            Some(t) => format!(
                "max error {worst} units of 2^-{f} = {:.5} (bound {t}), label checked on {label_checked}",
                worst as f64 / (1u64 << f) as f64
            ),
        },
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(ys.len(), N);
}

// Bit-exact networks (ReLU / max-pool in garbled circuits, exact fused truncation).

#[test]
fn minionn_bit_exact() {
    check("minionn", digits(), None);
}

#[test]
fn deepsecure_bit_exact() {
    check("deepsecure", digits(), None);
}

#[test]
fn ppml_b_bit_exact() {
    check("ppml_b", digits(), None);
}

#[test]
fn ppml_c_bit_exact() {
    check("ppml_c", digits(), None);
}

// Square networks (local truncation). The output of these programs is at scale
// 2^-24 (2f: the last dense layer takes values at 2^-12 and weights at 2^-12, with
// no truncation after it), so one unit of truncation error (2^-12) in the input of
// that layer is multiplied by the integer weights (hundreds) and summed over the
// fan-in; an error before a square is further multiplied by 2x. Measured max error
// over the 50 inputs with these seeds, in units of 2^-24 (decoded value in
// parentheses), and the bound used (about 4x):
//   secureml     155_918 (0.0093)  ->   640_000 (0.038)
//   cryptonets   343_067 (0.0204)  -> 1_400_000 (0.083)
//   sok_mnist     93_658 (0.0056)  ->   400_000 (0.024)
//   ppml_a        46_473 (0.0028)  ->   200_000 (0.012)
//   sok_ecg        6_889 (0.0004)  ->    28_000 (0.0017)
// Logits of the MNIST networks are several units apart, far above these bounds.

#[test]
fn secureml_within_truncation_error() {
    check("secureml", digits(), Some(640_000));
}

#[test]
fn cryptonets_within_truncation_error() {
    check("cryptonets", digits(), Some(1_400_000));
}

#[test]
fn sok_mnist_within_truncation_error() {
    check("sok_mnist", digits(), Some(400_000));
}

#[test]
fn ppml_a_within_truncation_error() {
    check("ppml_a", digits(), Some(200_000));
}

#[test]
fn sok_ecg_within_truncation_error() {
    let len = load("sok_ecg").input_shape().numel();
    check("sok_ecg", ecg_inputs(len), Some(28_000));
}
