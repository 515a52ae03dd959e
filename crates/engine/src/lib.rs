//! # blindfold-engine
//!
//! The two-party engine of DESIGN section 3 over the fixed-point program of
//! `blindfold-model`:
//!
//! * [`share`]: the model owner's split into two share files, and their
//!   validated encoding;
//! * [`party`]: one server's engine: session setup, the per-query offline bundle
//!   (homomorphic products, garbled circuits, Beaver squares) and the online
//!   evaluation that consumes it exactly once;
//! * [`client`]: sharing a query and reconstructing the answer.
#![deny(unsafe_code)]

pub mod client;
pub mod party;
pub mod server;
pub mod share;

pub use party::{Bundle, PartyEngine, Session};
pub use share::ModelShare;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("network: {0}")]
    Net(#[from] blindfold_net::NetError),
    #[error("oblivious transfer: {0}")]
    Ot(#[from] blindfold_ot::OtError),
    #[error("garbled circuits: {0}")]
    Gc(#[from] blindfold_gc::GcError),
    #[error("homomorphic preprocessing: {0}")]
    He(#[from] blindfold_he::HeError),
    #[error("model: {0}")]
    Model(#[from] blindfold_model::ModelError),
    #[error("share file: {0}")]
    ShareFile(String),
    #[error("layer {layer} ({op}) is not supported in two-party mode: {reason}")]
    Unsupported {
        layer: usize,
        op: &'static str,
        reason: String,
    },
    #[error("protocol: {0}")]
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;
