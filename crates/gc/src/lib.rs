//! # blindfold-gc
//!
//! Garbled circuits for the non-linear layers (DESIGN section 3).
//!
//! * [`circuit`]: one boolean circuit description ([`circuit::Builder`] →
//!   [`circuit::Circuit`]) with a plaintext back end and a gate counter;
//! * [`hash`]: the fixed-key AES correlation-robust hash;
//! * [`garble`]: half-gates garbler and evaluator, vectorised over instances, I/O-free;
//! * [`gadgets`]: 64-bit word arithmetic and the fused gadgets (ReLU with truncation
//!   and masking, max-pool, sign, threshold sign, argmax) with their integer semantics;
//! * [`protocol`]: the two-party vectorised offline/online API the engine calls;
//! * [`bench`]: the figures `blindfold bench primitives` prints.
//!
//! Who sends what, when, is at the top of [`protocol`]; docs/gc.md has the design,
//! gate counts, security notes and measured figures.
#![deny(unsafe_code)]

pub mod bench;
pub mod circuit;
pub mod gadgets;
pub mod garble;
pub mod hash;
pub mod protocol;

pub use gadgets::Gadget;
pub use protocol::{EvaluatorOffline, EvaluatorSession, GarblerOffline, GarblerSession};

/// Errors of garbling and of the two-party protocols.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    #[error("network: {0}")]
    Net(#[from] blindfold_net::NetError),
    #[error("oblivious transfer: {0}")]
    Ot(#[from] blindfold_ot::OtError),
    #[error("peer's {what} is {got}, expected {expected}")]
    Mismatch {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("session exhausted: garbling index space used up")]
    Exhausted,
    #[error("{what}: expected {expected} bytes or items, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("garbled tables ended before the circuit did")]
    Truncated,
    #[error("peer sent {0} bytes beyond the garbled tables")]
    Trailing(usize),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, GcError>;
