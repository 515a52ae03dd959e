//! Splitting a quantized model into two additive weight shares, and the share
//! file format.
//!
//! A share file holds the public architecture (the fixed-point program with every
//! weight and bias replaced by this party's share), the party index, and a
//! 16-byte model identifier drawn at split time, so that servers started with
//! shares of different splits refuse to work together.
//!
//! Format: `b"BLINDFOLD-SHARE\0"`, a little-endian `u32` version, then the bincode
//! encoding of [`ModelShare`] (size-limited). Decoding validates the program
//! (shapes, parameter sizes) before anything uses it.

use crate::{EngineError, Result};
use bincode::Options;
use blindfold_core::PartyId;
use blindfold_model::quant::{QModel, QOp};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 16] = b"BLINDFOLD-SHARE\0";
const VERSION: u32 = 1;
/// Largest share file accepted.
pub const MAX_SHARE_BYTES: u64 = 1 << 31;

/// One party's share of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelShare {
    /// 0 or 1.
    pub party: u8,
    /// Identifies the split: both shares of one split carry the same value.
    pub model_id: [u8; 16],
    /// The program with this party's weight and bias shares.
    pub program: QModel,
}

impl ModelShare {
    pub fn party_id(&self) -> PartyId {
        PartyId::from_index(self.party as usize).expect("validated at decode")
    }

    /// Encode as a share file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend(
            bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .serialize(self)
                .expect("in-memory serialization"),
        );
        out
    }

    /// Decode and validate a share file.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelShare> {
        let bad = |m: String| EngineError::ShareFile(m);
        if bytes.len() < 20 || &bytes[..16] != MAGIC {
            return Err(bad("not a blindfold share file (bad magic)".into()));
        }
        let v = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        if v != VERSION {
            return Err(bad(format!(
                "share file version {v}, this build reads {VERSION}"
            )));
        }
        let s: ModelShare = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(MAX_SHARE_BYTES)
            .reject_trailing_bytes()
            .deserialize(&bytes[20..])
            .map_err(|e| bad(format!("corrupt share file: {e}")))?;
        if s.party > 1 {
            return Err(bad(format!("party {} is not 0 or 1", s.party)));
        }
        s.program
            .validate()
            .map_err(|e| bad(format!("inconsistent model: {e}")))?;
        Ok(s)
    }

    /// Read a share file.
    pub fn load(path: &std::path::Path) -> Result<ModelShare> {
        let meta = std::fs::metadata(path)
            .map_err(|e| EngineError::ShareFile(format!("{}: {e}", path.display())))?;
        if meta.len() > MAX_SHARE_BYTES {
            return Err(EngineError::ShareFile(format!(
                "{}: file too large",
                path.display()
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| EngineError::ShareFile(format!("{}: {e}", path.display())))?;
        ModelShare::from_bytes(&bytes)
            .map_err(|e| EngineError::ShareFile(format!("{}: {e}", path.display())))
    }
}

fn split_vec(v: &[u64], rng: &mut (impl RngCore + CryptoRng)) -> (Vec<u64>, Vec<u64>) {
    let s0: Vec<u64> = v.iter().map(|_| rng.next_u64()).collect();
    let s1: Vec<u64> = v.iter().zip(&s0).map(|(x, r)| x.wrapping_sub(*r)).collect();
    (s0, s1)
}

/// Split a quantized model: every weight and bias `w` becomes `w0` uniform and
/// `w1 = w - w0`. Public constants (the average-pool factor) stay in both.
pub fn split(q: &QModel, rng: &mut (impl RngCore + CryptoRng)) -> [ModelShare; 2] {
    let mut model_id = [0u8; 16];
    rng.fill_bytes(&mut model_id);
    let mut p0 = q.clone();
    let mut p1 = q.clone();
    for ((n0, n1), n) in p0.nodes.iter_mut().zip(p1.nodes.iter_mut()).zip(&q.nodes) {
        let mut sp = |a: &mut Vec<u64>, b: &mut Vec<u64>, v: &Vec<u64>| {
            let (x, y) = split_vec(v, rng);
            *a = x;
            *b = y;
        };
        match (&mut n0.op, &mut n1.op, &n.op) {
            (
                QOp::Conv {
                    weight: w0,
                    bias: b0,
                    ..
                },
                QOp::Conv {
                    weight: w1,
                    bias: b1,
                    ..
                },
                QOp::Conv { weight, bias, .. },
            )
            | (
                QOp::ConvTranspose {
                    weight: w0,
                    bias: b0,
                    ..
                },
                QOp::ConvTranspose {
                    weight: w1,
                    bias: b1,
                    ..
                },
                QOp::ConvTranspose { weight, bias, .. },
            )
            | (
                QOp::Dense {
                    weight: w0,
                    bias: b0,
                    ..
                },
                QOp::Dense {
                    weight: w1,
                    bias: b1,
                    ..
                },
                QOp::Dense { weight, bias, .. },
            )
            | (
                QOp::ChannelAffine {
                    scale: w0,
                    shift: b0,
                },
                QOp::ChannelAffine {
                    scale: w1,
                    shift: b1,
                },
                QOp::ChannelAffine {
                    scale: weight,
                    shift: bias,
                },
            ) => {
                sp(w0, w1, weight);
                sp(b0, b1, bias);
            }
            _ => {}
        }
    }
    [
        ModelShare {
            party: 0,
            model_id,
            program: p0,
        },
        ModelShare {
            party: 1,
            model_id,
            program: p1,
        },
    ]
}

/// Recombine two shares (tests and tools; never done by a server).
pub fn combine(a: &ModelShare, b: &ModelShare) -> Result<QModel> {
    if a.model_id != b.model_id {
        return Err(EngineError::ShareFile("shares of different models".into()));
    }
    let mut q = a.program.clone();
    for (n, m) in q.nodes.iter_mut().zip(&b.program.nodes) {
        let add = |x: &mut Vec<u64>, y: &Vec<u64>| {
            for (u, v) in x.iter_mut().zip(y) {
                *u = u.wrapping_add(*v);
            }
        };
        match (&mut n.op, &m.op) {
            (
                QOp::Conv { weight, bias, .. },
                QOp::Conv {
                    weight: w, bias: c, ..
                },
            )
            | (
                QOp::ConvTranspose { weight, bias, .. },
                QOp::ConvTranspose {
                    weight: w, bias: c, ..
                },
            )
            | (
                QOp::Dense { weight, bias, .. },
                QOp::Dense {
                    weight: w, bias: c, ..
                },
            )
            | (
                QOp::ChannelAffine {
                    scale: weight,
                    shift: bias,
                },
                QOp::ChannelAffine { scale: w, shift: c },
            ) => {
                add(weight, w);
                add(bias, c);
            }
            _ => {}
        }
    }
    Ok(q)
}

/// A fingerprint of the public part of a program (ops, shapes, scales, geometry,
/// public constants; weights and biases left out), so two servers can check they
/// run the same architecture. FNV-1a over the bincode encoding: a consistency
/// check between honest servers, not a cryptographic commitment.
pub fn architecture_fingerprint(q: &QModel) -> u64 {
    let mut a = q.clone();
    for n in a.nodes.iter_mut() {
        match &mut n.op {
            QOp::Conv { weight, bias, .. }
            | QOp::ConvTranspose { weight, bias, .. }
            | QOp::Dense { weight, bias, .. }
            | QOp::ChannelAffine {
                scale: weight,
                shift: bias,
            } => {
                weight.clear();
                bias.clear();
            }
            _ => {}
        }
    }
    let bytes = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize(&a)
        .expect("in-memory serialization");
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
