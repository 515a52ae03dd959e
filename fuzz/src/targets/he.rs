//! Homomorphic-encryption messages (`blindfold_he`): a peer's public key, seeded
//! and sparse ciphertexts, and the query and response of the linear-layer
//! preprocessing.
//!
//! Every decoder takes the parameters as an argument and reads `n` residues per
//! prime. The targets use the production primes with a ring of degree
//! [`FUZZ_DEGREE`] instead of 8192: the same code, the same residue widths and
//! checks, but messages of hundreds of bytes instead of hundreds of kilobytes,
//! so the fuzzer mutates what matters and runs thousands of times faster.

use blindfold_core::geom::ConvGeom;
use blindfold_core::Prg;
use blindfold_he::packing::{LayerPlan, LinearShape};
use blindfold_he::params::{MODULI, RESPONSE_PRIMES};
use blindfold_he::protocol::{answer_query, decrypt_response};
use blindfold_he::SparseCiphertext;
use blindfold_he::{EncodedWeights, HeParams, PublicKey, SecretKey, SeededCiphertext};
use std::sync::{Arc, OnceLock};

/// Ring degree of the fuzzing parameters.
pub const FUZZ_DEGREE: usize = 32;

/// What the HE targets share: parameters, a key pair, a layer's plan and
/// weights. Built once per process from fixed seeds.
pub struct HeFixture {
    pub params: Arc<HeParams>,
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub plan: LayerPlan,
    pub weights: EncodedWeights,
}

/// A convolution too large for one ciphertext at [`FUZZ_DEGREE`], so queries
/// and responses carry several.
pub fn fuzz_layer() -> LinearShape {
    LinearShape::Conv2d(ConvGeom::square(2, 4, 3, 3, 1, 1))
}

pub fn fixture() -> &'static HeFixture {
    static F: OnceLock<HeFixture> = OnceLock::new();
    F.get_or_init(|| {
        let params = HeParams::custom(FUZZ_DEGREE, &MODULI, RESPONSE_PRIMES).expect("params");
        let mut rng = Prg::from_seed([7; 16]);
        let sk = SecretKey::generate(&params, &mut rng).expect("secret key");
        let pk = sk.public_key(&mut rng).expect("public key");
        let plan = LayerPlan::new(&fuzz_layer(), FUZZ_DEGREE).expect("plan");
        let w: Vec<u64> = (0..fuzz_layer().conv().weight_len())
            .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let weights = EncodedWeights::new(&params, &plan, &w).expect("weights");
        HeFixture {
            params,
            sk,
            pk,
            plan,
            weights,
        }
    })
}

/// `PublicKey::from_bytes`: residues are bit-packed, reduced and zero-padded,
/// so a key that decodes serializes back to the input.
pub fn he_public_key(data: &[u8]) {
    let f = fixture();
    if let Ok(pk) = PublicKey::from_bytes(&f.params, data) {
        assert_eq!(pk.to_bytes(), data, "public key re-encoding differs");
    }
}

/// `SeededCiphertext::from_bytes`, then `expand` (what a query's reader does
/// with it): round trip as for the public key.
pub fn he_ciphertext(data: &[u8]) {
    let f = fixture();
    if let Ok(ct) = SeededCiphertext::from_bytes(&f.params, data) {
        let mut out = Vec::new();
        ct.write(&f.params, &mut out);
        assert_eq!(out, data, "ciphertext re-encoding differs");
        ct.expand(&f.params).expect("a decoded ciphertext expands");
    }
}

/// `SparseCiphertext::from_bytes`. The positions come from the receiver's own
/// plan, not from the wire; the first input byte picks how many (0 to 7, some
/// past the ring degree, which must be refused, not indexed).
pub fn he_sparse_ciphertext(data: &[u8]) {
    let f = fixture();
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let positions: Vec<usize> = (0..(k % 8) as usize)
        .map(|i| i * 5 + k as usize / 8)
        .collect();
    if let Ok(ct) = SparseCiphertext::from_bytes(&f.params, rest, &positions) {
        assert!(positions.iter().all(|&p| p < FUZZ_DEGREE));
        let mut out = Vec::new();
        ct.write(&f.params, &mut out);
        assert_eq!(out, rest, "sparse ciphertext re-encoding differs");
        f.sk.decrypt_sparse(&ct)
            .expect("a decoded ciphertext decrypts");
    }
}

/// `answer_query`: the evaluator reads a peer's query (header, then seeded
/// ciphertexts) and, if it decodes, computes its response.
pub fn he_query(data: &[u8]) {
    let f = fixture();
    let mut rng = Prg::from_seed([9; 16]);
    if let Ok((response, t)) = answer_query(&f.params, &f.pk, &f.weights, 0, data, &mut rng) {
        assert_eq!(t.len(), f.plan.shape.output_len());
        decrypt_response(&f.sk, &f.plan, 0, &response).expect("our own response decrypts");
    }
}

/// `decrypt_response`: the encryptor reads a peer's response (header, then
/// sparse ciphertexts at the plan's positions).
pub fn he_response(data: &[u8]) {
    let f = fixture();
    if let Ok(m) = decrypt_response(&f.sk, &f.plan, 0, data) {
        assert_eq!(m.len(), f.plan.shape.output_len());
    }
}
