//! Noise estimates (bits of the largest error coefficient) for the BFV
//! operations the layouts use, measured on the `fhe` crate 0.1.1 on this
//! implementation (see docs/fhe.md for the measurements):
//!
//! | operation | noise after |
//! |---|---|
//! | fresh symmetric encryption | 4-5 bits |
//! | `Σ w_i · c_i` with integer scalars | `e + log2(max Σ|w|)` |
//! | plaintext product, slot-encoded plaintext | `e + log2 t + log2(n)/2 + 2` |
//! | ciphertext square | `e + log2 t + log2 n + 1` |
//! | relinearization, rotation (key switching) | `max(e, modulus bits + 12)` |
//!
//! Every estimate is an upper bound with a margin; tests measure the real
//! noise on every zoo network and report the budget left.

pub const FRESH: f64 = 6.0;

/// Key-switching noise floor for moduli of `mod_bits` bits.
pub fn key_switch_floor(mod_bits: u32) -> f64 {
    mod_bits as f64 + 12.0
}

pub fn scalar_linear(e: f64, max_row_l1: i128, terms: usize) -> f64 {
    e + ((max_row_l1.max(1)) as f64).log2() + (terms.max(1) as f64).log2() + 0.5
}

pub fn plaintext_product(e: f64, t_bits: u32, degree: usize) -> f64 {
    e + t_bits as f64 + (degree as f64).log2() / 2.0 + 1.5
}

pub fn square(e: f64, t_bits: u32, degree: usize) -> f64 {
    e + t_bits as f64 + (degree as f64).log2() + 1.5
}

/// Sum of `k` values of noise `e` with independent errors (grows like `√k`,
/// plus one bit).
pub fn sum(e: f64, k: usize) -> f64 {
    e + (k.max(1) as f64).log2() / 2.0 + 1.0
}
