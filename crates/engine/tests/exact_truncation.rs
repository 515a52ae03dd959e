//! Truncations that feed a garbled circuit happen inside it.
//!
//! The zoo's networks truncate `2f` values only where a linear layer or a square
//! needs scale `f`, and their ReLUs and max-pools take `2f` inputs directly. An add
//! or a concat of a `2f` and an `f` value (a residual connection, a skip
//! concatenation) used to truncate its `2f` input locally even when the sum went
//! straight into a ReLU or a sign: a local share truncation is off by one unit
//! with probability equal to the dropped fraction (so the secure answer was not
//! the reference's, and repeated answers revealed the dropped bits). Stand-alone
//! truncations are now exact garbled circuits of their own, but where a circuit
//! follows anyway that is a circuit and a round trip too many: the quantizer
//! lifts the `f` input to `2f` (an exact public multiply) and the following
//! circuit shifts the sum for free. These hand-built networks have such adds and
//! concats: their programs must contain no stand-alone truncation, and the secure
//! engine must equal the reference bit for bit (the old quantizer fails both).

mod common;

use blindfold_core::{FracBits, Prg, Shape};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::share::split;
use blindfold_model::engine::{encode_input, run_plain_all};
use blindfold_model::ir::{Conv, Dense, Model, Node, Op};
use blindfold_model::quant::{quantize, QModel, QOp};

const C: usize = 2;
const H: usize = 4;

fn weights(rng: &mut Prg, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale)
        .collect()
}

fn node(name: &str, op: Op, inputs: Vec<usize>, dims: Vec<usize>) -> Node {
    Node {
        name: name.into(),
        op,
        inputs,
        shape: Shape::new(dims),
    }
}

/// `input [2,4,4] → conv 3×3 (same) → join(conv, input) → act → flatten →
/// dense → [3]`, where `join` is an add or a channel concat and `act` a ReLU or a
/// sign.
fn network(join: Op, act: Op, seed: u8) -> Model {
    let mut rng = Prg::from_seed([seed; 16]);
    let joined_c = if join == Op::Concat { 2 * C } else { C };
    let flat = joined_c * H * H;
    let nodes = vec![
        node("x", Op::Input, vec![], vec![C, H, H]),
        node(
            "conv",
            Op::Conv(Conv {
                weight: weights(&mut rng, C * C * 9, 1.0),
                c_out: C,
                c_in: C,
                kh: 3,
                kw: 3,
                bias: weights(&mut rng, C, 1.0),
                stride: [1, 1],
                pads: [1, 1, 1, 1],
            }),
            vec![0],
            vec![C, H, H],
        ),
        node("join", join, vec![1, 0], vec![joined_c, H, H]),
        node("act", act, vec![2], vec![joined_c, H, H]),
        node("flat", Op::Reshape, vec![3], vec![flat]),
        node(
            "fc",
            Op::Dense(Dense {
                weight: weights(&mut rng, 3 * flat, 1.0),
                inputs: flat,
                outputs: 3,
                bias: weights(&mut rng, 3, 1.0),
            }),
            vec![4],
            vec![3],
        ),
    ];
    let m = Model {
        name: "gc-fed-join".into(),
        nodes,
        output: 5,
        final_activation: None,
    };
    m.validate().expect("a valid hand-built model");
    m
}

fn inputs(n: usize) -> Vec<Vec<f32>> {
    let mut rng = Prg::from_seed([9; 16]);
    (0..n).map(|_| weights(&mut rng, C * H * H, 4.0)).collect()
}

fn assert_bit_exact(q: &QModel, xs: &[Vec<f32>]) {
    let [s0, s1] = split(q, &mut Prg::from_seed([42; 16]));
    let e0 = PartyEngine::new(s0).unwrap();
    let e1 = PartyEngine::new(s1).unwrap();
    let enc: Vec<Vec<u64>> = xs.iter().map(|x| encode_input(q, x).unwrap()).collect();
    let ys = common::run_two_party(e0, e1, &enc);
    for (i, (y, x)) in ys.iter().zip(&enc).enumerate() {
        let want = run_plain_all(q, x).unwrap().swap_remove(q.output);
        assert_eq!(y, &want, "{}: input {i} differs from the reference", q.name);
    }
}

#[test]
fn adds_and_concats_into_circuits_truncate_inside_them() {
    for (join, act) in [
        (Op::Add, Op::Relu),
        (Op::Concat, Op::Relu),
        (Op::Add, Op::Sign),
        (Op::Concat, Op::Sign),
    ] {
        let what = format!("{} into {}", join.kind(), act.kind());
        let q = quantize(&network(join, act, 3), FracBits::DEFAULT).unwrap();
        assert!(
            !q.nodes.iter().any(|n| n.op == QOp::Trunc),
            "{what}: a stand-alone truncation feeds the circuit: {:?}",
            q.nodes.iter().map(|n| n.op.kind()).collect::<Vec<_>>()
        );
        // The lift is one exact public multiply by 2^f of the f input.
        let lifts = q
            .nodes
            .iter()
            .filter(|n| n.op == QOp::MulPublic { factor: 1 << 12 })
            .count();
        assert_eq!(lifts, 1, "{what}");
        assert_bit_exact(&q, &inputs(12));
    }
}

/// A residual add at the output keeps the `2f` scale instead of truncating.
#[test]
fn an_add_at_the_output_is_not_truncated() {
    let mut m = network(Op::Add, Op::Relu, 5);
    m.nodes.truncate(3);
    m.output = 2;
    m.validate().unwrap();
    let q = quantize(&m, FracBits::DEFAULT).unwrap();
    assert!(!q.nodes.iter().any(|n| n.op == QOp::Trunc));
    assert_eq!(q.output_frac(), FracBits(24));
    assert_bit_exact(&q, &inputs(4));
}

/// Where the joined value feeds a linear layer a stand-alone truncation stays,
/// and an add's lift does not add one: still one truncation of `C·H·W` values.
#[test]
fn a_join_into_a_linear_layer_still_truncates_once() {
    for join in [Op::Add, Op::Concat] {
        let mut m = network(join.clone(), Op::Relu, 7);
        // Drop the activation: join → flatten → dense.
        m.nodes.remove(3);
        m.nodes[3].inputs = vec![2];
        m.nodes[4].inputs = vec![3];
        m.output = 4;
        m.validate().unwrap();
        let q = quantize(&m, FracBits::DEFAULT).unwrap();
        let truncated: usize = q
            .nodes
            .iter()
            .filter(|n| n.op == QOp::Trunc)
            .map(|n| n.shape.numel())
            .sum();
        assert_eq!(truncated, C * H * H, "{}", join.kind());
    }
}
