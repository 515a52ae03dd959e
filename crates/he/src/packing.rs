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
//!
//! A transposed convolution is lowered to such a convolution ([`Lowering`]),
//! while its input, weights and output keep their own layout (masks and online
//! messages live in the layer's own input space; only `pack_input`,
//! `pack_weights` and `output_positions` see the lowering):
//!
//! ```text
//!   dilated:    x ──scatter (s-1 zeros between)──▶ pad k-1-p ──▶ conv s1, W flipped, [i,o]↔[o,i]
//!   sub-pixel:  x ──▶ pad ──▶ conv s1, c_out·Ph·Pw channels, ~k/s taps ──pixel shuffle, crop──▶ y
//!               (channel o·Ph·Pw + jy·Pw + jx, lowered row r, column q = output o, y ≡ jy, x ≡ jx)
//! ```
//!
//! [`LayerPlan::new`] plans every lowering and keeps the cheapest; see docs/he.md.

use serde::{Deserialize, Serialize};

use crate::{HeError, Result};
pub use blindfold_core::geom::{ConvGeom, ConvTransposeGeom};

/// A fully connected layer (no bias): weights `outputs × inputs`, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FcShape {
    pub inputs: usize,
    pub outputs: usize,
}

/// A linear layer the preprocessing handles. Convolutions and transposed
/// convolutions use the geometry types of the whole workspace ([`ConvGeom`],
/// [`ConvTransposeGeom`], from `blindfold_core::geom`), so a geometry taken from
/// the model is passed as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearShape {
    /// Weights OIHW `[c_out, c_in, kh, kw]`.
    Conv2d(ConvGeom),
    /// Weights `outputs × inputs`.
    Fc(FcShape),
    /// Weights `[c_in, c_out, kh, kw]` (ONNX `ConvTranspose`, no groups, no
    /// dilation): `out[o, y, x] = Σ in[i, iy, ix]·W[i, o, ky, kx]` over
    /// `y + pad_top = iy·sh + ky`, `x + pad_left = ix·sw + kx`.
    ConvTranspose2d(ConvTransposeGeom),
}

/// How a layer becomes the (strided, padded) convolution the packing computes.
/// [`LayerPlan::new`] picks, for a transposed convolution, the cheapest of its
/// lowerings ([`LinearShape::lowerings`]) by the plans' cost model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lowering {
    /// The layer's own convolution (a fully connected layer: the 1×1 one).
    Direct,
    /// A transposed convolution as a stride-1 convolution, kernel flipped and
    /// channel axes swapped, over the input dilated by the stride (`s - 1` zeros
    /// between elements) and padded by `k - 1 - pad` (`+ output_padding` at the
    /// bottom / right). The zeros are coefficients of the input ciphertexts.
    Dilated,
    /// A transposed convolution as one stride-1 convolution of the undilated
    /// input with one output channel per output channel and phase (`c_out·Ph·Pw`,
    /// `Ph = min(sh, out_h)`; phase `(jy, jx)` holds the outputs `y ≡ jy mod sh`,
    /// `x ≡ jx mod sw`) and sub-kernels of about `k/s` taps, whose outputs
    /// interleave (pixel shuffle) into the real output. Per axis (rows,
    /// columns), `aligned` says how a phase's outputs map to lowered rows:
    /// `false`: lowered row `r` holds outputs `r·s .. r·s + s` (nothing cropped at
    /// the start; when `pad mod s != 0` the phases' input offsets differ by one
    /// and the sub-kernel may have one more tap); `true`: lowered row `r` holds
    /// the full-output positions `(r + floor(pad/s))·s ..` (the phases share
    /// their input offsets; outputs the pads remove are computed and not sent).
    /// The two coincide when `pad mod s = 0`.
    SubPixel { aligned: [bool; 2] },
}

/// One spatial axis of a transposed convolution: input length, kernel, stride,
/// pads removed from the start / end of the full output, output padding.
#[derive(Clone, Copy, Debug)]
struct TAxis {
    len: usize,
    k: usize,
    s: usize,
    lo: usize,
    hi: usize,
    op: usize,
}

impl TAxis {
    /// Rows, then columns.
    fn of(t: &ConvTransposeGeom) -> [TAxis; 2] {
        [0, 1].map(|a| TAxis {
            len: [t.h, t.w][a],
            k: [t.kh, t.kw][a],
            s: t.stride[a],
            lo: t.pads[a],
            hi: t.pads[a + 2],
            op: t.output_padding[a],
        })
    }

    /// Output length (0 if none).
    fn out(&self) -> usize {
        blindfold_core::geom::transpose_len(self.len, self.k, self.s, self.lo, self.hi, self.op)
            .unwrap_or(0)
    }

    /// The dilated input length `(len - 1)·s + 1` (saturating).
    fn dilated_len(&self) -> usize {
        self.len
            .saturating_sub(1)
            .saturating_mul(self.s)
            .saturating_add(1)
    }

    /// Pads of the dilated input: `k - 1 - lo`, `k - 1 - hi + op` (saturating;
    /// exact once the shape is validated).
    fn dilated_pads(&self) -> (usize, usize) {
        let k1 = self.k.saturating_sub(1);
        (
            k1.saturating_sub(self.lo),
            k1.saturating_add(self.op).saturating_sub(self.hi),
        )
    }

    /// Phases that occur in the output: `min(s, out)`; phase `j` holds the
    /// outputs `y ≡ j (mod s)`.
    fn phases(&self) -> usize {
        self.s.min(self.out())
    }

    /// Phase `j`'s first output is full position `lo + j = c·s + p`: its taps
    /// are `ky = p + s·t`, `t < taps(j)`, on input `iy = (y + lo - ky)/s`.
    /// Returns `(p, c)`.
    fn residue_carry(&self, j: usize) -> (usize, usize) {
        let s = self.s.max(1);
        ((self.lo + j) % s, (self.lo + j) / s)
    }

    /// Kernel taps of phase `j`: `ceil((k - p) / s)` (0 if `p >= k`: its
    /// outputs are zeros).
    fn taps(&self, j: usize) -> usize {
        self.k
            .saturating_sub(self.residue_carry(j).0)
            .div_ceil(self.s.max(1))
    }

    /// Row shift `δ_j` of phase `j` in the sub-pixel output: lowered row `r`
    /// holds its output `y = (r - δ_j)·s + j`. Unaligned: `δ = 0`, row `r` holds
    /// outputs `r·s .. r·s + s`. Aligned: `δ_j = c_j - floor(lo/s)`, row `r`
    /// holds full positions `(r + floor(lo/s))·s ..` (every phase reads the same
    /// input rows; the first row's early phases are cropped).
    fn delta(&self, aligned: bool, j: usize) -> usize {
        if aligned {
            self.residue_carry(j).1 - self.lo / self.s.max(1)
        } else {
            0
        }
    }

    /// Input offset of phase `j`'s tap `t = 0` from its lowered row:
    /// `iy = r + e_j - t`, `e_j = c_j - δ_j`.
    fn top_offset(&self, aligned: bool, j: usize) -> usize {
        self.residue_carry(j).1 - self.delta(aligned, j)
    }

    /// The sub-pixel convolution along this axis: `(pad_lo, taps, pad_hi)` of
    /// the undilated input. Lowered tap `a` of phase `j` is input offset
    /// `a - pad_lo = e_j - t`; `pad_lo = max_j (taps_j - 1 - e_j)` (`>= 0`, as
    /// phase 0 has `lo < k`), `taps = max_j e_j + pad_lo + 1`, and `pad_hi` makes
    /// the lowered output at least `rows` long. Saturating; exact once validated.
    fn sub_pixel(&self, aligned: bool) -> (usize, usize, usize) {
        let (mut lo, mut top) = (0usize, 0usize);
        for j in 0..self.phases() {
            let (t, e) = (self.taps(j), self.top_offset(aligned, j));
            if t > 0 {
                lo = lo.max((t - 1).saturating_sub(e));
                top = top.max(e);
            }
        }
        let taps = top + lo + 1;
        let hi = (self.rows(aligned) + top).saturating_sub(self.len);
        (lo, taps, hi)
    }

    /// Lowered output rows the phases need: `max_j (δ_j + ceil((out - j)/s))`.
    fn rows(&self, aligned: bool) -> usize {
        (0..self.phases())
            .map(|j| self.delta(aligned, j) + (self.out() - j).div_ceil(self.s.max(1)))
            .max()
            .unwrap_or(0)
    }

    /// Kernel tap of the transposed convolution at lowered tap `a` of phase `j`,
    /// if it has one.
    fn sub_tap(&self, aligned: bool, j: usize, a: usize) -> Option<usize> {
        let (lo, _, _) = self.sub_pixel(aligned);
        let t = (self.top_offset(aligned, j) + lo).checked_sub(a)?;
        (t < self.taps(j)).then(|| self.residue_carry(j).0 + self.s * t)
    }

    /// Output position of lowered row `r` of phase `j`, if not cropped.
    fn sub_out(&self, aligned: bool, j: usize, r: usize) -> Option<usize> {
        let y = r.checked_sub(self.delta(aligned, j))? * self.s + j;
        (y < self.out()).then_some(y)
    }
}

impl FcShape {
    /// The equivalent 1×1 convolution.
    pub fn as_conv(&self) -> ConvGeom {
        ConvGeom::square(self.inputs, 1, self.outputs, 1, 1, 0)
    }
}

/// The stride-1 convolution over the dilated input ([`Lowering::Dilated`]).
fn dilated_conv(t: &ConvTransposeGeom) -> ConvGeom {
    let [r, c] = TAxis::of(t);
    let ((pt, pb), (pl, pr)) = (r.dilated_pads(), c.dilated_pads());
    ConvGeom {
        c_in: t.c_in,
        h: r.dilated_len(),
        w: c.dilated_len(),
        c_out: t.c_out,
        kh: t.kh,
        kw: t.kw,
        stride: [1, 1],
        pads: [pt, pl, pb, pr],
    }
}

/// The sub-pixel convolution of the undilated input ([`Lowering::SubPixel`]):
/// output channel `o·Ph·Pw + jy·Pw + jx` is output channel `o`, phases `(jy, jx)`.
fn sub_pixel_conv(t: &ConvTransposeGeom, aligned: [bool; 2]) -> ConvGeom {
    let [r, c] = TAxis::of(t);
    let ((pt, kh, pb), (pl, kw, pr)) = (r.sub_pixel(aligned[0]), c.sub_pixel(aligned[1]));
    ConvGeom {
        c_in: t.c_in,
        h: t.h,
        w: t.w,
        c_out: t
            .c_out
            .saturating_mul(r.phases())
            .saturating_mul(c.phases()),
        kh,
        kw,
        stride: [1, 1],
        pads: [pt, pl, pb, pr],
    }
}

impl LinearShape {
    /// The lowerings [`LayerPlan::new`] chooses from, the default first (for a
    /// transposed convolution: the dilated form, then the distinct sub-pixel ones).
    pub fn lowerings(&self) -> Vec<Lowering> {
        match self {
            LinearShape::Conv2d(_) | LinearShape::Fc(_) => vec![Lowering::Direct],
            LinearShape::ConvTranspose2d(t) => {
                let mut v = vec![Lowering::Dilated];
                // Aligned differs from unaligned only where `pad mod s != 0`.
                let differs = [0, 1].map(|a| t.pads[a] % t.stride[a].max(1) != 0);
                for aligned in [[false, false], [true, false], [false, true], [true, true]] {
                    if (0..2).all(|a| !aligned[a] || differs[a]) {
                        v.push(Lowering::SubPixel { aligned });
                    }
                }
                v
            }
        }
    }

    /// The convolution view: the layer itself, a fully connected layer as a 1×1
    /// convolution, a transposed convolution as the stride-1 convolution over
    /// its dilated input ([`Lowering::Dilated`]). Saturating; exact once
    /// [`LinearShape::validate`] accepts the shape.
    pub fn conv(&self) -> ConvGeom {
        match self {
            LinearShape::Conv2d(c) => *c,
            LinearShape::Fc(f) => f.as_conv(),
            LinearShape::ConvTranspose2d(t) => dilated_conv(t),
        }
    }

    /// The convolution the packing computes for `lowering` (an error if the
    /// lowering does not apply to this kind of layer). Not validated.
    pub fn lowered(&self, lowering: Lowering) -> Result<ConvGeom> {
        match (self, lowering) {
            (LinearShape::Conv2d(_) | LinearShape::Fc(_), Lowering::Direct) => Ok(self.conv()),
            (LinearShape::ConvTranspose2d(t), Lowering::Dilated) => Ok(dilated_conv(t)),
            (LinearShape::ConvTranspose2d(t), Lowering::SubPixel { aligned }) => {
                Ok(sub_pixel_conv(t, aligned))
            }
            _ => Err(HeError::Shape(format!(
                "{}: no {lowering:?} lowering",
                self.describe()
            ))),
        }
    }

    /// Check that the layer is meaningful and that its lowerings represent it:
    /// for a transposed convolution, every start pad at most `kernel - 1` and
    /// every end pad at most `kernel - 1 + output_padding` (a larger pad would
    /// make the equivalent convolution's pad negative).
    pub fn validate(&self) -> Result<()> {
        let t = match self {
            LinearShape::Conv2d(c) => return validate_conv(c),
            LinearShape::Fc(f) => return validate_conv(&f.as_conv()),
            LinearShape::ConvTranspose2d(t) => t,
        };
        t.validate().map_err(|e| HeError::Shape(e.to_string()))?;
        let names = [("top", "bottom", "height"), ("left", "right", "width")];
        for (a, (lo, hi, dim)) in TAxis::of(t).iter().zip(names) {
            if a.lo > a.k - 1 {
                return Err(HeError::Shape(format!(
                    "{}: pad {lo} {} larger than kernel {dim} - 1 = {}: the equivalent \
                     convolution would need a negative pad",
                    self.describe(),
                    a.lo,
                    a.k - 1
                )));
            }
            if a.hi > a.k - 1 + a.op {
                return Err(HeError::Shape(format!(
                    "{}: pad {hi} {} larger than kernel {dim} - 1 + output padding = {}: the \
                     equivalent convolution would need a negative pad",
                    self.describe(),
                    a.hi,
                    a.k - 1 + a.op
                )));
            }
        }
        // Sizes: the dilated input is shorter than the full output, and the
        // sub-pixel channels `c_out·Ph·Pw` are at most `c_out·out_h·out_w`, both
        // checked by `ConvTransposeGeom::validate`; the rest by `ConvGeom::validate`.
        for lowering in self.lowerings() {
            validate_conv(&self.lowered(lowering)?)?;
        }
        Ok(())
    }

    /// Elements of the input tensor (saturating; exact once validated).
    pub fn input_len(&self) -> usize {
        match self {
            LinearShape::ConvTranspose2d(t) => t.input_len(),
            _ => self.conv().input_len(),
        }
    }

    /// Elements of the output tensor (saturating; exact once validated).
    pub fn output_len(&self) -> usize {
        match self {
            LinearShape::ConvTranspose2d(t) => t.out_len(),
            _ => self.conv().out_len(),
        }
    }

    /// Elements of the weight tensor (saturating; exact once validated).
    pub fn weight_len(&self) -> usize {
        match self {
            LinearShape::ConvTranspose2d(t) => t.weight_len(),
            _ => self.conv().weight_len(),
        }
    }

    /// A short human-readable description, e.g. `conv 1x28x28 -> 16 k5x5 s1x1
    /// p0,0,0,0` or `convT 16x16x16 -> 16 k2x2 s2x2 p0,0,0,0 op0,0`.
    pub fn describe(&self) -> String {
        let conv = |kind: &str, c_in, h, w, c_out, kh, kw, st: [usize; 2], p: [usize; 4]| {
            format!(
                "{kind} {c_in}x{h}x{w} -> {c_out} k{kh}x{kw} s{}x{} p{},{},{},{}",
                st[0], st[1], p[0], p[1], p[2], p[3]
            )
        };
        match self {
            LinearShape::Fc(f) => format!("fc {} -> {}", f.inputs, f.outputs),
            LinearShape::Conv2d(c) => conv(
                "conv", c.c_in, c.h, c.w, c.c_out, c.kh, c.kw, c.stride, c.pads,
            ),
            LinearShape::ConvTranspose2d(t) => format!(
                "{} op{},{}",
                conv("convT", t.c_in, t.h, t.w, t.c_out, t.kh, t.kw, t.stride, t.pads),
                t.output_padding[0],
                t.output_padding[1]
            ),
        }
    }
}

/// The plaintext reference `L(x; W)` mod 2^64 (wrapping), for tests and the engine.
pub fn linear_reference(shape: &LinearShape, x: &[u64], w: &[u64]) -> Result<Vec<u64>> {
    shape.validate()?;
    check_len("input", x.len(), shape.input_len())?;
    check_len("weights", w.len(), shape.weight_len())?;
    if let LinearShape::ConvTranspose2d(t) = shape {
        return Ok(conv_transpose_reference(t, x, w));
    }
    let c = shape.conv();
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

/// The transposed convolution, scattering every input element through every
/// kernel tap (as the model's kernel does): `in[i, iy, ix]·W[i, o, ky, kx]` goes
/// to `out[o, iy·sh + ky - pad_top, ix·sw + kx - pad_left]` when that is inside.
fn conv_transpose_reference(t: &ConvTransposeGeom, x: &[u64], w: &[u64]) -> Vec<u64> {
    let (oh, ow) = (t.out_h(), t.out_w());
    let mut out = vec![0u64; t.c_out * oh * ow];
    for ci in 0..t.c_in {
        for iy in 0..t.h {
            for ix in 0..t.w {
                let v = x[(ci * t.h + iy) * t.w + ix];
                for co in 0..t.c_out {
                    for ky in 0..t.kh {
                        let Some(oy) = (iy * t.stride[0] + ky).checked_sub(t.pads[0]) else {
                            continue;
                        };
                        if oy >= oh {
                            continue;
                        }
                        for kx in 0..t.kw {
                            let Some(ox) = (ix * t.stride[1] + kx).checked_sub(t.pads[1]) else {
                                continue;
                            };
                            if ox >= ow {
                                continue;
                            }
                            let wv = w[((ci * t.c_out + co) * t.kh + ky) * t.kw + kx];
                            let o = &mut out[(co * oh + oy) * ow + ox];
                            *o = o.wrapping_add(wv.wrapping_mul(v));
                        }
                    }
                }
            }
        }
    }
    out
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

/// How one linear layer is cut into ciphertexts and plaintexts. The tiling
/// fields describe the lowered convolution ([`LayerPlan::conv`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPlan {
    /// The layer.
    pub shape: LinearShape,
    /// How the layer is computed as a convolution.
    pub lowering: Lowering,
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
    /// The cheapest valid lowering and tiling for ring degree `n` (by the cost
    /// model above).
    pub fn new(shape: &LinearShape, n: usize) -> Result<LayerPlan> {
        shape.validate()?;
        let mut best: Option<(f64, LayerPlan)> = None;
        for lowering in shape.lowerings() {
            if let Some(plan) = Self::cheapest_tiling(shape, n, lowering)? {
                let cost = plan.cost();
                if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                    best = Some((cost, plan));
                }
            }
        }
        best.map(|(_, p)| p)
            .ok_or_else(|| Self::no_tiling(shape, n))
    }

    /// The cheapest valid tiling of one lowering (to compare the lowerings).
    pub fn with_cheapest_tiling(
        shape: &LinearShape,
        n: usize,
        lowering: Lowering,
    ) -> Result<LayerPlan> {
        shape.validate()?;
        Self::cheapest_tiling(shape, n, lowering)?.ok_or_else(|| Self::no_tiling(shape, n))
    }

    fn no_tiling(shape: &LinearShape, n: usize) -> HeError {
        HeError::Shape(format!(
            "{}: no tiling fits ring degree {n} (one padded row band of the kernel is wider than the ring)",
            shape.describe()
        ))
    }

    /// Over all distinct group and tile counts of the lowered convolution.
    fn cheapest_tiling(
        shape: &LinearShape,
        n: usize,
        lowering: Lowering,
    ) -> Result<Option<LayerPlan>> {
        let c = shape.lowered(lowering)?;
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
                if let Ok(plan) = Self::with_lowering(shape, n, lowering, c_g, t_o) {
                    let cost = plan.cost();
                    if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                        best = Some((cost, plan));
                    }
                }
            }
        }
        Ok(best.map(|(_, p)| p))
    }

    /// A plan of the default lowering ([`LinearShape::lowerings`]) with a given
    /// number of channels per group and output rows per tile.
    pub fn with_tiling(shape: &LinearShape, n: usize, c_g: usize, t_o: usize) -> Result<LayerPlan> {
        Self::with_lowering(shape, n, shape.lowerings()[0], c_g, t_o)
    }

    /// A plan with a given lowering, channels per group and output rows per
    /// tile (of the lowered convolution).
    pub fn with_lowering(
        shape: &LinearShape,
        n: usize,
        lowering: Lowering,
        c_g: usize,
        t_o: usize,
    ) -> Result<LayerPlan> {
        shape.validate()?;
        let c = shape.lowered(lowering)?;
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
            lowering,
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

    /// The convolution the plan computes (the layer lowered by `lowering`).
    pub fn conv(&self) -> ConvGeom {
        self.shape
            .lowered(self.lowering)
            .unwrap_or_else(|_| self.shape.conv())
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

    /// Worst-case number of non-zero plaintext positions summed into one output
    /// (an upper bound for a sub-pixel lowering, whose sub-kernels of the phases
    /// that are not multiples of the stride have fewer taps).
    pub fn max_nnz_per_output(&self) -> usize {
        let c = self.conv();
        self.groups * self.m * self.c_g * c.kh * c.kw
    }

    /// The cost model's estimate: bytes, plus CPU counted at 1 ms = 50 kB.
    pub fn cost(&self) -> f64 {
        let bytes =
            self.input_cts() as f64 * COST_IN_BYTES + self.output_cts() as f64 * COST_OUT_BYTES;
        let ms = self.input_cts() as f64 * COST_IN_MS
            + self.output_cts() as f64 * COST_OUT_MS
            + self.products() as f64 * COST_PRODUCT_MS;
        bytes + ms * BYTES_PER_MS
    }

    /// Spacing of the layer's input elements among the lowered convolution's
    /// input positions, and the layer's input height and width: the stride for
    /// a dilated transposed convolution (the positions between are zeros),
    /// 1 otherwise.
    fn input_map(&self) -> ([usize; 2], usize, usize) {
        match (&self.shape, self.lowering) {
            (LinearShape::ConvTranspose2d(t), Lowering::Dilated) => (t.stride, t.h, t.w),
            _ => {
                let c = self.conv();
                ([1, 1], c.h, c.w)
            }
        }
    }

    /// Index in the layer's weights of the lowered convolution's weight
    /// `[o, ch, di, dj]` (OIHW), or `None` where it is a structural zero (the
    /// taps a sub-pixel sub-kernel does not have).
    fn weight_index(&self, o: usize, ch: usize, di: usize, dj: usize) -> Option<usize> {
        let c = self.conv();
        match (&self.shape, self.lowering) {
            (LinearShape::ConvTranspose2d(t), Lowering::Dilated) => {
                // Flipped kernel, channel axes swapped.
                let (ky, kx) = (t.kh - 1 - di, t.kw - 1 - dj);
                Some(((ch * t.c_out + o) * t.kh + ky) * t.kw + kx)
            }
            (LinearShape::ConvTranspose2d(t), Lowering::SubPixel { aligned }) => {
                let [r, col] = TAxis::of(t);
                let per = r.phases() * col.phases();
                let (oc, ph) = (o / per, o % per);
                let ky = r.sub_tap(aligned[0], ph / col.phases(), di)?;
                let kx = col.sub_tap(aligned[1], ph % col.phases(), dj)?;
                Some(((ch * t.c_out + oc) * t.kh + ky) * t.kw + kx)
            }
            _ => Some(((o * c.c_in + ch) * c.kh + di) * c.kw + dj),
        }
    }

    /// Index in the layer's output of the lowered convolution's output
    /// `[o, i, j]`, or `None` where the pads crop it (sub-pixel outputs only).
    fn output_index(&self, o: usize, i: usize, j: usize) -> Option<usize> {
        match (&self.shape, self.lowering) {
            (LinearShape::ConvTranspose2d(t), Lowering::SubPixel { aligned }) => {
                let [r, col] = TAxis::of(t);
                let per = r.phases() * col.phases();
                let (oc, ph) = (o / per, o % per);
                let y = r.sub_out(aligned[0], ph / col.phases(), i)?;
                let x = col.sub_out(aligned[1], ph % col.phases(), j)?;
                Some((oc * t.out_h() + y) * t.out_w() + x)
            }
            _ => {
                let c = self.conv();
                Some((o * c.out_h() + i) * c.out_w() + j)
            }
        }
    }

    /// Pack an input-shaped tensor into `input_cts()` coefficient vectors of
    /// length `n`, indexed `tile * groups + group`.
    pub fn pack_input(&self, x: &[u64]) -> Result<Vec<Vec<u64>>> {
        check_len("input", x.len(), self.shape.input_len())?;
        let c = self.conv();
        let wp = c.padded_w();
        let (dil, src_h, src_w) = self.input_map();
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
                        let d = pi - c.pads[0];
                        if !d.is_multiple_of(dil[0]) {
                            continue; // a zero row of the dilated input
                        }
                        let src = &x[(ch * src_h + d / dil[0]) * src_w..][..src_w];
                        let dst = (cl * self.h_t + i) * wp + c.pads[1];
                        if dil[1] == 1 {
                            poly[dst..dst + src_w].copy_from_slice(src);
                        } else {
                            for (k, &v) in src.iter().enumerate() {
                                poly[dst + k * dil[1]] = v;
                            }
                        }
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
        let c = self.conv();
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
                                let Some(k) = self.weight_index(o, ch, di, dj) else {
                                    continue;
                                };
                                let pos =
                                    ol * self.s + self.o_off - ((cl * self.h_t + di) * wp + dj);
                                poly[pos] = w[k];
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
        let c = self.conv();
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
                            let Some(idx) = self.output_index(o, i, j) else {
                                continue;
                            };
                            let pos =
                                ol * self.s + self.o_off + r * c.stride[0] * wp + j * c.stride[1];
                            v.push((pos, idx));
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

    /// The transposed convolution from its definition, gathering: `out[o, y, x]`
    /// sums `in[i, iy, ix]·W[i, o, ky, kx]` over every `i, iy, ix, ky, kx` with
    /// `y + pad_top = iy·sh + ky` and `x + pad_left = ix·sw + kx`.
    fn conv_transpose_by_definition(t: &ConvTransposeGeom, x: &[u64], w: &[u64]) -> Vec<u64> {
        let (oh, ow) = (t.out_h(), t.out_w());
        let mut out = vec![0u64; t.c_out * oh * ow];
        for o in 0..t.c_out {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = 0u64;
                    for i in 0..t.c_in {
                        for iy in 0..t.h {
                            for ky in 0..t.kh {
                                if y + t.pads[0] != iy * t.stride[0] + ky {
                                    continue;
                                }
                                for ix in 0..t.w {
                                    for kx in 0..t.kw {
                                        if xo + t.pads[1] != ix * t.stride[1] + kx {
                                            continue;
                                        }
                                        let xv = x[(i * t.h + iy) * t.w + ix];
                                        let wv = w[((i * t.c_out + o) * t.kh + ky) * t.kw + kx];
                                        acc = acc.wrapping_add(xv.wrapping_mul(wv));
                                    }
                                }
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xo] = acc;
                }
            }
        }
        out
    }

    fn ct(
        c_in: usize,
        hw: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        output_padding: usize,
    ) -> ConvTransposeGeom {
        ConvTransposeGeom {
            c_in,
            h: hw,
            w: hw,
            c_out,
            kh: k,
            kw: k,
            stride: [stride, stride],
            pads: [pad; 4],
            output_padding: [output_padding; 2],
        }
    }

    /// Transposed geometries with strides 1-3, kernels 1-4, pads within the
    /// lowerings' bounds (start pad < k, end pad < k + output padding), output
    /// padding below the stride, small sizes and channel counts.
    fn conv_transpose_strategy() -> impl Strategy<Value = ConvTransposeGeom> {
        (
            (1usize..4, 1usize..7, 1usize..7, 1usize..5),
            (1usize..5, 1usize..5, 1usize..4, 1usize..4),
            (0usize..4, 0usize..4, 0usize..4, 0usize..4),
            (0usize..3, 0usize..3),
        )
            .prop_filter_map(
                "has an output",
                |((c_in, h, w, c_out), (kh, kw, sh, sw), (pt, pl, pb, pr), (oph, opw))| {
                    let (oph, opw) = (oph % sh, opw % sw);
                    let t = ConvTransposeGeom {
                        c_in,
                        h,
                        w,
                        c_out,
                        kh,
                        kw,
                        stride: [sh, sw],
                        pads: [pt % kh, pl % kw, pb % (kh + oph), pr % (kw + opw)],
                        output_padding: [oph, opw],
                    };
                    LinearShape::ConvTranspose2d(t).validate().ok().map(|_| t)
                },
            )
    }

    fn check_transposed(plan: &LayerPlan, seed: u64) -> std::result::Result<(), TestCaseError> {
        let LinearShape::ConvTranspose2d(t) = plan.shape else {
            unreachable!()
        };
        let x = rand_vec(plan.shape.input_len(), seed);
        let w = rand_vec(plan.shape.weight_len(), seed ^ 0x5eed);
        let want = conv_transpose_by_definition(&t, &x, &w);
        prop_assert_eq!(&linear_reference(&plan.shape, &x, &w).unwrap(), &want);
        prop_assert_eq!(simulate(plan, &x, &w), want, "{:?}", plan);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn conv_transpose_packing_matches_reference(
            t in conv_transpose_strategy(), n_log in 6u32..10, seed: u64,
        ) {
            let ls = LinearShape::ConvTranspose2d(t);
            let n = 1usize << n_log;
            if let Ok(plan) = LayerPlan::new(&ls, n) {
                check_transposed(&plan, seed)?;
            }
        }

        #[test]
        fn both_lowerings_and_every_tiling_match_reference(
            t in conv_transpose_strategy(), seed: u64, cg in 1usize..4, to in 1usize..12,
            n_log in 7u32..10,
        ) {
            let ls = LinearShape::ConvTranspose2d(t);
            for lowering in ls.lowerings() {
                if let Ok(plan) = LayerPlan::with_lowering(&ls, 1 << n_log, lowering, cg, to) {
                    check_transposed(&plan, seed)?;
                }
            }
        }

        #[test]
        fn lowered_convolutions_have_the_expected_sizes(t in conv_transpose_strategy()) {
            let ls = LinearShape::ConvTranspose2d(t);
            let [r, c] = TAxis::of(&t);
            let d = dilated_conv(&t);
            prop_assert_eq!((d.out_h(), d.out_w()), (t.out_h(), t.out_w()));
            prop_assert_eq!(d.input_len(), t.c_in * r.dilated_len() * c.dilated_len());
            let lowerings = ls.lowerings();
            // The dilated form and one sub-pixel form per choice of alignment.
            let misaligned = (0..2).filter(|&a| t.pads[a] % t.stride[a] != 0).count();
            prop_assert_eq!(lowerings.len(), 1 + (1 << misaligned));
            for lowering in lowerings {
                let Lowering::SubPixel { aligned } = lowering else { continue };
                let sp = ls.lowered(lowering).unwrap();
                prop_assert_eq!(sp.input_len(), t.input_len());
                prop_assert!(sp.out_h() >= r.rows(aligned[0]) && sp.out_w() >= c.rows(aligned[1]));
                // A sub-kernel has at most one tap more than ceil(k/s).
                prop_assert!(sp.kh <= t.kh.div_ceil(t.stride[0]) + 1);
                prop_assert!(sp.kw <= t.kw.div_ceil(t.stride[1]) + 1);
                // Every output of the transposed convolution is one sub-pixel output.
                let plan = LayerPlan::with_lowering(&ls, 1 << 20, lowering, 1, 1).unwrap();
                let mut seen = vec![0u32; t.out_len()];
                for o in 0..sp.c_out {
                    for i in 0..sp.out_h() {
                        for j in 0..sp.out_w() {
                            if let Some(idx) = plan.output_index(o, i, j) {
                                seen[idx] += 1;
                            }
                        }
                    }
                }
                prop_assert!(seen.iter().all(|&k| k == 1));
                // Every kernel tap is used exactly once per output channel.
                let mut taps = vec![0u32; t.weight_len()];
                for o in 0..sp.c_out {
                    for di in 0..sp.kh {
                        for dj in 0..sp.kw {
                            if let Some(k) = plan.weight_index(o, 0, di, dj) {
                                taps[k] += 1;
                            }
                        }
                    }
                }
                let per_in = t.c_out * t.kh * t.kw;
                // Taps of phases that never occur (when out < s) are unused.
                if t.out_h() >= t.stride[0] && t.out_w() >= t.stride[1] {
                    prop_assert!(taps[..per_in].iter().all(|&k| k == 1));
                }
            }
        }
    }

    #[test]
    fn transposed_reference_matches_the_definition() {
        for (k, t) in [
            ct(2, 3, 3, 2, 2, 0, 0),
            ct(1, 4, 2, 3, 2, 1, 1),
            ct(3, 2, 1, 4, 3, 2, 2),
            ct(2, 5, 2, 3, 1, 1, 0),
            ct(1, 1, 1, 1, 1, 0, 0),
            ConvTransposeGeom {
                h: 3,
                w: 5,
                kh: 1,
                kw: 3,
                stride: [3, 1],
                pads: [0, 2, 0, 0],
                output_padding: [2, 0],
                ..ct(2, 1, 3, 1, 1, 0, 0)
            },
        ]
        .iter()
        .enumerate()
        {
            let ls = LinearShape::ConvTranspose2d(*t);
            let x = rand_vec(ls.input_len(), 100 + k as u64);
            let w = rand_vec(ls.weight_len(), 200 + k as u64);
            let want = conv_transpose_by_definition(t, &x, &w);
            assert_eq!(want.len(), ls.output_len());
            assert_eq!(linear_reference(&ls, &x, &w).unwrap(), want, "{t:?}");
            for lowering in ls.lowerings() {
                for n in [128, 1024] {
                    let best = (1..=t.c_in)
                        .flat_map(|cg| (1..=16).map(move |to| (cg, to)))
                        .filter_map(|(cg, to)| {
                            LayerPlan::with_lowering(&ls, n, lowering, cg, to).ok()
                        });
                    for plan in best {
                        assert_eq!(simulate(&plan, &x, &w), want, "{plan:?}");
                    }
                }
            }
        }
        // A small hand-computed case: 1 channel, input [1, 2], kernel [a, b] = [3, 5]
        // along columns, stride 2: full output [3, 5, 6, 10].
        let t = ConvTransposeGeom {
            h: 1,
            w: 2,
            kh: 1,
            kw: 2,
            stride: [1, 2],
            ..ct(1, 1, 1, 1, 1, 0, 0)
        };
        let ls = LinearShape::ConvTranspose2d(t);
        assert_eq!(
            linear_reference(&ls, &[1, 2], &[3, 5]).unwrap(),
            [3, 5, 6, 10]
        );
        let with_pads = ConvTransposeGeom {
            pads: [0, 1, 0, 0],
            output_padding: [0, 1],
            ..t
        };
        let ls = LinearShape::ConvTranspose2d(with_pads);
        assert_eq!(
            linear_reference(&ls, &[1, 2], &[3, 5]).unwrap(),
            [5, 6, 10, 0]
        );
        for lowering in ls.lowerings() {
            let plan = LayerPlan::with_lowering(&ls, 64, lowering, 1, 1).unwrap();
            assert_eq!(simulate(&plan, &[1, 2], &[3, 5]), [5, 6, 10, 0]);
        }
    }

    #[test]
    fn the_dilated_lowering_is_the_flipped_transposed_kernel_on_the_dilated_input() {
        // 16 -> 8, k3 s2 p1 op1 on 5x5: dilated 9x9, pads 1 (top/left) and 2.
        let t = ct(16, 5, 8, 3, 2, 1, 1);
        let ls = LinearShape::ConvTranspose2d(t);
        assert_eq!(
            ls.conv(),
            ConvGeom {
                c_in: 16,
                h: 9,
                w: 9,
                c_out: 8,
                kh: 3,
                kw: 3,
                stride: [1, 1],
                pads: [1, 1, 2, 2],
            }
        );
        assert_eq!((t.out_h(), ls.conv().out_h()), (10, 10));
        // The sizes the protocol sees are the transposed convolution's own.
        assert_eq!(ls.input_len(), 16 * 25);
        assert_eq!(ls.weight_len(), 16 * 8 * 9);
        assert_eq!(ls.output_len(), 8 * 100);
        // Sub-pixel, 4 phases, 2x2 sub-kernels. Unaligned: row r holds outputs
        // 2r, 2r + 1; the odd phase reads input rows r - 0, the even one r + 1, r:
        // 5 + 0 + 1 padded rows, 5 output rows, nothing cropped.
        let sub = |aligned| ls.lowered(Lowering::SubPixel { aligned }).unwrap();
        let sp = ConvGeom {
            c_in: 16,
            h: 5,
            w: 5,
            c_out: 32,
            kh: 2,
            kw: 2,
            stride: [1, 1],
            pads: [0, 0, 1, 1],
        };
        assert_eq!(sub([false, false]), sp);
        assert_eq!(sp.out_h(), 5);
        // Aligned: row r holds full positions 2r, 2r + 1 (outputs 2r - 1, 2r):
        // 1 + 5 + 1 padded rows, 6 output rows, the first and the last cropped.
        let aligned = sub([true, true]);
        assert_eq!((aligned.pads, aligned.out_h()), ([1, 1, 1, 1], 6));
        assert_eq!(sub([true, false]).pads, [1, 0, 1, 1]);
        assert_eq!(ls.describe(), "convT 16x5x5 -> 8 k3x3 s2x2 p1,1,1,1 op1,1");
        assert!(ls.lowered(Lowering::Direct).is_err());
        assert!(LinearShape::Fc(FcShape {
            inputs: 2,
            outputs: 3
        })
        .lowered(Lowering::SubPixel {
            aligned: [false; 2]
        })
        .is_err());
        // Input zeros: only the original elements are written (every other
        // row and column of the dilated input).
        let plan = LayerPlan::with_lowering(&ls, 8192, Lowering::Dilated, 16, 10).unwrap();
        let x: Vec<u64> = (1..=ls.input_len() as u64).collect();
        let packed = plan.pack_input(&x).unwrap();
        let nonzero: usize = packed
            .iter()
            .map(|p| p.iter().filter(|&&v| v != 0).count())
            .sum();
        assert_eq!(nonzero, x.len());
        // Sub-pixel weights: of the 4 phases' 2x2 sub-kernels, 9 taps exist.
        let unaligned = Lowering::SubPixel {
            aligned: [false; 2],
        };
        let plan = LayerPlan::with_lowering(&ls, 8192, unaligned, 1, 5).unwrap();
        let w = vec![1u64; ls.weight_len()];
        let nnz: usize = plan.pack_weights(&w).unwrap().iter().map(|(_, k)| *k).sum();
        assert_eq!(nnz, 16 * 8 * 9);
    }

    #[test]
    fn stride_one_lowerings_coincide() {
        let ls = LinearShape::ConvTranspose2d(ct(3, 6, 4, 3, 1, 1, 0));
        assert_eq!(ls.lowerings().len(), 2);
        assert_eq!(
            ls.lowered(Lowering::Dilated).unwrap(),
            ls.lowered(Lowering::SubPixel {
                aligned: [false; 2]
            })
            .unwrap()
        );
        check(ls, 256, 3);
    }

    #[test]
    fn pads_the_lowerings_cannot_represent_are_refused() {
        for (t, why) in [
            (
                ct(1, 4, 1, 2, 2, 2, 0),
                "pad top 2 larger than kernel height - 1 = 1",
            ),
            (
                ConvTransposeGeom {
                    pads: [0, 0, 0, 4],
                    output_padding: [0, 1],
                    ..ct(1, 4, 1, 3, 2, 0, 0)
                },
                "pad right 4 larger than kernel width - 1 + output padding = 3",
            ),
        ] {
            let ls = LinearShape::ConvTranspose2d(t);
            match LayerPlan::new(&ls, 8192) {
                Err(HeError::Shape(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{t:?}: {other:?}"),
            }
            assert!(linear_reference(&ls, &[0; 16], &vec![0; ls.weight_len()]).is_err());
        }
        // The bound itself is accepted: pad right = kw - 1 + output padding.
        let edge = ConvTransposeGeom {
            pads: [0, 0, 0, 3],
            output_padding: [0, 1],
            ..ct(1, 4, 1, 3, 2, 0, 0)
        };
        check(LinearShape::ConvTranspose2d(edge), 256, 5);
        // Geometries the model rejects are refused too (no output left).
        let none = ConvTransposeGeom {
            pads: [1, 0, 1, 0],
            ..ct(1, 1, 1, 2, 1, 0, 0)
        };
        assert!(matches!(
            LinearShape::ConvTranspose2d(none).validate(),
            Err(HeError::Shape(_))
        ));
    }

    /// Ciphertexts of both lowerings for typical UNet up-sampling layers at the
    /// deployment's ring degree; the sub-pixel form is chosen and is cheaper.
    /// `cargo test -p blindfold-he --lib unet_layers -- --nocapture` prints them.
    #[test]
    fn unet_layers_choose_the_sub_pixel_form() {
        let n = 8192;
        for t in [
            ct(16, 16, 16, 2, 2, 0, 0),
            ct(32, 16, 16, 2, 2, 0, 0),
            ct(8, 32, 8, 3, 2, 1, 1),
            ct(64, 8, 32, 2, 2, 0, 0),
            ct(16, 32, 8, 4, 2, 1, 0),
        ] {
            let ls = LinearShape::ConvTranspose2d(t);
            let best = LayerPlan::new(&ls, n).unwrap();
            let mut costs = Vec::new();
            for lowering in ls.lowerings() {
                let plan = LayerPlan::with_cheapest_tiling(&ls, n, lowering).unwrap();
                eprintln!(
                    "{:<40} {lowering:?}: in {} out {} products {} (Cg {}, To {}, m {}) cost {:.2} MB",
                    ls.describe(),
                    plan.input_cts(),
                    plan.output_cts(),
                    plan.products(),
                    plan.c_g,
                    plan.t_o,
                    plan.m,
                    plan.cost() / 1e6
                );
                costs.push((plan.cost(), lowering));
            }
            let cheapest = costs.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
            assert_eq!(best.lowering, cheapest.1);
            assert!(
                matches!(best.lowering, Lowering::SubPixel { .. }),
                "{}",
                ls.describe()
            );
            assert!(costs[1..].iter().any(|c| c.0 < costs[0].0));
            // Both forms compute the layer.
            check(ls, n, 11);
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
