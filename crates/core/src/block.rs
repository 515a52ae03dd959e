//! 128-bit blocks: wire labels, OT messages, AES inputs.

use std::ops::{BitAnd, BitXor, BitXorAssign};

/// A 128-bit value (a garbled-circuit label, an OT message, an AES block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    pub const ZERO: Block = Block(0);
    pub const ONES: Block = Block(u128::MAX);

    pub fn from_bytes(b: [u8; 16]) -> Block {
        Block(u128::from_le_bytes(b))
    }
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
    /// Least significant bit (the point-and-permute bit of a label).
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }
    /// `self` if `bit`, else zero (constant-time select by masking).
    pub fn and_bit(self, bit: bool) -> Block {
        Block(self.0 & (0u128.wrapping_sub(bit as u128)))
    }
}

/// `Block` is `Copy`, so it cannot zeroize itself on drop (every move leaves a
/// copy behind); this lets holders zeroize blocks and `Vec<Block>`s explicitly.
impl zeroize::DefaultIsZeroes for Block {}

impl BitXor for Block {
    type Output = Block;
    fn bitxor(self, rhs: Block) -> Block {
        Block(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    fn bitxor_assign(&mut self, rhs: Block) {
        self.0 ^= rhs.0;
    }
}

impl BitAnd for Block {
    type Output = Block;
    fn bitand(self, rhs: Block) -> Block {
        Block(self.0 & rhs.0)
    }
}

impl crate::Prg {
    /// A uniform block.
    pub fn gen_block(&mut self) -> Block {
        use rand_core::RngCore;
        let mut b = [0u8; 16];
        self.fill_bytes(&mut b);
        Block::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_zeroize() {
        use zeroize::Zeroize;
        let mut b = Block(0xdead_beef);
        b.zeroize();
        assert_eq!(b, Block::ZERO);
        let mut v = vec![Block::ONES; 3];
        v.zeroize();
        assert!(v.is_empty());
    }

    #[test]
    fn and_bit_selects() {
        let b = Block(0xdead_beef);
        assert_eq!(b.and_bit(true), b);
        assert_eq!(b.and_bit(false), Block::ZERO);
        assert_eq!(Block::from_bytes(b.to_bytes()), b);
    }
}
