//! `blindfold bench preprocessing`: both parties on two threads over an
//! in-memory channel, one query's homomorphic preprocessing of every linear
//! layer, both directions at once; per-layer and total milliseconds and bytes.
//!
//! ```text
//!   thread P0                    MemoryChannel                    thread P1
//!   setup (pk0 ▶, ◀ pk1)         ───────────────                  setup
//!   EncodedWeights(W0)                                            EncodedWeights(W1)
//!   repeat k times: preprocess(layers)  ◀── Q/A per layer ──▶     preprocess(layers)
//! ```
//!
//! Weight shares and masks are drawn from fixed seeds; every run's result is
//! checked (`M0 + T1 = L(R0; W1)`, `M1 + T0 = L(R1; W0)`) outside the timed region.

use std::thread;
use std::time::Instant;

use blindfold_core::{PartyId, Prg};
use blindfold_net::MemoryChannel;
use serde::{Deserialize, Serialize};

use crate::packing::{linear_reference, ConvGeom, FcShape, LayerPlan, LinearShape};
use crate::protocol::{
    plan_network, preprocess, EncodedWeights, HeSession, LayerCost, LayerShares,
};
use crate::{HeError, HeParams, Result};

/// Networks of the zoo (the names of `models/*.onnx`).
pub const ZOO: &[&str] = &[
    "secureml",
    "cryptonets",
    "deepsecure",
    "minionn",
    "sok_mnist",
    "sok_ecg",
    "ppml_a",
    "ppml_b",
    "ppml_c",
];

fn fc(inputs: usize, outputs: usize) -> LinearShape {
    LinearShape::Fc(FcShape { inputs, outputs })
}

fn conv(c_in: usize, hw: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> LinearShape {
    LinearShape::Conv2d(ConvGeom::square(c_in, hw, c_out, k, stride, pad))
}

/// The linear layers of a zoo network (as in `training/models.py`), until the
/// engine maps its model IR onto [`LinearShape`] itself.
pub fn zoo_layers(name: &str) -> Option<Vec<LinearShape>> {
    Some(match name {
        "secureml" | "ppml_b" => vec![fc(784, 128), fc(128, 128), fc(128, 10)],
        "ppml_a" => vec![fc(784, 128), fc(128, 10)],
        "cryptonets" => vec![conv(1, 28, 5, 5, 2, 1), fc(845, 100), fc(100, 10)],
        "deepsecure" => vec![conv(1, 28, 5, 5, 2, 2), fc(980, 100), fc(100, 10)],
        "minionn" => vec![
            conv(1, 28, 16, 5, 1, 0),
            conv(16, 12, 16, 5, 1, 0),
            fc(256, 100),
            fc(100, 10),
        ],
        "sok_mnist" => vec![conv(1, 28, 5, 5, 2, 2), fc(245, 100), fc(100, 10)],
        "sok_ecg" => vec![fc(180, 40), fc(40, 16)],
        "ppml_c" => vec![
            conv(1, 28, 6, 5, 1, 2),
            conv(6, 14, 16, 5, 1, 0),
            fc(400, 120),
            fc(120, 84),
            fc(84, 10),
        ],
        _ => return None,
    })
}

/// One layer's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchLayer {
    /// `LinearShape::describe`.
    pub layer: String,
    /// Median wall-clock milliseconds (the slower party), both directions.
    pub ms: f64,
    /// Bytes on the wire, both directions (frame headers included).
    pub bytes: u64,
    /// Input ciphertexts per direction.
    pub input_cts: usize,
    /// Output ciphertexts per direction.
    pub output_cts: usize,
    /// Plaintext-ciphertext products per direction.
    pub products: usize,
}

/// The report of [`bench`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub layers: Vec<BenchLayer>,
    /// Median total milliseconds of one query's preprocessing.
    pub total_ms: f64,
    /// Bytes of one query's preprocessing.
    pub total_bytes: u64,
    /// One-off per session: key generation and public-key exchange.
    pub setup_ms: f64,
    pub setup_bytes: u64,
    /// One-off per model: packing the weight shares as NTT plaintexts (both parties).
    pub encode_weights_ms: f64,
    /// Number of timed runs the medians are taken over.
    pub runs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

type PartyOutput = (
    Vec<Vec<(LayerShares, LayerCost)>>,
    Vec<f64>,
    Vec<Vec<u64>>,
    f64,
    f64,
);

fn run_party(
    party: PartyId,
    mut ch: MemoryChannel,
    layers: Vec<LinearShape>,
    runs: usize,
) -> Result<PartyOutput> {
    let params = HeParams::new()?;
    let seed = [party.index() as u8 + 1; 16];
    let mut rng = Prg::from_seed(seed);
    let plans: Vec<LayerPlan> = plan_network(&params, &layers)?;
    let t0 = Instant::now();
    let session = HeSession::setup(party, &mut ch, &params, &mut rng)?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let weights: Vec<Vec<u64>> = layers
        .iter()
        .map(|s| rng.gen_u64s(s.weight_len()))
        .collect();
    let encoded = plans
        .iter()
        .zip(&weights)
        .map(|(p, w)| EncodedWeights::new(&params, p, w))
        .collect::<Result<Vec<_>>>()?;
    let encode_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut all = Vec::with_capacity(runs);
    let mut totals = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        all.push(preprocess(party, &mut ch, &session, &encoded, &mut rng)?);
        totals.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((all, totals, weights, setup_ms, encode_ms))
}

/// Run one query's preprocessing of `layers` `runs` times (at least once) with
/// both parties on two threads; check every result; report medians.
pub fn bench(layers: &[LinearShape], runs: usize) -> Result<BenchReport> {
    let runs = runs.max(1);
    let params = HeParams::new()?;
    let plans = plan_network(&params, layers)?;
    let (c0, c1) = MemoryChannel::pair();
    let l1 = layers.to_vec();
    let h1 = thread::spawn(move || run_party(PartyId::P1, c1, l1, runs));
    let r0 = run_party(PartyId::P0, c0, layers.to_vec(), runs);
    let r1 = h1
        .join()
        .map_err(|_| HeError::Peer("P1 thread panicked".into()))?;
    let (out0, tot0, w0, setup0, enc0) = r0?;
    let (out1, tot1, w1, setup1, enc1) = r1?;

    // Check every run: M0 + T1 = L(R0; W1) and M1 + T0 = L(R1; W0).
    for (run0, run1) in out0.iter().zip(&out1) {
        for (l, shape) in layers.iter().enumerate() {
            let (s0, s1) = (&run0[l].0, &run1[l].0);
            let want0 = linear_reference(shape, &s0.r, &w1[l])?;
            let want1 = linear_reference(shape, &s1.r, &w0[l])?;
            let ok0 =
                s0.m.iter()
                    .zip(&s1.t)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .eq(want0);
            let ok1 =
                s1.m.iter()
                    .zip(&s0.t)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .eq(want1);
            if !ok0 || !ok1 {
                return Err(HeError::Peer(format!(
                    "layer {l}: shares do not reconstruct"
                )));
            }
        }
    }

    let layers_out = layers
        .iter()
        .enumerate()
        .map(|(l, shape)| {
            let ms = median(
                out0.iter()
                    .zip(&out1)
                    .map(|(a, b)| a[l].1.ms.max(b[l].1.ms))
                    .collect(),
            );
            BenchLayer {
                layer: shape.describe(),
                ms,
                bytes: out0[0][l].1.bytes,
                input_cts: plans[l].input_cts(),
                output_cts: plans[l].output_cts(),
                products: plans[l].products(),
            }
        })
        .collect::<Vec<_>>();
    let total_ms = median(tot0.iter().zip(&tot1).map(|(a, b)| a.max(*b)).collect());
    let total_bytes = layers_out.iter().map(|l| l.bytes).sum();
    let pk_bytes = 2
        * (crate::rlwe::SecretKey::generate(&params, &mut Prg::from_seed([0; 16]))?
            .public_key(&mut Prg::from_seed([0; 16]))?
            .byte_len() as u64
            + 4);
    Ok(BenchReport {
        layers: layers_out,
        total_ms,
        total_bytes,
        setup_ms: setup0.max(setup1),
        setup_bytes: pk_bytes,
        encode_weights_ms: enc0.max(enc1),
        runs,
    })
}

/// [`bench`] on a zoo network by name.
pub fn bench_network(name: &str, runs: usize) -> Result<BenchReport> {
    let layers = zoo_layers(name).ok_or_else(|| {
        HeError::Shape(format!(
            "unknown network {name:?}; known: {}",
            ZOO.join(", ")
        ))
    })?;
    bench(&layers, runs)
}
