//! Non-interactive FHE inference (CryptoNets, the SoK's FHE-based solution,
//! TenSEAL): the client encrypts, one server evaluates a polynomial network on
//! ciphertexts with evaluation keys only, the client decrypts.
//!
//! * [`lower`]: the float model to an exact integer program (no truncation),
//!   with worst-case bounds of every value; its `run` is the plaintext
//!   reference every FHE result equals.
//! * [`params`]: BFV degree, CRT plaintext primes and ciphertext moduli chosen
//!   from those bounds and a noise estimate ([`noise`]), at 128-bit security.
//! * [`batch`] and [`latency`]: the two layouts.
//! * [`FheModel`]: a lowered program with its parameters and plan; [`Profile`]:
//!   what a client needs (no weights); [`files`]: keys and ciphertexts on disk
//!   and on the wire.
//!
//! BFV itself is the `fhe` crate 0.1.1 (docs/fhe.md says why).

pub mod batch;
pub mod files;
pub mod keys;
pub mod latency;
pub mod lower;
pub mod noise;
pub mod params;
pub mod service;

use fhe::bfv::{Ciphertext, Encoding};
use fhe_traits::{FheDecoder, FheDecrypter};
pub use keys::{keygen, Contexts, EvalKeys, SecretKeys};
pub use lower::{FheProgram, FheQuant, InputError, LowerError};
use num_bigint::{BigInt, BigUint};
pub use params::{FheParams, Layout, ParamsError};
use serde::{Deserialize, Serialize};

/// Everything that can go wrong in FHE mode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FheError {
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error(transparent)]
    NoParams(#[from] ParamsError),
    #[error("{0}")]
    Params(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("a batch of {got} inputs does not fit: one ciphertext has {slots} slots (and a batch needs at least one input)")]
    Batch { got: usize, slots: usize },
    #[error("{0}")]
    Format(String),
    #[error(
        "these keys or ciphertexts belong to another model, quantization or parameter set ({0})"
    )]
    Mismatch(String),
    #[error("decryption failed: {0} (wrong secret key, or noise exhausted)")]
    Decrypt(String),
    #[error("BFV: {0}")]
    Backend(String),
    #[error("{0}")]
    Io(String),
}

/// A progress callback: `(done, total)` steps.
pub struct Progress<'a>(pub Box<dyn Fn(u64, u64) + Send + Sync + 'a>);

impl<'a> Progress<'a> {
    pub fn none() -> Progress<'a> {
        Progress(Box::new(|_, _| {}))
    }
    pub fn step(&self, done: u64, total: u64) {
        (self.0)(done, total)
    }
}

/// Map `f` over `xs` on every core, keeping order.
pub(crate) fn par_map<T: Sync, U: Send>(
    xs: &[T],
    f: impl Fn(&T) -> Result<U, FheError> + Sync,
) -> Result<Vec<U>, FheError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(xs.len().max(1));
    if threads <= 1 {
        return xs.iter().map(f).collect();
    }
    let chunk = xs.len().div_ceil(threads);
    let f = &f;
    let parts: Vec<Result<Vec<U>, FheError>> = std::thread::scope(|s| {
        let hs: Vec<_> = xs
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Result<Vec<U>, FheError>>()))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(FheError::Backend("a worker thread panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(xs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Squares on the longest path up to value `i`.
fn depth_at(program: &FheProgram, i: usize) -> usize {
    let mut p = program.clone();
    p.output = i;
    p.depth()
}

/// A model ready for FHE: the lowered program, its parameters, the layout's plan.
#[derive(Clone, Debug)]
pub struct FheModel {
    pub program: FheProgram,
    pub params: FheParams,
    /// The latency layout's plan (`None` for the batch layout).
    pub latency: Option<latency::LatencyPlan>,
}

impl FheModel {
    /// Lower, plan and choose parameters.
    pub fn new(
        model: &blindfold_model::ir::Model,
        quant: FheQuant,
        layout: Layout,
    ) -> Result<FheModel, FheError> {
        let program = FheProgram::lower(model, quant)?;
        FheModel::from_program(program, layout)
    }

    pub fn from_program(program: FheProgram, layout: Layout) -> Result<FheModel, FheError> {
        let plan = match layout {
            Layout::Batch => None,
            Layout::Latency => Some(latency::LatencyPlan::new(&program)?),
        };
        let range = program.range_bits();
        let culprit = Self::culprit(&program, plan.as_ref());
        FheModel::choose(program, layout, plan).map_err(|e| match (e, culprit) {
            (FheError::NoParams(ParamsError::NoFit { .. }), Some((layer, op, depth))) => {
                FheError::NoParams(ParamsError::Depth {
                    layer,
                    op,
                    depth,
                    range_bits: range,
                })
            }
            (e, _) => e,
        })
    }

    /// The layer where the noise passes the largest parameters' budget, for
    /// an error that names it (`None` if the noise is not what fails).
    fn culprit(
        program: &FheProgram,
        plan: Option<&latency::LatencyPlan>,
    ) -> Option<(String, String, usize)> {
        let degree = 32768;
        let max_q = params::max_log_q(degree)? as f64;
        let t_bits = (program.range_bits().div_ceil(params::MAX_PRIMES as u32) + 1).max(17);
        let budget = |e: f64| e + t_bits as f64 + params::NOISE_MARGIN_BITS > max_q;
        match plan {
            None => {
                let e = batch::noise_per_node(program, t_bits, degree, 60);
                let i = e.iter().position(|&v| budget(v))?;
                let n = &program.nodes[i];
                Some((n.name.clone(), n.kind.clone(), depth_at(program, i)))
            }
            Some(p) => {
                let e = p.noise_per_step(t_bits, degree, 60)?;
                let i = e.iter().position(|&v| budget(v))?;
                let squares = p.steps[..=i]
                    .iter()
                    .filter(|s| matches!(s, latency::Step::Square { .. }))
                    .count();
                Some((p.names[i].clone(), "layer".into(), squares))
            }
        }
    }

    fn choose(
        program: FheProgram,
        layout: Layout,
        plan: Option<latency::LatencyPlan>,
    ) -> Result<FheModel, FheError> {
        let range = program.range_bits();
        match layout {
            Layout::Batch => {
                let params = params::choose(
                    layout,
                    range,
                    |t, n, mb| Some(batch::noise_estimate(&program, t, n, mb)),
                    // per image: every op costs about n·L·log n and a batch holds n images
                    |n, k, l| (k * l) as f64 * (n as f64).log2(),
                )?;
                Ok(FheModel {
                    program,
                    params,
                    latency: None,
                })
            }
            Layout::Latency => {
                let plan = plan.expect("the latency layout has a plan");
                let params = params::choose(
                    layout,
                    range,
                    |t, n, mb| plan.noise_estimate(&program, t, n, mb),
                    |n, k, l| plan.cost(n, k, l),
                )?;
                Ok(FheModel {
                    program,
                    params,
                    latency: Some(plan),
                })
            }
        }
    }

    pub fn layout(&self) -> Layout {
        self.params.layout
    }

    /// What a client needs to encrypt and decrypt (no weights).
    pub fn profile(&self) -> Profile {
        Profile {
            name: self.program.name.clone(),
            fingerprint: self.program.fingerprint(),
            quant: self.program.quant,
            input_shape: self.program.input_shape.dims().to_vec(),
            input_len: self.program.input_len(),
            output_len: self.program.output_len(),
            output_scale: self.program.output_scale(),
            params: self.params.clone(),
            packing: self.latency.as_ref().map(|p| p.packing()),
            rotations: self
                .latency
                .as_ref()
                .map(|p| p.rotations(self.params.degree))
                .unwrap_or_default(),
        }
    }
}

/// The public side of an FHE deployment: what `keygen`, `encrypt` and
/// `decrypt` need. It holds the architecture's shapes and parameters, the
/// latency layout's input packing (the first layer's connection pattern, not
/// its weights) and the output scale (which reveals the product of the layers'
/// power-of-two weight scales; docs/SECURITY.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub fingerprint: [u8; 16],
    pub quant: FheQuant,
    pub input_shape: Vec<usize>,
    pub input_len: usize,
    pub output_len: usize,
    pub output_scale: f64,
    pub params: FheParams,
    pub packing: Option<latency::InputPacking>,
    pub rotations: Vec<usize>,
}

impl Profile {
    /// Check a profile read from outside (a server, a file) before the client
    /// builds anything from it.
    pub fn validate(&self) -> Result<(), FheError> {
        let bad = |why: &str| Err(FheError::Format(format!("invalid FHE profile: {why}")));
        self.params.validate()?;
        let numel = self
            .input_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(self.input_len) || self.input_len == 0 || self.input_len > 1 << 24 {
            return bad("input shape and length disagree");
        }
        let max_out = match self.params.layout {
            Layout::Batch => 1 << 24,
            Layout::Latency => self.params.degree / 2,
        };
        if self.output_len == 0 || self.output_len > max_out {
            return bad("output length");
        }
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return bad("output scale");
        }
        let (lo, hi) = self.quant.input_range;
        let range_ok = lo.is_finite() && hi.is_finite() && lo <= hi;
        if !range_ok || !(1..=16).contains(&self.quant.input_bits) {
            return bad("quantization");
        }
        let row = self.params.degree / 2;
        if self.rotations.iter().any(|&r| r == 0 || r >= row) || self.rotations.len() > 4096 {
            return bad("rotation amounts");
        }
        match (&self.packing, self.params.layout) {
            (None, Layout::Batch) => Ok(()),
            (Some(latency::InputPacking::Plain { period }), Layout::Latency) => {
                if !period.is_power_of_two() || *period > row || *period < self.input_len {
                    return bad("input packing period");
                }
                Ok(())
            }
            (
                Some(latency::InputPacking::Im2col {
                    period,
                    blocks,
                    rows,
                    cols,
                }),
                Layout::Latency,
            ) => {
                let span = period.checked_mul(*blocks);
                if !period.is_power_of_two()
                    || !blocks.is_power_of_two()
                    || span.is_none_or(|s| s > row)
                    || rows > period
                    || cols.len() != *rows
                    || cols.iter().any(|c| {
                        c.len() > 1 << 16 || c.iter().any(|&i| i as usize >= self.input_len)
                    })
                {
                    return bad("input packing");
                }
                Ok(())
            }
            _ => bad("layout and packing disagree"),
        }
    }

    /// Encode one float input (checked against length and input range).
    pub fn encode_input(&self, x: &[f32]) -> Result<Vec<i64>, InputError> {
        self.quant.encode(self.input_len, x)
    }
    pub fn decode(&self, y: &[i128]) -> Vec<f64> {
        y.iter().map(|&v| v as f64 / self.output_scale).collect()
    }
}

/// Decrypt residues per prime and combine them (CRT) into centred integers.
/// `cts[prime][i]`; `slot_of(i)` lists `(output index, slot)` pairs read from
/// ciphertext `i`.
pub fn decrypt_crt(
    ctx: &Contexts,
    sk: &SecretKeys,
    cts: &[Vec<Ciphertext>],
    reads: &[(usize, usize, usize)],
    outputs: usize,
) -> Result<Vec<i128>, FheError> {
    if cts.len() != ctx.primes() || sk.keys.len() != ctx.primes() {
        return Err(FheError::Format(format!(
            "{} prime(s) of ciphertexts, the keys have {}",
            cts.len(),
            ctx.primes()
        )));
    }
    let mut residues = vec![vec![0u64; outputs]; ctx.primes()];
    for (p, cs) in cts.iter().enumerate() {
        let mut slots: Vec<Option<Vec<u64>>> = vec![None; cs.len()];
        for &(out, ct, slot) in reads {
            let c = cs
                .get(ct)
                .ok_or_else(|| FheError::Format(format!("missing result ciphertext {ct}")))?;
            if slots[ct].is_none() {
                let pt = sk.keys[p]
                    .try_decrypt(c)
                    .map_err(|e| FheError::Decrypt(e.to_string()))?;
                slots[ct] = Some(
                    Vec::<u64>::try_decode(&pt, Encoding::simd())
                        .map_err(|e| FheError::Decrypt(e.to_string()))?,
                );
            }
            residues[p][out] = *slots[ct]
                .as_ref()
                .expect("decoded")
                .get(slot)
                .ok_or_else(|| FheError::Format(format!("slot {slot} beyond the ciphertext")))?;
        }
    }
    Ok((0..outputs)
        .map(|o| {
            crt_centred(
                &ctx.params.plaintext,
                &residues.iter().map(|r| r[o]).collect::<Vec<_>>(),
            )
        })
        .collect())
}

/// The centred integer `x` with `x = r_i mod t_i` (`|x| < Π t / 2`), saturated
/// to `i128`.
pub fn crt_centred(moduli: &[u64], residues: &[u64]) -> i128 {
    let mut x = BigUint::from(0u32);
    let mut m = BigUint::from(1u32);
    for (&t, &r) in moduli.iter().zip(residues) {
        // x' = x + m · ((r - x) · m^-1 mod t)
        let tb = BigUint::from(t);
        let xm = (&x % &tb).to_u64_digits().first().copied().unwrap_or(0);
        let mm = (&m % &tb).to_u64_digits().first().copied().unwrap_or(0);
        let inv = mod_inv(mm, t);
        let diff = ((r as u128 + t as u128 - xm as u128) % t as u128) as u64;
        let k = (diff as u128 * inv as u128 % t as u128) as u64;
        x += &m * BigUint::from(k);
        m *= tb;
    }
    let half = &m >> 1u32;
    let v = if x > half {
        BigInt::from(x) - BigInt::from(m)
    } else {
        BigInt::from(x)
    };
    i128::try_from(v).unwrap_or(i128::MAX)
}

fn mod_inv(a: u64, m: u64) -> u64 {
    // m is prime
    let mut r: u128 = 1;
    let mut b = a as u128 % m as u128;
    let mut e = m - 2;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m as u128;
        }
        b = b * b % m as u128;
        e >>= 1;
    }
    r as u64
}

/// Noise budget left (bits) in the tightest of `cts`: `log2(q/t) - 1 - noise`,
/// measured with the secret key (a diagnostic for the client and the tests).
pub fn noise_budget(
    ctx: &Contexts,
    sk: &SecretKeys,
    cts: &[Vec<Ciphertext>],
) -> Result<i64, FheError> {
    let mut best = i64::MAX;
    for (p, cs) in cts.iter().enumerate() {
        let t_bits = (ctx.params.plaintext[p] as f64).log2();
        for c in cs {
            let q_bits: f64 = c[0].ctx().moduli().iter().map(|&m| (m as f64).log2()).sum();
            // SAFETY: variable time in the noise only, run by the key holder.
            let e = unsafe { sk.keys[p].measure_noise(c) }
                .map_err(|e| FheError::Decrypt(e.to_string()))?;
            best = best.min((q_bits - t_bits - 1.0 - e as f64).floor() as i64);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_recovers_signed_values() {
        let ms = [1_073_692_673u64, 1_073_643_521, 1_073_479_681];
        for v in [
            0i128,
            1,
            -1,
            123_456_789_012_345,
            -98_765_432_109_876_543_210,
        ] {
            let rs: Vec<u64> = ms.iter().map(|&t| v.rem_euclid(t as i128) as u64).collect();
            assert_eq!(crt_centred(&ms, &rs), v);
        }
    }
}
