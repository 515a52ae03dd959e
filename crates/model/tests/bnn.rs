//! Binarized networks: a hand-built ONNX graph as torch exports a binarized MLP
//! (Flatten, MatMul with ±1 weights, BatchNormalization, Sign), imported with
//! its weights kept binary, and the reference engine computing MOBIUS's integer
//! batch normalization `sign(s'·c + t'·2^f)`, `s' = floor(q·s)`,
//! `t' = floor(q·t)`, exactly, in both forms (threshold and affine), with
//! negative and zero scales.

mod common;

use blindfold_core::{FracBits, Prg};
use blindfold_model::engine::{encode_input, run_plain_all};
use blindfold_model::ir::Op;
use blindfold_model::onnx::import_onnx;
use blindfold_model::quant::{quantize, quantize_with, BnSign, QModel, QOp, QuantConfig};
use common::{a_int, f_init, model, node};

/// Layer sizes of the hand-built network: 16 pixels, two hidden layers, 3 classes.
const SIZES: [usize; 4] = [16, 6, 5, 3];
const EPS: f32 = 1e-5;

/// One batch normalization's ONNX parameters.
struct Bn {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl Bn {
    /// `(s, t)` of channel `o` as the importer computes them (f64, stored as f32).
    fn affine(&self, o: usize) -> (f32, f32) {
        let s = self.gamma[o] as f64 / (self.var[o] as f64 + EPS as f64).sqrt();
        (
            s as f32,
            (self.beta[o] as f64 - self.mean[o] as f64 * s) as f32,
        )
    }
}

struct Net {
    /// `[out][in]`, ±1.
    weights: Vec<Vec<Vec<f32>>>,
    bns: Vec<Bn>,
    onnx: Vec<u8>,
}

fn uniform(rng: &mut Prg) -> f32 {
    (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32
}

/// A random binarized MLP; channel 0 of each hidden batch normalization has a
/// negative scale, channel 1 of the first a zero scale.
fn net(seed: u8) -> Net {
    let mut rng = Prg::from_seed([seed; 16]);
    let (mut nodes, mut inits) = (Vec::new(), Vec::new());
    nodes.push(node("Flatten", &["x"], "h0", vec![a_int("axis", 1)]));
    let (mut weights, mut bns) = (Vec::new(), Vec::new());
    for l in 0..3 {
        let (n_in, n_out) = (SIZES[l], SIZES[l + 1]);
        let w: Vec<Vec<f32>> = (0..n_out)
            .map(|_| {
                (0..n_in)
                    .map(|_| if rng.gen_u64() & 1 == 1 { 1.0 } else { -1.0 })
                    .collect()
            })
            .collect();
        // torch exports Linear as MatMul by the transposed weight, [in, out].
        let wt: Vec<f32> = (0..n_in)
            .flat_map(|i| w.iter().map(move |row| row[i]))
            .collect();
        let fan = n_in as f32;
        let mut gamma: Vec<f32> = (0..n_out).map(|_| 0.05 + uniform(&mut rng)).collect();
        if l < 2 {
            gamma[0] = -gamma[0];
        }
        if l == 0 {
            gamma[1] = 0.0;
        }
        let bn = Bn {
            gamma,
            beta: (0..n_out).map(|_| uniform(&mut rng) - 0.5).collect(),
            mean: (0..n_out)
                .map(|_| (uniform(&mut rng) - 0.5) * fan.sqrt())
                .collect(),
            var: (0..n_out).map(|_| 0.2 + uniform(&mut rng) * fan).collect(),
        };
        let p = |k: &str| format!("l{l}.{k}");
        inits.push(f_init(&p("w"), &[n_in as i64, n_out as i64], &wt));
        for (k, v) in [
            ("g", &bn.gamma),
            ("b", &bn.beta),
            ("m", &bn.mean),
            ("v", &bn.var),
        ] {
            inits.push(f_init(&p(k), &[n_out as i64], v));
        }
        let (x, mm, out) = (format!("h{l}"), p("mm"), p("bn"));
        nodes.push(node("MatMul", &[&x, &p("w")], &mm, vec![]));
        let mut bn_node = node(
            "BatchNormalization",
            &[&mm, &p("g"), &p("b"), &p("m"), &p("v")],
            if l == 2 { "y" } else { &out },
            vec![],
        );
        bn_node.attribute.push({
            let mut a = onnx_protobuf::AttributeProto::new();
            a.name = "epsilon".into();
            a.type_ =
                protobuf::EnumOrUnknown::new(onnx_protobuf::attribute_proto::AttributeType::FLOAT);
            a.f = EPS;
            a
        });
        nodes.push(bn_node);
        if l < 2 {
            nodes.push(node("Sign", &[&out], &format!("h{}", l + 1), vec![]));
        }
        weights.push(w);
        bns.push(bn);
    }
    Net {
        weights,
        bns,
        onnx: model(nodes, inits, &[1, 1, 4, 4]),
    }
}

fn inputs(q: &QModel, n: usize, seed: u8) -> Vec<Vec<u64>> {
    let mut rng = Prg::from_seed([seed; 16]);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..SIZES[0]).map(|_| uniform(&mut rng)).collect();
            encode_input(q, &x).unwrap()
        })
        .collect()
}

/// MOBIUS's integer batch normalization and sign, by hand in i128, from the
/// network's float parameters: the hidden signs (at scale f: `±2^f`).
fn mobius_signs(net: &Net, x: &[u64], q: u64, f: u32) -> Vec<Vec<i128>> {
    let mut h: Vec<i128> = x.iter().map(|&v| v as i64 as i128).collect();
    let mut out = Vec::new();
    for l in 0..2 {
        let signs: Vec<i128> = net.weights[l]
            .iter()
            .enumerate()
            .map(|(o, row)| {
                let c: i128 = row.iter().zip(&h).map(|(&w, &v)| w as i128 * v).sum();
                let (s, t) = net.bns[l].affine(o);
                let s1 = (q as f64 * s as f64).floor() as i128;
                let t1 = (q as f64 * t as f64).floor() as i128;
                if s1 * c + (t1 << f) >= 0 {
                    1 << f
                } else {
                    -(1 << f)
                }
            })
            .collect();
        out.push(signs.clone());
        h = signs;
    }
    out
}

#[test]
fn bn_after_binary_layers_is_not_folded_into_the_weights() {
    let n = net(1);
    let m = import_onnx(&n.onnx, "bnn").unwrap();
    let kinds: Vec<&str> = m.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            "input",
            "reshape",
            "dense",
            "channel-affine",
            "sign",
            "dense",
            "channel-affine",
            "sign",
            "dense",
            "channel-affine"
        ]
    );
    assert!(m
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Dense(_)))
        .all(|n| n.op.is_binary_layer()));
}

#[test]
fn non_binary_layers_still_fold_their_batch_normalization() {
    let mut n = net(2);
    // Scale the first layer's weights: no longer binary, BN folds into it.
    let m0 = import_onnx(&n.onnx, "bnn").unwrap();
    assert_eq!(
        m0.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::ChannelAffine(_)))
            .count(),
        3
    );
    let mut g =
        <onnx_protobuf::ModelProto as protobuf::Message>::parse_from_bytes(&n.onnx).unwrap();
    for v in &mut g.graph.as_mut().unwrap().initializer[0].float_data {
        *v *= 0.5;
    }
    n.onnx = protobuf::Message::write_to_bytes(&g).unwrap();
    let m = import_onnx(&n.onnx, "bnn").unwrap();
    assert_eq!(
        m.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::ChannelAffine(_)))
            .count(),
        2
    );
}

#[test]
fn reference_computes_mobius_integer_batch_normalization_in_both_forms() {
    let f = 12;
    for seed in 1..=12u8 {
        let n = net(seed);
        let m = import_onnx(&n.onnx, "bnn").unwrap();
        for q in [1u64, 100, 1_000, 10_000, 1 << 20] {
            let mut outs: Vec<Vec<Vec<u64>>> = Vec::new();
            for form in [BnSign::Threshold, BnSign::Affine] {
                let cfg = QuantConfig {
                    bn_scale: q,
                    bn_sign: form,
                    ..QuantConfig::new(FracBits(f))
                };
                let qm = quantize_with(&m, &cfg).unwrap();
                qm.validate().unwrap();
                let signs: Vec<usize> = (0..qm.nodes.len())
                    .filter(|&i| matches!(qm.nodes[i].op, QOp::Sign { .. }))
                    .collect();
                assert_eq!(signs.len(), 2);
                let mut finals = Vec::new();
                for x in inputs(&qm, 40, seed) {
                    let vals = run_plain_all(&qm, &x).unwrap();
                    let want = mobius_signs(&n, &x, q, f);
                    for (k, &i) in signs.iter().enumerate() {
                        let got: Vec<i128> = vals[i].iter().map(|&v| v as i64 as i128).collect();
                        assert_eq!(
                            got, want[k],
                            "seed {seed} q {q} {form:?}: hidden layer {k} signs"
                        );
                    }
                    finals.push(vals[qm.output].clone());
                }
                outs.push(finals);
            }
            assert_eq!(outs[0], outs[1], "seed {seed} q {q}: the two forms agree");
        }
    }
}

#[test]
fn threshold_form_keeps_weights_binary_and_narrows_the_hidden_sign() {
    let n = net(3);
    let m = import_onnx(&n.onnx, "bnn").unwrap();
    let qm = quantize(&m, FracBits(12)).unwrap();
    let dense: Vec<&QOp> = qm
        .nodes
        .iter()
        .map(|n| &n.op)
        .filter(|op| matches!(op, QOp::Dense { .. }))
        .collect();
    // Every layer ±1 (rows of negative scales negated; the zero scale's
    // constant sign is a bias beyond |W·x|); the last batch normalization,
    // which no sign follows, stays a fixed-point channel affine map.
    for op in &dense {
        let QOp::Dense { weight, .. } = op else {
            unreachable!()
        };
        assert!(weight.iter().all(|&w| w == 1 || w == u64::MAX), "binary");
    }
    let dense_ids: Vec<usize> = (0..qm.nodes.len())
        .filter(|&i| matches!(qm.nodes[i].op, QOp::Dense { .. }))
        .collect();
    assert_eq!(qm.binary_layers, dense_ids);
    let widths: Vec<u32> = qm
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            QOp::Sign { width } => Some(width),
            _ => None,
        })
        .collect();
    // The first layer reads pixels (unbounded input); the second reads six
    // signs: |W·x| <= 6·2^12, the output within 2·6·2^12 + 1 < 2^16.
    assert_eq!(widths, [64, 17]);
    // Scales: binarized layers keep their input's f, the last BN gives 2f.
    let fracs: Vec<(&str, u32)> = qm.nodes[2..]
        .iter()
        .filter(|n| !matches!(n.op, QOp::Sign { .. }))
        .map(|n| (n.op.kind(), n.frac.0))
        .collect();
    assert_eq!(
        fracs,
        [
            ("dense", 12),
            ("dense", 12),
            ("dense", 12),
            ("channel-affine", 24)
        ]
    );

    let affine = quantize_with(
        &m,
        &QuantConfig {
            bn_sign: BnSign::Affine,
            ..QuantConfig::new(FracBits(12))
        },
    )
    .unwrap();
    assert!(affine
        .nodes
        .iter()
        .all(|n| !matches!(n.op, QOp::Sign { width } if width != 64)));
    // s'·W is not binary (whatever the values of s'): only the last layer,
    // whose batch normalization no sign follows, stays listed.
    assert_eq!(affine.binary_layers.len(), 1);
    assert!(matches!(
        affine.nodes[affine.binary_layers[0]].op,
        QOp::Dense { outputs: 3, .. }
    ));
}

#[test]
fn bad_bn_scale_is_an_error() {
    let n = net(4);
    let m = import_onnx(&n.onnx, "bnn").unwrap();
    for q in [0, QuantConfig::MAX_BN_SCALE + 1] {
        let cfg = QuantConfig {
            bn_scale: q,
            ..QuantConfig::new(FracBits(12))
        };
        let e = quantize_with(&m, &cfg).unwrap_err();
        assert!(e.to_string().contains("batch-normalization scale"), "{e}");
    }
}
