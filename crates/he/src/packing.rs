//! Packing of convolutions and fully connected layers into negacyclic
//! polynomial products (Cheetah-style coefficient encoding), as pure functions
//! over shapes.
//!
//! ```text
//!   input ct (tile τ, channel group g)      kernel plaintext (group g, block b)
//!   coefficient c·Ht·Wp + i·Wp + j  = x     coefficient ol·S + O - (c·Ht·Wp + di·Wp + dj)
//!                                            = W[b·m + ol][g·Cg + c][di][dj]
//!   Σ_g  ct(τ, g) · pt(g, b)   ──▶  coefficient ol·S + O + (r·sh)·Wp + j'·sw
//!                                    = output channel b·m + ol, row τ·To + r, column j'
//! ```
//!
//! with `S = Cg·Ht·Wp` (one input footprint per output channel), `O = (Cg-1)·Ht·Wp +
//! (kh-1)·Wp + (kw-1)`, `m = floor(n / S)` output channels per plaintext, `Ht =
//! (To-1)·sh + kh` padded input rows per spatial tile of `To` output rows. Padding is
//! zeros written by the encryptor; strides are handled by computing stride 1 and
//! decrypting only the strided positions (the others are never sent). Wanted
//! coefficients never receive a wrapped-around (negacyclic) term because `m·S <= n`:
//! see docs/he.md.
//!
//! A fully connected layer `inputs -> outputs` is the convolution with `c_in =
//! inputs`, a 1×1 image and a 1×1 kernel: Cheetah's matrix-vector packing (row
//! `o` of the matrix reversed at offset `o·S`), with input groups as tiling.

use serde::{Deserialize, Serialize};

use crate::{HeError, Result};
pub use blindfold_core::geom::ConvGeom;

/// A fully connected layer (no bias): weights `outputs × inputs`, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FcShape {
    pub inputs: usize,
    pub outputs: usize,
}

/// A linear layer the preprocessing handles. Convolutions use the geometry type
/// of the whole workspace ([`ConvGeom`], from `blindfold_core::geom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearShape {
    Conv2d(ConvGeom),
    Fc(FcShape),
}

impl FcShape {
    /// The equivalent 1×1 convolution.
    pub fn as_conv(&self) -> ConvGeom {
        ConvGeom::square(self.inputs, 1, self.outputs, 1, 1, 0)
    }
}

impl LinearShape {
    /// The convolution view (fully connected layers are 1×1 convolutions).
    pub fn conv(&self) -> ConvGeom {
        match self {
            LinearShape::Conv2d(c) => *c,
            LinearShape::Fc(f) => f.as_conv(),
        }
    }

    /// Elements of the input tensor (saturating; exact once validated).
    pub fn input_len(&self) -> usize {
        self.conv().input_len()
    }

    /// Elements of the output tensor (saturating; exact once validated).
    pub fn output_len(&self) -> usize {
        self.conv().out_len()
    }

    /// Elements of the weight tensor (saturating; exact once validated).
    pub fn weight_len(&self) -> usize {
        self.conv().weight_len()
    }

    /// A short human-readable description, e.g. `conv 1x28x28 -> 16 k5 s1 p0`.
    pub fn describe(&self) -> String {
        match self {
            LinearShape::Fc(f) => format!("fc {} -> {}", f.inputs, f.outputs),
            LinearShape::Conv2d(c) => format!(
                "conv {}x{}x{} -> {} k{}x{} s{}x{} p{},{},{},{}",
                c.c_in,
                c.h,
                c.w,
                c.c_out,
                c.kh,
                c.kw,
                c.stride[0],
                c.stride[1],
                c.pads[0],
                c.pads[1],
                c.pads[2],
                c.pads[3]
            ),
        }
    }
}

/// The plaintext reference `L(x; W)` mod 2^64 (wrapping), for tests and the engine.
pub fn linear_reference(shape: &LinearShape, x: &[u64], w: &[u64]) -> Result<Vec<u64>> {
    let c = shape.conv();
    validate_conv(&c)?;
    check_len("input", x.len(), shape.input_len())?;
    check_len("weights", w.len(), shape.weight_len())?;
    let (oh, ow) = (c.out_h(), c.out_w());
    let mut out = vec![0u64; c.c_out * oh * ow];
    for o in 0..c.c_out {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = 0u64;
                for ci in 0..c.c_in {
                    for di in 0..c.kh {
                        let pi = i * c.stride[0] + di;
                        if pi < c.pads[0] || pi - c.pads[0] >= c.h {
                            continue;
                        }
                        for dj in 0..c.kw {
                            let pj = j * c.stride[1] + dj;
                            if pj < c.pads[1] || pj - c.pads[1] >= c.w {
                                continue;
                            }
                            let xv = x[(ci * c.h + pi - c.pads[0]) * c.w + pj - c.pads[1]];
                            let wv = w[((o * c.c_in + ci) * c.kh + di) * c.kw + dj];
                            acc = acc.wrapping_add(xv.wrapping_mul(wv));
                        }
                    }
                }
                out[(o * oh + i) * ow + j] = acc;
            }
        }
    }
    Ok(out)
}

/// [`ConvGeom::validate`] as this crate's error.
fn validate_conv(c: &ConvGeom) -> Result<()> {
    c.validate().map_err(|e| HeError::Shape(e.to_string()))
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(HeError::Length {
            what,
            got,
            expected,
        })
    }
}

/// Cost model used to choose a tiling: bytes of one fresh input ciphertext
/// (seed and c0 at the full level), of one response's `c1` (at `q' ≈ 2^120`),
/// and CPU estimates per
/// input ciphertext, output ciphertext and product (milliseconds, measured on
/// the 2-core development machine), with 1 ms counted as 50 kB.
const COST_IN_BYTES: f64 = 204_816.0;
const COST_OUT_BYTES: f64 = 122_880.0;
const COST_IN_MS: f64 = 2.3;
const COST_OUT_MS: f64 = 1.8;
const COST_PRODUCT_MS: f64 = 0.2;
const BYTES_PER_MS: f64 = 50_000.0;

/// Largest total number of non-zero plaintext positions summed into one output
/// ciphertext: keeps the products' worst case (`2^18 · 2^63 · 20.5 = 2^85.4` at
/// `q`, `2^5.4` after switching) negligible next to the response's rounding
/// (`n/2`), so the response flooding keeps almost all of the budget
/// (`rlwe::ResponseFlood`, docs/he.md).
const MAX_NNZ_PER_OUTPUT: usize = 1 << 18;

/// How one linear layer is cut into ciphertexts and plaintexts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPlan {
    /// The layer.
    pub shape: LinearShape,
    /// Ring degree.
    pub n: usize,
    /// Input channels per group (`Cg`).
    pub c_g: usize,
    /// Number of channel groups.
    pub groups: usize,
    /// Output rows per spatial tile (`To`).
    pub t_o: usize,
    /// Number of spatial tiles.
    pub tiles: usize,
    /// Padded input rows per tile (`Ht`).
    pub h_t: usize,
    /// Output channels per plaintext (`m`).
    pub m: usize,
    /// Number of output-channel blocks.
    pub blocks: usize,
    /// Spacing of output channels in a plaintext (`S = Cg·Ht·Wp`).
    pub s: usize,
    /// Offset of the first wanted coefficient (`O`).
    pub o_off: usize,
}

impl LayerPlan {
    /// The cheapest valid tiling for ring degree `n` (by the cost model above).
    pub fn new(shape: &LinearShape, n: usize) -> Result<LayerPlan> {
        let c = shape.conv();
        validate_conv(&c)?;
        let mut best: Option<(f64, LayerPlan)> = None;
        let mut last_cg = 0;
        for groups in 1..=c.c_in {
            let c_g = c.c_in.div_ceil(groups);
            if c_g == last_cg {
                continue;
            }
            last_cg = c_g;
            let mut last_to = 0;
            for tiles in 1..=c.out_h() {
                let t_o = c.out_h().div_ceil(tiles);
                if t_o == last_to {
                    continue;
                }
                last_to = t_o;
                if let Ok(plan) = Self::with_tiling(shape, n, c_g, t_o) {
                    let cost = plan.cost();
                    if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                        best = Some((cost, plan));
                    }
                }
            }
        }
        best.map(|(_, p)| p).ok_or_else(|| {
            HeError::Shape(format!(
                "{}: no tiling fits ring degree {n} (one padded row band of the kernel is wider than the ring)",
                shape.describe()
            ))
        })
    }

    /// A plan with a given number of channels per group and output rows per tile.
    pub fn with_tiling(shape: &LinearShape, n: usize, c_g: usize, t_o: usize) -> Result<LayerPlan> {
        let c = shape.conv();
        validate_conv(&c)?;
        if c_g == 0 || c_g > c.c_in || t_o == 0 || t_o > c.out_h() {
            return Err(HeError::Shape(format!("tiling Cg={c_g}, To={t_o}")));
        }
        let h_t = (t_o - 1) * c.stride[0] + c.kh;
        let s = c_g * h_t * c.padded_w();
        if s > n {
            return Err(HeError::Shape(format!(
                "tile {c_g}x{h_t}x{} exceeds ring degree {n}",
                c.padded_w()
            )));
        }
        let m = (n / s).min(c.c_out);
        let groups = c.c_in.div_ceil(c_g);
        let plan = LayerPlan {
            shape: *shape,
            n,
            c_g,
            groups,
            t_o,
            tiles: c.out_h().div_ceil(t_o),
            h_t,
            m,
            blocks: c.c_out.div_ceil(m),
            s,
            o_off: (c_g - 1) * h_t * c.padded_w() + (c.kh - 1) * c.padded_w() + (c.kw - 1),
        };
        if plan.max_nnz_per_output() > MAX_NNZ_PER_OUTPUT {
            return Err(HeError::Shape(format!(
                "{} groups exceed the noise budget",
                plan.groups
            )));
        }
        Ok(plan)
    }

    /// Input ciphertexts (one per tile and channel group).
    pub fn input_cts(&self) -> usize {
        self.tiles * self.groups
    }

    /// Output ciphertexts (one per tile and output-channel block).
    pub fn output_cts(&self) -> usize {
        self.tiles * self.blocks
    }

    /// Plaintexts (one per channel group and output-channel block).
    pub fn plaintexts(&self) -> usize {
        self.groups * self.blocks
    }

    /// Plaintext-ciphertext products.
    pub fn products(&self) -> usize {
        self.tiles * self.groups * self.blocks
    }

    /// Worst-case number of non-zero plaintext positions summed into one output.
    pub fn max_nnz_per_output(&self) -> usize {
        let c = self.shape.conv();
        self.groups * self.m * self.c_g * c.kh * c.kw
    }

    /// The model's estimate (bytes + CPU, in bytes).
    fn cost(&self) -> f64 {
        let bytes =
            self.input_cts() as f64 * COST_IN_BYTES + self.output_cts() as f64 * COST_OUT_BYTES;
        let ms = self.input_cts() as f64 * COST_IN_MS
            + self.output_cts() as f64 * COST_OUT_MS
            + self.products() as f64 * COST_PRODUCT_MS;
        bytes + ms * BYTES_PER_MS
    }

    /// Pack an input-shaped tensor into `input_cts()` coefficient vectors of
    /// length `n`, indexed `tile * groups + group`.
    pub fn pack_input(&self, x: &[u64]) -> Result<Vec<Vec<u64>>> {
        check_len("input", x.len(), self.shape.input_len())?;
        let c = self.shape.conv();
        let wp = c.padded_w();
        let mut out = Vec::with_capacity(self.input_cts());
        for tile in 0..self.tiles {
            let row0 = tile * self.t_o * c.stride[0];
            for g in 0..self.groups {
                let mut poly = vec![0u64; self.n];
                for cl in 0..self.c_g {
                    let ch = g * self.c_g + cl;
                    if ch >= c.c_in {
                        break;
                    }
                    for i in 0..self.h_t {
                        let pi = row0 + i;
                        if pi < c.pads[0] || pi - c.pads[0] >= c.h {
                            continue;
                        }
                        let src = (ch * c.h + pi - c.pads[0]) * c.w;
                        let dst = (cl * self.h_t + i) * wp + c.pads[1];
                        poly[dst..dst + c.w].copy_from_slice(&x[src..src + c.w]);
                    }
                }
                out.push(poly);
            }
        }
        Ok(out)
    }

    /// Pack the weights into `plaintexts()` coefficient vectors, indexed
    /// `group * blocks + block`, each with its number of public non-zero positions.
    pub fn pack_weights(&self, w: &[u64]) -> Result<Vec<(Vec<u64>, usize)>> {
        check_len("weights", w.len(), self.shape.weight_len())?;
        let c = self.shape.conv();
        let wp = c.padded_w();
        let mut out = Vec::with_capacity(self.plaintexts());
        for g in 0..self.groups {
            for b in 0..self.blocks {
                let mut poly = vec![0u64; self.n];
                let mut nnz = 0;
                for ol in 0..self.m {
                    let o = b * self.m + ol;
                    if o >= c.c_out {
                        break;
                    }
                    for cl in 0..self.c_g {
                        let ch = g * self.c_g + cl;
                        if ch >= c.c_in {
                            break;
                        }
                        for di in 0..c.kh {
                            for dj in 0..c.kw {
                                let pos =
                                    ol * self.s + self.o_off - ((cl * self.h_t + di) * wp + dj);
                                poly[pos] = w[((o * c.c_in + ch) * c.kh + di) * c.kw + dj];
                                nnz += 1;
                            }
                        }
                    }
                }
                out.push((poly, nnz));
            }
        }
        Ok(out)
    }

    /// For each output ciphertext (`tile * blocks + block`): the coefficient
    /// positions to decrypt and, for each, its index in the flattened output.
    pub fn output_positions(&self) -> Vec<Vec<(usize, usize)>> {
        let c = self.shape.conv();
        let (oh, ow, wp) = (c.out_h(), c.out_w(), c.padded_w());
        let mut all = Vec::with_capacity(self.output_cts());
        for tile in 0..self.tiles {
            for b in 0..self.blocks {
                let mut v = Vec::new();
                for ol in 0..self.m {
                    let o = b * self.m + ol;
                    if o >= c.c_out {
                        break;
                    }
                    for r in 0..self.t_o {
                        let i = tile * self.t_o + r;
                        if i >= oh {
                            break;
                        }
                        for j in 0..ow {
                            let pos =
                                ol * self.s + self.o_off + r * c.stride[0] * wp + j * c.stride[1];
                            v.push((pos, (o * oh + i) * ow + j));
                        }
                    }
                }
                all.push(v);
            }
        }
        all
    }

    /// Bytes of the encryptor's query for this layer (seeds and `c0`s).
    pub fn query_bytes(&self, params: &crate::HeParams) -> usize {
        crate::protocol::query_len(params, self)
    }

    /// Bytes of the evaluator's response for this layer.
    pub fn response_bytes(&self, params: &crate::HeParams) -> usize {
        crate::protocol::response_len(params, self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Negacyclic product mod 2^64 of two length-n vectors (schoolbook over non-zeros).
    pub(crate) fn negacyclic_add(acc: &mut [u64], a: &[u64], b: &[u64]) {
        let n = acc.len();
        let nz: Vec<(usize, u64)> = b
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, v)| v != 0)
            .collect();
        for (i, &ai) in a.iter().enumerate() {
            if ai == 0 {
                continue;
            }
            for &(k, bk) in &nz {
                let d = i + k;
                let p = ai.wrapping_mul(bk);
                if d < n {
                    acc[d] = acc[d].wrapping_add(p);
                } else {
                    acc[d - n] = acc[d - n].wrapping_sub(p);
                }
            }
        }
    }

    /// Run a plan in the clear (polynomial arithmetic mod 2^64 instead of HE).
    pub(crate) fn simulate(plan: &LayerPlan, x: &[u64], w: &[u64]) -> Vec<u64> {
        let ins = plan.pack_input(x).unwrap();
        let pts = plan.pack_weights(w).unwrap();
        let mut out = vec![0u64; plan.shape.output_len()];
        let mut seen = vec![false; out.len()];
        for (k, positions) in plan.output_positions().iter().enumerate() {
            let (tile, b) = (k / plan.blocks, k % plan.blocks);
            let mut acc = vec![0u64; plan.n];
            for g in 0..plan.groups {
                negacyclic_add(
                    &mut acc,
                    &ins[tile * plan.groups + g],
                    &pts[g * plan.blocks + b].0,
                );
            }
            for &(pos, idx) in positions {
                assert!(!seen[idx], "output {idx} produced twice");
                seen[idx] = true;
                out[idx] = acc[pos];
            }
        }
        assert!(seen.iter().all(|&s| s), "every output is produced");
        out
    }

    fn rand_vec(len: usize, seed: u64) -> Vec<u64> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            })
            .collect()
    }

    fn check(shape: LinearShape, n: usize, seed: u64) {
        let x = rand_vec(shape.input_len(), seed);
        let w = rand_vec(shape.weight_len(), seed ^ 0xabc);
        let want = linear_reference(&shape, &x, &w).unwrap();
        let plan = LayerPlan::new(&shape, n).unwrap();
        assert_eq!(simulate(&plan, &x, &w), want, "{plan:?}");
    }

    fn conv_strategy() -> impl Strategy<Value = ConvGeom> {
        (
            1usize..5,
            1usize..10,
            1usize..10,
            1usize..6,
            1usize..4,
            1usize..4,
            1usize..3,
            1usize..3,
            0usize..2,
            0usize..2,
            0usize..2,
            0usize..2,
        )
            .prop_filter_map(
                "kernel fits",
                |(c_in, h, w, c_out, kh, kw, sh, sw, pt, pl, pb, pr)| {
                    let s = ConvGeom {
                        c_in,
                        h,
                        w,
                        c_out,
                        kh,
                        kw,
                        stride: [sh, sw],
                        pads: [pt, pl, pb, pr],
                    };
                    s.validate().ok().map(|_| s)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn conv_packing_matches_reference(shape in conv_strategy(), n_log in 6u32..10, seed: u64) {
            let ls = LinearShape::Conv2d(shape);
            let n = 1usize << n_log;
            if LayerPlan::new(&ls, n).is_ok() {
                check(ls, n, seed);
            }
        }

        #[test]
        fn every_tiling_matches_reference(shape in conv_strategy(), seed: u64, cg in 1usize..5, to in 1usize..10) {
            let ls = LinearShape::Conv2d(shape);
            let n = 256;
            if let Ok(plan) = LayerPlan::with_tiling(&ls, n, cg, to) {
                let x = rand_vec(ls.input_len(), seed);
                let w = rand_vec(ls.weight_len(), seed ^ 1);
                prop_assert_eq!(simulate(&plan, &x, &w), linear_reference(&ls, &x, &w).unwrap());
            }
        }

        #[test]
        fn fc_packing_matches_reference(inputs in 1usize..300, outputs in 1usize..40, seed: u64) {
            check(LinearShape::Fc(FcShape { inputs, outputs }), 256, seed);
        }
    }

    #[test]
    fn tiling_is_used_when_the_input_exceeds_the_ring() {
        // 3x20x20 = 1200 > 256: channel groups and spatial tiles.
        let ls = LinearShape::Conv2d(ConvGeom::square(3, 20, 4, 3, 1, 1));
        let plan = LayerPlan::new(&ls, 256).unwrap();
        assert!(plan.tiles > 1);
        check(ls, 256, 7);
        // Several output channels share a plaintext when the input is small.
        let small = LinearShape::Conv2d(ConvGeom::square(1, 6, 8, 3, 1, 0));
        assert!(LayerPlan::new(&small, 256).unwrap().m > 1);
    }

    #[test]
    fn too_wide_rows_are_an_error() {
        let ls = LinearShape::Conv2d(ConvGeom::square(1, 300, 1, 3, 1, 0));
        assert!(matches!(LayerPlan::new(&ls, 256), Err(HeError::Shape(_))));
        let zero = LinearShape::Fc(FcShape {
            inputs: 0,
            outputs: 3,
        });
        assert!(LayerPlan::new(&zero, 256).is_err());
    }
}
