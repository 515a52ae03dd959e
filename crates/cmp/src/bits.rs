//! Bit streams for packed protocol messages: values of `w <= 64` bits each,
//! little-endian within a `u64` word stream.

/// Appends `w`-bit values to a byte buffer.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    fill: u32,
}

impl BitWriter {
    pub fn with_capacity_bits(bits: usize) -> BitWriter {
        BitWriter {
            out: Vec::with_capacity(bits.div_ceil(8)),
            acc: 0,
            fill: 0,
        }
    }

    /// Append the low `w` bits of `v` (`w <= 64`).
    pub fn put(&mut self, v: u64, w: u32) {
        debug_assert!(w <= 64);
        if w == 0 {
            return;
        }
        let v = if w == 64 { v } else { v & ((1u64 << w) - 1) };
        self.acc |= (v as u128) << self.fill;
        self.fill += w;
        while self.fill >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.fill -= 8;
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.fill > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads what [`BitWriter`] wrote.
pub struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
    acc: u128,
    fill: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(buf: &'a [u8]) -> BitReader<'a> {
        BitReader {
            buf,
            pos: 0,
            acc: 0,
            fill: 0,
        }
    }

    /// The next `w`-bit value; zeros past the end (callers check lengths first).
    pub fn get(&mut self, w: u32) -> u64 {
        if w == 0 {
            return 0;
        }
        while self.fill < w {
            let b = self.buf.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            self.acc |= (b as u128) << self.fill;
            self.fill += 8;
        }
        let v = if w == 64 {
            self.acc as u64
        } else {
            (self.acc as u64) & ((1u64 << w) - 1)
        };
        self.acc >>= w;
        self.fill -= w;
        v
    }
}

/// Bytes of `count` values of `w` bits.
pub fn packed_len(count: usize, w: u32) -> usize {
    (count * w as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(vals in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::default();
            for &(v, k) in &vals {
                w.put(v, k);
            }
            let total: usize = vals.iter().map(|&(_, k)| k as usize).sum();
            let buf = w.finish();
            prop_assert_eq!(buf.len(), total.div_ceil(8));
            let mut r = BitReader::new(&buf);
            for &(v, k) in &vals {
                let m = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
                prop_assert_eq!(r.get(k), v & m);
            }
        }
    }
}
