//! Latency layout (LoLa style): one input packed into the slots of a single
//! ciphertext row (`N = n/2` slots, rotated cyclically by the Galois keys), so
//! one query costs a handful of ciphertext operations.
//!
//! Every value of length `m` sits in row 0 replicated with period `m' =
//! next_pow2(m)` (slot `j` holds element `j mod m'`, zero where that is `>= m`).
//! Consecutive linear layers are composed into one integer matrix (exact), and
//! each matrix `A` (`m × n`) runs one of two ways:
//!
//! * **packed input** (the first layer only, when cheaper): the client sends one
//!   ciphertext per connection of a row (`K` = the most inputs one output
//!   reads; ciphertext `k` holds, at each output's slot, the input of its
//!   `k`-th connection: the first layer's public pattern, im2col) and the
//!   server computes `Σ_k pt_k ⊙ ct_k`, no rotation at all;
//! * **diagonals** (hybrid method, Juvekar et al.): with `n' = max(m',
//!   next_pow2(n))` and `diag_d[j] = A[j mod m', (j + d) mod n']`, `z = Σ_d
//!   diag_d ⊙ rot(x, d)` over `d < m'` (baby-step giant-step: `√m'` rotations
//!   of `x`, `√m'` of partial sums), then `log2(n'/m')` rotate-and-add steps
//!   fold `z` to the `m'`-periodic result. The input's period divides `n'`,
//!   so rotations over the full row read the right elements.
//!
//! Squares are a ciphertext square each, relinearized at once (the next layer
//! rotates). Programs with two-input layers (add, concat) run in the batch
//! layout only.

use crate::keys::{he, Contexts, EvalKeys, Rng09, SecretKeys};
use crate::lower::{FheOp, FheProgram, Sparse};
use crate::{noise, par_map, FheError, Progress};
use fhe::bfv::{Ciphertext, Encoding, Plaintext};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Cost of one rotation in plaintext products (measured: 2.3 ms against 0.17 ms
/// at n = 8192 with four moduli).
const ROTATION_COST: f64 = 14.0;
/// Cost of one uploaded ciphertext in plaintext products (bytes matter).
const UPLOAD_COST: f64 = 2.0;
/// Slots of one row at the smallest degree the latency layout uses (8192).
const MIN_ROW: usize = 4096;

/// How the client packs its input (public: the first layer's connection
/// pattern, never its weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InputPacking {
    /// One ciphertext: the input replicated with period `period`.
    Plain { period: usize },
    /// The connections of every output, `blocks` of them per ciphertext:
    /// slot `j` of ciphertext `c` (row `i = j mod period < rows`, block `b =
    /// (j / period) mod blocks`) holds `x[cols[i][c·blocks + b]]` (zero past
    /// the row's end).
    Im2col {
        period: usize,
        blocks: usize,
        rows: usize,
        cols: Vec<Vec<u32>>,
    },
}

impl InputPacking {
    pub fn ciphertexts(&self) -> usize {
        match self {
            InputPacking::Plain { .. } => 1,
            InputPacking::Im2col { cols, blocks, .. } => cols
                .iter()
                .map(|c| c.len())
                .max()
                .unwrap_or(0)
                .div_ceil(*blocks),
        }
    }
    /// The slot vectors (length `n`, row 1 zero) of one input.
    pub fn pack(&self, x: &[i64], degree: usize) -> Vec<Vec<i64>> {
        let row = degree / 2;
        match self {
            InputPacking::Plain { period } => {
                let mut v = vec![0i64; degree];
                for (j, s) in v.iter_mut().enumerate().take(row) {
                    *s = x.get(j % period).copied().unwrap_or(0);
                }
                vec![v]
            }
            InputPacking::Im2col {
                period,
                blocks,
                rows,
                cols,
            } => (0..self.ciphertexts())
                .map(|c| {
                    let mut v = vec![0i64; degree];
                    for (j, s) in v.iter_mut().enumerate().take(row) {
                        let (i, b) = (j % period, (j / period) % blocks);
                        if i < *rows {
                            if let Some(&col) = cols[i].get(c * blocks + b) {
                                *s = x.get(col as usize).copied().unwrap_or(0);
                            }
                        }
                    }
                    v
                })
                .collect(),
        }
    }
}

/// A step of the latency plan; each produces one ciphertext.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Input,
    /// `Σ_c pt_c ⊙ ct_c`, folded over the `blocks` blocks (rotations by
    /// `period · 2^i`), `+ bias`, on the im2col-packed input.
    Packed {
        rows: usize,
        period: usize,
        blocks: usize,
        weights: Vec<Vec<i64>>,
        bias: Vec<i128>,
    },
    Diag {
        src: usize,
        rows: usize,
        m_pad: usize,
        n_pad: usize,
        baby: usize,
        /// `(d, diag_d over one period of n_pad)`
        diags: Vec<(usize, Vec<i64>)>,
        bias: Vec<i128>,
    },
    Square {
        src: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct LatencyPlan {
    pub steps: Vec<Step>,
    pub packing: InputPacking,
    /// Layer names per step (for reports).
    pub names: Vec<String>,
    pub output: usize,
    pub output_len: usize,
}

fn next_pow2(x: usize) -> usize {
    x.max(1).next_power_of_two()
}

/// `B · A` (exact; `None` if a weight leaves `i64`).
fn compose(b: &Sparse, a: &Sparse) -> Option<Sparse> {
    let mut rows = Vec::with_capacity(b.rows);
    for r in 0..b.rows {
        let mut acc: BTreeMap<u32, i128> = BTreeMap::new();
        for (j, wb) in b.row(r) {
            for (c, wa) in a.row(j) {
                *acc.entry(c as u32).or_insert(0) += wb as i128 * wa as i128;
            }
        }
        let mut row = Vec::with_capacity(acc.len());
        for (c, w) in acc {
            row.push((c, i64::try_from(w).ok()?));
        }
        rows.push(row);
    }
    Some(Sparse::from_rows(a.cols, rows))
}

fn apply_bias(b: &Sparse, bias_a: &[i128], bias_b: &[i128]) -> Vec<i128> {
    (0..b.rows)
        .map(|r| bias_b[r] + b.row(r).map(|(j, w)| w as i128 * bias_a[j]).sum::<i128>())
        .collect()
}

impl LatencyPlan {
    pub fn new(prog: &FheProgram) -> Result<LatencyPlan, FheError> {
        // consumers of each value
        let mut uses = vec![0usize; prog.nodes.len()];
        for n in &prog.nodes {
            match &n.op {
                FheOp::Input => {}
                FheOp::Square { input } => uses[*input] += 1,
                FheOp::Linear { terms, .. } => terms.iter().for_each(|(s, _)| uses[*s] += 1),
            }
        }
        uses[prog.output] += 1;
        // stages: composed linear maps and squares, over program values
        enum Stage {
            Input,
            Linear {
                src: usize,
                a: Sparse,
                bias: Vec<i128>,
            },
            Square {
                src: usize,
            },
        }
        let mut stages: Vec<Stage> = vec![];
        let mut names: Vec<String> = vec![];
        let mut stage_of = vec![usize::MAX; prog.nodes.len()];
        for (i, n) in prog.nodes.iter().enumerate() {
            match &n.op {
                FheOp::Input => {
                    stages.push(Stage::Input);
                    names.push(n.name.clone());
                }
                FheOp::Square { input } => {
                    stages.push(Stage::Square {
                        src: stage_of[*input],
                    });
                    names.push(n.name.clone());
                }
                FheOp::Linear { terms, bias } => {
                    if terms.len() != 1 {
                        return Err(FheError::Params(format!(
                            "layer {} ({}) combines two values: the latency layout runs chains of layers only; use the batch layout",
                            n.name, n.kind
                        )));
                    }
                    let (src, a) = (&terms[0].0, &terms[0].1);
                    let s = stage_of[*src];
                    let fuse = matches!(stages[s], Stage::Linear { .. }) && uses[*src] == 1;
                    if fuse {
                        let Stage::Linear {
                            src: ps,
                            a: pa,
                            bias: pb,
                        } = &stages[s]
                        else {
                            unreachable!()
                        };
                        if let Some(c) = compose(a, pa) {
                            let nb = apply_bias(a, pb, bias);
                            let ps = *ps;
                            stages[s] = Stage::Linear {
                                src: ps,
                                a: c,
                                bias: nb,
                            };
                            names[s] = format!("{}+{}", names[s], n.name);
                            stage_of[i] = s;
                            continue;
                        }
                    }
                    stages.push(Stage::Linear {
                        src: s,
                        a: a.clone(),
                        bias: bias.clone(),
                    });
                    names.push(n.name.clone());
                }
            }
            stage_of[i] = stages.len() - 1;
        }
        // the input feeds exactly one stage
        let input_uses = stages
            .iter()
            .filter(|s| match s {
                Stage::Linear { src, .. } | Stage::Square { src } => *src == 0,
                Stage::Input => false,
            })
            .count();
        let output = stage_of[prog.output];
        // decide the first layer's packing
        let mut packing = InputPacking::Plain {
            period: next_pow2(prog.input_len()),
        };
        let mut packed_stage = None;
        if input_uses == 1 && output != 0 {
            if let Some((s, Stage::Linear { a, .. })) = stages
                .iter()
                .enumerate()
                .find(|(_, s)| matches!(s, Stage::Linear { src: 0, .. }))
            {
                let k = a.max_row_len();
                let period = next_pow2(a.rows);
                // as many connections per ciphertext as the narrowest row used
                // (n = 8192: 4096 slots) holds blocks of `period`
                let blocks = next_pow2(k).min((MIN_ROW / period).max(1));
                let cts = k.div_ceil(blocks);
                let (d, rots) = diag_shape(a, next_pow2(prog.input_len()));
                let packed = cts as f64 * (1.0 + UPLOAD_COST)
                    + ROTATION_COST * blocks.trailing_zeros() as f64;
                let diag = d as f64 + ROTATION_COST * rots as f64 + UPLOAD_COST;
                if packed < diag {
                    packing = InputPacking::Im2col {
                        period,
                        blocks,
                        rows: a.rows,
                        cols: (0..a.rows)
                            .map(|r| a.row(r).map(|(c, _)| c as u32).collect())
                            .collect(),
                    };
                    packed_stage = Some(s);
                }
            }
        }
        let mut steps = vec![];
        let mut lens = vec![];
        for (s, st) in stages.into_iter().enumerate() {
            let (step, len) = match st {
                Stage::Input => (Step::Input, prog.input_len()),
                Stage::Square { src } => (Step::Square { src }, lens[src]),
                Stage::Linear { src, a, bias } => {
                    if Some(s) == packed_stage {
                        let weights = (0..a.rows)
                            .map(|r| a.row(r).map(|(_, w)| w).collect())
                            .collect();
                        let InputPacking::Im2col { blocks, .. } = packing else {
                            unreachable!("packed stage implies im2col packing")
                        };
                        (
                            Step::Packed {
                                rows: a.rows,
                                period: next_pow2(a.rows),
                                blocks,
                                weights,
                                bias,
                            },
                            a.rows,
                        )
                    } else {
                        let m_pad = next_pow2(a.rows);
                        let n_pad = m_pad.max(next_pow2(a.cols));
                        let diags = diagonals(&a, m_pad, n_pad);
                        let baby = baby_step(m_pad);
                        (
                            Step::Diag {
                                src,
                                rows: a.rows,
                                m_pad,
                                n_pad,
                                baby,
                                diags: diags.into_iter().collect(),
                                bias,
                            },
                            a.rows,
                        )
                    }
                }
            };
            steps.push(step);
            lens.push(len);
        }
        Ok(LatencyPlan {
            steps,
            packing,
            names,
            output,
            output_len: prog.output_len(),
        })
    }

    pub fn packing(&self) -> InputPacking {
        self.packing.clone()
    }

    /// Widest row any value or diagonal needs (must fit `n/2` slots).
    fn widest(&self) -> usize {
        let mut w = match &self.packing {
            InputPacking::Plain { period } => *period,
            InputPacking::Im2col { period, blocks, .. } => period * blocks,
        };
        for s in &self.steps {
            if let Step::Diag { n_pad, .. } = s {
                w = w.max(*n_pad);
            }
            if let Step::Packed { period, blocks, .. } = s {
                w = w.max(period * blocks);
            }
        }
        w
    }

    /// Column rotations the plan uses, for the Galois keys.
    pub fn rotations(&self, _degree: usize) -> Vec<usize> {
        let mut r = std::collections::BTreeSet::new();
        for s in &self.steps {
            if let Step::Diag {
                m_pad,
                n_pad,
                baby,
                diags,
                ..
            } = s
            {
                for (d, _) in diags {
                    let (g, b) = (d / baby * baby, d % baby);
                    if b != 0 {
                        r.insert(b);
                    }
                    if g != 0 {
                        r.insert(g);
                    }
                }
                let mut step = *m_pad;
                while step < *n_pad {
                    r.insert(step);
                    step *= 2;
                }
            }
            if let Step::Packed { period, blocks, .. } = s {
                let mut step = *period;
                while step < period * blocks {
                    r.insert(step);
                    step *= 2;
                }
            }
        }
        r.into_iter().collect()
    }

    /// Noise estimate at the output, `None` if a value does not fit one row.
    pub fn noise_estimate(
        &self,
        _prog: &FheProgram,
        t_bits: u32,
        degree: usize,
        mod_bits: u32,
    ) -> Option<f64> {
        let floor = noise::key_switch_floor(mod_bits);
        Some(self.noise_per_step(t_bits, degree, mod_bits)?[self.output].max(floor))
    }

    /// Noise estimate of every step, `None` if a value does not fit one row.
    pub fn noise_per_step(&self, t_bits: u32, degree: usize, mod_bits: u32) -> Option<Vec<f64>> {
        if self.widest() > degree / 2 {
            return None;
        }
        let floor = noise::key_switch_floor(mod_bits);
        let mut e = vec![0f64; self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            e[i] = match s {
                Step::Input => noise::FRESH,
                Step::Packed {
                    weights, blocks, ..
                } => {
                    let k = weights.iter().map(|w| w.len()).max().unwrap_or(1);
                    let z = noise::sum(
                        noise::plaintext_product(noise::FRESH, t_bits, degree),
                        k.div_ceil(*blocks),
                    );
                    if *blocks > 1 {
                        noise::sum(z.max(floor), *blocks)
                    } else {
                        z
                    }
                }
                Step::Diag {
                    src,
                    m_pad,
                    n_pad,
                    diags,
                    ..
                } => {
                    let x = e[*src].max(floor);
                    let z = noise::sum(noise::plaintext_product(x, t_bits, degree), diags.len())
                        .max(floor);
                    noise::sum(z, n_pad / m_pad)
                }
                Step::Square { src } => noise::square(e[*src], t_bits, degree).max(floor),
            };
        }
        Some(e)
    }

    /// Cost model (plaintext-product units) of one query.
    pub fn cost(&self, degree: usize, primes: usize, moduli: usize) -> f64 {
        let per_op = (degree as f64 / 8192.0) * (moduli as f64 / 4.0);
        let mut units = 0f64;
        for s in &self.steps {
            units += match s {
                Step::Input => (self.packing.ciphertexts() as f64) * UPLOAD_COST,
                Step::Packed {
                    weights, blocks, ..
                } => {
                    weights
                        .iter()
                        .map(|w| w.len())
                        .max()
                        .unwrap_or(0)
                        .div_ceil(*blocks) as f64
                        + ROTATION_COST * (moduli as f64 / 4.0) * blocks.trailing_zeros() as f64
                }
                Step::Diag { diags, .. } => {
                    diags.len() as f64
                        + ROTATION_COST * (moduli as f64 / 4.0) * self.diag_rotations(s) as f64
                }
                Step::Square { .. } => 90.0,
            };
        }
        units * per_op * primes as f64
    }

    fn diag_rotations(&self, s: &Step) -> usize {
        if let Step::Diag {
            m_pad,
            n_pad,
            baby,
            diags,
            ..
        } = s
        {
            let babies: std::collections::BTreeSet<usize> = diags
                .iter()
                .map(|(d, _)| d % baby)
                .filter(|&b| b != 0)
                .collect();
            let giants: std::collections::BTreeSet<usize> = diags
                .iter()
                .map(|(d, _)| d / baby)
                .filter(|&g| g != 0)
                .collect();
            babies.len() + giants.len() + (n_pad / m_pad).trailing_zeros() as usize
        } else {
            0
        }
    }
}

/// Number of diagonals and rotations the diagonal method would use for `a`.
fn diag_shape(a: &Sparse, in_period: usize) -> (usize, usize) {
    let m_pad = next_pow2(a.rows);
    let n_pad = m_pad.max(in_period);
    let ds = diagonals(a, m_pad, n_pad);
    let baby = baby_step(m_pad);
    let b: std::collections::BTreeSet<_> = ds.keys().map(|d| d % baby).collect();
    let g: std::collections::BTreeSet<_> = ds.keys().map(|d| d / baby).collect();
    (
        ds.len(),
        b.len() + g.len() + (n_pad / m_pad).trailing_zeros() as usize,
    )
}

/// The hybrid method's diagonals of `a` over one period of `n_pad` slots:
/// `diag_d[j] = A[j mod m', (j + d) mod n']` for `d < m'`, only the `d` some
/// connection (zero weights included: the pattern is architecture) lands on.
/// Entry `(r, c)` sits at exactly one place: with `d0 = (c - r) mod n'`, on
/// diagonal `d0 mod m'` at slot `r + (d0 div m')·m'`.
fn diagonals(a: &Sparse, m_pad: usize, n_pad: usize) -> BTreeMap<usize, Vec<i64>> {
    let mut diags: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for r in 0..a.rows {
        for (c, w) in a.row(r) {
            let d0 = (c + n_pad - r % n_pad) % n_pad;
            let (d, j) = (d0 % m_pad, r + d0 / m_pad * m_pad);
            diags.entry(d).or_insert_with(|| vec![0; n_pad])[j] = w;
        }
    }
    diags
}

/// Baby steps of the baby-step giant-step product over `m_pad` diagonals.
fn baby_step(m_pad: usize) -> usize {
    next_pow2((m_pad as f64).sqrt().ceil() as usize)
}

/// Encrypt one query: per prime, the packed ciphertexts.
pub fn encrypt<R: RngCore + CryptoRng>(
    ctx: &Contexts,
    sk: &SecretKeys,
    packing: &InputPacking,
    x: &[i64],
    rng: &mut R,
) -> Result<Vec<Vec<Ciphertext>>, FheError> {
    let vecs = packing.pack(x, ctx.params.degree);
    let mut r = Rng09(rng);
    ctx.bfv
        .iter()
        .enumerate()
        .map(|(p, par)| {
            let t = ctx.params.plaintext[p];
            vecs.iter()
                .map(|v| {
                    let v: Vec<u64> = v
                        .iter()
                        .map(|&s| crate::batch::residue(s as i128, t))
                        .collect();
                    let pt = Plaintext::try_encode(&v, Encoding::simd(), par).map_err(he)?;
                    sk.keys[p].try_encrypt(&pt, &mut r).map_err(he)
                })
                .collect()
        })
        .collect()
}

/// The server's precomputed plaintexts of one prime.
struct Encoded {
    /// per step: the plaintexts it multiplies by, then its bias
    products: Vec<Vec<Plaintext>>,
    bias: Vec<Option<Plaintext>>,
}

/// A latency evaluator: the plan with its plaintexts encoded once per prime.
pub struct LatencyEvaluator {
    plan: LatencyPlan,
    encoded: Vec<Encoded>,
}

fn periodic(values: &[i128], rows: usize, period: usize, degree: usize, t: u64) -> Vec<u64> {
    let mut v = vec![0u64; degree];
    for (j, s) in v.iter_mut().enumerate().take(degree / 2) {
        let i = j % period;
        if i < rows {
            *s = crate::batch::residue(values[i], t);
        }
    }
    v
}

impl LatencyEvaluator {
    pub fn new(ctx: &Contexts, plan: &LatencyPlan) -> Result<LatencyEvaluator, FheError> {
        let n = ctx.params.degree;
        let row = n / 2;
        let encoded = par_map(&(0..ctx.primes()).collect::<Vec<_>>(), |&p| {
            let (par, t) = (&ctx.bfv[p], ctx.params.plaintext[p]);
            let enc = |v: &[u64]| Plaintext::try_encode(v, Encoding::simd(), par).map_err(he);
            let mut products = vec![];
            let mut bias = vec![];
            for s in &plan.steps {
                match s {
                    Step::Input | Step::Square { .. } => {
                        products.push(vec![]);
                        bias.push(None);
                    }
                    Step::Packed {
                        rows,
                        period,
                        blocks,
                        weights,
                        bias: b,
                    } => {
                        let k = weights.iter().map(|w| w.len()).max().unwrap_or(0);
                        let mut pts = vec![];
                        for c in 0..k.div_ceil(*blocks) {
                            // the weights of connection c·blocks + b in block b
                            let mut v = vec![0u64; n];
                            for (j, s) in v.iter_mut().enumerate().take(row) {
                                let (i, bl) = (j % period, (j / period) % blocks);
                                if i < *rows {
                                    let w = weights[i].get(c * blocks + bl).copied().unwrap_or(0);
                                    *s = crate::batch::residue(w as i128, t);
                                }
                            }
                            pts.push(enc(&v)?);
                        }
                        products.push(pts);
                        bias.push(Some(enc(&periodic(b, *rows, *period, n, t))?));
                    }
                    Step::Diag {
                        rows,
                        m_pad,
                        n_pad,
                        baby,
                        diags,
                        bias: b,
                        ..
                    } => {
                        let mut pts = vec![];
                        for (d, dv) in diags {
                            let g = d / baby * baby;
                            // rot(diag, -g) over one period, then replicated
                            let mut v = vec![0u64; n];
                            for (j, s) in v.iter_mut().enumerate().take(row) {
                                let jj = (j % n_pad + n_pad - g % n_pad) % n_pad;
                                *s = crate::batch::residue(dv[jj] as i128, t);
                            }
                            pts.push(enc(&v)?);
                        }
                        products.push(pts);
                        bias.push(Some(enc(&periodic(b, *rows, *m_pad, n, t))?));
                    }
                }
            }
            Ok(Encoded { products, bias })
        })?;
        Ok(LatencyEvaluator {
            plan: plan.clone(),
            encoded,
        })
    }

    /// Evaluate one query (`cts[prime][packed ciphertext]`); primes in parallel.
    pub fn evaluate(
        &self,
        ctx: &Contexts,
        ek: &EvalKeys,
        cts: Vec<Vec<Ciphertext>>,
        progress: &Progress,
    ) -> Result<Vec<Vec<Ciphertext>>, FheError> {
        ctx.expect_primes(cts.len())?;
        let want = self.plan.packing.ciphertexts();
        for c in &cts {
            if c.len() != want {
                return Err(FheError::Format(format!(
                    "{} input ciphertexts, the latency layout of this model takes {want}",
                    c.len()
                )));
            }
        }
        let total = (self.plan.steps.len() * ctx.primes()) as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let jobs: Vec<(usize, Vec<Ciphertext>)> = cts.into_iter().enumerate().collect();
        let out = par_map(&jobs, |(p, input)| {
            let p = *p;
            let enc = &self.encoded[p];
            let relin = &ek.relin[p];
            let rot = |c: &Ciphertext, r: usize| -> Result<Ciphertext, FheError> {
                let g = ek.galois[p].as_ref().ok_or_else(|| {
                    FheError::Format(
                        "the evaluation keys have no rotation keys (made for the batch layout?)"
                            .into(),
                    )
                })?;
                g.rotates_columns_by(c, r).map_err(he)
            };
            let mut vals: Vec<Option<Ciphertext>> = vec![None; self.plan.steps.len()];
            for (i, s) in self.plan.steps.iter().enumerate() {
                let v = match s {
                    Step::Input => {
                        if matches!(self.plan.packing, InputPacking::Plain { .. }) {
                            Some(input[0].clone())
                        } else {
                            None
                        }
                    }
                    Step::Packed { period, blocks, .. } => {
                        let mut acc: Option<Ciphertext> = None;
                        for (c, pt) in input.iter().zip(&enc.products[i]) {
                            let prod = c * pt;
                            acc = Some(match acc {
                                None => prod,
                                Some(a) => &a + &prod,
                            });
                        }
                        let mut y =
                            acc.ok_or_else(|| FheError::Format("empty first layer".into()))?;
                        // fold the blocks: every slot then sums all connections
                        let mut step = *period;
                        while step < period * blocks {
                            let r = rot(&y, step)?;
                            y += &r;
                            step *= 2;
                        }
                        y += enc.bias[i].as_ref().expect("bias");
                        Some(y)
                    }
                    Step::Square { src } => {
                        let x = vals[*src].as_ref().expect("computed");
                        let mut y = x * x;
                        relin.relinearizes(&mut y).map_err(he)?;
                        Some(y)
                    }
                    Step::Diag {
                        src,
                        m_pad,
                        n_pad,
                        baby,
                        diags,
                        ..
                    } => {
                        let x = vals[*src].as_ref().expect("computed");
                        let mut babies: BTreeMap<usize, Ciphertext> = BTreeMap::new();
                        for (d, _) in diags {
                            let b = d % baby;
                            if let std::collections::btree_map::Entry::Vacant(e) = babies.entry(b) {
                                e.insert(if b == 0 { x.clone() } else { rot(x, b)? });
                            }
                        }
                        let mut giants: BTreeMap<usize, Ciphertext> = BTreeMap::new();
                        for ((d, _), pt) in diags.iter().zip(&enc.products[i]) {
                            let (g, b) = (d / baby * baby, d % baby);
                            let prod = &babies[&b] * pt;
                            match giants.get_mut(&g) {
                                Some(a) => *a += &prod,
                                None => {
                                    giants.insert(g, prod);
                                }
                            }
                        }
                        let mut y: Option<Ciphertext> = None;
                        for (g, inner) in giants {
                            let r = if g == 0 { inner } else { rot(&inner, g)? };
                            y = Some(match y {
                                None => r,
                                Some(a) => &a + &r,
                            });
                        }
                        let mut y = y.ok_or_else(|| FheError::Format("empty layer".into()))?;
                        let mut step = *m_pad;
                        while step < *n_pad {
                            let r = rot(&y, step)?;
                            y += &r;
                            step *= 2;
                        }
                        y += enc.bias[i].as_ref().expect("bias");
                        Some(y)
                    }
                };
                vals[i] = v;
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress.step(d, total);
            }
            let mut y = vals[self.plan.output].take().expect("output computed");
            if y.len() > 2 {
                relin.relinearizes(&mut y).map_err(he)?;
            }
            y.switch_to_level(crate::batch::download_level(ctx, p))
                .map_err(he)?;
            Ok(vec![y])
        })?;
        Ok(out)
    }
}
