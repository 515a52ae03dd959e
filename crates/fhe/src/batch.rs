//! Batch layout (CryptoNets): slot `b` of every ciphertext belongs to input `b`,
//! one ciphertext per input element. A linear layer is then an integer matrix
//! product over the ciphertexts' coefficients (`y_j = Σ_i w_ji · c_i + Δ·b_j`,
//! computed directly on the RNS coefficient vectors with one reduction per
//! output coefficient), a square a ciphertext square. Squares stay
//! unrelinearized through the next linear layer (which is linear in all three
//! components), so only that layer's outputs are relinearized, before the next
//! square or the output.

use crate::keys::{he, Contexts, EvalKeys, Rng09, SecretKeys};
use crate::lower::{FheOp, FheProgram, Sparse};
use crate::{noise, par_map, FheError, Progress};
use fhe::bfv::{Ciphertext, Encoding, Plaintext};
use fhe_math::rq::traits::TryConvertFrom;
use fhe_math::rq::{Poly, Representation};
use fhe_traits::{FheEncoder, FheEncrypter};
use ndarray::Array2;
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;

/// Noise estimate (bits) of the batch evaluation at the output.
pub fn noise_estimate(prog: &FheProgram, t_bits: u32, degree: usize, mod_bits: u32) -> f64 {
    let floor = noise::key_switch_floor(mod_bits);
    noise_per_node(prog, t_bits, degree, mod_bits)[prog.output].max(floor)
}

/// Noise estimate (bits) of every value of the program.
pub fn noise_per_node(prog: &FheProgram, t_bits: u32, degree: usize, mod_bits: u32) -> Vec<f64> {
    let floor = noise::key_switch_floor(mod_bits);
    let from_square = feeds_from_square(prog);
    let mut e = vec![0f64; prog.nodes.len()];
    for (i, n) in prog.nodes.iter().enumerate() {
        e[i] = match &n.op {
            FheOp::Input => noise::FRESH,
            FheOp::Linear { terms, .. } => {
                let worst = terms
                    .iter()
                    .map(|(s, a)| noise::scalar_linear(e[*s], a.max_row_l1(), 1))
                    .fold(0f64, f64::max);
                noise::sum(worst, terms.len())
            }
            FheOp::Square { input } => {
                // the input is relinearized first when it came out of a square
                let ein = if from_square[*input] {
                    e[*input].max(floor)
                } else {
                    e[*input]
                };
                noise::square(ein, t_bits, degree)
            }
        };
    }
    e
}

/// Per value: is it (a linear function of) a square's unrelinearized output?
fn feeds_from_square(prog: &FheProgram) -> Vec<bool> {
    let mut out: Vec<bool> = Vec::with_capacity(prog.nodes.len());
    for n in &prog.nodes {
        let v = match &n.op {
            FheOp::Input => false,
            FheOp::Square { .. } => true,
            FheOp::Linear { terms, .. } => terms.iter().any(|(s, _)| out[*s]),
        };
        out.push(v);
    }
    out
}

/// Encrypt a batch (at most `n` inputs) under the secret keys: per prime, one
/// ciphertext per input element.
pub fn encrypt<R: RngCore + CryptoRng>(
    ctx: &Contexts,
    sk: &SecretKeys,
    inputs: &[Vec<i64>],
    input_len: usize,
    rng: &mut R,
) -> Result<Vec<Vec<Ciphertext>>, FheError> {
    let slots = ctx.params.degree;
    if inputs.is_empty() || inputs.len() > slots {
        return Err(FheError::Batch {
            got: inputs.len(),
            slots,
        });
    }
    let mut r = Rng09(rng);
    let mut out = vec![];
    for (p, par) in ctx.bfv.iter().enumerate() {
        let t = ctx.params.plaintext[p];
        let mut cts = Vec::with_capacity(input_len);
        for i in 0..input_len {
            let mut v = vec![0u64; slots];
            for (b, x) in inputs.iter().enumerate() {
                v[b] = residue(x[i] as i128, t);
            }
            let pt = Plaintext::try_encode(&v, Encoding::simd(), par).map_err(he)?;
            cts.push(sk.keys[p].try_encrypt(&pt, &mut r).map_err(he)?);
        }
        out.push(cts);
    }
    Ok(out)
}

/// `v mod t` in `(-t/2, t/2]`.
pub(crate) fn centred(v: i128, t: u64) -> i128 {
    let r = v.rem_euclid(t as i128);
    if r > t as i128 / 2 {
        r - t as i128
    } else {
        r
    }
}

pub(crate) fn residue(v: i128, t: u64) -> u64 {
    v.rem_euclid(t as i128) as u64
}

/// Evaluate the program on encrypted batches (`cts[prime][element]`); returns
/// `[prime][output element]`, relinearized and switched down to the smallest
/// modulus that keeps the result decryptable.
pub fn evaluate(
    ctx: &Contexts,
    ek: &EvalKeys,
    prog: &FheProgram,
    cts: Vec<Vec<Ciphertext>>,
    progress: &Progress,
) -> Result<Vec<Vec<Ciphertext>>, FheError> {
    ctx.expect_primes(cts.len())?;
    let total = (ctx.primes() * prog.nodes.len()) as u64;
    let mut out = vec![];
    for (p, input) in cts.into_iter().enumerate() {
        if input.len() != prog.input_len() {
            return Err(FheError::Format(format!(
                "{} input ciphertexts, the model takes {} elements",
                input.len(),
                prog.input_len()
            )));
        }
        let par = &ctx.bfv[p];
        let t = ctx.params.plaintext[p];
        let delta = delta_rows(par)?;
        // last use of every value, to free it early
        let mut last = vec![0usize; prog.nodes.len()];
        for (i, n) in prog.nodes.iter().enumerate() {
            match &n.op {
                FheOp::Input => {}
                FheOp::Square { input } => last[*input] = i,
                FheOp::Linear { terms, .. } => terms.iter().for_each(|(s, _)| last[*s] = i),
            }
        }
        last[prog.output] = usize::MAX;
        let mut vals: Vec<Option<Vec<Ciphertext>>> = vec![None; prog.nodes.len()];
        let mut input = Some(input);
        for (i, n) in prog.nodes.iter().enumerate() {
            let v = match &n.op {
                FheOp::Input => input.take().expect("one input node"),
                FheOp::Square { input } => {
                    let xs = vals[*input].as_ref().expect("computed");
                    par_map(xs, |c| {
                        let mut c = c.clone();
                        if c.len() > 2 {
                            ek.relin[p].relinearizes(&mut c).map_err(he)?;
                        }
                        Ok(&c * &c)
                    })?
                }
                FheOp::Linear { terms, bias } => {
                    // all terms need the same number of components: a
                    // two-component input gets a zero third one (exact, no
                    // key switching), so squares stay unrelinearized
                    let width = terms
                        .iter()
                        .map(|(s, _)| vals[*s].as_ref().expect("computed")[0].len())
                        .max()
                        .unwrap_or(2);
                    let mut owned: Vec<Vec<Ciphertext>> = vec![];
                    for (s, _) in terms {
                        let xs = vals[*s].as_ref().expect("computed");
                        if xs[0].len() < width {
                            owned.push(
                                xs.iter()
                                    .map(|c| widen(c, width, par))
                                    .collect::<Result<_, _>>()?,
                            );
                        }
                    }
                    let mut o = owned.iter();
                    let ins: Vec<&[Ciphertext]> = terms
                        .iter()
                        .map(|(s, _)| {
                            let xs = vals[*s].as_ref().expect("computed");
                            if xs[0].len() < width {
                                o.next().expect("widened").as_slice()
                            } else {
                                xs.as_slice()
                            }
                        })
                        .collect();
                    let mats: Vec<&Sparse> = terms.iter().map(|(_, a)| a).collect();
                    linear(par, &ins, &mats, bias, t, &delta)?
                }
            };
            vals[i] = Some(v);
            for (j, l) in last.iter().enumerate().take(i + 1) {
                if *l == i {
                    vals[j] = None;
                }
            }
            progress.step((p * prog.nodes.len() + i + 1) as u64, total);
        }
        let mut y = vals[prog.output].take().expect("output computed");
        let level = download_level(ctx, p);
        y = par_map(&y, |c| {
            let mut c = c.clone();
            if c.len() > 2 {
                ek.relin[p].relinearizes(&mut c).map_err(he)?;
            }
            c.switch_to_level(level).map_err(he)?;
            Ok(c)
        })?;
        out.push(y);
    }
    Ok(out)
}

/// `c` with zero components appended up to `width`.
fn widen(
    c: &Ciphertext,
    width: usize,
    par: &Arc<fhe::bfv::BfvParameters>,
) -> Result<Ciphertext, FheError> {
    let mut polys: Vec<Poly> = c.iter().cloned().collect();
    while polys.len() < width {
        polys.push(Poly::zero(c[0].ctx(), Representation::Ntt));
    }
    Ciphertext::new(polys, par).map_err(he)
}

/// The level whose modulus still holds `t` and the switched noise with room.
pub(crate) fn download_level(ctx: &Contexts, p: usize) -> usize {
    let t_bits = 64 - ctx.params.plaintext[p].leading_zeros();
    let bits: Vec<u32> = ctx
        .params
        .moduli
        .iter()
        .map(|m| 64 - m.leading_zeros())
        .collect();
    // keep moduli until the kept bits hold t + 30 bits of switching noise and margin
    let mut kept = 0;
    for (level, b) in bits.iter().enumerate() {
        kept += b;
        if kept >= t_bits + 40 {
            return bits.len() - 1 - level;
        }
    }
    0
}

/// `Δ mod q_l` of every modulus at level 0 (the scaling of a plaintext
/// constant), read from an encoding of 1.
fn delta_rows(par: &Arc<fhe::bfv::BfvParameters>) -> Result<Vec<u64>, FheError> {
    let ctx0 = par.context_at_level(0).map_err(he)?;
    let zero = Poly::zero(ctx0, Representation::Ntt);
    let mut c = Ciphertext::new(vec![zero.clone(), zero], par).map_err(he)?;
    let one = Plaintext::try_encode(&[1u64], Encoding::poly(), par).map_err(he)?;
    c += &one;
    let coeffs = c[0].coefficients();
    Ok((0..coeffs.nrows()).map(|l| coeffs[[l, 0]]).collect())
}

/// `y_r = Σ_terms Σ_(c, w) w · x_c + Δ · (bias_r mod t)` on the coefficients.
fn linear(
    par: &Arc<fhe::bfv::BfvParameters>,
    ins: &[&[Ciphertext]],
    mats: &[&Sparse],
    bias: &[i128],
    t: u64,
    delta: &[u64],
) -> Result<Vec<Ciphertext>, FheError> {
    let width = ins[0][0].len();
    let ctx = ins[0][0][0].ctx().clone();
    let moduli = ctx.moduli_operators().to_vec();
    let (l, n) = (moduli.len(), par.degree());
    // flat views: per input ciphertext, `width` polys of `l × n` coefficients
    let flats: Vec<Vec<Vec<&[u64]>>> = ins
        .iter()
        .map(|xs| {
            xs.iter()
                .map(|c| {
                    c.iter()
                        .map(|p| p.coefficients().to_slice().expect("standard layout"))
                        .collect()
                })
                .collect()
        })
        .collect();
    let rows: Vec<usize> = (0..bias.len()).collect();
    par_map(&rows, |&r| {
        let mut polys = Vec::with_capacity(width);
        #[allow(clippy::needless_range_loop)]
        for k in 0..width {
            // Each coefficient x < 2^62 splits into 31-bit halves; |w| <= 2^31
            // (weights below 2^15, alignment factors at most 2^31), so a
            // partial product is below 2^62 and the sums stay exact in wrapping
            // u64 (two's complement) while their weights sum to at most 2^31:
            // plain 32 x 32 -> 64-bit multiplies the compiler vectorises.
            const M31: u64 = (1 << 31) - 1;
            let mut lo = vec![0u64; l * n];
            let mut hi = vec![0u64; l * n];
            let mut mass = 0u64;
            let mut acc = vec![0i128; l * n];
            let flush = |lo: &mut [u64], hi: &mut [u64], acc: &mut [i128]| {
                for ((a, l), h) in acc.iter_mut().zip(lo.iter_mut()).zip(hi.iter_mut()) {
                    *a += ((*h as i64 as i128) << 31) + *l as i64 as i128;
                    *l = 0;
                    *h = 0;
                }
            };
            for (ti, a) in mats.iter().enumerate() {
                for (col, w) in a.row(r) {
                    if w == 0 {
                        continue;
                    }
                    let x = flats[ti][col][k];
                    let wa = w.unsigned_abs();
                    // partial sums stay below 2^62 while the weights added
                    // since the last flush sum to at most 2^31
                    if mass + wa > 1 << 31 {
                        flush(&mut lo, &mut hi, &mut acc);
                        mass = 0;
                    }
                    mass += wa;
                    if w > 0 {
                        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(x.iter()) {
                            *l = l.wrapping_add(wa * (v & M31));
                            *h = h.wrapping_add(wa * (v >> 31));
                        }
                    } else {
                        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(x.iter()) {
                            *l = l.wrapping_sub(wa * (v & M31));
                            *h = h.wrapping_sub(wa * (v >> 31));
                        }
                    }
                }
            }
            flush(&mut lo, &mut hi, &mut acc);
            let mut coeffs = vec![0u64; l * n];
            for (li, m) in moduli.iter().enumerate() {
                let q = **m as i128;
                // Δ·b with b centred mod t: Δ·t is not 0 mod q (it is -(q mod t)),
                // so a residue in [t/2, t) would add an error as large as t
                let add = if k == 0 {
                    let c = centred(bias[r], t);
                    let v = m.mul((c.unsigned_abs() as u64) % **m, delta[li]) as i128;
                    if c < 0 {
                        -v
                    } else {
                        v
                    }
                } else {
                    0
                };
                // |acc| <= q · Σ|w| < q · 2^62 (the lowering bounds every row's
                // Σ|w|), so adding q · 2^64 makes it positive; reduce its halves.
                let offset = q << 64;
                let r64 = m.add(m.reduce(u64::MAX), 1);
                for j in 0..n {
                    let v = (acc[li * n + j] + add + offset) as u128;
                    let (hi, lo) = ((v >> 64) as u64, v as u64);
                    coeffs[li * n + j] = m.add(m.mul(m.reduce(hi), r64), m.reduce(lo));
                }
            }
            let arr = Array2::from_shape_vec((l, n), coeffs)
                .map_err(|e| FheError::Backend(e.to_string()))?;
            polys.push(
                Poly::try_convert_from(arr, &ctx, false, Representation::Ntt)
                    .map_err(|e| FheError::Backend(e.to_string()))?,
            );
        }
        Ciphertext::new(polys, par).map_err(he)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{FheNode, FheQuant};
    use crate::params::{ciphertext_moduli, plaintext_primes, FheParams, Layout};
    use blindfold_core::{Prg, Shape};

    fn node(op: FheOp, len: usize) -> FheNode {
        FheNode {
            name: "n".into(),
            kind: "k".into(),
            op,
            len,
            scale: 1.0,
            lo: vec![-1000; len],
            hi: vec![1000; len],
        }
    }

    /// A hand-built program: y = A x + b, then z = y², then w = B z + c.
    #[test]
    fn linear_and_square_on_coefficients_match_the_reference() {
        let a = Sparse::from_rows(3, vec![vec![(0, 2), (1, -3)], vec![(2, 5)]]);
        let b = Sparse::from_rows(2, vec![vec![(0, 1), (1, -1)]]);
        let prog = FheProgram {
            name: "t".into(),
            quant: FheQuant::default(),
            input_shape: Shape::new(vec![3]),
            output_shape: Shape::new(vec![1]),
            nodes: vec![
                node(FheOp::Input, 3),
                node(
                    FheOp::Linear {
                        terms: vec![(0, a)],
                        bias: vec![7, -11],
                    },
                    2,
                ),
                node(FheOp::Square { input: 1 }, 2),
                node(
                    FheOp::Linear {
                        terms: vec![(2, b)],
                        bias: vec![-5],
                    },
                    1,
                ),
            ],
            output: 3,
            final_activation: None,
        };
        let degree = 8192;
        let params = FheParams {
            layout: Layout::Batch,
            degree,
            plaintext: plaintext_primes(30, degree, 2).unwrap(),
            moduli: ciphertext_moduli(&[50, 50, 50], degree).unwrap(),
            noise_estimate: 0,
        };
        let ctx = Contexts::new(&params).unwrap();
        let mut rng = Prg::from_seed([1; 16]);
        let (sk, ek) = crate::keygen(&ctx, &[], &mut rng).unwrap();
        let xs = vec![vec![1i64, 2, 3], vec![-4, 0, 9], vec![100, -100, 50]];
        let cts = encrypt(&ctx, &sk, &xs, 3, &mut rng).unwrap();
        for upto in [1usize, 2, 3] {
            let mut p = prog.clone();
            p.output = upto;
            let out = evaluate(&ctx, &ek, &p, cts.clone(), &Progress::none()).unwrap();
            for (bi, x) in xs.iter().enumerate() {
                let want = p.run(x);
                let reads: Vec<_> = (0..want.len()).map(|o| (o, o, bi)).collect();
                let got = crate::decrypt_crt(&ctx, &sk, &out, &reads, want.len()).unwrap();
                assert_eq!(got, want, "node {upto}, input {bi}");
            }
        }
    }
}
