//! Adapter from our `rand_core` 0.6 generators (e.g. [`crate::Prg`]) to the
//! `rand_core` 0.9 traits that `fhe-math` and `fhe` take, so that every random
//! choice they make with a passed generator flows from the caller's.

use rand_core::{CryptoRng, RngCore};

/// Borrow a `rand_core` 0.6 CSPRNG as a `rand_core` 0.9 one.
pub struct Rng09<'a, R: RngCore + CryptoRng>(pub &'a mut R);

impl<R: RngCore + CryptoRng> rand_core_09::RngCore for Rng09<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl<R: RngCore + CryptoRng> rand_core_09::CryptoRng for Rng09<'_, R> {}
