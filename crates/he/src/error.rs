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
    /// A peer's public key or query is well-formed but not spread as an honest
    /// one is: an honest peer is refused only with negligible probability
    /// (docs/he.md, "Checks on what a querier sends"), a degenerate key (e.g. the
    /// zero secret) or a query crafted under one always.
    #[error(
        "refused {what}: {observed} {check}, an honest peer shows {}..={}",
        allowed.0,
        allowed.1
    )]
    NotUniform {
        /// Which message ("public key", "query", ...).
        what: &'static str,
        /// Which statistic failed.
        check: UniformityCheck,
        /// Its value.
        observed: usize,
        /// The range an honest peer's values fall in (inclusive).
        allowed: (usize, usize),
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
    /// padded input, a transposed convolution's pad beyond what its lowering to
    /// a convolution represents, or one kernel window row-band wider than the
    /// ring).
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

/// The statistics the responder computes on a peer's public key and queries
/// (`checks.rs`). Each looks at the fractional parts `frac(x_j / Δ)`, `Δ = q/2^64`,
/// of the coefficients of a polynomial that is uniform modulo `q` when the peer is
/// honest (under RLWE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UniformityCheck {
    /// How many coefficients lie within `Δ/2^20` of a multiple of `Δ` (as the
    /// coefficients of `b = e` do for the zero secret, and of `c0 = e + extra`
    /// for a query crafted under it).
    NearDeltaMultiples,
    /// How many coefficients fall into the fullest or emptiest sixteenth of
    /// `[0, Δ)`.
    Unbalanced,
    /// How many coefficients of `b ± X^i·a` lie within `Δ/2^20` of a multiple of
    /// `Δ`, for the worst `±X^i`: a public key of the secret `∓X^i`.
    MonomialSecret,
}

impl std::fmt::Display for UniformityCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UniformityCheck::NearDeltaMultiples => "coefficients within Δ/2^20 of a multiple of Δ",
            UniformityCheck::Unbalanced => "coefficients in one sixteenth of [0, Δ)",
            UniformityCheck::MonomialSecret => {
                "coefficients of b ± X^i·a within Δ/2^20 of a multiple of Δ"
            }
        })
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, HeError>;

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> HeError {
    HeError::Malformed {
        what,
        reason: reason.into(),
    }
}
