//! The tweakable circular-correlation-robust hash of Guo, Katz, Wang and Yu
//! (IEEE S&P 2020, "Efficient and secure multiparty computation from fixed-key
//! block ciphers"): `H(x, i) = π(π(x) ⊕ i) ⊕ π(x)` with `π` AES-128 under a fixed,
//! public key. Two AES calls per hash, batched so AES-NI pipelines them.
//!
//! Random OT from IKNP's correlated OT outputs `H(q_i, i)` and `H(q_i ⊕ Δ, i)`;
//! the tweak `i` is the OT's index in the session, never reused, so outputs of
//! different OTs are independent even though they share `Δ`.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use zeroize::Zeroize;

use crate::Block;

/// The fixed public key of `π` (the first 16 bytes of the fractional part of π).
const FIXED_KEY: [u8; 16] = [
    0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3, 0x08, 0xd3, 0x13, 0x19, 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x44,
];

const BATCH: usize = 16;

/// The fixed-key permutation and the hash built on it.
pub struct Tccr {
    pi: Aes128,
}

impl Default for Tccr {
    fn default() -> Self {
        Tccr::new()
    }
}

impl Tccr {
    pub fn new() -> Tccr {
        Tccr {
            pi: Aes128::new(GenericArray::from_slice(&FIXED_KEY)),
        }
    }

    /// `out[k] = H(xs[k], tweak0 + k)`.
    pub fn hash_many(&self, xs: &[Block], tweak0: u64, out: &mut [Block]) {
        assert_eq!(xs.len(), out.len(), "hash_many: lengths differ");
        let mut a = [GenericArray::default(); BATCH];
        let mut b = [GenericArray::default(); BATCH];
        let mut tweak = tweak0;
        for (xc, oc) in xs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let n = xc.len();
            for (slot, x) in a.iter_mut().zip(xc) {
                *slot = GenericArray::from(x.to_bytes());
            }
            self.pi.encrypt_blocks(&mut a[..n]);
            for k in 0..n {
                let pa = u128::from_le_bytes(a[k].into());
                b[k] =
                    GenericArray::from((pa ^ tweak.wrapping_add(k as u64) as u128).to_le_bytes());
            }
            self.pi.encrypt_blocks(&mut b[..n]);
            for k in 0..n {
                let pa = u128::from_le_bytes(a[k].into());
                let pb = u128::from_le_bytes(b[k].into());
                oc[k] = Block(pa ^ pb);
            }
            tweak = tweak.wrapping_add(n as u64);
        }
        // π(x) of secret inputs (the OT's q_i, t_i).
        for v in a.iter_mut().chain(b.iter_mut()) {
            v.as_mut_slice().zeroize();
        }
    }

    /// `out[k] = H(xs[k], tweaks[k])`, any tweaks.
    pub fn hash_tweaked(&self, xs: &[Block], tweaks: &[u64], out: &mut [Block]) {
        assert!(
            xs.len() == out.len() && tweaks.len() == out.len(),
            "hash_tweaked: lengths differ"
        );
        let mut a = [GenericArray::default(); BATCH];
        let mut b = [GenericArray::default(); BATCH];
        for ((xc, tc), oc) in xs
            .chunks(BATCH)
            .zip(tweaks.chunks(BATCH))
            .zip(out.chunks_mut(BATCH))
        {
            let n = xc.len();
            for (slot, x) in a.iter_mut().zip(xc) {
                *slot = GenericArray::from(x.to_bytes());
            }
            self.pi.encrypt_blocks(&mut a[..n]);
            for k in 0..n {
                let pa = u128::from_le_bytes(a[k].into());
                b[k] = GenericArray::from((pa ^ tc[k] as u128).to_le_bytes());
            }
            self.pi.encrypt_blocks(&mut b[..n]);
            for k in 0..n {
                let pa = u128::from_le_bytes(a[k].into());
                let pb = u128::from_le_bytes(b[k].into());
                oc[k] = Block(pa ^ pb);
            }
        }
        for v in a.iter_mut().chain(b.iter_mut()) {
            v.as_mut_slice().zeroize();
        }
    }

    /// `H(x, tweak)`.
    pub fn hash(&self, x: Block, tweak: u64) -> Block {
        let mut o = [Block::ZERO];
        self.hash_many(&[x], tweak, &mut o);
        o[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_equals_single_and_tweaks_matter() {
        let h = Tccr::new();
        let xs: Vec<Block> = (0..37u128)
            .map(|i| Block(i * 0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut out = vec![Block::ZERO; xs.len()];
        h.hash_many(&xs, 100, &mut out);
        for (k, x) in xs.iter().enumerate() {
            assert_eq!(out[k], h.hash(*x, 100 + k as u64));
        }
        assert_ne!(h.hash(Block(1), 0), h.hash(Block(1), 1));
    }
}
