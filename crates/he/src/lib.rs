//! # blindfold-he
//!
//! Homomorphic preprocessing of linear layers (DESIGN section 3): RLWE with
//! plaintext modulus `t = 2^64` and coefficient encoding, on `fhe-math`.
#![deny(unsafe_code)]

pub mod error;
pub mod params;
pub mod rlwe;
mod rng;
mod wire;

pub use error::{HeError, Result};
pub use params::HeParams;
pub use rlwe::{Ciphertext, Plaintext, PublicKey, SecretKey, SeededCiphertext, SparseCiphertext};
