//! Errors of the `he` crate.

/// Everything that can go wrong in homomorphic preprocessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeError {
    /// A message from the peer does not have the expected layout or size.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message (e.g. "query", "response", "public key").
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A coefficient received from the peer is not reduced modulo its prime.
    #[error("malformed {what}: coefficient {value} not below modulus {modulus}")]
    Unreduced {
        what: &'static str,
        value: u64,
        modulus: u64,
    },
    /// The peer uses other parameters (ring degree or moduli) than ours.
    #[error("parameter mismatch: {0}")]
    ParameterMismatch(String),
    /// A caller handed in data of the wrong size (a local programming error).
    #[error("wrong length for {what}: got {got}, expected {expected}")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// A layer shape that cannot be packed (zero-sized, kernel larger than the
    /// padded input, or one kernel window row-band wider than the ring).
    #[error("unsupported layer shape: {0}")]
    Shape(String),
    /// An error inside the polynomial arithmetic library.
    #[error("polynomial arithmetic: {0}")]
    Math(#[from] fhe_math::Error),
    /// The channel to the peer failed.
    #[error("channel: {0}")]
    Net(#[from] blindfold_net::NetError),
    /// The OT layer failed (Beaver squares).
    #[error("oblivious transfer: {0}")]
    Ot(#[from] blindfold_ot::OtError),
    /// The other party's thread panicked or disappeared (benchmarks).
    #[error("peer thread failed: {0}")]
    Peer(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, HeError>;

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> HeError {
    HeError::Malformed {
        what,
        reason: reason.into(),
    }
}
