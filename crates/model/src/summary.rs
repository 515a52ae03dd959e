//! Per-layer cost summary of a fixed-point program (`blindfold inspect`).
//!
//! Mode-independent facts only; which protocol runs each layer is the engine
//! planner's answer (`blindfold_engine::plan`), which `inspect` prints beside it.

use crate::quant::{QModel, QOp};
use serde::Serialize;

/// One row of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    pub index: usize,
    pub name: String,
    pub op: String,
    pub input_shape: String,
    pub output_shape: String,
    /// Fractional bits of the output.
    pub frac: u32,
    pub parameters: usize,
    /// Multiplications by (secret) weights or between secret values.
    pub multiplications: usize,
    /// Elements going through a garbled circuit (ReLU, max-pool outputs, sign).
    pub nonlinear: usize,
    /// Pairwise comparisons inside max-pool circuits.
    pub comparisons: usize,
}

/// Whole-model summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub frac_bits: u32,
    pub input_shape: String,
    pub output_shape: String,
    pub layers: Vec<LayerSummary>,
    pub parameters: usize,
    pub multiplications: usize,
    pub nonlinear: usize,
    pub comparisons: usize,
    pub squares: usize,
    pub truncations: usize,
}

/// Summarize a quantized model.
pub fn summarize(q: &QModel) -> Summary {
    let mut layers = Vec::new();
    for (i, n) in q.nodes.iter().enumerate() {
        let out = n.shape.numel();
        let in_shape = n
            .inputs
            .first()
            .map(|&j| q.nodes[j].shape.to_string())
            .unwrap_or_default();
        let params = n.op.secrets().map_or(0, |s| s.len());
        let (mults, nonlin, cmps) = match &n.op {
            QOp::Conv { geom, .. } => (out * geom.c_in * geom.kh * geom.kw, 0, 0),
            QOp::ConvTranspose { geom, .. } => (
                geom.c_in * geom.h * geom.w * geom.c_out * geom.kh * geom.kw,
                0,
                0,
            ),
            QOp::Dense {
                inputs, outputs, ..
            } => (inputs * outputs, 0, 0),
            QOp::ChannelAffine { .. } | QOp::Square => (out, 0, 0),
            QOp::Relu { .. } | QOp::Sign { .. } => (0, out, 0),
            QOp::MaxPool { pool, .. } => (0, out, out * (pool.kernel[0] * pool.kernel[1] - 1)),
            _ => (0, 0, 0),
        };
        layers.push(LayerSummary {
            index: i,
            name: n.name.clone(),
            op: n.op.kind().to_string(),
            input_shape: in_shape,
            output_shape: n.shape.to_string(),
            frac: n.frac.0,
            parameters: params,
            multiplications: mults,
            nonlinear: nonlin,
            comparisons: cmps,
        });
    }
    Summary {
        name: q.name.clone(),
        frac_bits: q.frac.0,
        input_shape: q.input_shape().to_string(),
        output_shape: q.output_shape().to_string(),
        parameters: layers.iter().map(|l| l.parameters).sum(),
        multiplications: layers.iter().map(|l| l.multiplications).sum(),
        nonlinear: layers.iter().map(|l| l.nonlinear).sum(),
        comparisons: layers.iter().map(|l| l.comparisons).sum(),
        squares: q
            .nodes
            .iter()
            .filter(|n| n.op == QOp::Square)
            .map(|n| n.shape.numel())
            .sum(),
        truncations: q
            .nodes
            .iter()
            .filter(|n| n.op == QOp::Trunc)
            .map(|n| n.shape.numel())
            .sum(),
        layers,
    }
}
