//! # blindfold-engine
//!
//! The two-party engine of DESIGN section 3 over the fixed-point program of
//! `blindfold-model`:
//!
//! * [`plan`]: the one planner: which protocol runs each node of the program in
//!   a deployment, and who does what ([`Roles`]);
//! * [`share`]: the model owner's split into two share files, and their
//!   validated encoding;
//! * [`party`]: one server's engine: session setup, the per-query offline bundle
//!   (homomorphic products, garbled circuits, Beaver squares) and the online
//!   evaluation that consumes it exactly once;
//! * [`sharing`]: the client's I/O-free part: sharing a query and
//!   reconstructing the answer (the networked client is [`serve::client`]);
//! * [`infer`]: one [`infer::Mode`] type, the [`infer::Inference`] interface
//!   every mode implements, and evaluation and benchmarks returning reports.
#![deny(unsafe_code)]

pub mod affine_ot;
pub mod binary_ot;
pub mod infer;
pub mod party;
pub mod plan;
pub mod serve;
pub mod share;
pub mod sharing;

pub use infer::{Inference, Mode};
pub use party::{Bundle, PartyEngine, Session};
pub use plan::{Deployment, Plan, Roles};
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
    #[error("OT comparisons: {0}")]
    Cmp(#[from] blindfold_cmp::CmpError),
    #[error("homomorphic preprocessing: {0}")]
    He(#[from] blindfold_he::HeError),
    #[error("model: {0}")]
    Model(#[from] blindfold_model::ModelError),
    #[error("share file: {0}")]
    ShareFile(#[from] share::ShareFileError),
    /// The planner cannot run this layer in this deployment.
    #[error("layer {layer} ({op}) is not supported in {mode} mode: {reason}")]
    Unsupported {
        layer: usize,
        op: &'static str,
        mode: &'static str,
        reason: plan::Refusal,
    },
    /// The peer server is not the counterpart of this one.
    #[error("peer mismatch: {0}")]
    PeerMismatch(#[from] PeerMismatch),
    /// An input share of the wrong length.
    #[error("input share has {got} values, the model takes {expected}")]
    InputLength { expected: usize, got: usize },
    /// A label-only answer was asked of a model whose output is not a vector.
    #[error("a label-only answer needs a vector output")]
    LabelNeedsVector,
    /// A bundle that was not made by this engine's plan (a programming error:
    /// bundles are consumed by value and only `offline` makes them).
    #[error("the bundle does not match the plan at layer {layer}")]
    BundleMismatch { layer: usize },
    /// A plan made for another program than the share's.
    #[error("the plan is for another program than this share's")]
    PlanMismatch,
    /// The session was set up without what this step needs (a programming
    /// error: sessions are set up from the same plan).
    #[error("the session has no {0} part")]
    NoSession(&'static str),
    // Serving (`serve`).
    /// A serving message that does not decode.
    #[error("serving message: {0}")]
    Wire(#[from] serve::WireError),
    #[error("party 1 needs the address of party 0 (--peer)")]
    MissingPeerAddress,
    /// A peer link whose other end did not prove the split's pairing secret
    /// (or whose certificate is not the other server's).
    #[error("peer link refused: {0}")]
    PairingRefused(&'static str),
    /// A connection whose certificate is not of the role the greeting claims.
    #[error("{what} refused: the connection's certificate is {got:?}, {want} expected")]
    WrongIdentity {
        what: &'static str,
        got: Option<String>,
        want: &'static str,
    },
    /// A client whose certificate names another server than the one it
    /// answers as.
    #[error("server {server} presented the certificate of {cert}")]
    ServerIdentity {
        server: blindfold_core::PartyId,
        cert: String,
    },
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
    /// A client-server connection failed in the middle of an exchange: the two
    /// ends' pools and streams may be out of step, so it serves no more.
    #[error("this client-server connection failed earlier ({0}); connect again")]
    ConnectionBroken(String),
    /// A program from a server is larger than a client plans.
    #[error("the server's program is too large for this client: {0}")]
    ProgramTooLarge(String),
}

/// Why two servers refuse to pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMismatch {
    #[error("the peer holds a share of a different model split")]
    OtherSplit,
    #[error("the peer also claims to be party {0}")]
    SameParty(u8),
    #[error("the peer's program differs")]
    OtherProgram,
    #[error("the peer runs another deployment")]
    OtherDeployment,
    #[error("the peer runs other roles (who holds weights, garbles, adds public terms)")]
    OtherRoles,
}

pub type Result<T> = std::result::Result<T, EngineError>;
