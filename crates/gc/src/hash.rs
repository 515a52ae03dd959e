//! The fixed-key AES correlation-robust hash of half-gates garbling.
//!
//! `H(x, i) = π(σ(x) ⊕ i) ⊕ σ(x)` (the MMO construction with a linear
//! orthomorphism σ of Guo, Katz, Wang and Yu, "Efficient and Secure Multiparty
//! Computation from Fixed-Key Block Ciphers", S&P 2020), where π is AES-128 under a
//! fixed public key and `σ(x_hi ‖ x_lo) = (x_hi ⊕ x_lo) ‖ x_hi`. GKWY prove this
//! tweakable circular correlation robust in the random-permutation model, which is
//! what half-gates needs (each tweak is used at most twice per gate).
//!
//! Everything is batched: callers fill a slice of inputs and get all hashes back
//! from one `encrypt_blocks` call, so AES-NI pipelines eight blocks at a time.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use blindfold_core::Block;

/// The public fixed AES key: an arbitrary constant (the security argument holds for
/// any fixed, public key). It differs from the OT crate's key, and the OT crate's
/// hash is a different construction, so the two never evaluate the same function.
const FIXED_KEY: [u8; 16] = [
    0x5b, 0x1f, 0x6d, 0x92, 0x0e, 0x37, 0xc4, 0xa8, 0x71, 0x2d, 0xe9, 0x03, 0xb6, 0x4a, 0x58, 0xfc,
];

/// The `aes` crate's block type.
pub type AesBlock = GenericArray<u8, aes::cipher::consts::U16>;

/// Fixed-key AES hash with reusable scratch space.
pub struct FixedKeyHash {
    cipher: Aes128,
    scratch: Vec<AesBlock>,
}

impl Default for FixedKeyHash {
    fn default() -> Self {
        FixedKeyHash::new()
    }
}

/// The linear orthomorphism σ.
#[inline(always)]
pub fn sigma(x: u128) -> u128 {
    let hi = (x >> 64) as u64;
    let lo = x as u64;
    (((hi ^ lo) as u128) << 64) | hi as u128
}

impl FixedKeyHash {
    pub fn new() -> FixedKeyHash {
        FixedKeyHash {
            cipher: Aes128::new(GenericArray::from_slice(&FIXED_KEY)),
            scratch: Vec::new(),
        }
    }

    /// In place: `xs[k] = H(xs[k], tweaks(k))`, where `xs[k]` already holds
    /// `σ(x_k) ⊕ tweak_k` on entry and `sig[k] = σ(x_k)`. (Callers compute σ once
    /// and exploit its linearity: `σ(A ⊕ Δ) = σ(A) ⊕ σ(Δ)`.)
    #[inline]
    pub fn permute_xor(&mut self, xs: &mut [u128], sig: &[u128]) {
        debug_assert_eq!(xs.len(), sig.len());
        self.scratch.clear();
        self.scratch
            .extend(xs.iter().map(|x| AesBlock::from(x.to_le_bytes())));
        self.cipher.encrypt_blocks(&mut self.scratch);
        for ((x, s), e) in xs.iter_mut().zip(sig).zip(&self.scratch) {
            *x = u128::from_le_bytes((*e).into()) ^ s;
        }
    }

    /// Fixed-key AES in place on a caller-owned buffer (the garbler and evaluator
    /// fill `σ(x) ⊕ tweak` straight into it and xor `σ(x)` back themselves).
    #[inline]
    pub fn permute_blocks(&self, buf: &mut [AesBlock]) {
        self.cipher.encrypt_blocks(buf);
    }

    /// One hash, unbatched (tests and the occasional single gate).
    pub fn hash(&mut self, x: Block, tweak: u64) -> Block {
        let s = sigma(x.0);
        let mut v = [s ^ tweak as u128];
        self.permute_xor(&mut v, &[s]);
        Block(v[0])
    }

    /// Raw fixed-key AES of each block (the PRP π; used by tests and benches).
    pub fn permute(&mut self, xs: &mut [u128]) {
        self.scratch.clear();
        self.scratch
            .extend(xs.iter().map(|x| AesBlock::from(x.to_le_bytes())));
        self.cipher.encrypt_blocks(&mut self.scratch);
        for (x, e) in xs.iter_mut().zip(&self.scratch) {
            *x = u128::from_le_bytes((*e).into());
        }
    }
}

/// AES-128-CTR expansion of a 16-byte seed into blocks, with random access:
/// block `i` is `AES_seed(i)`. Used for wire labels both parties derive from a
/// seed (the garbler's offline-known input) and labels the garbler regenerates
/// online instead of storing.
pub struct LabelExpander {
    cipher: Aes128,
    scratch: Vec<AesBlock>,
}

impl LabelExpander {
    pub fn new(seed: [u8; 16]) -> LabelExpander {
        LabelExpander {
            cipher: Aes128::new(GenericArray::from_slice(&seed)),
            scratch: Vec::new(),
        }
    }

    /// `out[j] = AES_seed(start + j)`.
    pub fn expand(&mut self, start: u64, out: &mut [Block]) {
        self.scratch.clear();
        self.scratch.extend(
            (0..out.len() as u64).map(|j| AesBlock::from(((start + j) as u128).to_le_bytes())),
        );
        self.cipher.encrypt_blocks(&mut self.scratch);
        for (o, e) in out.iter_mut().zip(&self.scratch) {
            *o = Block(u128::from_le_bytes((*e).into()));
        }
    }
}

impl Drop for LabelExpander {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for b in self.scratch.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_is_linear_and_an_orthomorphism_on_samples() {
        let a = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let b = 0xdead_beef_0000_1111_2222_3333_4444_5555u128;
        assert_eq!(sigma(a ^ b), sigma(a) ^ sigma(b));
        // σ(x) ⊕ x = (lo, hi ⊕ lo): distinct inputs give distinct values.
        assert_ne!(sigma(a) ^ a, sigma(b) ^ b);
        assert_ne!(sigma(a), a);
    }

    #[test]
    fn batched_equals_single_and_tweaks_matter() {
        let mut h = FixedKeyHash::new();
        let x = Block(0x42);
        let h0 = h.hash(x, 0);
        let h1 = h.hash(x, 1);
        assert_ne!(h0, h1);
        let s = sigma(x.0);
        let mut v = [s, s ^ 1];
        h.permute_xor(&mut v, &[s, s]);
        assert_eq!(v, [h0.0, h1.0]);
    }

    #[test]
    fn expander_is_random_access() {
        let mut e = LabelExpander::new([5; 16]);
        let mut all = [Block::ZERO; 10];
        e.expand(100, &mut all);
        let mut part = [Block::ZERO; 3];
        e.expand(104, &mut part);
        assert_eq!(&all[4..7], &part);
        assert_ne!(all[0], all[1]);
    }
}
