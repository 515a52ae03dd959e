//! The two plaintext engines: `float` (f64, the model as trained) and `plain`
//! (the fixed-point reference, bit-for-bit what the secure engines compute:
//! truncation is exact in both).

use crate::ir::{FinalActivation, Model, Op};
use crate::kernels::{self, ConvGeom, ConvTransposeGeom, PoolGeom};
use crate::quant::{QModel, QOp};
use crate::ModelError;
use blindfold_core::ring::{decode, encode, trunc_exact};
use blindfold_core::FracBits;

/// Largest input magnitude accepted (inputs must stay far from the ring's edge).
pub const MAX_INPUT_ABS: f32 = 1.0e6;

/// Check an input vector against the model input size and for finite values.
pub fn check_input(expected_len: usize, x: &[f32]) -> Result<(), ModelError> {
    if x.len() != expected_len {
        return Err(ModelError::InputSize {
            expected: expected_len,
            got: x.len(),
        });
    }
    if let Some((i, v)) = x
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || v.abs() > MAX_INPUT_ABS)
    {
        return Err(ModelError::InputValue {
            index: i,
            value: *v,
        });
    }
    Ok(())
}

/// Run the model in f64 on one input (without the final softmax).
pub fn run_float(model: &Model, x: &[f32]) -> Result<Vec<f64>, ModelError> {
    check_input(model.input_shape().numel(), x)?;
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(model.nodes.len());
    for n in &model.nodes {
        let inp = |k: usize| &vals[n.inputs[k]];
        let in_dims = |k: usize| model.nodes[n.inputs[k]].shape.dims().to_vec();
        let out = match &n.op {
            Op::Input => x.iter().map(|&v| v as f64).collect(),
            Op::Conv(c) => {
                let d = in_dims(0);
                let g = ConvGeom {
                    c_in: c.c_in,
                    h: d[1],
                    w: d[2],
                    c_out: c.c_out,
                    kh: c.kh,
                    kw: c.kw,
                    stride: c.stride,
                    pads: c.pads,
                };
                let w: Vec<f64> = c.weight.iter().map(|&v| v as f64).collect();
                let mut y = kernels::conv2d(&g, inp(0), &w);
                let b: Vec<f64> = c.bias.iter().map(|&v| v as f64).collect();
                kernels::add_channel_bias(&mut y, &b);
                y
            }
            Op::ConvTranspose(c) => {
                let d = in_dims(0);
                let g = ConvTransposeGeom {
                    c_in: c.c_in,
                    h: d[1],
                    w: d[2],
                    c_out: c.c_out,
                    kh: c.kh,
                    kw: c.kw,
                    stride: c.stride,
                    pads: c.pads,
                    output_padding: c.output_padding,
                };
                let w: Vec<f64> = c.weight.iter().map(|&v| v as f64).collect();
                let mut y = kernels::conv_transpose2d(&g, inp(0), &w);
                let b: Vec<f64> = c.bias.iter().map(|&v| v as f64).collect();
                kernels::add_channel_bias(&mut y, &b);
                y
            }
            Op::Dense(d) => {
                let w: Vec<f64> = d.weight.iter().map(|&v| v as f64).collect();
                let mut y = kernels::dense(d.inputs, d.outputs, inp(0), &w);
                for (v, b) in y.iter_mut().zip(&d.bias) {
                    *v += *b as f64;
                }
                y
            }
            Op::ChannelAffine(a) => {
                let s: Vec<f64> = a.scale.iter().map(|&v| v as f64).collect();
                let mut y = kernels::channel_scale(inp(0), &s);
                let b: Vec<f64> = a.shift.iter().map(|&v| v as f64).collect();
                kernels::add_channel_bias(&mut y, &b);
                y
            }
            Op::Add => inp(0).iter().zip(inp(1)).map(|(a, b)| a + b).collect(),
            Op::Relu => inp(0).iter().map(|&v| v.max(0.0)).collect(),
            Op::Square => inp(0).iter().map(|&v| v * v).collect(),
            Op::Sign => inp(0)
                .iter()
                .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                .collect(),
            Op::MaxPool(p) => kernels::max_pool(&pool_geom(p, &in_dims(0)), inp(0)),
            Op::AvgPool(p) => {
                let k2 = (p.kernel[0] * p.kernel[1]) as f64;
                kernels::sum_pool(&pool_geom(p, &in_dims(0)), inp(0))
                    .into_iter()
                    .map(|v| v / k2)
                    .collect()
            }
            Op::Reshape => inp(0).clone(),
            Op::Concat => n
                .inputs
                .iter()
                .flat_map(|&j| vals[j].iter().copied())
                .collect(),
            Op::ResizeNearest { scale } => {
                let d = in_dims(0);
                kernels::resize_nearest(d[0], d[1], d[2], *scale, inp(0))
            }
        };
        vals.push(out);
    }
    Ok(vals.swap_remove(model.output))
}

/// Apply the dropped final activation (for comparisons with other runtimes).
pub fn apply_final(act: Option<FinalActivation>, y: &[f64]) -> Vec<f64> {
    match act {
        None => y.to_vec(),
        Some(a) => {
            let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = y.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            match a {
                FinalActivation::Softmax => y.iter().map(|v| (v - lse).exp()).collect(),
                FinalActivation::LogSoftmax => y.iter().map(|v| v - lse).collect(),
            }
        }
    }
}

fn pool_geom(p: &crate::ir::Pool, d: &[usize]) -> PoolGeom {
    PoolGeom {
        c: d[0],
        h: d[1],
        w: d[2],
        kernel: p.kernel,
        stride: p.stride,
        pads: p.pads,
    }
}

/// Encode an input vector at the model's scale.
pub fn encode_input(qm: &QModel, x: &[f32]) -> Result<Vec<u64>, ModelError> {
    check_input(qm.input_shape().numel(), x)?;
    Ok(x.iter()
        .map(|&v| encode(v as f64, qm.frac_bits()))
        .collect())
}

/// Run the fixed-point reference on an encoded input; returns every value
/// (the secure-engine tests compare layer by layer).
pub fn run_plain_all(qm: &QModel, x: &[u64]) -> Result<Vec<Vec<u64>>, ModelError> {
    if x.len() != qm.input_shape().numel() {
        return Err(ModelError::InputSize {
            expected: qm.input_shape().numel(),
            got: x.len(),
        });
    }
    let f = qm.frac_bits();
    let one = 1u64 << f.0;
    let mut vals: Vec<Vec<u64>> = Vec::with_capacity(qm.nodes.len());
    for n in &qm.nodes {
        let inp = |k: usize| &vals[n.inputs[k]];
        let out = match &n.op {
            QOp::Input => x.to_vec(),
            QOp::Relu { trunc } => inp(0)
                .iter()
                .map(|&v| relu_ring(if *trunc { trunc_exact(v, f) } else { v }))
                .collect(),
            QOp::MaxPool { pool, relu, trunc } => {
                kernels::max_pool(&QOp::pool_geom(pool, &qm.nodes[n.inputs[0]].shape), inp(0))
                    .into_iter()
                    .map(|v| {
                        let v = if *relu { relu_ring(v) } else { v };
                        if *trunc {
                            trunc_exact(v, f)
                        } else {
                            v
                        }
                    })
                    .collect()
            }
            QOp::Square => inp(0).iter().map(|v| v.wrapping_mul(*v)).collect(),
            QOp::Trunc => inp(0).iter().map(|&v| trunc_exact(v, f)).collect(),
            QOp::Sign { width } => inp(0)
                .iter()
                .map(|&v| {
                    // The low `width` bits, sign-extended (64: all of v).
                    let sh = 64 - *width;
                    if (((v << sh) as i64) >> sh) >= 0 {
                        one
                    } else {
                        one.wrapping_neg()
                    }
                })
                .collect(),
            _ => match apply_weighted(&n.op, inp(0)) {
                Some(y) => y,
                None => apply_share_local(qm, vals.len(), &vals)
                    .expect("every op is weighted, share-local or handled above"),
            },
        };
        vals.push(out);
    }
    Ok(vals)
}

/// A layer with (secret) weights applied to `x`, bias included: conv, transposed
/// conv, dense, channel affine. `None` for other ops. The reference applies it to
/// the value, each server to `x_b + D_peer` with its weight share.
pub fn apply_weighted(op: &QOp, x: &[u64]) -> Option<Vec<u64>> {
    Some(match op {
        QOp::Conv { geom, weight, bias } => {
            let mut y = kernels::conv2d(geom, x, weight);
            kernels::add_channel_bias(&mut y, bias);
            y
        }
        QOp::ConvTranspose { geom, weight, bias } => {
            let mut y = kernels::conv_transpose2d(geom, x, weight);
            kernels::add_channel_bias(&mut y, bias);
            y
        }
        QOp::Dense {
            inputs,
            outputs,
            weight,
            bias,
        } => {
            let mut y = kernels::dense(*inputs, *outputs, x, weight);
            for (v, b) in y.iter_mut().zip(bias) {
                *v = v.wrapping_add(*b);
            }
            y
        }
        QOp::ChannelAffine { scale, shift } => {
            let mut y = kernels::channel_scale(x, scale);
            kernels::add_channel_bias(&mut y, shift);
            y
        }
        _ => return None,
    })
}

/// Node `i`'s output for ops that are linear with public coefficients (public
/// multiply, add, sum-pool, reshape, concat, resize): the same on values and on
/// additive shares, so the reference and each server compute it identically.
/// `None` for other ops. `vals` holds the outputs of nodes `0..i`.
pub fn apply_share_local(qm: &QModel, i: usize, vals: &[Vec<u64>]) -> Option<Vec<u64>> {
    let n = &qm.nodes[i];
    let x = |k: usize| &vals[n.inputs[k]];
    Some(match &n.op {
        QOp::MulPublic { factor } => x(0).iter().map(|v| v.wrapping_mul(*factor)).collect(),
        QOp::Add => x(0)
            .iter()
            .zip(x(1))
            .map(|(a, b)| a.wrapping_add(*b))
            .collect(),
        QOp::SumPool { pool } => {
            kernels::sum_pool(&QOp::pool_geom(pool, &qm.nodes[n.inputs[0]].shape), x(0))
        }
        QOp::Reshape => x(0).clone(),
        QOp::Concat => n
            .inputs
            .iter()
            .flat_map(|&j| vals[j].iter().copied())
            .collect(),
        QOp::ResizeNearest { scale } => {
            let d = qm.nodes[n.inputs[0]].shape.dims();
            kernels::resize_nearest(d[0], d[1], d[2], *scale, x(0))
        }
        _ => return None,
    })
}

fn relu_ring(v: u64) -> u64 {
    if (v as i64) < 0 {
        0
    } else {
        v
    }
}

/// Run the fixed-point reference on a float input; returns the output ring values.
pub fn run_plain(qm: &QModel, x: &[f32]) -> Result<Vec<u64>, ModelError> {
    let enc = encode_input(qm, x)?;
    let mut all = run_plain_all(qm, &enc)?;
    Ok(all.swap_remove(qm.output))
}

/// Decode output ring values at the model's output scale.
pub fn decode_output(qm: &QModel, y: &[u64]) -> Vec<f64> {
    let f: FracBits = qm.output_frac();
    y.iter().map(|&v| decode(v, f)).collect()
}

/// Index of the largest value (first on ties).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Argmax of ring values in the signed view.
pub fn argmax_ring(v: &[u64]) -> usize {
    let s: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    argmax(&s)
}
