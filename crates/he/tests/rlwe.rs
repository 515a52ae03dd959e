//! RLWE with t = 2^64: exact decryption, measured noise against the analysis of
//! docs/he.md, circuit privacy, and malformed input.

use blindfold_core::Prg;
use blindfold_he::adversary::{secret_key_from_coeffs, sparse_fractions};
use blindfold_he::params::{ERROR_BOUND, FLOOD_MARGIN_BITS};
use blindfold_he::rlwe::flood_bits;
use blindfold_he::{
    HeError, HeParams, Plaintext, PublicKey, ResponseFlood, SecretKey, SeededCiphertext,
};

const N: usize = 8192;

/// Compare without printing 8192-element vectors.
#[track_caller]
fn same(got: &[u64], want: &[u64]) {
    assert_eq!(got.len(), want.len(), "lengths");
    let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
    assert_eq!(bad, 0, "{bad} of {} coefficients differ", got.len());
}

/// Negacyclic product mod 2^64 (schoolbook over the non-zero entries of `w`).
fn negacyclic(r: &[u64], w: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; N];
    for (k, &wk) in w.iter().enumerate() {
        if wk == 0 {
            continue;
        }
        for (j, &rj) in r.iter().enumerate() {
            let d = j + k;
            let p = rj.wrapping_mul(wk);
            if d < N {
                out[d] = out[d].wrapping_add(p);
            } else {
                out[d - N] = out[d - N].wrapping_sub(p);
            }
        }
    }
    out
}

#[test]
fn fresh_encryption_decrypts_exactly_with_small_noise() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([1; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let m = rng.gen_u64s(N);
    let ct = sk.encrypt(&m, &mut rng).unwrap();
    let full = ct.expand(&params).unwrap();
    same(&sk.decrypt(&full).unwrap(), &m);
    // Fresh noise: e (|e| <= 20) plus the encoding's rounding (<= 1/2).
    let noise = sk.noise_log2(&full, &m).unwrap();
    assert!(
        noise <= (ERROR_BOUND as f64 + 0.5).log2(),
        "fresh noise 2^{noise}"
    );
}

#[test]
fn product_noise_within_bound_and_decrypts_exactly() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([2; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let r = rng.gen_u64s(N);
    // A dense plaintext of uniform 64-bit ring elements: the worst case.
    let w = rng.gen_u64s(N);
    let pt = Plaintext::new(&params, &w, N).unwrap();
    let ct = sk.encrypt(&r, &mut rng).unwrap().expand(&params).unwrap();
    let prod = ct.mul_plain(&pt);
    let expect = negacyclic(&r, &w);
    same(&sk.decrypt(&prod).unwrap(), &expect);
    let noise = sk.noise_log2(&prod, &expect).unwrap();
    // Worst case ||w||_1 (B_e + 1/2) + 1/2 <= n 2^63 20.5: 2^80.4.
    let worst = (N as f64 * 2f64.powi(63) * (ERROR_BOUND as f64 + 0.5)).log2();
    // Typical: sqrt(n) * 2^63/sqrt(3) * sigma_e (sigma_e = sqrt(10)), a few sigma.
    let typical = (N as f64).sqrt().log2() + 63.0 - 0.79 + 10f64.sqrt().log2();
    eprintln!("product noise 2^{noise:.2}; typical 2^{typical:.2}; worst-case bound 2^{worst:.2}");
    assert!(noise < worst);
    assert!(
        noise < typical + 4.0,
        "noise far above the typical estimate"
    );
}

#[test]
fn rerandomized_switched_response_decrypts_exactly() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([3; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = PublicKey::from_bytes(&params, &sk.public_key(&mut rng).unwrap().to_bytes()).unwrap();
    let r = rng.gen_u64s(N);
    let w = rng.gen_u64s(N);
    let t = rng.gen_u64s(N);
    let pt = Plaintext::new(&params, &w, N).unwrap();
    let ct = sk.encrypt(&r, &mut rng).unwrap().expand(&params).unwrap();
    let mut resp = ct.mul_plain(&pt);
    let neg_t: Vec<u64> = t.iter().map(|x| x.wrapping_neg()).collect();
    resp.add_plain(&params, &neg_t).unwrap();
    let k = flood_bits(N, 1);
    resp.rerandomize(&pk, k, &mut rng).unwrap();
    let expect: Vec<u64> = negacyclic(&r, &w)
        .iter()
        .zip(&t)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect();
    same(&sk.decrypt(&resp).unwrap(), &expect);
    let flooded = sk.noise_log2(&resp, &expect).unwrap();
    eprintln!(
        "flooded noise 2^{flooded:.2} (flooding exponent {k}); budget 2^{:.1}",
        params.log_q() - 65.0
    );
    assert!(flooded <= k as f64 + 1e-9);
    assert!(flooded > k as f64 - 2.0, "flooding must dominate");
    assert!(k as f64 + 1.0 < params.log_q() - 65.0);
    assert!(k >= 80 + FLOOD_MARGIN_BITS);

    resp.mod_switch_to_response(&params).unwrap();
    same(&sk.decrypt(&resp).unwrap(), &expect);
    let switched = sk.noise_log2(&resp, &expect).unwrap();
    // After switching: (q'/q) 2^k + 1/2 + ||s||_1 / 2 <= 2^(k - 80) + 2^12.
    let bound =
        (2f64.powf(k as f64 + params.log_q_response() - params.log_q()) + 1.0 + N as f64 / 2.0)
            .log2();
    eprintln!(
        "switched noise 2^{switched:.2}; bound 2^{bound:.2}; budget 2^{:.1}",
        params.log_q_response() - 65.0
    );
    assert!(switched <= bound);
    assert!(bound + 1.0 < params.log_q_response() - 65.0);

    // Sparse response: c0 only at some positions.
    let positions: Vec<usize> = (0..N).step_by(7).collect();
    let sparse = resp.sparsify(&positions).unwrap();
    let got = sk.decrypt_sparse(&sparse).unwrap();
    let want: Vec<u64> = positions.iter().map(|&j| expect[j]).collect();
    same(&got, &want);
}

#[test]
fn weight_recovery_attack_fails_after_rerandomization() {
    // Without circuit privacy, c1' = a * w, and the encryptor (who knows a)
    // recovers w = c1' / a. With it, c1' is a * w + a_pk * u + e1.
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([4; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let r = rng.gen_u64s(N);
    let w: Vec<u64> = (0..N as u64)
        .map(|j| j.wrapping_mul(0x9e37_79b9) % 1000)
        .collect();
    let pt = Plaintext::new(&params, &w, N).unwrap();
    let ct = sk.encrypt(&r, &mut rng).unwrap().expand(&params).unwrap();
    let naive = ct.mul_plain(&pt);
    // The attack on the naive product: c1' * a^{-1} == w (coefficient-wise residues).
    let attack = |c1_rows: Vec<u64>| -> bool {
        let rec = blindfold_he::rlwe::divide_by_c1_for_tests(&params, &ct, c1_rows).unwrap();
        rec.map(|v| v == w).unwrap_or(false)
    };
    assert!(
        attack(naive.c1_rows()),
        "the attack works on an unprotected product"
    );
    let mut protected = naive.clone();
    protected
        .rerandomize(&pk, flood_bits(N, 1), &mut rng)
        .unwrap();
    assert!(protected.c1_rows() != naive.c1_rows());
    assert!(
        !attack(protected.c1_rows()),
        "the attack must fail after re-randomization"
    );
    // And the protected one still decrypts to r * w.
    same(&sk.decrypt(&protected).unwrap(), &negacyclic(&r, &w));
}

#[test]
fn malformed_public_keys_and_ciphertexts_are_rejected() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([5; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap().to_bytes();
    assert!(PublicKey::from_bytes(&params, &pk).is_ok());
    // Truncated, extended, wrong tag, wrong degree, wrong moduli.
    assert!(matches!(
        PublicKey::from_bytes(&params, &pk[..pk.len() - 1]),
        Err(HeError::Malformed { .. })
    ));
    let mut longer = pk.clone();
    longer.push(0);
    assert!(matches!(
        PublicKey::from_bytes(&params, &longer),
        Err(HeError::Malformed { .. })
    ));
    let mut bad = pk.clone();
    bad[0] ^= 1;
    assert!(PublicKey::from_bytes(&params, &bad).is_err());
    let mut bad = pk.clone();
    bad[2] ^= 1;
    assert!(matches!(
        PublicKey::from_bytes(&params, &bad),
        Err(HeError::ParameterMismatch(_))
    ));
    let mut bad = pk.clone();
    bad[7] ^= 1;
    assert!(matches!(
        PublicKey::from_bytes(&params, &bad),
        Err(HeError::ParameterMismatch(_))
    ));
    assert!(PublicKey::from_bytes(&params, &[]).is_err());
    // An unreduced residue (the first, 60-bit one all ones) in b.
    let mut bad = pk.clone();
    let off = 1 + 4 + 1 + 32 + 16;
    for b in &mut bad[off..off + 8] {
        *b = 0xff;
    }
    assert!(matches!(
        PublicKey::from_bytes(&params, &bad),
        Err(HeError::Unreduced { .. })
    ));

    let ct = sk.encrypt(&[1, 2, 3], &mut rng).unwrap();
    let mut bytes = Vec::new();
    ct.write(&params, &mut bytes);
    assert_eq!(bytes.len(), SeededCiphertext::byte_len(&params));
    let back = SeededCiphertext::from_bytes(&params, &bytes).unwrap();
    assert_eq!(
        &sk.decrypt(&back.expand(&params).unwrap()).unwrap()[..4],
        &[1, 2, 3, 0]
    );
    assert!(SeededCiphertext::from_bytes(&params, &bytes[..100]).is_err());
    let mut garbage = Prg::from_seed([6; 16]);
    let mut junk = vec![0u8; bytes.len()];
    rand_core::RngCore::fill_bytes(&mut garbage, &mut junk);
    // Uniform bytes almost surely contain a residue above a 40-bit prime... or not;
    // either way: no panic, and an error or a well-formed ciphertext.
    let _ = SeededCiphertext::from_bytes(&params, &junk);
}

#[test]
fn fused_finish_response_decrypts_and_hides_the_product() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([7; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let r = rng.gen_u64s(N);
    let w = rng.gen_u64s(N);
    let pt = Plaintext::new(&params, &w, N).unwrap();
    let ct = sk.encrypt(&r, &mut rng).unwrap().expand(&params).unwrap();
    let prod = ct.mul_plain(&pt);
    let positions: Vec<usize> = (3..N).step_by(5).collect();
    let t = rng.gen_u64s(positions.len());
    let flood = ResponseFlood::for_products(&params, N, 1).unwrap();
    let resp = prod
        .clone()
        .finish_response(&pk, &positions, &t, &flood, &mut rng)
        .unwrap();
    let full = negacyclic(&r, &w);
    let want: Vec<u64> = positions
        .iter()
        .zip(&t)
        .map(|(&j, &tj)| full[j].wrapping_sub(tj))
        .collect();
    same(&sk.decrypt_sparse(&resp).unwrap(), &want);
    // The returned c1 is not the switched-down a * w.
    let mut naive = prod.clone();
    naive.mod_switch_to_response(&params).unwrap();
    let naive_sparse = naive.sparsify(&positions).unwrap();
    let mut a = Vec::new();
    let mut b = Vec::new();
    resp.write(&params, &mut a);
    naive_sparse.write(&params, &mut b);
    let c1_len = a.len() - (positions.len() * 120).div_ceil(8);
    let differ = a[..c1_len / 2]
        .iter()
        .zip(&b[..c1_len / 2])
        .filter(|(x, y)| x != y)
        .count();
    assert!(
        differ > c1_len / 4,
        "c1 must look unrelated to a * w ({differ} bytes differ)"
    );
    // Wrong mask length and out-of-range positions are errors, not panics.
    assert!(prod
        .clone()
        .finish_response(&pk, &positions, &t[1..], &flood, &mut rng)
        .is_err());
    assert!(prod
        .finish_response(&pk, &[N], &[0], &flood, &mut rng)
        .is_err());
}

/// `(frac(phase / Δ') centred) · Δ'`: the noise of a response coefficient.
fn response_noise(params: &HeParams, frac: u64) -> f64 {
    let delta: f64 = params
        .response_moduli()
        .iter()
        .map(|&p| p as f64)
        .product::<f64>()
        / 2f64.powi(64);
    (frac as i64 as f64) / 2f64.powi(64) * delta
}

#[test]
fn response_flooding_fills_the_budget_and_decryption_stays_exact() {
    let params = HeParams::new().unwrap();
    let budget = (params.log_q_response() - 65.0).exp2();
    // Every zoo layer is far below MAX_NNZ_PER_OUTPUT = 2^18; check the range.
    for nnz in [1, 25, N, 1 << 18] {
        let flood = ResponseFlood::for_products(&params, nnz, 4).unwrap();
        let honest = ResponseFlood::honest_bound(&params, nnz, 4);
        let h = flood.half_width() as f64;
        let sd = flood.distance_bound(&params);
        eprintln!(
            "nnz {nnz}: honest worst case {honest:.0}, flooding [-2^{:.4}, 2^{:.4}), budget 2^{:.4}; \
             distance per coefficient <= 2^{:.2}, information <= {:.3e} bits",
            h.log2(),
            h.log2(),
            budget.log2(),
            sd.log2(),
            -(1.0 - sd).log2()
        );
        assert!(h + honest < budget, "the honest worst case still decrypts");
        assert!(
            sd < 2f64.powi(-42),
            "flooding covers all but 2^-42 of the period"
        );
    }
    // A key with every coefficient ±1 (||s||_1 = n, the worst case of the
    // switching rounding) and a dense product of uniform 64-bit weights.
    let mut rng = Prg::from_seed([8; 16]);
    let coeffs: Vec<i64> = rng
        .gen_u64s(N)
        .iter()
        .map(|v| if v & 1 == 0 { 1 } else { -1 })
        .collect();
    let sk = secret_key_from_coeffs(&params, &coeffs).unwrap();
    let pk = PublicKey::from_bytes(&params, &sk.public_key(&mut rng).unwrap().to_bytes()).unwrap();
    let r = rng.gen_u64s(N);
    let w = rng.gen_u64s(N);
    let pt = Plaintext::new(&params, &w, N).unwrap();
    let ct = sk.encrypt(&r, &mut rng).unwrap().expand(&params).unwrap();
    let positions: Vec<usize> = (0..N).collect();
    let t = rng.gen_u64s(N);
    let flood = ResponseFlood::for_products(&params, N, 1).unwrap();
    let resp = ct
        .mul_plain(&pt)
        .finish_response(&pk, &positions, &t, &flood, &mut rng)
        .unwrap();
    let full = negacyclic(&r, &w);
    let want: Vec<u64> = full
        .iter()
        .zip(&t)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect();
    same(&sk.decrypt_sparse(&resp).unwrap(), &want);
    let noise: Vec<f64> = sparse_fractions(&sk, &resp)
        .into_iter()
        .map(|f| response_noise(&params, f))
        .collect();
    let max = noise.iter().fold(0f64, |m, v| m.max(v.abs()));
    let h = flood.half_width() as f64;
    eprintln!(
        "response noise at q': max |v| = 2^{:.4} of 8192 coefficients; flooding 2^{:.4}; budget 2^{:.4}",
        max.log2(),
        h.log2(),
        budget.log2()
    );
    assert!(max <= h + ResponseFlood::honest_bound(&params, N, 1));
    assert!(max > 0.99 * h, "the flooding is what dominates");
}
