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
//! * [`bench`](mod@bench): the figures `blindfold bench primitives` prints.
//!
//! Who sends what, when, is at the top of [`protocol`]; docs/gc.md has the design,
//! gate counts, security notes and measured figures.
//!
//! ```
//! use blindfold_core::{FracBits, Prg};
//! use blindfold_gc::{EvaluatorSession, Gadget, GarblerSession};
//! use blindfold_net::MemoryChannel;
//!
//! let relu = Gadget::ReluTruncMask { f: FracBits(12) };
//! let x: Vec<u64> = vec![5 << 12, (-3i64 << 12) as u64]; // 5.0 and -3.0
//! let y1 = vec![123u64, 456]; // the evaluator's shares
//! let y0: Vec<u64> = x.iter().zip(&y1).map(|(x, y)| x.wrapping_sub(*y)).collect();
//! let (mut cg, mut ce) = MemoryChannel::pair();
//! let garbler = std::thread::spawn(move || -> blindfold_gc::Result<Vec<u64>> {
//!     let mut rng = Prg::from_seed([1; 16]);
//!     let mut s = GarblerSession::setup(&mut cg, &mut rng)?;
//!     let off = s.offline(&mut cg, relu, 2, &mut rng)?; // before the inputs exist
//!     off.online(&mut cg, &y0) // the garbler's output shares r
//! });
//! let mut rng = Prg::from_seed([2; 16]);
//! let mut s = EvaluatorSession::setup(&mut ce, &mut rng)?;
//! let off = s.offline(&mut ce, relu, 2, &mut rng)?;
//! let z = off.online(&mut ce, &y1)?; // relu(x >> 12) - r
//! let r = garbler.join().expect("garbler thread")?;
//! assert_eq!(r[0].wrapping_add(z[0]), 5);
//! assert_eq!(r[1].wrapping_add(z[1]), 0);
//! # Ok::<(), blindfold_gc::GcError>(())
//! ```
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
