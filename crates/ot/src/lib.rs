//! # blindfold-ot
//!
//! Oblivious transfer for the garbled-circuit and Gilboa-multiplication layers.
//!
//! ```text
//!  COT sender S (garbler, holds delta)          COT receiver R (evaluator, holds b_i)
//!  ─────────────────────────────────            ─────────────────────────────────────
//!  setup: 128 base OTs, roles reversed (base::*, one flight each way)
//!            ◀──── A = a·G ──────────────────── (R is the base-OT sender)
//!            ───── B_j = b_j·G + delta_j·A ───▶
//!  S keeps k_j^{delta_j}                         R keeps (k_j^0, k_j^1), j < 128
//!
//!  extend (any number of times, chunks of CHUNK OTs, one flight R → S):
//!            ◀──── u_j = G(k_j^0) ^ G(k_j^1) ^ b   (128 columns)
//!  q_i  (row i of the transposed matrix)         t_i = q_i ^ b_i·delta
//! ```
//!
//! On top of the correlated OT ([`CotSender::send_correlated`] /
//! [`CotReceiver::receive_correlated`]) the same session gives random OT
//! (hashing with the tweakable circular-correlation-robust hash of
//! Guo–Katz–Wang–Yu 2020, [`hash`]), chosen-message OT (one more flight S → R)
//! and additively correlated OT over `Z_2^64` for Gilboa products
//! ([`CotSender::send_correlated_u64`]).
//!
//! Cores are I/O-free ([`CotSender::extend_core`], [`base::BaseOtSender`]): they
//! take and return message bytes; the channel drivers are thin loops around them.
//! Randomness is always passed in. Semi-honest security only.
//!
//! ```
//! use blindfold_core::{Block, Prg};
//! use blindfold_net::MemoryChannel;
//! use blindfold_ot::{CotReceiver, CotSender};
//!
//! let (mut a, mut b) = MemoryChannel::pair();
//! let delta = Block(0x1234_5678_9abc_def0_0fed_cba9_8765_4321 | 1);
//! let garbler = std::thread::spawn(move || {
//!     let mut s = CotSender::setup(&mut a, delta, &mut Prg::from_seed([1; 16])).unwrap();
//!     s.send_correlated(&mut a, 3).unwrap() // zero labels q_i
//! });
//! let mut r = CotReceiver::setup(&mut b, &mut Prg::from_seed([2; 16])).unwrap();
//! let choices = [true, false, true];
//! let t = r.receive_correlated(&mut b, &choices).unwrap();
//! let q = garbler.join().unwrap();
//! for i in 0..3 {
//!     assert_eq!(t[i], q[i] ^ delta.and_bit(choices[i]));
//! }
//! ```
#![deny(unsafe_code)]

pub mod base;
pub mod bench;
pub mod hash;
mod iknp;
pub mod silent;
pub mod transpose;

pub use iknp::{CotReceiver, CotSender, CHUNK};
pub use silent::{ExtensionCost, LpnParams, SilentCotReceiver, SilentCotSender};

pub use blindfold_core::Block;
pub use blindfold_net::{Channel, NetError};

/// Errors of the OT protocols.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtError {
    #[error(transparent)]
    Net(#[from] NetError),
    /// A received group element does not decode to a valid, non-identity point.
    #[error("invalid curve point from the peer (element {index})")]
    InvalidPoint { index: usize },
    /// A received message has the wrong size for this protocol step.
    #[error("{what}: message of {got} bytes where {expected} were expected")]
    BadMessage {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// The caller's arguments are inconsistent (e.g. mismatched lengths).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

pub type Result<T> = std::result::Result<T, OtError>;

/// Check a peer's message length once, at the boundary.
pub(crate) fn check_len(what: &'static str, msg: &[u8], expected: usize) -> Result<()> {
    if msg.len() == expected {
        Ok(())
    } else {
        Err(OtError::BadMessage {
            what,
            expected,
            got: msg.len(),
        })
    }
}
