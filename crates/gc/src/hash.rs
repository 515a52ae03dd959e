//! The fixed-key AES tweakable circular correlation-robust hash of half-gates
//! garbling.
//!
//! `H(x, i) = π(π(x) ⊕ i) ⊕ π(x)`, the TCCR construction of Guo, Katz, Wang and Yu
//! ("Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers",
//! S&P 2020, section 7), where π is AES-128 under a fixed public key. GKWY prove it
//! tweakable circular correlation robust in the random-permutation model, which is
//! what half-gates with free-XOR needs: the evaluator sees `H(W ⊕ Δ, j)` masks
//! for a global `Δ` it does not know and tweaks `j` that never repeat under one
//! `Δ` (each used at most twice per gate, once per label of a wire).
//!
//! Two AES calls per hash, batched: callers fill a slice with the inputs of a whole
//! gate row (up to 256 blocks) and [`FixedKeyHash::tccr`] runs inside the AES
//! backend over groups of 32 blocks: π on the group (four batches of eight in
//! flight on AES-NI), the tweaks xored in, π again, `π(x)` xored back, all while
//! the group is in registers or L1.
//!
//! The earlier construction `π(σ(x) ⊕ i) ⊕ σ(x)` with the linear orthomorphism
//! `σ(x_hi ‖ x_lo) = (x_hi ⊕ x_lo) ‖ x_hi` was replaced: the tweak sits inside the
//! permutation's input next to the linear `σ(x)`, so `H(x ⊕ D, i ⊕ σ(D)) =
//! H(x, i) ⊕ σ(D)` for every `x` and `D`; an adversary querying `H(· ⊕ Δ, ·)` wins
//! the TCCR game with one pair of queries (test
//! `tests::sigma_mmo_is_not_tccr_and_this_hash_is_not_linear`, docs/gc.md).
//!
//! The OT crate's random-OT hash (`blindfold_ot::hash::Tccr`) is the same
//! construction under another fixed key, so the two are independent permutations
//! and never evaluate the same function, although the IKNP `Δ` is the free-XOR `Δ`.

use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    generic_array::GenericArray, BlockBackend, BlockClosure, BlockEncrypt, BlockSizeUser, KeyInit,
};
use aes::Aes128;
use blindfold_core::Block;
use zeroize::Zeroize;

/// The public fixed AES key: an arbitrary constant (the security argument holds for
/// any fixed, public key). It differs from the OT crate's key, so the two crates'
/// hashes are distinct functions.
const FIXED_KEY: [u8; 16] = [
    0x5b, 0x1f, 0x6d, 0x92, 0x0e, 0x37, 0xc4, 0xa8, 0x71, 0x2d, 0xe9, 0x03, 0xb6, 0x4a, 0x58, 0xfc,
];

/// The `aes` crate's block type.
pub type AesBlock = GenericArray<u8, aes::cipher::consts::U16>;

/// The fixed-key AES hash. It holds only the public key schedule; the per-call
/// group buffer on the stack, which holds permuted labels, is zeroized after
/// each call.
pub struct FixedKeyHash {
    cipher: Aes128,
}

impl Default for FixedKeyHash {
    fn default() -> Self {
        FixedKeyHash::new()
    }
}

#[inline(always)]
fn xor_into(a: &mut AesBlock, b: &AesBlock) {
    let (a, b): (&mut [u8; 16], &[u8; 16]) = (a.as_mut(), b.as_ref());
    for i in 0..16 {
        a[i] ^= b[i];
    }
}

/// A `u128` as an AES block (little endian).
#[inline(always)]
pub fn to_aes(x: u128) -> AesBlock {
    AesBlock::from(x.to_le_bytes())
}

/// An AES block as a `u128` (little endian).
#[inline(always)]
pub fn from_aes(b: &AesBlock) -> u128 {
    u128::from_le_bytes((*b).into())
}

/// Low 64 bits of a block ⊕= `t`.
#[inline(always)]
fn xor_tweak(a: &mut AesBlock, t: u64) {
    let a: &mut [u8; 16] = a.as_mut();
    let lo = u64::from_le_bytes(a[..8].try_into().expect("8 bytes")) ^ t;
    a[..8].copy_from_slice(&lo.to_le_bytes());
}

/// The TCCR hash as a closure over the cipher's backend (see
/// [`FixedKeyHash::tccr`]).
struct TccrPass<'a, F> {
    buf: &'a mut [AesBlock],
    tweak: F,
}

impl<F> BlockSizeUser for TccrPass<'_, F> {
    type BlockSize = U16;
}

impl<F: Fn(usize) -> u64> BlockClosure for TccrPass<'_, F> {
    #[inline(always)]
    fn call<B: BlockBackend<BlockSize = U16>>(self, backend: &mut B) {
        // Groups of whole parallel batches (4 × 8 blocks on AES-NI); a backend wider
        // than the group buffer (none exists) would go block by block.
        let p = B::ParBlocksSize::USIZE;
        let (p, group) = if p <= GROUP {
            (p, GROUP / p * p)
        } else {
            (1, GROUP)
        };
        let tweak = &self.tweak;
        // π(x) of one group, kept for the final xor.
        let mut saved = [AesBlock::default(); GROUP];
        let mut permute = |blocks: &mut [AesBlock]| {
            if p > 1 {
                let mut batches = blocks.chunks_exact_mut(p);
                for batch in batches.by_ref() {
                    backend.proc_par_blocks_inplace(GenericArray::from_mut_slice(batch));
                }
                for b in batches.into_remainder() {
                    backend.proc_block_inplace(b);
                }
            } else {
                blocks
                    .iter_mut()
                    .for_each(|b| backend.proc_block_inplace(b));
            }
        };
        for (g, blocks) in self.buf.chunks_mut(group).enumerate() {
            // The batches of a group are independent, so each pass keeps the AES
            // units busy instead of waiting on one batch's first pass.
            permute(blocks);
            for (k, (b, s)) in blocks.iter_mut().zip(saved.iter_mut()).enumerate() {
                *s = *b;
                xor_tweak(b, tweak(g * group + k));
            }
            permute(blocks);
            for (b, s) in blocks.iter_mut().zip(&saved) {
                xor_into(b, s);
            }
        }
        zeroize_blocks(&mut saved);
    }
}

/// Blocks per group of [`TccrPass`]: four parallel AES-NI batches of eight
/// (measured: groups of 16 or 32 blocks garble equally fast, 8 and 64 slower).
const GROUP: usize = 32;

/// Overwrite AES blocks with zeros.
pub(crate) fn zeroize_blocks(bs: &mut [AesBlock]) {
    for b in bs.iter_mut() {
        b.as_mut_slice().zeroize();
    }
}

impl FixedKeyHash {
    pub fn new() -> FixedKeyHash {
        FixedKeyHash {
            cipher: Aes128::new(GenericArray::from_slice(&FIXED_KEY)),
        }
    }

    /// In place and batched: `buf[k] = H(buf[k], tweak(k))` for every `k`, i.e.
    /// `π(π(x) ⊕ i) ⊕ π(x)`. Tweaks are 64-bit (gate indices), xored into the low
    /// half of `π(x)`. The work runs inside the AES backend, eight blocks (AES-NI's
    /// parallelism) at a time: both passes of π, the tweak and the final xor happen
    /// while a group is in registers or L1, and the eight blocks of a pass are in
    /// flight together.
    #[inline]
    pub fn tccr(&self, buf: &mut [AesBlock], tweak: impl Fn(usize) -> u64) {
        self.cipher.encrypt_with_backend(TccrPass { buf, tweak });
    }

    /// Fixed-key AES π in place on a caller-owned buffer (benches).
    #[inline]
    pub fn permute_blocks(&self, buf: &mut [AesBlock]) {
        self.cipher.encrypt_blocks(buf);
    }

    /// One hash, unbatched (tests and the occasional single gate).
    pub fn hash(&self, x: Block, tweak: u64) -> Block {
        let mut v = [to_aes(x.0)];
        self.tccr(&mut v, |_| tweak);
        Block(from_aes(&v[0]))
    }

    /// Raw fixed-key AES π of each block (tests and benches).
    pub fn permute(&self, xs: &mut [u128]) {
        let mut buf: Vec<AesBlock> = xs.iter().map(|&x| to_aes(x)).collect();
        self.cipher.encrypt_blocks(&mut buf);
        for (b, x) in buf.iter().zip(xs.iter_mut()) {
            *x = from_aes(b);
        }
    }
}

/// AES-128-CTR expansion of a 16-byte seed into blocks, with random access:
/// block `i` is `AES_seed(i)`. Used for wire labels both parties derive from a
/// seed (the garbler's offline-known input) and labels the garbler regenerates
/// online instead of storing. The key schedule (the seed) is zeroized on drop by
/// the `aes` crate's `zeroize` feature, the scratch blocks here.
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
        self.scratch
            .extend((0..out.len() as u64).map(|j| to_aes((start + j) as u128)));
        self.cipher.encrypt_blocks(&mut self.scratch);
        for (o, e) in out.iter_mut().zip(&self.scratch) {
            *o = Block(from_aes(e));
        }
    }
}

impl Drop for LabelExpander {
    fn drop(&mut self) {
        zeroize_blocks(&mut self.scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::Prg;

    #[test]
    fn batched_equals_single_and_tweaks_matter() {
        let h = FixedKeyHash::new();
        let x = Block(0x42);
        let h0 = h.hash(x, 0);
        let h1 = h.hash(x, 1);
        assert_ne!(h0, h1);
        let mut v = [x.0, x.0, 7, 7].map(to_aes);
        h.tccr(&mut v, |k| (k & 1) as u64);
        let v = v.map(|b| from_aes(&b));
        assert_eq!(&v[..2], &[h0.0, h1.0]);
        assert_eq!(v[2], h.hash(Block(7), 0).0);
        assert_eq!(v[3], h.hash(Block(7), 1).0);
    }

    #[test]
    fn is_the_gkwy_construction() {
        // H(x, i) = π(π(x) ⊕ i) ⊕ π(x), computed from the raw permutation.
        let h = FixedKeyHash::new();
        let (x, i) = (0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128, 99u64);
        let mut p = [x];
        h.permute(&mut p);
        let mut q = [p[0] ^ i as u128];
        h.permute(&mut q);
        assert_eq!(h.hash(Block(x), i).0, q[0] ^ p[0]);
    }

    /// The old construction, kept only to show why it was replaced.
    fn sigma(x: u128) -> u128 {
        let hi = (x >> 64) as u64;
        let lo = x as u64;
        (((hi ^ lo) as u128) << 64) | hi as u128
    }

    fn old_sigma_mmo(h: &FixedKeyHash, x: u128, tweak: u128) -> u128 {
        let s = sigma(x);
        let mut v = [s ^ tweak];
        h.permute(&mut v);
        v[0] ^ s
    }

    /// The TCCR game gives the adversary the oracle `O(x, i) = H(x ⊕ Δ, i)` for a
    /// secret uniform `Δ` (the circular version also `⊕ Δ` on request; not needed
    /// here). With `H(x, i) = π(σ(x) ⊕ i) ⊕ σ(x)` and σ linear,
    /// `O(x, i ⊕ σ(x)) ⊕ O(0, i) = σ(x)` for every `Δ`: two queries win always.
    /// Choosing `x = h ‖ h` makes `σ(x) = 0 ‖ h`, so both tweaks stay 64-bit values
    /// like the garbler's. The relation must fail for the current hash.
    #[test]
    fn sigma_mmo_is_not_tccr_and_this_hash_is_not_linear() {
        let h = FixedKeyHash::new();
        let mut prg = Prg::from_seed([77; 16]);
        let mut new_holds = 0;
        for _ in 0..200 {
            let delta = prg.gen_block().0 | 1;
            let hh = prg.gen_u64() as u128;
            let x = (hh << 64) | hh;
            assert_eq!(sigma(x), hh, "σ(h ‖ h) = 0 ‖ h");
            let i = prg.gen_u64() >> 1;
            let j = i ^ hh as u64; // i ⊕ σ(x), a 64-bit tweak
                                   // Old: the distinguisher's relation holds for every Δ.
            let o1 = old_sigma_mmo(&h, x ^ delta, j as u128);
            let o0 = old_sigma_mmo(&h, delta, i as u128);
            assert_eq!(o1 ^ o0, sigma(x));
            // New: the same queries give unrelated outputs.
            let n1 = h.hash(Block(x ^ delta), j).0;
            let n0 = h.hash(Block(delta), i).0;
            if n1 ^ n0 == sigma(x) {
                new_holds += 1;
            }
            // Nor any fixed xor-relation with the input difference.
            assert_ne!(n1 ^ n0, x);
        }
        assert_eq!(new_holds, 0);
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
