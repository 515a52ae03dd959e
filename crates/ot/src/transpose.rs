//! Transposing the 128 × m bit matrix of IKNP.
//!
//! Input: 128 rows of `m` bits each, row `r` stored as `m / 8` bytes, bit `i` of a
//! row being bit `i % 8` of byte `i / 8` (little-endian bit order). Output: `m`
//! blocks, bit `r` of block `i` (`u128` bit order) being bit `i` of row `r`.
//!
//! The fast path cuts the matrix into 64 × 64 tiles, gathers a tile as 64 `u64`
//! words and transposes it in place with six rounds of masked swaps (the recursive
//! block-swap of Hacker's Delight §7-3, widened to 64 bits): about 200 word
//! operations per 4096 bits, branch-free, in safe portable Rust that the compiler
//! vectorises. [`transpose_naive`] is the bit-by-bit reference it is tested against.

use crate::Block;

/// Transpose a 64 × 64 bit tile in place: afterwards bit `c` of `a[r]` is what bit
/// `r` of `a[c]` was.
#[inline]
pub fn transpose64(a: &mut [u64; 64]) {
    // Round with swap distance j: rows k (bit j of k clear) and k + j exchange the
    // high-j-bit groups of row k with the low-j-bit groups of row k + j.
    macro_rules! round {
        ($j:expr, $m:expr) => {{
            const J: usize = $j;
            const M: u64 = $m;
            let mut base = 0;
            while base < 64 {
                for k in base..base + J {
                    let t = ((a[k] >> J) ^ a[k + J]) & M;
                    a[k] ^= t << J;
                    a[k + J] ^= t;
                }
                base += 2 * J;
            }
        }};
    }
    round!(32, 0x0000_0000_FFFF_FFFF);
    round!(16, 0x0000_FFFF_0000_FFFF);
    round!(8, 0x00FF_00FF_00FF_00FF);
    round!(4, 0x0F0F_0F0F_0F0F_0F0F);
    round!(2, 0x3333_3333_3333_3333);
    round!(1, 0x5555_5555_5555_5555);
}

/// [`transpose64`] on two tiles at once, lane `l` of `a[r]` being row `r` of
/// tile `l`: the lane-wise operations map onto 128-bit vector instructions.
#[inline]
fn transpose64x2(a: &mut [[u64; 2]; 64]) {
    macro_rules! round {
        ($j:expr, $m:expr) => {{
            const J: usize = $j;
            const M: u64 = $m;
            let mut base = 0;
            while base < 64 {
                for k in base..base + J {
                    let (x, y) = (a[k], a[k + J]);
                    let t = [((x[0] >> J) ^ y[0]) & M, ((x[1] >> J) ^ y[1]) & M];
                    a[k] = [x[0] ^ (t[0] << J), x[1] ^ (t[1] << J)];
                    a[k + J] = [y[0] ^ t[0], y[1] ^ t[1]];
                }
                base += 2 * J;
            }
        }};
    }
    round!(32, 0x0000_0000_FFFF_FFFF);
    round!(16, 0x0000_FFFF_0000_FFFF);
    round!(8, 0x00FF_00FF_00FF_00FF);
    round!(4, 0x0F0F_0F0F_0F0F_0F0F);
    round!(2, 0x3333_3333_3333_3333);
    round!(1, 0x5555_5555_5555_5555);
}

#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Transpose 128 rows of `row_bytes` bytes (a multiple of 8) into
/// `row_bytes * 8` blocks.
///
/// # Panics
/// If `rows.len() != 128 * row_bytes`, `row_bytes % 8 != 0` or
/// `out.len() != 8 * row_bytes` (caller bugs, never peer data).
pub fn transpose_128xn(rows: &[u8], row_bytes: usize, out: &mut [Block]) {
    assert_eq!(rows.len(), 128 * row_bytes, "transpose: input size");
    assert_eq!(row_bytes % 8, 0, "transpose: row length");
    assert_eq!(out.len(), row_bytes * 8, "transpose: output size");
    let mut tile = [[0u64; 2]; 64];
    for (w, dst) in out.chunks_exact_mut(64).enumerate() {
        let at = 8 * w;
        for (r, t) in tile.iter_mut().enumerate() {
            *t = [
                word(rows, r * row_bytes + at),
                word(rows, (r + 64) * row_bytes + at),
            ];
        }
        transpose64x2(&mut tile);
        for (d, t) in dst.iter_mut().zip(&tile) {
            *d = Block(t[0] as u128 | (t[1] as u128) << 64);
        }
    }
}

/// Bit-by-bit reference of [`transpose_128xn`].
pub fn transpose_naive(rows: &[u8], row_bytes: usize) -> Vec<Block> {
    let m = row_bytes * 8;
    let mut out = vec![Block::ZERO; m];
    for r in 0..128 {
        for (i, o) in out.iter_mut().enumerate() {
            let bit = (rows[r * row_bytes + i / 8] >> (i % 8)) & 1;
            o.0 |= (bit as u128) << r;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_equals_naive(words in 1usize..12, seed in any::<u64>()) {
            let row_bytes = words * 8;
            let mut s = seed | 1;
            let rows: Vec<u8> = (0..128 * row_bytes)
                .map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 })
                .collect();
            let mut out = vec![Block::ZERO; row_bytes * 8];
            transpose_128xn(&rows, row_bytes, &mut out);
            prop_assert_eq!(out, transpose_naive(&rows, row_bytes));
        }

        #[test]
        fn tile_transpose_is_an_involution(v in proptest::collection::vec(any::<u64>(), 64)) {
            let mut a = [0u64; 64];
            a.copy_from_slice(&v);
            let orig = a;
            transpose64(&mut a);
            for (r, row) in orig.iter().enumerate() {
                for (c, col) in a.iter().enumerate() {
                    prop_assert_eq!((col >> r) & 1, (row >> c) & 1);
                }
            }
            transpose64(&mut a);
            prop_assert_eq!(a, orig);
        }
    }
}
