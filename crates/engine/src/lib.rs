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
pub mod serve;
pub mod share;
/// The serving layer under its former name.
pub use serve as server;

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
    /// A serving message that does not decode.
    #[error("serving message: {0}")]
    Wire(#[from] serve::WireError),
    #[error("party 1 needs the address of party 0 (--peer)")]
    MissingPeerAddress,
    /// The session between the servers is closing (a link failed, or shutdown).
    #[error("the session between the servers is closing")]
    SessionClosed,
    /// P0 named a bundle that is not P1's next one: the pools are out of step.
    #[error("bundle sequence mismatch: the leader wants bundle {expected}, next here is {got}")]
    BundleSequence { expected: u64, got: u64 },
    /// A message that is valid but not allowed at this point.
    #[error("unexpected {what} on {place}")]
    UnexpectedMessage {
        what: &'static str,
        place: &'static str,
    },
    /// A server refused or failed the query and said why.
    #[error("server {server}: {message} ({code})")]
    Remote {
        server: blindfold_core::PartyId,
        code: serve::ErrorCode,
        message: String,
    },
    #[error("the first server must be party 0 and the second party 1 (got {first} and {second})")]
    ServerOrder {
        first: blindfold_core::PartyId,
        second: blindfold_core::PartyId,
    },
    #[error("the two servers hold shares of different models")]
    ModelMismatch,
    #[error("server {server} sent {got} output values, {want} expected")]
    OutputLength {
        server: blindfold_core::PartyId,
        got: usize,
        want: usize,
    },
    #[error("reconstructed label {label} is out of range (the model has {classes} outputs)")]
    LabelOutOfRange { label: u64, classes: usize },
}

pub type Result<T> = std::result::Result<T, EngineError>;
