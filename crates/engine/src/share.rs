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

use crate::plan::{Deployment, Plan};
use crate::Result;
use bincode::Options;
use blindfold_core::PartyId;
use blindfold_model::quant::{QModel, SecretsMut};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const MAGIC: &[u8; 16] = b"BLINDFOLD-SHARE\0";
const VERSION: u32 = 4;
/// Largest share file accepted.
pub const MAX_SHARE_BYTES: u64 = 1 << 31;

/// Why a share file (or a pair of shares) is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareFileError {
    #[error("not a blindfold share file (bad magic)")]
    BadMagic,
    #[error("share file version {got}, this build reads {VERSION}")]
    Version { got: u32 },
    #[error("party {0} is not 0 or 1")]
    BadParty(u8),
    #[error("corrupt share file: {0}")]
    Corrupt(#[source] bincode::Error),
    #[error("inconsistent model: {0}")]
    Inconsistent(#[from] blindfold_model::quant::ProgramError),
    #[error("file too large ({len} bytes, at most {MAX_SHARE_BYTES})")]
    TooLarge { len: u64 },
    #[error("shares of different model splits")]
    DifferentSplits,
    #[error("shares of different programs")]
    DifferentPrograms,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<ShareFileError>,
    },
}

/// One party's share of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelShare {
    /// Which server this share is for.
    pub party: PartyId,
    /// Identifies the split: both shares of one split carry the same value.
    /// Public (servers tell clients, so that a client can check that its two
    /// servers hold halves of one split).
    pub model_id: [u8; 16],
    /// The split's pairing secret: both shares of one split carry it and
    /// nothing else does; the servers prove it to each other on every link
    /// (`serve::pairing`). Never sent, never printed.
    pub pairing_key: PairingKey,
    /// The program with this party's weight and bias shares.
    pub program: QModel,
}

/// The weight and bias shares are wiped when a share is dropped (a server's
/// engine holds one for its lifetime; `split` makes two). The architecture, the
/// party and the split id are public.
impl zeroize::Zeroize for ModelShare {
    fn zeroize(&mut self) {
        for n in self.program.nodes.iter_mut() {
            if let Some(s) = n.op.secrets_mut() {
                s.weight.zeroize();
                s.bias.zeroize();
            }
        }
    }
}

impl Drop for ModelShare {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

impl ModelShare {
    /// Which server this share is for.
    pub fn party_id(&self) -> PartyId {
        self.party
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
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<ModelShare, ShareFileError> {
        if bytes.len() < 20 || &bytes[..16] != MAGIC {
            return Err(ShareFileError::BadMagic);
        }
        let mut v = [0u8; 4];
        v.copy_from_slice(&bytes[16..20]);
        let v = u32::from_le_bytes(v);
        if v != VERSION {
            return Err(ShareFileError::Version { got: v });
        }
        // The party byte comes first in the encoding: name it precisely.
        if let Some(&p) = bytes.get(20) {
            if p > 1 {
                return Err(ShareFileError::BadParty(p));
            }
        }
        let s: ModelShare = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(MAX_SHARE_BYTES)
            .reject_trailing_bytes()
            .deserialize(&bytes[20..])
            .map_err(ShareFileError::Corrupt)?;
        s.program.validate()?;
        Ok(s)
    }

    /// Read a share file.
    pub fn load(path: &std::path::Path) -> std::result::Result<ModelShare, ShareFileError> {
        let io = |source| ShareFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_SHARE_BYTES {
            return Err(ShareFileError::InFile {
                path: path.to_path_buf(),
                source: Box::new(ShareFileError::TooLarge { len: meta.len() }),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        ModelShare::from_bytes(&bytes).map_err(|e| ShareFileError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }
}

/// The 32-byte secret both shares of a split hold, zeroized on drop and
/// redacted from `Debug`.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct PairingKey(pub [u8; 32]);

impl std::fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingKey(..)")
    }
}

impl PairingKey {
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> PairingKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        PairingKey(k)
    }
}

/// Each op's secret parameters, in program order; the same exhaustive accessor
/// ([`blindfold_model::quant::QOp::secrets_mut`]) that every user of secrets
/// goes through.
fn secrets_mut(q: &mut QModel) -> impl Iterator<Item = SecretsMut<'_>> {
    q.nodes.iter_mut().filter_map(|n| n.op.secrets_mut())
}

/// Split a quantized model for `deployment` after asking the planner whether
/// it can run there: refuses a program it cannot, naming the layer, the op and
/// the reason. What the model owner's `split` command calls.
pub fn split_for(
    q: &QModel,
    deployment: Deployment,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<[ModelShare; 2]> {
    Plan::new(q, deployment)?;
    Ok(split(q, rng))
}

/// Split the secret parameters of a quantized model: every one of them `w`
/// (weights, biases, channel scales and shifts) becomes `w0` uniform and
/// `w1 = w - w0`. Public constants (the average-pool factor) stay in both. Does
/// not ask the planner (see [`split_for`]).
pub fn split(q: &QModel, rng: &mut (impl RngCore + CryptoRng)) -> [ModelShare; 2] {
    let mut model_id = [0u8; 16];
    rng.fill_bytes(&mut model_id);
    let pairing_key = PairingKey::random(rng);
    let mut p0 = q.clone();
    let mut p1 = q.clone();
    for (a, b) in secrets_mut(&mut p0).zip(secrets_mut(&mut p1)) {
        for (x, y) in [(a.weight, b.weight), (a.bias, b.bias)] {
            for (u, v) in x.iter_mut().zip(y.iter_mut()) {
                let r = rng.next_u64();
                *v = u.wrapping_sub(r);
                *u = r;
            }
        }
    }
    [
        ModelShare {
            party: PartyId::P0,
            model_id,
            pairing_key: pairing_key.clone(),
            program: p0,
        },
        ModelShare {
            party: PartyId::P1,
            model_id,
            pairing_key,
            program: p1,
        },
    ]
}

/// The public program of `q`: architecture and scales with every secret
/// parameter zero (each keeps its length, so the program still validates).
/// What a client-server server hands its clients.
pub fn weightless(q: &QModel) -> QModel {
    let mut p = q.clone();
    for s in secrets_mut(&mut p) {
        s.weight.iter_mut().for_each(|v| *v = 0);
        s.bias.iter_mut().for_each(|v| *v = 0);
    }
    p
}

/// Recombine two shares (tests and tools; never done by a server).
pub fn combine(a: &ModelShare, b: &ModelShare) -> std::result::Result<QModel, ShareFileError> {
    if a.model_id != b.model_id || a.pairing_key != b.pairing_key {
        return Err(ShareFileError::DifferentSplits);
    }
    if architecture_fingerprint(&a.program) != architecture_fingerprint(&b.program) {
        return Err(ShareFileError::DifferentPrograms);
    }
    let mut q = a.program.clone();
    let mut other = b.program.clone();
    for (x, y) in secrets_mut(&mut q).zip(secrets_mut(&mut other)) {
        for (u, v) in x.weight.iter_mut().zip(y.weight.iter()) {
            *u = u.wrapping_add(*v);
        }
        for (u, v) in x.bias.iter_mut().zip(y.bias.iter()) {
            *u = u.wrapping_add(*v);
        }
    }
    Ok(q)
}

/// Write `bytes` to a new file readable by its owner only (mode 0600 from the
/// start), refusing to replace an existing one: a share file must never land
/// in a file someone else created (and may read). Used by the CLI's `split`
/// and `certs` and by the Python package.
pub fn write_new_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A fingerprint of the public part of a program (ops, shapes, scales, geometry,
/// public constants; every secret parameter left out), so two servers can check
/// they run the same architecture. FNV-1a over the bincode encoding: a
/// consistency check between honest servers, not a cryptographic commitment.
pub fn architecture_fingerprint(q: &QModel) -> u64 {
    let mut a = q.clone();
    for s in secrets_mut(&mut a) {
        s.weight.clear();
        s.bias.clear();
    }
    let bytes = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize(&a)
        .expect("in-memory serialization");
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod zeroize_tests {
    use super::*;
    use blindfold_model::quant::QOp;

    #[test]
    fn a_share_zeroizes_its_weights_and_keeps_the_architecture() {
        let q = blindfold_model::quant::quantize(
            &blindfold_model::load_onnx(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/sok_ecg.onnx"),
            )
            .unwrap(),
            blindfold_core::FracBits::DEFAULT,
        )
        .unwrap();
        let [mut s0, _] = split(&q, &mut blindfold_core::Prg::from_seed([1; 16]));
        let secret = |s: &ModelShare| -> usize {
            s.program
                .nodes
                .iter()
                .filter_map(|n| n.op.secrets())
                .map(|x| x.len())
                .sum()
        };
        assert!(secret(&s0) > 0);
        zeroize::Zeroize::zeroize(&mut s0);
        assert_eq!(secret(&s0), 0);
        assert_eq!(s0.program.nodes.len(), q.nodes.len());
        assert!(matches!(s0.program.nodes[1].op, QOp::Dense { .. }));
    }
}
