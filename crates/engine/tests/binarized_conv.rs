//! A binarized convolutional network built in the IR: ±1 convolutions, each
//! followed by a batch normalization (negative scales included) and a sign,
//! a max-pool between, a batch normalization before a ReLU after the third
//! conv's pool, and a binarized dense layer with its own batch normalization
//! at the end; and a binarized conv whose batch normalization feeds a ReLU
//! (folded in fixed point). The integer reference in both BN forms gives the
//! same answer, and both secure modes equal it bit for bit, with the dense
//! layer's products on OTs.

mod common;

use blindfold_core::{FracBits, Prg, Shape};
use blindfold_engine::infer::local_engines;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::plan::{Deployment, Products, StepSpec};
use blindfold_engine::share::split;
use blindfold_model::engine::{encode_input, run_plain_all};
use blindfold_model::ir::{ChannelAffine, Conv, Dense, Model, Node, Op, Pool};
use blindfold_model::quant::{quantize_with, BinaryProducts, BnSign, QModel, QOp, QuantConfig};

fn pm1(rng: &mut Prg, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| if rng.gen_u64() & 1 == 1 { 1.0 } else { -1.0 })
        .collect()
}

fn uniform(rng: &mut Prg) -> f32 {
    (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32
}

/// `(scale, shift)` per channel, channel 0's scale negative.
fn bn(rng: &mut Prg, ch: usize, spread: f32) -> ChannelAffine {
    let mut scale: Vec<f32> = (0..ch).map(|_| 0.02 + uniform(rng) / spread).collect();
    scale[0] = -scale[0];
    let shift = (0..ch).map(|_| uniform(rng) * 2.0 - 1.0).collect();
    ChannelAffine { scale, shift }
}

fn model() -> Model {
    let mut rng = Prg::from_seed([17; 16]);
    let conv = |rng: &mut Prg, c_in, c_out| {
        Op::Conv(Conv {
            weight: pm1(rng, c_out * c_in * 9),
            c_out,
            c_in,
            kh: 3,
            kw: 3,
            bias: vec![0.0; c_out],
            stride: [1, 1],
            pads: [1, 1, 1, 1],
        })
    };
    let pool = Pool {
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0, 0, 0, 0],
    };
    let ops: Vec<(Op, Vec<usize>)> = vec![
        (Op::Input, vec![1, 8, 8]),
        (conv(&mut rng, 1, 4), vec![4, 8, 8]),
        (Op::ChannelAffine(bn(&mut rng, 4, 3.0)), vec![4, 8, 8]),
        (Op::Sign, vec![4, 8, 8]),
        (conv(&mut rng, 4, 6), vec![6, 8, 8]),
        (Op::ChannelAffine(bn(&mut rng, 6, 36.0)), vec![6, 8, 8]),
        (Op::Sign, vec![6, 8, 8]),
        (Op::MaxPool(pool.clone()), vec![6, 4, 4]),
        (conv(&mut rng, 6, 5), vec![5, 4, 4]),
        (Op::MaxPool(pool), vec![5, 2, 2]),
        // A batch normalization after a pool: a stand-alone channel affine.
        (Op::ChannelAffine(bn(&mut rng, 5, 54.0)), vec![5, 2, 2]),
        (Op::Relu, vec![5, 2, 2]),
        (Op::Reshape, vec![20]),
        (
            Op::Dense(Dense {
                weight: pm1(&mut rng, 3 * 20),
                inputs: 20,
                outputs: 3,
                bias: vec![0.0; 3],
            }),
            vec![3],
        ),
        (Op::ChannelAffine(bn(&mut rng, 3, 20.0)), vec![3]),
    ];
    chain("bnn-conv", ops)
}

/// Both servers of a fresh split on two threads: the reconstructed outputs.
fn two_server(q: &QModel, xs: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let [s0, s1] = split(q, &mut Prg::from_seed([42; 16]));
    common::run_two_party(
        PartyEngine::new(s0).unwrap(),
        PartyEngine::new(s1).unwrap(),
        xs,
    )
}

fn inputs(q: &QModel, n: usize) -> Vec<Vec<u64>> {
    let mut rng = Prg::from_seed([23; 16]);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..64).map(|_| uniform(&mut rng)).collect();
            encode_input(q, &x).unwrap()
        })
        .collect()
}

fn quantized(form: BnSign) -> QModel {
    let cfg = QuantConfig {
        bn_sign: form,
        binary_products: BinaryProducts::Ot,
        ..QuantConfig::new(FracBits::DEFAULT)
    };
    quantize_with(&model(), &cfg).unwrap()
}

/// A model's nodes, each reading the one before.
fn chain(name: &str, ops: Vec<(Op, Vec<usize>)>) -> Model {
    let nodes: Vec<Node> = ops
        .into_iter()
        .enumerate()
        .map(|(i, (op, dims))| Node {
            name: format!("n{i}"),
            inputs: if i == 0 { vec![] } else { vec![i - 1] },
            op,
            shape: Shape::new(dims),
        })
        .collect();
    let m = Model {
        name: name.into(),
        output: nodes.len() - 1,
        nodes,
        final_activation: None,
    };
    m.validate().unwrap();
    m
}

/// A binarized conv whose batch normalization feeds a ReLU: folded into the
/// conv in fixed point (no stand-alone map, the conv no longer binary, its
/// output at 2f), the same values as the unfolded map, bit-exact securely.
#[test]
fn batch_normalization_before_relu_folds_into_a_binarized_conv() {
    let mut rng = Prg::from_seed([29; 16]);
    let conv = Op::Conv(Conv {
        weight: pm1(&mut rng, 3 * 9),
        c_out: 3,
        c_in: 1,
        kh: 3,
        kw: 3,
        bias: vec![0.0; 3],
        stride: [1, 1],
        pads: [0, 0, 0, 0],
    });
    let m = chain(
        "bconv-relu",
        vec![
            (Op::Input, vec![1, 6, 6]),
            (conv, vec![3, 4, 4]),
            (Op::ChannelAffine(bn(&mut rng, 3, 9.0)), vec![3, 4, 4]),
            (Op::Relu, vec![3, 4, 4]),
            (Op::Reshape, vec![48]),
            (
                Op::Dense(Dense {
                    weight: (0..2 * 48).map(|_| uniform(&mut rng) - 0.5).collect(),
                    inputs: 48,
                    outputs: 2,
                    bias: vec![0.1, -0.1],
                }),
                vec![2],
            ),
        ],
    );
    let q = quantize_with(&m, &QuantConfig::new(FracBits::DEFAULT)).unwrap();
    assert!(q.binary_layers.is_empty(), "s_f·W is not binary");
    assert!(!q
        .nodes
        .iter()
        .any(|n| matches!(n.op, QOp::ChannelAffine { .. })));
    assert_eq!(q.nodes[1].frac.0, 2 * FracBits::DEFAULT.0);
    // The folded conv computes exactly what conv-then-map would: compare the
    // reference with the float model within the fixed-point error.
    let mut rng = Prg::from_seed([31; 16]);
    let xf: Vec<Vec<f32>> = (0..5)
        .map(|_| (0..36).map(|_| uniform(&mut rng)).collect())
        .collect();
    for x in &xf {
        let want = blindfold_model::engine::run_float(&m, x).unwrap();
        let got = blindfold_model::engine::run_plain(&q, x).unwrap();
        for (g, w) in got.iter().zip(&want) {
            let g = blindfold_core::ring::decode(*g, q.output_frac());
            assert!((g - w).abs() < 1e-2, "{g} vs {w}");
        }
    }
    let xs: Vec<Vec<u64>> = xf.iter().map(|x| encode_input(&q, x).unwrap()).collect();
    let want: Vec<Vec<u64>> = xs
        .iter()
        .map(|x| run_plain_all(&q, x).unwrap().swap_remove(q.output))
        .collect();
    assert_eq!(two_server(&q, &xs), want);
}

#[test]
fn both_forms_agree_and_the_hidden_sign_is_narrow() {
    let (t, a) = (quantized(BnSign::Threshold), quantized(BnSign::Affine));
    let widths: Vec<u32> = t
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            QOp::Sign { width } => Some(width),
            _ => None,
        })
        .collect();
    // Conv 4→6 3×3 on signs: |W·x| <= 36·2^12, the output within 2·36·2^12 + 1.
    assert_eq!(widths, [64, 20]);
    // The third conv is binarized but its pool's BN cannot fold: a
    // stand-alone channel affine map remains (after the pool).
    assert!(t
        .nodes
        .iter()
        .any(|n| matches!(n.op, QOp::ChannelAffine { .. })));
    for x in inputs(&t, 30) {
        let yt = run_plain_all(&t, &x).unwrap().swap_remove(t.output);
        let ya = run_plain_all(&a, &x).unwrap().swap_remove(a.output);
        assert_eq!(yt, ya);
    }
}

#[test]
fn two_server_and_client_server_are_bit_exact() {
    let q = quantized(BnSign::Threshold);
    let plan = blindfold_engine::plan::Plan::new(&q, Deployment::TwoServer).unwrap();
    assert!(
        plan.steps().iter().any(|s| matches!(
            &s.spec,
            StepSpec::Linear(l) if l.products == Products::BinaryOt
        )),
        "the dense layer's products run on OTs"
    );
    assert!(plan
        .steps()
        .iter()
        .any(|s| matches!(s.spec, StepSpec::Affine(_))));
    let xs = inputs(&q, 6);
    let want: Vec<Vec<u64>> = xs
        .iter()
        .map(|x| run_plain_all(&q, x).unwrap().swap_remove(q.output))
        .collect();
    assert_eq!(two_server(&q, &xs), want, "two-server");

    let mut rng = Prg::from_seed([43; 16]);
    let [e0, e1] = local_engines(&q, Deployment::ClientServer, None, &mut rng).unwrap();
    let got = common::run_client_server(e0, e1, &xs, OutputKind::Logits);
    assert_eq!(got, want, "client-server");
}
