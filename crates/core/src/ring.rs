//! The ring `Z_2^64` and fixed-point encoding (DESIGN section 2).
//!
//! Ring elements are plain `u64` with wrapping arithmetic; the signed view is
//! two's complement (`as i64`). A real `v` is encoded with `f` fractional bits as
//! `round(v * 2^f) mod 2^64`.

/// Number of fractional bits of a fixed-point encoding.
///
/// Serialized as the bare `u32` (`#[serde(transparent)]`), so programs that held
/// a `u32` keep their encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FracBits(pub u32);

impl FracBits {
    /// The project default: 12 fractional bits.
    pub const DEFAULT: FracBits = FracBits(12);

    /// `2^f` as a float.
    pub fn scale(self) -> f64 {
        (2.0f64).powi(self.0 as i32)
    }
}

impl Default for FracBits {
    fn default() -> Self {
        FracBits::DEFAULT
    }
}

/// Encode a real number: `round(v * 2^f)` as a two's-complement ring element.
/// Values beyond the `i64` range saturate (callers validate inputs first).
pub fn encode(v: f64, f: FracBits) -> u64 {
    let scaled = (v * f.scale()).round();
    // `as` saturates on overflow and maps NaN to 0.
    (scaled as i64) as u64
}

/// Decode a ring element with `f` fractional bits into a real number.
pub fn decode(x: u64, f: FracBits) -> f64 {
    (x as i64) as f64 / f.scale()
}

/// Exact arithmetic shift right of the signed view: `floor(x / 2^f)`.
/// This is what a garbled circuit computes (free wiring).
pub fn trunc_exact(x: u64, f: FracBits) -> u64 {
    ((x as i64) >> f.0) as u64
}

/// Local share truncation (SecureML), party 0's half: `x0 >>> f` (logical).
///
/// With `x1` the other share, `trunc_share_p0(x0) + trunc_share_p1(x1)` is
/// `floor(x / 2^f)` plus the borrow `[x0 mod 2^f < (-x1) mod 2^f]`, except when
/// `x0 - (-x1)` wraps around the ring (probability about `|x| / 2^64` for uniform
/// shares). Alone it rounds at random (the borrow is 1 with probability equal to
/// the dropped fraction, so repeated answers reveal the dropped bits); the exact
/// truncation gadget of `blindfold-gc` (`Gadget::TruncMask`) uses these two halves
/// and subtracts the borrow, computed in a garbled circuit.
pub fn trunc_share_p0(x0: u64, f: FracBits) -> u64 {
    x0 >> f.0
}

/// Local share truncation (SecureML), party 1's half: `-((-x1) >>> f)`
/// (see [`trunc_share_p0`]).
pub fn trunc_share_p1(x1: u64, f: FracBits) -> u64 {
    (x1.wrapping_neg() >> f.0).wrapping_neg()
}

/// Signed view of a ring element.
pub fn signed(x: u64) -> i64 {
    x as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_decode_examples() {
        let f = FracBits(12);
        assert_eq!(encode(1.0, f), 4096);
        assert_eq!(encode(-1.0, f), (-4096i64) as u64);
        assert_eq!(decode(encode(0.5, f), f), 0.5);
        assert_eq!(encode(f64::NAN, f), 0);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(v in -1.0e6f64..1.0e6) {
            let f = FracBits(12);
            let back = decode(encode(v, f), f);
            prop_assert!((back - v).abs() <= 0.5 / 4096.0 + 1e-9);
        }

        #[test]
        fn trunc_exact_is_floor(x in any::<i64>(), fb in 0u32..40) {
            let f = FracBits(fb);
            let want = (x as i128).div_euclid(1i128 << fb) as i64;
            prop_assert_eq!(trunc_exact(x as u64, f) as i64, want);
        }

        #[test]
        fn local_truncation_within_one(x in -(1i64<<40)..(1i64<<40), x0 in any::<u64>(), fb in 1u32..20) {
            let f = FracBits(fb);
            let x1 = (x as u64).wrapping_sub(x0);
            let got = trunc_share_p0(x0, f).wrapping_add(trunc_share_p1(x1, f)) as i64;
            let want = trunc_exact(x as u64, f) as i64;
            let mask = (1u64 << fb) - 1;
            let borrow = (x0 & mask) < (x1.wrapping_neg() & mask);
            // Exact up to the borrow; fails only with probability ~2^(42-64) per draw.
            prop_assert_eq!(got, want + borrow as i64, "x0 {} x1 {}", x0, x1);
        }
    }
}
