//! Lowering of a float model to an exact integer program for FHE.
//!
//! BFV computes exactly modulo its plaintext modulus and cannot divide, so the
//! FHE program never truncates: every value is an integer whose real meaning is
//! `value / scale`, and scales multiply along the network (a linear layer
//! multiplies by its weights' scale `2^e`, a square squares the scale). The rules:
//!
//! * the input is `round(x · 2^input_bits)`, `x` inside the declared input range
//!   (the encoder refuses anything outside it);
//! * a linear layer (conv, transposed conv, dense, channel affine) gets integer
//!   weights `round(w · 2^e)`, `e` the largest power with every `|w_int| <=
//!   2^(weight_bits - 1) - 1`, and bias `round(b · scale_out)`;
//! * average pooling is an integer window sum; its `1/k²` goes into the scale
//!   (`scale_out = scale_in · k²`), so the next layer's bias and the decoder see it
//!   and no division is needed;
//! * square squares value and scale; add and concat align their inputs' scales
//!   by an integer factor (exact when the ratio is a power of two);
//! * reshape is free; ReLU, max-pool and sign have no polynomial form and are
//!   refused, naming the layer.
//!
//! Every value carries exact worst-case bounds `[lo, hi]` over all inputs in the
//! input range (interval arithmetic on the integer weights). The plaintext
//! modulus (or the product of several, CRT) is chosen larger than twice the
//! largest bound, so decryption is the exact integer the reference
//! [`FheProgram::run`] computes, on every admissible input.

use blindfold_core::geom::PoolGeom;
use blindfold_core::Shape;
use blindfold_model::ir::{FinalActivation, Model, Op};
use serde::{Deserialize, Serialize};

/// Values larger than this are refused: the reference runs in `i128`.
pub const MAX_BOUND_BITS: u32 = 120;
/// Largest linear map the lowering builds (non-zero weights).
pub const MAX_NONZEROS: usize = 1 << 26;

/// Quantization of a model for FHE.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheQuant {
    /// Fractional bits of the input: `x_int = round(x · 2^input_bits)`.
    pub input_bits: u32,
    /// Signed precision of every layer's weights (`|w_int| < 2^(weight_bits-1)`).
    pub weight_bits: u32,
    /// Admissible inputs: every element in `[lo, hi]`.
    pub input_range: (f32, f32),
}

impl FheQuant {
    /// Encode one input of `len` elements: `round(x · 2^input_bits)`, every
    /// element checked against the input range.
    pub fn encode(&self, len: usize, x: &[f32]) -> Result<Vec<i64>, InputError> {
        if x.len() != len {
            return Err(InputError::Length {
                expected: len,
                got: x.len(),
            });
        }
        let (lo, hi) = self.input_range;
        let s = 2f64.powi(self.input_bits as i32);
        x.iter()
            .enumerate()
            .map(|(index, &v)| {
                if !(v >= lo && v <= hi) {
                    return Err(InputError::Range {
                        index,
                        value: v,
                        lo,
                        hi,
                    });
                }
                Ok((v as f64 * s).round() as i64)
            })
            .collect()
    }
}

impl Default for FheQuant {
    fn default() -> Self {
        FheQuant {
            input_bits: 6,
            weight_bits: 6,
            input_range: (0.0, 1.0),
        }
    }
}

/// A sparse integer matrix in rows (CSR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sparse {
    pub rows: usize,
    pub cols: usize,
    /// `row_start[r]..row_start[r + 1]` index `col` and `weight`.
    pub row_start: Vec<usize>,
    pub col: Vec<u32>,
    pub weight: Vec<i64>,
}

impl Sparse {
    pub fn from_rows(cols: usize, rows: Vec<Vec<(u32, i64)>>) -> Sparse {
        let mut s = Sparse {
            rows: rows.len(),
            cols,
            row_start: vec![0],
            col: vec![],
            weight: vec![],
        };
        for row in rows {
            // Zero weights are kept: the pattern is the architecture's, so
            // nothing derived from it (the client's packing) depends on weights.
            for (c, w) in row {
                s.col.push(c);
                s.weight.push(w);
            }
            s.row_start.push(s.col.len());
        }
        s
    }
    pub fn identity(n: usize, factor: i64) -> Sparse {
        Sparse::from_rows(n, (0..n).map(|i| vec![(i as u32, factor)]).collect())
    }
    pub fn row(&self, r: usize) -> impl Iterator<Item = (usize, i64)> + '_ {
        let (a, b) = (self.row_start[r], self.row_start[r + 1]);
        self.col[a..b]
            .iter()
            .zip(&self.weight[a..b])
            .map(|(&c, &w)| (c as usize, w))
    }
    pub fn nonzeros(&self) -> usize {
        self.col.len()
    }
    /// Largest number of non-zeros in a row.
    pub fn max_row_len(&self) -> usize {
        (0..self.rows)
            .map(|r| self.row_start[r + 1] - self.row_start[r])
            .max()
            .unwrap_or(0)
    }
    /// Largest `Σ |w|` of a row.
    pub fn max_row_l1(&self) -> i128 {
        (0..self.rows)
            .map(|r| self.row(r).map(|(_, w)| (w as i128).abs()).sum::<i128>())
            .max()
            .unwrap_or(0)
    }
}

/// An op of the FHE program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FheOp {
    Input,
    /// `y = Σ_terms A_i · x_i + bias`.
    Linear {
        terms: Vec<(usize, Sparse)>,
        bias: Vec<i128>,
    },
    /// `y = x · x`, element-wise.
    Square {
        input: usize,
    },
}

/// A value of the FHE program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheNode {
    /// The model layer it comes from.
    pub name: String,
    /// What the layer was (`conv`, `dense`, `avgpool`, `square`, ...).
    pub kind: String,
    pub op: FheOp,
    pub len: usize,
    /// Real value = integer / scale.
    pub scale: f64,
    /// Exact worst-case bounds of every element over all admissible inputs.
    pub lo: Vec<i128>,
    pub hi: Vec<i128>,
}

impl FheNode {
    /// Largest `|v|` this value can take.
    pub fn bound(&self) -> i128 {
        self.lo
            .iter()
            .chain(&self.hi)
            .map(|v| v.abs())
            .max()
            .unwrap_or(0)
    }
    /// Bits of [`Self::bound`].
    pub fn bound_bits(&self) -> u32 {
        128 - self.bound().leading_zeros()
    }
}

/// An exact integer program: what the FHE engines compute, and the plaintext
/// reference they are compared with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheProgram {
    pub name: String,
    pub quant: FheQuant,
    pub input_shape: Shape,
    pub output_shape: Shape,
    pub nodes: Vec<FheNode>,
    pub output: usize,
    pub final_activation: Option<FinalActivation>,
}

/// Why a model cannot be lowered for FHE.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LowerError {
    #[error("layer {layer} ({op}): {reason}")]
    Unsupported {
        layer: String,
        op: &'static str,
        reason: String,
    },
    #[error("layer {layer}: values reach 2^{bits}, beyond the 2^{max} the FHE program supports (lower --weight-bits or --input-bits)")]
    Range { layer: String, bits: u32, max: u32 },
    #[error("layer {layer}: {nonzeros} non-zero weights exceed the lowering's limit of {max}")]
    TooLarge {
        layer: String,
        nonzeros: usize,
        max: usize,
    },
    #[error("bad FHE quantization: {0}")]
    Quant(String),
}

/// A bad input for [`FheProgram::encode_input`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("input has {got} values, the model takes {expected}")]
    Length { expected: usize, got: usize },
    #[error("input element {index} is {value}, outside the model's input range [{lo}, {hi}] (set with --input-range when lowering)")]
    Range {
        index: usize,
        value: f32,
        lo: f32,
        hi: f32,
    },
}

/// A per-channel bias (or shift) spread over `len` outputs, at `scale`.
fn channel_bias(
    bias: &[f32],
    len: usize,
    scale: f64,
    layer: &str,
) -> Result<Vec<i128>, LowerError> {
    let per = len / bias.len().max(1);
    (0..len)
        .map(|o| round_i128(bias[o / per] as f64 * scale, layer))
        .collect()
}

/// Refuse a layer whose matrix would hold more than [`MAX_NONZEROS`] entries,
/// before it is built.
fn check_size(layer: &str, dims: &[usize]) -> Result<(), LowerError> {
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX);
    if n > MAX_NONZEROS {
        return Err(LowerError::TooLarge {
            layer: layer.to_string(),
            nonzeros: n,
            max: MAX_NONZEROS,
        });
    }
    Ok(())
}

fn unsupported(layer: &str, op: &'static str, reason: &str) -> LowerError {
    LowerError::Unsupported {
        layer: layer.to_string(),
        op,
        reason: reason.to_string(),
    }
}

/// Quantize weights to `weight_bits` signed bits with one power-of-two scale.
fn quantize_weights(w: &[f32], weight_bits: u32) -> (Vec<i64>, f64) {
    let max = w.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let top = ((1i64 << (weight_bits - 1)) - 1) as f64;
    let e = if max > 0.0 {
        (top / max).log2().floor() as i32
    } else {
        0
    };
    let s = 2f64.powi(e);
    let q = w.iter().map(|&v| (v as f64 * s).round() as i64).collect();
    (q, s)
}

fn round_i128(v: f64, layer: &str) -> Result<i128, LowerError> {
    if !v.is_finite() {
        return Err(LowerError::Unsupported {
            layer: layer.to_string(),
            op: "scale",
            reason: "the exact integer scale (squared at every square) outgrows any number here: too many squares for exact FHE".into(),
        });
    }
    if v.abs() >= 2f64.powi(MAX_BOUND_BITS as i32) {
        return Err(LowerError::Range {
            layer: layer.to_string(),
            bits: v.abs().log2().ceil() as u32,
            max: MAX_BOUND_BITS,
        });
    }
    Ok(v.round() as i128)
}

struct Lowerer<'a> {
    model: &'a Model,
    nodes: Vec<FheNode>,
    /// ir value -> FHE value
    map: Vec<usize>,
}

impl Lowerer<'_> {
    fn push(&mut self, node: FheNode) -> Result<usize, LowerError> {
        if !(node.scale.is_finite() && node.scale > 0.0) {
            return round_i128(f64::INFINITY, &node.name).map(|_| 0);
        }
        let bits = node.bound_bits();
        if bits > MAX_BOUND_BITS {
            return Err(LowerError::Range {
                layer: node.name.clone(),
                bits,
                max: MAX_BOUND_BITS,
            });
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// A linear node from terms and bias, with interval bounds.
    fn linear(
        &mut self,
        name: &str,
        kind: &str,
        terms: Vec<(usize, Sparse)>,
        bias: Vec<i128>,
        scale: f64,
    ) -> Result<usize, LowerError> {
        let len = bias.len();
        let nz: usize = terms.iter().map(|(_, a)| a.nonzeros()).sum();
        if nz > MAX_NONZEROS {
            return Err(LowerError::TooLarge {
                layer: name.to_string(),
                nonzeros: nz,
                max: MAX_NONZEROS,
            });
        }
        // the batch layout's coefficient products need every row's Σ|w| < 2^62
        for r in 0..len {
            let l1: u128 = terms
                .iter()
                .map(|(_, a)| {
                    a.row(r)
                        .map(|(_, w)| w.unsigned_abs() as u128)
                        .sum::<u128>()
                })
                .sum();
            if l1 >= 1 << 60 {
                return Err(LowerError::TooLarge {
                    layer: name.to_string(),
                    nonzeros: nz,
                    max: MAX_NONZEROS,
                });
            }
        }
        let mut lo = bias.clone();
        let mut hi = bias.clone();
        let range_err = || LowerError::Range {
            layer: name.to_string(),
            bits: 128,
            max: MAX_BOUND_BITS,
        };
        for (src, a) in &terms {
            let (slo, shi) = (&self.nodes[*src].lo, &self.nodes[*src].hi);
            for r in 0..len {
                for (c, w) in a.row(r) {
                    let w = w as i128;
                    let (p, q) = (
                        w.checked_mul(slo[c]).ok_or_else(range_err)?,
                        w.checked_mul(shi[c]).ok_or_else(range_err)?,
                    );
                    lo[r] = lo[r].checked_add(p.min(q)).ok_or_else(range_err)?;
                    hi[r] = hi[r].checked_add(p.max(q)).ok_or_else(range_err)?;
                }
            }
        }
        self.push(FheNode {
            name: name.to_string(),
            kind: kind.to_string(),
            op: FheOp::Linear { terms, bias },
            len,
            scale,
            lo,
            hi,
        })
    }

    fn input_of(&self, ir_node: usize, i: usize) -> usize {
        self.map[self.model.nodes[ir_node].inputs[i]]
    }

    /// Integer factors `f_i` (at most 2^31) that bring values of scales
    /// `s_i` to one common scale `s_i · f_i`, exactly: refused when the scales
    /// are not in a small rational ratio (a rounded factor would change the
    /// model silently).
    fn align(
        &self,
        scales: &[f64],
        name: &str,
        op: &'static str,
    ) -> Result<(Vec<i64>, f64), LowerError> {
        let top = scales.iter().cloned().fold(0f64, f64::max);
        // the common scale is top · m for the smallest m making every factor integral
        'm: for m in 1..=64i64 {
            let common = top * m as f64;
            let mut fs = Vec::with_capacity(scales.len());
            for &s in scales {
                let f = common / s;
                let r = f.round();
                if (f - r).abs() > 1e-9 * f.max(1.0) || r < 1.0 || r > (1u64 << 31) as f64 {
                    continue 'm;
                }
                fs.push(r as i64);
            }
            return Ok((fs, common));
        }
        Err(unsupported(
            name,
            op,
            "its inputs' scales are not in a small integer ratio (exact alignment needs factors up to 2^31); quantize the branches alike",
        ))
    }
}

impl FheProgram {
    /// Lower `model` for FHE with `quant`.
    pub fn lower(model: &Model, quant: FheQuant) -> Result<FheProgram, LowerError> {
        if !(1..=16).contains(&quant.input_bits) {
            return Err(LowerError::Quant(format!(
                "input bits {} out of range 1..=16",
                quant.input_bits
            )));
        }
        if !(2..=16).contains(&quant.weight_bits) {
            return Err(LowerError::Quant(format!(
                "weight bits {} out of range 2..=16",
                quant.weight_bits
            )));
        }
        let (rlo, rhi) = quant.input_range;
        if !(rlo.is_finite() && rhi.is_finite() && rlo <= rhi) || rlo.abs().max(rhi.abs()) > 1e6 {
            return Err(LowerError::Quant(format!(
                "input range [{rlo}, {rhi}] is not a finite interval within ±1e6"
            )));
        }
        let mut l = Lowerer {
            model,
            nodes: vec![],
            map: vec![0; model.nodes.len()],
        };
        let in_scale = 2f64.powi(quant.input_bits as i32);
        for (i, n) in model.nodes.iter().enumerate() {
            let name = n.name.as_str();
            let out_len = n.shape.numel();
            let id = match &n.op {
                Op::Input => {
                    let len = out_len;
                    let lo = round_i128(rlo as f64 * in_scale, name)?;
                    let hi = round_i128(rhi as f64 * in_scale, name)?;
                    l.push(FheNode {
                        name: name.to_string(),
                        kind: "input".into(),
                        op: FheOp::Input,
                        len,
                        scale: in_scale,
                        lo: vec![lo; len],
                        hi: vec![hi; len],
                    })?
                }
                Op::Reshape => l.input_of(i, 0),
                Op::Relu | Op::MaxPool(_) | Op::Sign => {
                    return Err(unsupported(
                        name,
                        n.op.kind(),
                        "not a polynomial: FHE mode evaluates square activations, average pooling and linear layers only (use two-server or client-server mode)",
                    ))
                }
                Op::Square => {
                    let src = l.input_of(i, 0);
                    let s = &l.nodes[src];
                    let (mut lo, mut hi) = (Vec::with_capacity(s.len), Vec::with_capacity(s.len));
                    for (&a, &b) in s.lo.iter().zip(&s.hi) {
                        let m = a.abs().max(b.abs());
                        let sq = m.checked_mul(m).ok_or(LowerError::Range {
                            layer: name.to_string(),
                            bits: 2 * (128 - m.leading_zeros()),
                            max: MAX_BOUND_BITS,
                        })?;
                        let low = if a <= 0 && b >= 0 {
                            0
                        } else {
                            let k = a.abs().min(b.abs());
                            k * k
                        };
                        lo.push(low);
                        hi.push(sq);
                    }
                    let (len, scale) = (s.len, s.scale * s.scale);
                    l.push(FheNode {
                        name: name.to_string(),
                        kind: "square".into(),
                        op: FheOp::Square { input: src },
                        len,
                        scale,
                        lo,
                        hi,
                    })?
                }
                Op::Conv(c) => {
                    check_size(name, &[out_len, c.c_in, c.kh, c.kw])?;
                    let src = l.input_of(i, 0);
                    let d = model.nodes[n.inputs[0]].shape.dims().to_vec();
                    let (w, ws) = quantize_weights(&c.weight, quant.weight_bits);
                    let (h, wd) = (d[1], d[2]);
                    let (oh, ow) = (n.shape.dims()[1], n.shape.dims()[2]);
                    let mut rows = vec![vec![]; out_len];
                    for co in 0..c.c_out {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let row = &mut rows[(co * oh + oy) * ow + ox];
                                for ci in 0..c.c_in {
                                    for ky in 0..c.kh {
                                        let iy = (oy * c.stride[0] + ky) as isize
                                            - c.pads[0] as isize;
                                        if iy < 0 || iy >= h as isize {
                                            continue;
                                        }
                                        for kx in 0..c.kw {
                                            let ix = (ox * c.stride[1] + kx) as isize
                                                - c.pads[1] as isize;
                                            if ix < 0 || ix >= wd as isize {
                                                continue;
                                            }
                                            let wv = w[((co * c.c_in + ci) * c.kh + ky) * c.kw + kx];
                                            let col = (ci * h + iy as usize) * wd + ix as usize;
                                            row.push((col as u32, wv));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let scale = l.nodes[src].scale * ws;
                    let bias = channel_bias(&c.bias, out_len, scale, name)?;
                    let a = Sparse::from_rows(d.iter().product(), rows);
                    l.linear(name, "conv", vec![(src, a)], bias, scale)?
                }
                Op::ConvTranspose(c) => {
                    check_size(name, &[model.nodes[n.inputs[0]].shape.numel(), c.c_out, c.kh, c.kw])?;
                    let src = l.input_of(i, 0);
                    let d = model.nodes[n.inputs[0]].shape.dims().to_vec();
                    let (w, ws) = quantize_weights(&c.weight, quant.weight_bits);
                    let (h, wd) = (d[1], d[2]);
                    let (oh, ow) = (n.shape.dims()[1], n.shape.dims()[2]);
                    let mut rows = vec![vec![]; out_len];
                    for ci in 0..c.c_in {
                        for iy in 0..h {
                            for ix in 0..wd {
                                let col = ((ci * h + iy) * wd + ix) as u32;
                                for co in 0..c.c_out {
                                    for ky in 0..c.kh {
                                        let oy = (iy * c.stride[0] + ky) as isize
                                            - c.pads[0] as isize;
                                        if oy < 0 || oy >= oh as isize {
                                            continue;
                                        }
                                        for kx in 0..c.kw {
                                            let ox = (ix * c.stride[1] + kx) as isize
                                                - c.pads[1] as isize;
                                            if ox < 0 || ox >= ow as isize {
                                                continue;
                                            }
                                            let wv = w[((ci * c.c_out + co) * c.kh + ky) * c.kw + kx];
                                            rows[(co * oh + oy as usize) * ow + ox as usize]
                                                .push((col, wv));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let scale = l.nodes[src].scale * ws;
                    let bias = channel_bias(&c.bias, out_len, scale, name)?;
                    let a = Sparse::from_rows(d.iter().product(), rows);
                    l.linear(name, "conv-transpose", vec![(src, a)], bias, scale)?
                }
                Op::Dense(dn) => {
                    check_size(name, &[dn.inputs, dn.outputs])?;
                    let src = l.input_of(i, 0);
                    let (w, ws) = quantize_weights(&dn.weight, quant.weight_bits);
                    let rows = (0..dn.outputs)
                        .map(|o| {
                            (0..dn.inputs)
                                .map(|k| (k as u32, w[o * dn.inputs + k]))
                                .collect()
                        })
                        .collect();
                    let scale = l.nodes[src].scale * ws;
                    let bias = dn
                        .bias
                        .iter()
                        .map(|&b| round_i128(b as f64 * scale, name))
                        .collect::<Result<_, _>>()?;
                    let a = Sparse::from_rows(dn.inputs, rows);
                    l.linear(name, "dense", vec![(src, a)], bias, scale)?
                }
                Op::ChannelAffine(ca) => {
                    let src = l.input_of(i, 0);
                    let (w, ws) = quantize_weights(&ca.scale, quant.weight_bits);
                    let per = out_len / ca.scale.len().max(1);
                    let rows = (0..out_len)
                        .map(|o| vec![(o as u32, w[o / per])])
                        .collect();
                    let scale = l.nodes[src].scale * ws;
                    let bias = channel_bias(&ca.shift, out_len, scale, name)?;
                    let a = Sparse::from_rows(out_len, rows);
                    l.linear(name, "channel-affine", vec![(src, a)], bias, scale)?
                }
                Op::AvgPool(p) => {
                    let src = l.input_of(i, 0);
                    let d = model.nodes[n.inputs[0]].shape.dims();
                    let g = PoolGeom {
                        c: d[0],
                        h: d[1],
                        w: d[2],
                        kernel: p.kernel,
                        stride: p.stride,
                        pads: p.pads,
                    };
                    let rows = g
                        .windows()
                        .into_iter()
                        .map(|win| win.into_iter().map(|c| (c as u32, 1)).collect())
                        .collect();
                    let k2 = (p.kernel[0] * p.kernel[1]) as f64;
                    let scale = l.nodes[src].scale * k2;
                    let a = Sparse::from_rows(d.iter().product(), rows);
                    l.linear(name, "avgpool", vec![(src, a)], vec![0; out_len], scale)?
                }
                Op::ResizeNearest { scale: f } => {
                    let src = l.input_of(i, 0);
                    let d = model.nodes[n.inputs[0]].shape.dims();
                    let (c, h, w) = (d[0], d[1], d[2]);
                    let (oh, ow) = (h * f[0], w * f[1]);
                    let mut rows = Vec::with_capacity(out_len);
                    for ch in 0..c {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                rows.push(vec![(((ch * h + oy / f[0]) * w + ox / f[1]) as u32, 1)]);
                            }
                        }
                    }
                    let scale = l.nodes[src].scale;
                    let a = Sparse::from_rows(c * h * w, rows);
                    l.linear(name, "resize-nearest", vec![(src, a)], vec![0; out_len], scale)?
                }
                Op::Add | Op::Concat => {
                    let srcs: Vec<usize> = (0..n.inputs.len()).map(|k| l.input_of(i, k)).collect();
                    if srcs.is_empty() || (matches!(n.op, Op::Add) && srcs.len() != 2) {
                        return Err(unsupported(name, n.op.kind(), "unexpected number of inputs"));
                    }
                    let kind = if matches!(n.op, Op::Add) { "add" } else { "concat" };
                    let scales: Vec<f64> = srcs.iter().map(|&s| l.nodes[s].scale).collect();
                    let (fs, scale) = l.align(&scales, name, n.op.kind())?;
                    let lens: Vec<usize> = srcs.iter().map(|&s| l.nodes[s].len).collect();
                    let terms: Vec<(usize, Sparse)> = if matches!(n.op, Op::Add) {
                        srcs.iter()
                            .zip(&fs)
                            .zip(&lens)
                            .map(|((&s, &f), &len)| (s, Sparse::identity(len, f)))
                            .collect()
                    } else {
                        let total: usize = lens.iter().sum();
                        let mut offset = 0;
                        srcs.iter()
                            .zip(&fs)
                            .zip(&lens)
                            .map(|((&s, &f), &len)| {
                                let rows = (0..total)
                                    .map(|r| {
                                        if (offset..offset + len).contains(&r) {
                                            vec![((r - offset) as u32, f)]
                                        } else {
                                            vec![]
                                        }
                                    })
                                    .collect();
                                offset += len;
                                (s, Sparse::from_rows(len, rows))
                            })
                            .collect()
                    };
                    if terms.iter().any(|(_, t)| t.rows != out_len) {
                        return Err(unsupported(name, n.op.kind(), "input lengths do not add up to the output"));
                    }
                    l.linear(name, kind, terms, vec![0; out_len], scale)?
                }
            };
            l.map[i] = id;
        }
        let output = l.map[model.output];
        Ok(FheProgram {
            name: model.name.clone(),
            quant,
            input_shape: model.nodes[0].shape.clone(),
            output_shape: model.nodes[model.output].shape.clone(),
            nodes: l.nodes,
            output,
            final_activation: model.final_activation,
        })
    }

    pub fn input_len(&self) -> usize {
        self.nodes[0].len
    }
    pub fn output_len(&self) -> usize {
        self.nodes[self.output].len
    }
    /// The largest `|v|` of any value: the plaintext modulus must exceed twice it.
    pub fn max_bound(&self) -> i128 {
        self.nodes.iter().map(|n| n.bound()).max().unwrap_or(0)
    }
    /// Bits needed to represent every value as a centred residue.
    pub fn range_bits(&self) -> u32 {
        let b = self.max_bound();
        // need T > 2b + 1
        129 - (2 * b + 1).leading_zeros()
    }
    /// Number of squares on the longest path (multiplicative depth).
    pub fn depth(&self) -> usize {
        let mut d = vec![0usize; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            d[i] = match &n.op {
                FheOp::Input => 0,
                FheOp::Square { input } => d[*input] + 1,
                FheOp::Linear { terms, .. } => terms.iter().map(|(s, _)| d[*s]).max().unwrap_or(0),
            };
        }
        d[self.output]
    }
    /// Scale of the output: real output = integer / scale.
    pub fn output_scale(&self) -> f64 {
        self.nodes[self.output].scale
    }

    /// Encode one input (checked against the length and the input range).
    pub fn encode_input(&self, x: &[f32]) -> Result<Vec<i64>, InputError> {
        self.quant.encode(self.input_len(), x)
    }

    /// The plaintext reference: every value of the program, exactly.
    pub fn run_all(&self, x: &[i64]) -> Vec<Vec<i128>> {
        let mut vals: Vec<Vec<i128>> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let v = match &n.op {
                FheOp::Input => x.iter().map(|&v| v as i128).collect(),
                FheOp::Square { input } => vals[*input].iter().map(|v| v * v).collect(),
                FheOp::Linear { terms, bias } => {
                    let mut y = bias.clone();
                    for (src, a) in terms {
                        let xs = &vals[*src];
                        for (r, yr) in y.iter_mut().enumerate() {
                            for (c, w) in a.row(r) {
                                *yr += w as i128 * xs[c];
                            }
                        }
                    }
                    y
                }
            };
            vals.push(v);
        }
        vals
    }

    /// The reference's output.
    pub fn run(&self, x: &[i64]) -> Vec<i128> {
        self.run_all(x).swap_remove(self.output)
    }

    /// Decode integer outputs to real values.
    pub fn decode(&self, y: &[i128]) -> Vec<f64> {
        let s = self.output_scale();
        y.iter().map(|&v| v as f64 / s).collect()
    }

    /// A fingerprint of the program's public side (shapes, connection
    /// patterns, scales, quantization; not the weights, biases or bounds, so a
    /// client holding it cannot test a guess of the model): keys and
    /// ciphertexts record it so a mismatch is refused.
    pub fn fingerprint(&self) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut put = |b: Vec<u8>| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        let ser = |v: &dyn erased::Ser| v.bytes();
        put(ser(&(
            &self.name,
            &self.quant,
            &self.input_shape,
            &self.output_shape,
        )));
        put(ser(&(self.output, &self.final_activation)));
        for n in &self.nodes {
            put(ser(&(&n.name, &n.kind, n.len, n.scale.to_bits())));
            match &n.op {
                FheOp::Input => put(vec![0]),
                FheOp::Square { input } => put(ser(&(1u8, *input))),
                FheOp::Linear { terms, bias } => {
                    put(ser(&(2u8, bias.len())));
                    for (src, a) in terms {
                        put(ser(&(*src, a.rows, a.cols, &a.row_start, &a.col)));
                    }
                }
            }
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }
}

mod erased {
    /// bincode of any serializable value, behind one object-safe trait.
    pub trait Ser {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn bytes(&self) -> Vec<u8> {
            bincode::serialize(self).expect("serializes")
        }
    }
}

/// First failing layer of `model` for FHE, as [`LowerError`] (for `inspect`).
pub fn check(model: &Model, quant: FheQuant) -> Result<FheProgram, LowerError> {
    FheProgram::lower(model, quant)
}
