//! Chou–Orlandi "simplest OT" on the Ristretto group, 128 (or any number of)
//! random OTs batched in one flight each way.
//!
//! ```text
//!  base-OT sender                                base-OT receiver (choices c_j)
//!  a ← Z_l, A = a·G      ─────── A ───────▶       b_j ← Z_l
//!                        ◀── B_0..B_{n-1} ──      B_j = b_j·G + c_j·A
//!  k_j^0 = H(j,A,B_j, a·B_j)                      k_j^{c_j} = H(j,A,B_j, b_j·A)
//!  k_j^1 = H(j,A,B_j, a·(B_j − A))
//! ```
//!
//! `H` is SHA-256 over a domain label, the index, the transcript points and the
//! shared point, cut to 128 bits. The sender sees `B_j`, uniformly distributed
//! whatever `c_j` is; the receiver cannot compute `a·(B_j − (1−c_j)·... )` for the
//! other key without solving CDH. The keys are *random* OTs: the IKNP extension
//! uses them as PRG seeds, so no ciphertexts are sent.
//!
//! Every received point is decompressed and checked (a non-canonical encoding or
//! the identity is [`OtError::InvalidPoint`], never a panic).

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroize;

use crate::{check_len, Block, Channel, OtError, Result};

const DOMAIN: &[u8] = b"blindfold/base-ot/chou-orlandi/v1";
const POINT: usize = 32;

fn kdf(index: usize, a: &[u8; 32], b: &[u8; 32], shared: &RistrettoPoint) -> Block {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((index as u64).to_le_bytes());
    h.update(a);
    h.update(b);
    let mut p = shared.compress();
    h.update(p.as_bytes());
    p.0.zeroize();
    // The hasher's own buffer cannot be wiped (sha2 0.10 has no zeroize).
    let mut d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    d.as_mut_slice().zeroize();
    let key = Block::from_bytes(k);
    k.zeroize();
    key
}

fn decode_point(bytes: &[u8], index: usize) -> Result<RistrettoPoint> {
    let c = CompressedRistretto::from_slice(bytes).map_err(|_| OtError::InvalidPoint { index })?;
    match c.decompress() {
        Some(p) if p != RistrettoPoint::identity() => Ok(p),
        _ => Err(OtError::InvalidPoint { index }),
    }
}

/// The base-OT sender after its first message.
pub struct BaseOtSender {
    a: Scalar,
    big_a: RistrettoPoint,
    a_bytes: [u8; 32],
}

impl BaseOtSender {
    /// Draw `a`; returns the state and the message `A` (32 bytes) for the receiver.
    pub fn new(rng: &mut (impl RngCore + CryptoRng)) -> (BaseOtSender, Vec<u8>) {
        let a = Scalar::random(rng);
        let big_a = &a * RISTRETTO_BASEPOINT_TABLE;
        let a_bytes = big_a.compress().to_bytes();
        (BaseOtSender { a, big_a, a_bytes }, a_bytes.to_vec())
    }

    /// Consume the receiver's `n` points; returns the key pairs `(k_j^0, k_j^1)`.
    pub fn finish(self, n: usize, reply: &[u8]) -> Result<Vec<(Block, Block)>> {
        check_len("base OT reply", reply, n * POINT)?;
        // The products a·A, a·B_j and a·B_j − a·A are the keys' preimages.
        let mut a_a = self.a * self.big_a;
        let mut keys = Vec::with_capacity(n);
        for (j, chunk) in reply.chunks_exact(POINT).enumerate() {
            let b = match decode_point(chunk, j) {
                Ok(b) => b,
                Err(e) => {
                    a_a.zeroize();
                    keys.zeroize();
                    return Err(e);
                }
            };
            let mut b_bytes = [0u8; 32];
            b_bytes.copy_from_slice(chunk);
            let mut ab = self.a * b;
            let mut ab_minus = ab - a_a;
            let k0 = kdf(j, &self.a_bytes, &b_bytes, &ab);
            let k1 = kdf(j, &self.a_bytes, &b_bytes, &ab_minus);
            ab.zeroize();
            ab_minus.zeroize();
            keys.push((k0, k1));
        }
        a_a.zeroize();
        Ok(keys)
    }
}

/// Zeroizes the scalar `a` (the transcript points are public).
impl Zeroize for BaseOtSender {
    fn zeroize(&mut self) {
        self.a.zeroize();
    }
}

impl Drop for BaseOtSender {
    fn drop(&mut self) {
        self.zeroize();
    }
}

/// The base-OT receiver's single step: from the sender's `A` and the choice
/// bits, the reply (32 bytes per choice) and the chosen keys.
pub fn receiver_step(
    rng: &mut (impl RngCore + CryptoRng),
    choices: &[bool],
    sender_msg: &[u8],
) -> Result<(Vec<u8>, Vec<Block>)> {
    check_len("base OT sender message", sender_msg, POINT)?;
    let big_a = decode_point(sender_msg, 0)?;
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(sender_msg);
    let mut reply = Vec::with_capacity(choices.len() * POINT);
    let mut keys = Vec::with_capacity(choices.len());
    for (j, &c) in choices.iter().enumerate() {
        let mut b = Scalar::random(rng);
        // b·G tells which of B_j, B_j − A was sent (the choice); b·A is the key's
        // preimage.
        let mut bg = &b * RISTRETTO_BASEPOINT_TABLE;
        let mut bg_a = bg + big_a;
        let big_b = RistrettoPoint::conditional_select(&bg, &bg_a, Choice::from(c as u8));
        let b_bytes = big_b.compress().to_bytes();
        reply.extend_from_slice(&b_bytes);
        let mut shared = b * big_a;
        keys.push(kdf(j, &a_bytes, &b_bytes, &shared));
        b.zeroize();
        bg.zeroize();
        bg_a.zeroize();
        shared.zeroize();
    }
    Ok((reply, keys))
}

/// Run `n` random base OTs as the sender over `ch`: returns `(k_j^0, k_j^1)`.
pub fn send_random(
    ch: &mut impl Channel,
    n: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<(Block, Block)>> {
    let (state, msg) = BaseOtSender::new(rng);
    ch.send(&msg)?;
    ch.flush()?;
    let reply = ch.recv()?;
    state.finish(n, &reply)
}

/// Run random base OTs as the receiver over `ch`: returns `k_j^{c_j}`.
pub fn receive_random(
    ch: &mut impl Channel,
    choices: &[bool],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<Block>> {
    let a = ch.recv()?;
    let (reply, keys) = receiver_step(rng, choices, &a)?;
    ch.send_vec(reply)?;
    ch.flush()?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::Prg;

    #[test]
    fn keys_match_choices() {
        let mut rs = Prg::from_seed([1; 16]);
        let mut rr = Prg::from_seed([2; 16]);
        let choices: Vec<bool> = (0..128).map(|i| (i * 7) % 3 == 0).collect();
        let (s, a) = BaseOtSender::new(&mut rs);
        let (reply, got) = receiver_step(&mut rr, &choices, &a).unwrap();
        let keys = s.finish(128, &reply).unwrap();
        for j in 0..128 {
            let (k0, k1) = keys[j];
            assert_ne!(k0, k1);
            assert_eq!(got[j], if choices[j] { k1 } else { k0 });
        }
    }

    #[test]
    fn sender_scalar_zeroizes() {
        let mut r = Prg::from_seed([4; 16]);
        let (mut s, _) = BaseOtSender::new(&mut r);
        assert_ne!(s.a, Scalar::ZERO);
        s.zeroize();
        assert_eq!(s.a, Scalar::ZERO);
    }

    #[test]
    fn invalid_points_are_errors() {
        let mut r = Prg::from_seed([3; 16]);
        assert!(matches!(
            receiver_step(&mut r, &[true], &[0xff; 32]),
            Err(OtError::InvalidPoint { index: 0 })
        ));
        // The identity encodes as all zeros.
        assert!(matches!(
            receiver_step(&mut r, &[true], &[0; 32]),
            Err(OtError::InvalidPoint { index: 0 })
        ));
        assert!(matches!(
            receiver_step(&mut r, &[true], &[1; 31]),
            Err(OtError::BadMessage { .. })
        ));
        let (s, a) = BaseOtSender::new(&mut r);
        let (mut reply, _) = receiver_step(&mut r, &[false, true], &a).unwrap();
        reply[40] ^= 0x80;
        reply[63] ^= 0xff;
        assert!(matches!(
            s.finish(2, &reply),
            Err(OtError::InvalidPoint { index: 1 })
        ));
    }
}
