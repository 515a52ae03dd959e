//! Byte layouts of what crosses the wire, and their validating readers.
//!
//! Residues modulo `p_i` are bit-packed, `bits(p_i)` bits each, little-endian,
//! one byte-aligned block per RNS prime. Readers check the exact length and that
//! every residue is below its prime before anything is computed on it.

use crate::error::malformed;
use crate::params::residue_bits;
use crate::{HeError, Result};

/// Bytes taken by `count` residues for each of the primes `moduli`.
pub(crate) fn packed_len(count: usize, moduli: &[u64]) -> usize {
    moduli
        .iter()
        .map(|&p| (count * residue_bits(p) as usize).div_ceil(8))
        .sum()
}

/// Append the residues `rows` (`moduli.len()` rows of `count` values each,
/// row-major) to `out`.
pub(crate) fn write_rows(out: &mut Vec<u8>, rows: &[u64], count: usize, moduli: &[u64]) {
    for (i, &p) in moduli.iter().enumerate() {
        let bits = residue_bits(p);
        let start = out.len();
        let len = (count * bits as usize).div_ceil(8);
        out.reserve(len + 8);
        let mut acc: u128 = 0;
        let mut nbits = 0u32;
        for &v in &rows[i * count..(i + 1) * count] {
            acc |= (v as u128) << nbits;
            nbits += bits;
            if nbits >= 64 {
                out.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                nbits -= 64;
            }
        }
        out.extend_from_slice(&(acc as u64).to_le_bytes());
        out.truncate(start + len);
    }
}

/// A cursor over a received message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    /// Which message this reads (for errors).
    pub(crate) fn what(&self) -> &'static str {
        self.what
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.buf.len() < len {
            return Err(malformed(
                self.what,
                format!(
                    "truncated: needed {len} more bytes, {} left",
                    self.buf.len()
                ),
            ));
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn seed(&mut self) -> Result<[u8; 16]> {
        let b = self.take(16)?;
        let mut s = [0u8; 16];
        s.copy_from_slice(b);
        Ok(s)
    }

    /// Read `count` residues per prime, each checked to be below its prime.
    pub(crate) fn rows(&mut self, count: usize, moduli: &[u64]) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(count * moduli.len());
        for &p in moduli {
            let bits = residue_bits(p);
            let bytes = self.take((count * bits as usize).div_ceil(8))?;
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut acc: u128 = 0;
            let mut nbits = 0u32;
            let mut words = bytes.chunks(8);
            let mut bad = None;
            for _ in 0..count {
                if nbits < bits {
                    // Length was checked above: the iterator cannot run dry.
                    let chunk = words.next().unwrap_or(&[]);
                    let mut w = [0u8; 8];
                    w[..chunk.len()].copy_from_slice(chunk);
                    acc |= (u64::from_le_bytes(w) as u128) << nbits;
                    nbits += 64;
                }
                let v = (acc as u64) & mask;
                acc >>= bits;
                nbits -= bits;
                if v >= p {
                    bad.get_or_insert(v);
                }
                out.push(v);
            }
            if let Some(value) = bad {
                return Err(HeError::Unreduced {
                    what: self.what,
                    value,
                    modulus: p,
                });
            }
            if acc != 0 {
                return Err(malformed(self.what, "non-zero padding bits"));
            }
        }
        Ok(out)
    }

    /// Fail unless everything was consumed.
    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(malformed(
                self.what,
                format!("{} trailing bytes", self.buf.len()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::MODULI;

    #[test]
    fn rows_roundtrip_and_reject_unreduced() {
        let moduli = &MODULI[..];
        let count = 13;
        let rows: Vec<u64> = (0..moduli.len() * count)
            .map(|k| (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) % moduli[k / count])
            .collect();
        let mut buf = Vec::new();
        write_rows(&mut buf, &rows, count, moduli);
        assert_eq!(buf.len(), packed_len(count, moduli));
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.rows(count, moduli).unwrap(), rows);
        r.finish().unwrap();
        // A residue equal to its prime is rejected.
        let mut bad = rows.clone();
        bad[0] = moduli[0];
        let mut buf = Vec::new();
        write_rows(&mut buf, &bad, count, moduli);
        assert!(matches!(
            Reader::new(&buf, "test").rows(count, moduli),
            Err(HeError::Unreduced { .. })
        ));
        // Truncated input.
        assert!(Reader::new(&buf[..buf.len() - 1], "test")
            .rows(count, moduli)
            .is_err());
    }
}
