//! The client's side: share an input, reconstruct an output. I/O-free.
//!
//! ```text
//!  client                         P0                          P1
//!  x = enc(input)
//!  seed ← 16 random bytes   ── seed ─▶ x0 = PRG(seed)
//!  x1 = x − PRG(seed)       ───────────────────── x1 ─────────▶
//!                           ◀── y0 ──                 ◀── y1 ──
//!  y = y0 + y1, decoded at the output scale
//! ```
//! Each server sees a uniform value (a seed, or `x` masked by the seed's
//! expansion); neither learns anything about `x` alone.

use blindfold_core::{Prg, Seed};

/// Expand P0's input share from the client's seed.
pub fn share0_from_seed(seed: Seed, len: usize) -> Vec<u64> {
    Prg::from_seed(seed).gen_u64s(len)
}

/// Split an encoded input: the seed for P0 and the explicit share for P1.
pub fn share_input(x: &[u64], rng: &mut Prg) -> (Seed, Vec<u64>) {
    let seed = rng.gen_seed();
    let x0 = share0_from_seed(seed, x.len());
    let x1 = x.iter().zip(&x0).map(|(a, b)| a.wrapping_sub(*b)).collect();
    (seed, x1)
}

/// Add the two output shares.
pub fn reconstruct(y0: &[u64], y1: &[u64]) -> Vec<u64> {
    y0.iter().zip(y1).map(|(a, b)| a.wrapping_add(*b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_reconstruct() {
        let mut rng = Prg::from_seed([3; 16]);
        let x: Vec<u64> = (0..50).map(|i| i * 77).collect();
        let (seed, x1) = share_input(&x, &mut rng);
        let x0 = share0_from_seed(seed, x.len());
        assert_eq!(reconstruct(&x0, &x1), x);
        assert_ne!(x1, x);
    }
}
