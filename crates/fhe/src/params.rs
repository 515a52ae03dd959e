//! Automatic BFV parameters: ring degree, plaintext moduli (CRT) and ciphertext
//! moduli, from the program's value bounds and an estimate of its noise growth.
//!
//! * **Range.** Every value of the program lies in `[-B, B]` (exact interval
//!   bounds, [`crate::lower`]). The product `T` of the plaintext primes must
//!   exceed `2B + 1`; with `k` primes each has about `bits(2B+1)/k` bits. Each is
//!   `= 1 mod 2n` (SIMD slots), and the evaluations per prime are independent
//!   (CRT, as CryptoNets did), run in parallel.
//! * **Noise.** [`crate::noise`] walks the lowered program with the layout's
//!   operations and bounds the noise bits; the ciphertext modulus must hold noise
//!   plus `log t` plus a safety margin. The estimate's constants were measured
//!   on this implementation; tests measure the real noise left on every
//!   zoo network and fail if it runs out.
//! * **Security.** `log q` at most the HomomorphicEncryption.org standard's
//!   bound for 128-bit classical security (`n` = 4096: 109, 8192: 218, 16384:
//!   438, 32768: 881 bits; the `fhe` crate's secret is a centred binomial of
//!   variance 10, the standard's "error" distribution row, same bounds).
//! * **Cost.** Among feasible `(n, k)` the cheapest by a cost model per layout
//!   (batch: cost per image; latency: cost of one query).

use serde::{Deserialize, Serialize};

/// How inputs are packed into slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// One input per slot, one ciphertext per input element (CryptoNets).
    Batch,
    /// One input packed into the slots of a few ciphertexts, rotations for
    /// the linear layers (LoLa style).
    Latency,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Batch => "batch",
            Layout::Latency => "latency",
        }
    }
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "batch" => Some(Layout::Batch),
            "latency" => Some(Layout::Latency),
            _ => None,
        }
    }
}

/// 128-bit classical security bound on `log2 q` (HomomorphicEncryption.org
/// standard, November 2018, Table 1).
pub fn max_log_q(degree: usize) -> Option<u32> {
    match degree {
        1024 => Some(27),
        2048 => Some(54),
        4096 => Some(109),
        8192 => Some(218),
        16384 => Some(438),
        32768 => Some(881),
        _ => None,
    }
}

/// Safety margin (bits) between the noise estimate and the decryption bound.
pub const NOISE_MARGIN_BITS: f64 = 16.0;
/// Largest ciphertext modulus the `fhe` crate accepts.
pub const MAX_MODULUS_BITS: u32 = 62;
/// Largest plaintext prime used (the `fhe` crate keeps `t` below 2^62).
pub const MAX_PLAINTEXT_BITS: u32 = 60;
/// Most CRT primes tried.
pub const MAX_PRIMES: usize = 8;

/// Chosen parameters of one deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FheParams {
    pub layout: Layout,
    pub degree: usize,
    /// CRT plaintext primes, each `= 1 mod 2n`.
    pub plaintext: Vec<u64>,
    /// Ciphertext moduli (each larger than every plaintext prime).
    pub moduli: Vec<u64>,
    /// Estimated noise bits at the output (for reports).
    pub noise_estimate: u32,
}

impl FheParams {
    pub fn log_q(&self) -> u32 {
        self.moduli.iter().map(|m| 64 - m.leading_zeros()).sum()
    }
    pub fn plaintext_bits(&self) -> Vec<u32> {
        self.plaintext
            .iter()
            .map(|t| 64 - t.leading_zeros())
            .collect()
    }
    /// Inputs one batch holds (batch layout: every slot).
    pub fn slots(&self) -> usize {
        self.degree
    }
    /// Check parameters read from outside (a key or profile file) before
    /// anything is built from them: a listed degree, at most [`MAX_PRIMES`]
    /// distinct plaintext primes `= 1 mod 2n`, 2 to 16 distinct ciphertext
    /// moduli (prime, `= 1 mod 2n`, at most 62 bits, each above every
    /// plaintext prime) within the 128-bit bound on `log q`.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let bad = |why: String| {
            Err(ParamsError::Layout(format!(
                "invalid FHE parameters: {why}"
            )))
        };
        let Some(max_q) = max_log_q(self.degree).filter(|_| self.degree >= 4096) else {
            return bad(format!(
                "degree {} (one of 4096, 8192, 16384, 32768)",
                self.degree
            ));
        };
        let two_n = 2 * self.degree as u64;
        let prime = |p: u64| p > 2 && is_prime(p);
        if self.plaintext.is_empty() || self.plaintext.len() > MAX_PRIMES {
            return bad(format!(
                "{} plaintext primes (1 to {MAX_PRIMES})",
                self.plaintext.len()
            ));
        }
        if !(2..=16).contains(&self.moduli.len()) {
            return bad(format!("{} ciphertext moduli (2 to 16)", self.moduli.len()));
        }
        let t_max = *self.plaintext.iter().max().expect("non-empty");
        for (i, &t) in self.plaintext.iter().enumerate() {
            if t >= 1 << MAX_PLAINTEXT_BITS
                || t % two_n != 1
                || !prime(t)
                || self.plaintext[..i].contains(&t)
            {
                return bad(format!("plaintext modulus {t}"));
            }
        }
        for (i, &q) in self.moduli.iter().enumerate() {
            if q >= 1 << MAX_MODULUS_BITS
                || q <= t_max
                || q % two_n != 1
                || !prime(q)
                || self.moduli[..i].contains(&q)
            {
                return bad(format!("ciphertext modulus {q}"));
            }
        }
        if self.log_q() > max_q {
            return bad(format!(
                "log q {} above the 128-bit bound {max_q} for n = {}",
                self.log_q(),
                self.degree
            ));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "BFV n = {}, log q = {} ({} moduli), {} plaintext prime(s) of {:?} bits, {} layout",
            self.degree,
            self.log_q(),
            self.moduli.len(),
            self.plaintext.len(),
            self.plaintext_bits(),
            self.layout.name()
        )
    }
}

/// Why no parameters fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    #[error("no BFV parameters at 128-bit security fit this program in the {layout} layout: it needs {range_bits}-bit plaintexts and its noise ({detail}); lower --weight-bits / --input-bits or remove a square")]
    NoFit {
        layout: &'static str,
        range_bits: u32,
        detail: String,
    },
    #[error("layer {layer} ({op}): the noise of {depth} square(s) outgrows the largest ciphertext modulus at 128-bit security (n = 32768, log q <= 881 bits) with {range_bits}-bit plaintexts; remove a square or lower --weight-bits / --input-bits")]
    Depth {
        layer: String,
        op: String,
        depth: usize,
        range_bits: u32,
    },
    #[error("{0}")]
    Layout(String),
}

/// Deterministic Miller-Rabin for `u64` (the first twelve prime bases suffice).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for &p in &BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let pow = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, b);
            }
            b = mul(b, b);
            e >>= 1;
        }
        r
    };
    let (mut d, mut s) = (n - 1, 0);
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    'bases: for &a in &BASES {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// `k` distinct primes of `bits` bits, `= 1 mod 2n`, descending from `2^bits`.
pub fn plaintext_primes(bits: u32, degree: usize, k: usize) -> Option<Vec<u64>> {
    let mut out = vec![];
    let mut upper = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    while out.len() < k {
        let p = fhe_math::zq::primes::generate_prime(bits as usize, 2 * degree as u64, upper)?;
        out.push(p);
        upper = p - 1;
    }
    Some(out)
}

/// Ciphertext moduli sizes for a total of at least `log_q` bits, each larger
/// than `min_bits` and at most 62; at least two (key switching needs them).
pub fn moduli_sizes(log_q: u32, min_bits: u32) -> Option<Vec<usize>> {
    let count = log_q.div_ceil(MAX_MODULUS_BITS - 2).max(2);
    let each = log_q.div_ceil(count).max(min_bits + 1);
    if each > MAX_MODULUS_BITS {
        return None;
    }
    Some(vec![each as usize; count as usize])
}

/// One candidate: degree, primes, their bits, the noise estimate.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub degree: usize,
    pub primes: usize,
    pub t_bits: u32,
    pub log_q: u32,
    /// The moduli sizes whose noise and cost were estimated.
    pub sizes: Vec<usize>,
    pub noise: f64,
    pub cost: f64,
}

/// Choose parameters: `range_bits` of plaintext needed, `noise(t_bits, degree,
/// max_modulus_bits)` the layout's estimate (None where the layout cannot place
/// the program at that degree), `cost(degree, primes, moduli)`.
pub fn choose(
    layout: Layout,
    range_bits: u32,
    noise: impl Fn(u32, usize, u32) -> Option<f64>,
    cost: impl Fn(usize, usize, usize) -> f64,
) -> Result<FheParams, ParamsError> {
    let mut best: Option<Candidate> = None;
    let mut why = vec![];
    for degree in [4096usize, 8192, 16384, 32768] {
        let max_q = max_log_q(degree).expect("listed degree");
        for k in 1..=MAX_PRIMES {
            // bits per prime so that the product exceeds 2B + 1
            let t_bits = range_bits.div_ceil(k as u32) + 1;
            let min_t = (2 * degree as u64).ilog2() + 2;
            let t_bits = t_bits.max(min_t);
            if t_bits > MAX_PLAINTEXT_BITS || plaintext_primes(t_bits, degree, k).is_none() {
                continue;
            }
            // first estimate with 60-bit moduli, then with the chosen sizes
            let Some(mut e) = noise(t_bits, degree, MAX_MODULUS_BITS - 2) else {
                why.push(format!(
                    "n = {degree}: values do not fit one ciphertext row"
                ));
                break;
            };
            let mut need = (e + t_bits as f64 + NOISE_MARGIN_BITS).ceil() as u32;
            let Some(mut sizes) = moduli_sizes(need, t_bits) else {
                continue;
            };
            if let Some(e2) = noise(t_bits, degree, sizes[0] as u32) {
                e = e2;
                need = (e + t_bits as f64 + NOISE_MARGIN_BITS).ceil() as u32;
                match moduli_sizes(need, t_bits) {
                    Some(s) => sizes = s,
                    None => continue,
                }
            }
            let log_q: u32 = sizes.iter().map(|&s| s as u32).sum();
            if log_q > max_q {
                why.push(format!(
                    "n = {degree}, {k} x {t_bits}-bit primes: needs log q {log_q} > {max_q}"
                ));
                continue;
            }
            let c = cost(degree, k, sizes.len());
            if best.as_ref().is_none_or(|b| c < b.cost) {
                best = Some(Candidate {
                    degree,
                    primes: k,
                    t_bits,
                    log_q,
                    sizes: sizes.clone(),
                    noise: e,
                    cost: c,
                });
            }
        }
    }
    let Some(b) = best else {
        why.truncate(4);
        return Err(ParamsError::NoFit {
            layout: layout.name(),
            range_bits,
            detail: why.join("; "),
        });
    };
    let plaintext = plaintext_primes(b.t_bits, b.degree, b.primes).ok_or_else(|| {
        ParamsError::Layout(format!(
            "not enough {}-bit primes = 1 mod {}",
            b.t_bits,
            2 * b.degree
        ))
    })?;
    let moduli = ciphertext_moduli(&b.sizes, b.degree)
        .ok_or_else(|| ParamsError::Layout("not enough NTT-friendly ciphertext primes".into()))?;
    Ok(FheParams {
        layout,
        degree: b.degree,
        plaintext,
        moduli,
        noise_estimate: b.noise.ceil() as u32,
    })
}

/// Distinct NTT-friendly primes of the given sizes (descending from `2^size`).
pub fn ciphertext_moduli(sizes: &[usize], degree: usize) -> Option<Vec<u64>> {
    let mut out: Vec<u64> = vec![];
    for &s in sizes {
        let mut upper = (1u64 << s) - 1;
        loop {
            let p = fhe_math::zq::primes::generate_prime(s, 2 * degree as u64, upper)?;
            if !out.contains(&p) {
                out.push(p);
                break;
            }
            upper = p - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_ntt_friendly_and_distinct() {
        let p = plaintext_primes(30, 8192, 3).unwrap();
        assert_eq!(p.len(), 3);
        for &t in &p {
            assert_eq!(t % 16384, 1);
            assert_eq!(64 - t.leading_zeros(), 30);
        }
        assert!(p[0] > p[1] && p[1] > p[2]);
    }

    #[test]
    fn moduli_respect_the_limits() {
        let s = moduli_sizes(218, 45).unwrap();
        assert!(s.iter().all(|&b| b > 45 && b <= 62));
        assert!(s.iter().sum::<usize>() >= 218);
        assert!(moduli_sizes(100, 62).is_none());
    }

    #[test]
    fn choice_stays_within_the_security_bound() {
        let p = choose(
            Layout::Batch,
            80,
            |t, n, _| Some(2.0 * t as f64 + (n as f64).log2() * 2.0 + 40.0),
            |n, k, l| (k * l) as f64 * (n as f64).log2(),
        )
        .unwrap();
        assert!(p.log_q() <= max_log_q(p.degree).unwrap());
        let prod: f64 = p.plaintext.iter().map(|&t| (t as f64).log2()).sum();
        assert!(prod >= 80.0);
    }

    #[test]
    fn miller_rabin_agrees_with_trial_division() {
        for n in 0u64..5000 {
            let slow = n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0);
            assert_eq!(is_prime(n), slow, "{n}");
        }
        assert!(is_prime(1_099_511_480_321));
        assert!(!is_prime(1_099_511_480_321 * 3));
    }

    #[test]
    fn file_parameters_are_validated() {
        let good = choose(
            Layout::Batch,
            60,
            |t, _, _| Some(t as f64 + 60.0),
            |_, k, l| (k * l) as f64,
        )
        .unwrap();
        good.validate().unwrap();
        let mut p = good.clone();
        p.degree = 1 << 20;
        assert!(p.validate().is_err());
        let mut p = good.clone();
        p.plaintext = vec![good.plaintext[0]; 200];
        assert!(p.validate().is_err());
        let mut p = good.clone();
        p.moduli.push(p.moduli[0]);
        assert!(p.validate().is_err());
        let mut p = good.clone();
        p.moduli[0] += 2;
        assert!(p.validate().is_err());
        let mut p = good.clone();
        p.moduli = vec![(1u64 << 62) - 57; 16];
        assert!(p.validate().is_err());
    }

    /// With 60-bit primes every modulus must be 61 bits; the chosen moduli are
    /// the ones whose total was checked against the bound (review finding: the
    /// sizes were recomputed from the total and came out one modulus longer).
    #[test]
    fn chosen_moduli_are_the_checked_ones() {
        for range in [59u32, 118] {
            if let Ok(p) = choose(
                Layout::Batch,
                range,
                |_, _, _| Some(60.0),
                |_, k, l| (k * l) as f64,
            ) {
                p.validate().unwrap();
                assert!(p.log_q() <= max_log_q(p.degree).unwrap());
            }
        }
    }

    #[test]
    fn impossible_depth_is_refused() {
        let e = choose(Layout::Batch, 80, |_, _, _| Some(5000.0), |_, _, _| 1.0).unwrap_err();
        assert!(matches!(e, ParamsError::NoFit { .. }), "{e}");
    }
}
