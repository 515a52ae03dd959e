//! # blindfold-he
//!
//! Homomorphic preprocessing of linear layers (DESIGN section 3): RLWE with
//! plaintext modulus `t = 2^64` and coefficient encoding, on `fhe-math`.
//!
//! ```text
//!   P0                                                    P1
//!   ──                                                    ──
//!   HeSession::setup   ── pk0 ──▶  ◀── pk1 ──             HeSession::setup
//!   EncodedWeights::new(W0)  (once per model)             EncodedWeights::new(W1)
//!   per query, per linear layer (protocol::preprocess):
//!     Enc(R0) ─────────▶                        ◀───────── Enc(R1)
//!     ◀──── L(R0;W1) - T1 (re-randomized, mod-switched)
//!                  L(R1;W0) - T0 (re-randomized, mod-switched) ────▶
//!   holds R0, M0 = L(R0;W1) - T1, T0                       holds R1, M1 = L(R1;W0) - T0, T1
//!   per query, Beaver squares (beaver::square_pairs_sender / _receiver, Gilboa over IKNP COT):
//!     (a0, s0)                                             (a1, s1), s0 + s1 = (a0 + a1)^2
//! ```
//!
//! * [`params`]: `n = 8192`, `q ≈ 2^200` (four NTT primes), response modulus `q' ≈ 2^120`;
//! * [`rlwe`]: keys, seeded secret-key encryption, public-key encryption of zero,
//!   decryption, plaintext products and additions, re-randomization with flooding,
//!   modulus switching, validated wire formats;
//! * [`packing`]: conv2d / transposed conv2d / fully connected layers as
//!   polynomial products;
//! * [`protocol`]: the per-layer, per-query exchange over a `Channel`;
//! * [`beaver`]: square pairs `(a, a^2)` by OT-based multiplication;
//! * [`bench`]: `blindfold bench preprocessing`.
//!
//! docs/he.md has the parameters, the noise analysis and the measured figures.
#![deny(unsafe_code)]

#[doc(hidden)]
pub mod adversary;
pub mod beaver;
pub mod bench;
mod checks;
pub mod error;
pub mod packing;
pub mod params;
pub mod protocol;
pub mod rlwe;
mod wire;

pub use error::{HeError, Result, UniformityCheck};
pub use packing::{ConvGeom, ConvTransposeGeom, FcShape, LayerPlan, LinearShape, Lowering};
pub use params::HeParams;
pub use protocol::{
    preprocess, preprocess_directed, DirectedShares, Directions, EncodedWeights, HeSession,
    LayerCost, LayerJob, LayerShares, MaskShares,
};
pub use rlwe::{
    Ciphertext, Plaintext, PublicKey, ResponseFlood, SecretKey, SeededCiphertext, SparseCiphertext,
};
