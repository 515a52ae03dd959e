//! A querier that deviates in the homomorphic preprocessing, run against the
//! real responder (`protocol::answer_query`): it picks its own key and crafts
//! `c0` so that the product `c0 * W` shows through in the fractional part of the
//! decryption phase, which the responder's mask `Δ(-T)` does not randomize.
//!
//! The crafted term is `c = round(Δ / 2^b)` at the coefficient of one input, so
//! the phase at output `o` is `c * w[o][col] + Δ·(...) + noise`, whose fraction
//! over `Δ` is `(w mod 2^b) / 2^b` plus the noise over `Δ`: one query per window
//! `b` reads the top bits of `w mod 2^b`, and windows from `b = 64` down read the
//! whole weight, as far as the flooding lets them.

use blindfold_core::Prg;
use blindfold_he::adversary::{
    encrypt_crafted, query_message, response_fractions, secret_key_from_coeffs,
};
use blindfold_he::protocol::answer_query;
use blindfold_he::{
    EncodedWeights, FcShape, HeError, HeParams, LayerPlan, LinearShape, PublicKey, ResponseFlood,
    SecretKey, UniformityCheck,
};
use num_bigint::BigUint;
use std::sync::Arc;

const LAYER: u32 = 0;
const INPUTS: usize = 4;
const OUTPUTS: usize = 8;
/// The column of `W` the attacker reads.
const COL: usize = 2;

/// The honest responder: a fully connected layer `INPUTS -> OUTPUTS` with a
/// uniform 64-bit weight share.
struct Responder {
    params: Arc<HeParams>,
    plan: LayerPlan,
    w: Vec<u64>,
    weights: EncodedWeights,
}

impl Responder {
    fn new(seed: u8) -> Responder {
        let params = HeParams::new().unwrap();
        let shape = LinearShape::Fc(FcShape {
            inputs: INPUTS,
            outputs: OUTPUTS,
        });
        let plan = LayerPlan::new(&shape, params.degree()).unwrap();
        let w = Prg::from_seed([seed; 16]).gen_u64s(shape.weight_len());
        let weights = EncodedWeights::new(&params, &plan, &w).unwrap();
        Responder {
            params,
            plan,
            w,
            weights,
        }
    }

    /// Column `col` of `W` (row-major `outputs x inputs`): what the attack targets.
    fn column(&self, col: usize) -> Vec<u64> {
        (0..OUTPUTS).map(|o| self.w[o * INPUTS + col]).collect()
    }

    /// The responder's side of the exchange: parse the peer's public key as
    /// `HeSession` does, then answer one query.
    fn answer(&self, pk: &PublicKey, query: &[u8], rng: &mut Prg) -> Result<Vec<u8>, HeError> {
        let pk = PublicKey::from_bytes(&self.params, &pk.to_bytes())?;
        Ok(answer_query(&self.params, &pk, &self.weights, LAYER, query, rng)?.0)
    }
}

/// Which input ciphertext and coefficient input `col` is packed at.
fn input_slot(plan: &LayerPlan, col: usize) -> (usize, usize) {
    let mut unit = vec![0u64; INPUTS];
    unit[col] = 1;
    let polys = plan.pack_input(&unit).unwrap();
    for (k, p) in polys.iter().enumerate() {
        if let Some(j) = p.iter().position(|&v| v == 1) {
            return (k, j);
        }
    }
    unreachable!("input {col} is packed somewhere")
}

/// `round(Δ / 2^b)` (`Δ = q / 2^64`) at coefficient `j` and zero elsewhere, as
/// full-level RNS rows.
fn crafted_rows(params: &HeParams, j: usize, b: u32) -> Vec<u64> {
    let n = params.degree();
    let q = params
        .moduli()
        .iter()
        .fold(BigUint::from(1u8), |a, &p| a * BigUint::from(p));
    let c = (q + (BigUint::from(1u8) << (63 + b))) >> (64 + b);
    let mut rows = vec![0u64; n * params.moduli().len()];
    for (i, &p) in params.moduli().iter().enumerate() {
        let r = &c % BigUint::from(p);
        rows[i * n + j] = r.to_u64_digits().first().copied().unwrap_or(0);
    }
    rows
}

/// One crafted query reading window `b`: the fraction of the phase over `Δ'`
/// at every output, in units of 2^-64 (≈ `(w mod 2^b) / 2^b` plus noise).
fn crafted_query(
    responder: &Responder,
    sk: &SecretKey,
    pk: &PublicKey,
    b: u32,
    rng: &mut Prg,
) -> Result<Vec<u64>, HeError> {
    let (params, plan) = (&responder.params, &responder.plan);
    let n = params.degree();
    let (target, j) = input_slot(plan, COL);
    let cts = (0..plan.input_cts())
        .map(|k| {
            let extra = if k == target {
                crafted_rows(params, j, b)
            } else {
                vec![0u64; n * params.moduli().len()]
            };
            encrypt_crafted(sk, &[], &extra, rng)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = query_message(params, plan, LAYER, &cts);
    let response = responder.answer(pk, &query, rng)?;
    response_fractions(sk, plan, LAYER, &response)
}

/// One crafted query per window `b` (descending from 64): returns the attacker's
/// estimate of column `COL` of `W` after each window.
fn read_column(
    responder: &Responder,
    sk: &SecretKey,
    pk: &PublicKey,
    windows: &[u32],
    rng: &mut Prg,
) -> Result<Vec<Vec<u64>>, HeError> {
    let mut est = vec![0u64; OUTPUTS];
    let mut history = Vec::new();
    for &b in windows {
        let frac = crafted_query(responder, sk, pk, b, rng)?;
        for (e, &f) in est.iter_mut().zip(&frac) {
            // y ≈ w mod 2^b; keep the multiple of 2^b nearest to what the
            // previous windows said.
            let y = if b == 64 {
                f
            } else {
                (((f as u128 + (1u128 << (63 - b))) >> (64 - b)) as u64) & ((1u64 << b) - 1)
            };
            let mask = if b == 64 { u64::MAX } else { (1u64 << b) - 1 };
            let high = e.wrapping_sub(y).wrapping_add((1u64 << (b - 1)) & mask) & !mask;
            *e = y.wrapping_add(high);
        }
        history.push(est.clone());
    }
    Ok(history)
}

/// Leading bits of each estimate that equal the true weight.
fn correct_bits(est: &[u64], truth: &[u64]) -> Vec<u32> {
    est.iter()
        .zip(truth)
        .map(|(e, t)| (e ^ t).leading_zeros())
        .collect()
}

/// Windows 11 bits apart: six queries for 64 bits, as in the review.
const SIX_WINDOWS: [u32; 6] = [64, 53, 42, 31, 20, 9];
/// Windows 7 bits apart, for a querier whose own key adds rounding noise.
const NINE_WINDOWS: [u32; 9] = [64, 57, 50, 43, 36, 29, 22, 15, 8];

fn report(name: &str, history: &[Vec<u64>], truth: &[u64]) -> Vec<u32> {
    for (q, est) in history.iter().enumerate() {
        let bits = correct_bits(est, truth);
        eprintln!(
            "{name}: after {} queries, correct leading bits per weight {bits:?} (total {} of {})",
            q + 1,
            bits.iter().sum::<u32>(),
            64 * truth.len()
        );
    }
    correct_bits(history.last().unwrap(), truth)
}

/// The review's attack: the zero secret, so `b = e` and `c0 = e + extra`.
/// Before the checks, six queries read all 64 bits of every weight of the
/// column (`git show 7cd1932`); now the public key is refused.
#[test]
fn zero_key_is_refused() {
    let responder = Responder::new(1);
    let mut rng = Prg::from_seed([2; 16]);
    let n = responder.params.degree();
    let sk = secret_key_from_coeffs(&responder.params, &vec![0; n]).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let got = read_column(&responder, &sk, &pk, &SIX_WINDOWS, &mut rng);
    assert!(
        matches!(
            got,
            Err(HeError::NotUniform {
                what: "public key",
                check: UniformityCheck::NearDeltaMultiples,
                observed,
                ..
            }) if observed == n
        ),
        "{got:?}"
    );
}

/// The same crafted queries (made under the zero secret) sent with an honest
/// public key: every query ciphertext is refused.
#[test]
fn queries_made_under_the_zero_key_are_refused() {
    let responder = Responder::new(1);
    let mut rng = Prg::from_seed([5; 16]);
    let n = responder.params.degree();
    let zero = secret_key_from_coeffs(&responder.params, &vec![0; n]).unwrap();
    let honest = SecretKey::generate(&responder.params, &mut rng).unwrap();
    let pk = honest.public_key(&mut rng).unwrap();
    let got = read_column(&responder, &zero, &pk, &SIX_WINDOWS, &mut rng);
    assert!(
        matches!(
            got,
            Err(HeError::NotUniform {
                what: "query",
                check: UniformityCheck::NearDeltaMultiples,
                ..
            })
        ),
        "{got:?}"
    );
}

/// "Small" secrets `±X^i`: `b = ∓X^i·a + e` is uniform coefficient by
/// coefficient, but `b ± X^i·a` is the error, and the key is refused.
#[test]
fn keys_of_monomial_secrets_are_refused() {
    let responder = Responder::new(1);
    let mut rng = Prg::from_seed([6; 16]);
    let n = responder.params.degree();
    for (i, v) in [(0usize, 1i64), (0, -1), (5, 1), (n - 1, -1)] {
        let mut s = vec![0i64; n];
        s[i] = v;
        let sk = secret_key_from_coeffs(&responder.params, &s).unwrap();
        let pk = sk.public_key(&mut rng).unwrap();
        let got = responder.answer(&pk, &[], &mut rng);
        assert!(
            matches!(
                got,
                Err(HeError::NotUniform {
                    what: "public key",
                    check: UniformityCheck::MonomialSecret,
                    ..
                })
            ),
            "secret {v}·X^{i}: {got:?}"
        );
    }
}

/// The strongest querier we can build: an honest-looking ternary key it knows,
/// and the crafted term hidden under `a*s`, so every check passes. Before the
/// response flooding covered the period (`git show 540f2db`), nine queries read
/// all 64 bits of every weight of the column; now the readings are flooding
/// and the estimates are guesses.
#[test]
fn known_key_attack_reads_only_flooding() {
    let responder = Responder::new(3);
    let mut rng = Prg::from_seed([4; 16]);
    let sk = SecretKey::generate(&responder.params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let truth = responder.column(COL);
    let history = read_column(&responder, &sk, &pk, &NINE_WINDOWS, &mut rng).unwrap();
    let bits = report("honest-looking key", &history, &truth);
    assert!(bits.iter().all(|&b| b < 64), "no weight is recovered");
    // A guess gets about one leading bit right per weight (P(>= k) = 2^-k).
    assert!(
        bits.iter().sum::<u32>() <= 24,
        "no more leading bits than guessing: {bits:?}"
    );
}

/// What is left, measured: the same window read `READS` times. The attacker's
/// reading error spans the whole period, and even knowing the flooding's exact
/// width `h` (public) and the honest noise bound, the readings exclude only
/// `READS` gaps of `Δ' - 2(h + B')` from where `w / 2^64` can be: the
/// information they give is below `READS · 2^-42` bits per weight.
#[test]
fn repeated_crafted_queries_learn_nothing_measurable() {
    const READS: usize = 24;
    let responder = Responder::new(7);
    let mut rng = Prg::from_seed([8; 16]);
    let sk = SecretKey::generate(&responder.params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let truth = responder.column(COL);
    let params = &responder.params;
    let delta = params
        .response_moduli()
        .iter()
        .map(|&p| p as f64)
        .product::<f64>()
        / 2f64.powi(64);
    let nnz = responder.plan.max_nnz_per_output();
    let flood = ResponseFlood::for_products(params, nnz, responder.plan.groups).unwrap();
    // Everything but the flooding is within the honest bound (the attacker's
    // own key is ternary) plus a unit of slack; in units of 2^-64 of the period.
    let reach = flood.half_width() as f64 + ResponseFlood::honest_bound(params, nnz, 1) + 2.0;
    let reach = (reach / delta * 2f64.powi(64)) as u64;
    let gap = 0u64.wrapping_sub(2 * reach); // 2^64 - 2·reach
    let mut worst_error = 0f64;
    let mut gaps: Vec<Vec<u64>> = vec![Vec::new(); OUTPUTS];
    for _ in 0..READS {
        let frac = crafted_query(&responder, &sk, &pk, 64, &mut rng).unwrap();
        for (o, (&z, &w)) in frac.iter().zip(&truth).enumerate() {
            // At b = 64 the reading is w/2^64 mod 1 plus noise.
            let err = z.wrapping_sub(w) as i64 as f64 / 2f64.powi(64);
            worst_error = worst_error.max(err.abs());
            // Where w cannot be, given z: the arc [z + reach, z - reach).
            let start = z.wrapping_add(reach);
            assert!(
                w.wrapping_sub(start) >= gap,
                "the truth is never excluded (the noise model holds)"
            );
            gaps[o].push(start);
        }
    }
    // Union of the excluded arcs (each `gap` long), per weight.
    let mut most = 0f64;
    for starts in &mut gaps {
        starts.sort_unstable();
        let mut covered = 0u128;
        let mut end = 0u128; // end of the last arc, unrolled
        for &s in starts.iter() {
            let (s, e) = (s as u128, s as u128 + gap as u128);
            covered += e - s.max(end).min(e);
            end = end.max(e);
        }
        let bits = -(1.0 - covered as f64 / 2f64.powi(64)).log2();
        most = most.max(bits);
    }
    eprintln!(
        "{READS} readings of one window: attacker's error up to {worst_error:.3} of the period; \
         excluded gap 2^{:.2} of the period per reading; information <= {most:.3e} bits per weight \
         (bound {READS} x {:.3e})",
        (gap as f64 / 2f64.powi(64)).log2(),
        -(1.0 - flood.distance_bound(params)).log2()
    );
    assert!(worst_error > 0.4, "the readings are spread over the period");
    assert!(most < 1e-10, "nothing measurable is learned");
}
