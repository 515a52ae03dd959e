//! The planner is the one authority on what runs where:
//!
//! * for every model under `testdata/onnx` and in the zoo, `inspect` (the
//!   planner's survey), `split` (`share::split_for`) and `serve`
//!   (`PartyEngine::new`) agree on whether the model runs, and on the first layer
//!   that does not; where it runs, both parties on threads over an in-memory
//!   channel compute what the plaintext reference computes;
//! * roles, not party numbers, drive the engine: with one weight holder (the
//!   client-server configuration) the other party's weights are never read and
//!   the answer is still the reference's;
//! * no secret parameter of any op kind appears in clear in either share file.

mod common;

use blindfold_core::{FracBits, PartyId, Prg, Shape};
use blindfold_engine::party::PartyEngine;
use blindfold_engine::plan::{Deployment, Garbling, Plan, Roles};
use blindfold_engine::share::{combine, split, split_for, ModelShare};
use blindfold_engine::{EngineError, PeerMismatch};
use blindfold_model::engine::{encode_input, run_plain_all};
use blindfold_model::ir::Pool;
use blindfold_model::kernels::{ConvGeom, ConvTransposeGeom};
use blindfold_model::load_onnx;
use blindfold_model::quant::{quantize, QModel, QNode, QOp};
use blindfold_net::MemoryChannel;
use common::root;
use std::path::PathBuf;

/// Every importable model file: the ONNX test vectors and the zoo.
fn every_model() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["testdata/onnx", "testdata/onnx/extra", "models"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect();
        files.sort();
        v.extend(files);
    }
    assert!(v.len() > 60, "found only {} models", v.len());
    v
}

/// One query through both engines over an in-memory channel.
fn two_party(e0: PartyEngine, e1: PartyEngine, x: &[u64]) -> Vec<u64> {
    common::run_two_party(e0, e1, &[x.to_vec()]).swap_remove(0)
}

/// Compare a secure output with the reference: bit for bit (every truncation
/// is exact, inside a circuit).
fn assert_matches_reference(got: &[u64], want: &[u64], what: &str) {
    assert_eq!(got, want, "{what}: not bit-exact");
}

fn input_for(q: &QModel, seed: u8) -> Vec<u64> {
    let mut rng = Prg::from_seed([seed; 16]);
    let x: Vec<f32> = (0..q.input_shape().numel())
        .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    encode_input(q, &x).unwrap()
}

#[test]
fn inspect_split_and_serve_agree_on_every_model() {
    let (mut ran, mut refused) = (0, 0);
    for path in every_model() {
        let name = path.display().to_string();
        let q = quantize(&load_onnx(&path).unwrap(), FracBits::DEFAULT).unwrap();
        let survey = Plan::survey(&q, Deployment::TwoServer);
        assert_eq!(survey.len(), q.nodes.len(), "{name}");
        let first_refused = survey
            .iter()
            .find_map(|r| r.protocol.as_ref().err().map(|why| (r.node, why.clone())));
        let planned = Plan::new(&q, Deployment::TwoServer);
        let mut rng = Prg::from_seed([3; 16]);
        let split_res = split_for(&q, Deployment::TwoServer, &mut rng);
        // What a server does with shares made without asking (a crafted split).
        let [s0, s1] = split(&q, &mut rng);
        let served = PartyEngine::new(s0);
        match first_refused {
            Some((layer, why)) => {
                refused += 1;
                for (what, res) in [
                    ("plan", planned.map(|_| ())),
                    ("split", split_res.map(|_| ())),
                    ("serve", served.map(|_| ())),
                ] {
                    match res {
                        Err(EngineError::Unsupported {
                            layer: l,
                            mode,
                            reason,
                            ..
                        }) => {
                            assert_eq!(l, layer, "{name}: {what} refuses another layer");
                            assert_eq!(mode, "two-server");
                            assert_eq!(reason, why, "{name}: {what} gives another reason");
                        }
                        Err(e) => panic!("{name}: {what} fails otherwise: {e}"),
                        Ok(()) => panic!("{name}: inspect refuses layer {layer}, {what} accepts"),
                    }
                }
            }
            None => {
                planned.unwrap_or_else(|e| panic!("{name}: inspect accepts, plan: {e}"));
                split_res.unwrap_or_else(|e| panic!("{name}: inspect accepts, split: {e}"));
                let e0 = served.unwrap_or_else(|e| panic!("{name}: inspect accepts, serve: {e}"));
                if name.contains("/models/") {
                    // The zoo runs end to end in zoo_two_party.rs.
                    continue;
                }
                ran += 1;
                let e1 = PartyEngine::new(s1).unwrap();
                let x = input_for(&q, 9);
                let want = run_plain_all(&q, &x).unwrap().swap_remove(q.output);
                let got = two_party(e0, e1, &x);
                assert_matches_reference(&got, &want, &name);
            }
        }
    }
    assert!(ran >= 32, "only {ran} test vectors ran");
    // Every model runs now: the stand-alone channel-affine maps that were
    // refused (no HE packing) run on OT multiplication. The refusal branch
    // above stays: a future op the planner cannot run must be refused alike by
    // inspect, split and serve.
    assert_eq!(refused, 0, "{refused} models refused");
}

/// One weight holder (P1 holds the plaintext model, P0 only the input): one HE
/// direction, P1 garbles every circuit. P0's copy of the weights is garbage, so a
/// protocol that read it would give a wrong answer.
#[test]
fn roles_with_one_weight_holder_match_the_reference() {
    for name in ["ppml_c", "secureml", "sok_ecg"] {
        let q = quantize(
            &load_onnx(root().join(format!("models/{name}.onnx"))).unwrap(),
            FracBits::DEFAULT,
        )
        .unwrap();
        let roles = Roles::single_weight_holder(PartyId::P1, Garbling::Fixed(PartyId::P1));
        let mut rng = Prg::from_seed([8; 16]);
        let [mut s0, s1] = split(&q, &mut rng);
        let mut s1 = s1;
        s1.program = q.clone();
        for n in s0.program.nodes.iter_mut() {
            if let Some(s) = n.op.secrets_mut() {
                for v in s.weight.iter_mut().chain(s.bias.iter_mut()) {
                    *v = rng.gen_u64();
                }
            }
        }
        let plan = |s: &ModelShare| Plan::with_roles(&s.program, Deployment::TwoServer, roles);
        let p0 = plan(&s0).unwrap();
        assert!(p0.circuits().all(|g| g.garbler == PartyId::P1));
        assert!(!roles.he_directions().queries(PartyId::P1));
        let e0 = PartyEngine::with_plan(s0.clone(), p0).unwrap();
        let e1 = PartyEngine::with_plan(s1.clone(), plan(&s1).unwrap()).unwrap();
        let x = input_for(&q, 4);
        let want = run_plain_all(&q, &x).unwrap().swap_remove(q.output);
        let got = two_party(e0, e1, &x);
        assert_matches_reference(&got, &want, name);
    }
}

/// One node of every op kind, and every value put into a parameter field that
/// is not a public constant. The match below has no wildcard: a new op kind
/// fails to compile here until this test covers it. The markers are recorded
/// here, not read back through `QOp::secrets`, so an op the accessor wrongly
/// calls public is still searched for.
fn one_of_every_kind(rng: &mut Prg) -> (Vec<QOp>, Vec<u64>) {
    let markers = std::cell::RefCell::new(Vec::new());
    let mut w = |n: usize| -> Vec<u64> {
        let v: Vec<u64> = (0..n).map(|_| rng.gen_u64() | 1 << 63).collect();
        markers.borrow_mut().extend(&v);
        v
    };
    let conv = ConvGeom {
        c_in: 2,
        h: 4,
        w: 4,
        c_out: 3,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        pads: [1, 1, 1, 1],
    };
    let pool = Pool {
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0, 0, 0, 0],
    };
    let ops = vec![
        QOp::Input,
        QOp::Conv {
            geom: conv,
            weight: w(54),
            bias: w(3),
        },
        QOp::ConvTranspose {
            geom: ConvTransposeGeom {
                c_in: 3,
                h: 4,
                w: 4,
                c_out: 2,
                kh: 2,
                kw: 2,
                stride: [2, 2],
                pads: [0, 0, 0, 0],
                output_padding: [0, 0],
            },
            weight: w(24),
            bias: w(2),
        },
        QOp::Dense {
            inputs: 8,
            outputs: 4,
            weight: w(32),
            bias: w(4),
        },
        QOp::ChannelAffine {
            scale: w(3),
            shift: w(3),
        },
        QOp::MulPublic {
            factor: 0x5eed_0000_0000_0001,
        },
        QOp::Add,
        QOp::Relu { trunc: true },
        QOp::MaxPool {
            pool: pool.clone(),
            relu: true,
            trunc: false,
        },
        QOp::Square,
        QOp::Trunc,
        QOp::Sign { width: 64 },
        QOp::SumPool { pool },
        QOp::Reshape,
        QOp::Concat,
        QOp::ResizeNearest { scale: [2, 2] },
    ];
    for op in &ops {
        match op {
            QOp::Input
            | QOp::Conv { .. }
            | QOp::ConvTranspose { .. }
            | QOp::Dense { .. }
            | QOp::ChannelAffine { .. }
            | QOp::MulPublic { .. }
            | QOp::Add
            | QOp::Relu { .. }
            | QOp::MaxPool { .. }
            | QOp::Square
            | QOp::Trunc
            | QOp::Sign { .. }
            | QOp::SumPool { .. }
            | QOp::Reshape
            | QOp::Concat
            | QOp::ResizeNearest { .. } => {}
        }
    }
    (ops, markers.into_inner())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_parameter_appears_in_clear_in_a_share_file() {
    let mut rng = Prg::from_seed([21; 16]);
    let (ops, secrets) = one_of_every_kind(&mut rng);
    let nodes: Vec<QNode> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| QNode {
            name: format!("n{i}"),
            inputs: if i == 0 { vec![] } else { vec![i - 1] },
            op,
            shape: Shape::new(vec![4]),
            frac: FracBits(12),
        })
        .collect();
    let q = QModel {
        name: "every-kind".into(),
        frac: FracBits(12),
        output: nodes.len() - 1,
        nodes,
        final_activation: None,
        binary_layers: Vec::new(),
        binary_products: blindfold_model::quant::BinaryProducts::Auto,
        nonlinear: blindfold_model::quant::NonLinear::Gc,
    };
    // The accessor names every one of them.
    let named: usize = q
        .nodes
        .iter()
        .filter_map(|n| n.op.secrets())
        .map(|s| s.len())
        .sum();
    assert_eq!(named, secrets.len());
    assert_eq!(secrets.len(), 54 + 3 + 24 + 2 + 32 + 4 + 3 + 3);
    let shares = split(&q, &mut rng);
    let files: Vec<Vec<u8>> = shares.iter().map(|s| s.to_bytes()).collect();
    for (p, f) in files.iter().enumerate() {
        for v in &secrets {
            assert!(
                !contains(f, &v.to_le_bytes()),
                "secret {v:#x} in clear in party {p}'s share file"
            );
        }
        // The search works: public constants are there.
        assert!(contains(f, &0x5eed_0000_0000_0001u64.to_le_bytes()));
    }
    // And the shares still add up to the model.
    assert_eq!(combine(&shares[0], &shares[1]).unwrap(), q);
}

/// Two servers of one split that plan with different roles would not line up
/// message for message: the handshake refuses them on both sides.
#[test]
fn setup_refuses_a_peer_with_other_roles() {
    let q = common::model("secureml");
    let [s0, s1] = split(&q, &mut Prg::from_seed([2; 16]));
    let e0 = PartyEngine::new(s0).unwrap();
    let one = Roles::single_weight_holder(PartyId::P1, Garbling::Fixed(PartyId::P1));
    let p1 = Plan::with_roles(&s1.program, Deployment::TwoServer, one).unwrap();
    let e1 = PartyEngine::with_plan(s1, p1).unwrap();
    let (mut c0, mut c1) = MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        e1.setup(&mut c1, &mut Prg::from_seed([1; 16]))
            .map(|_| ())
            .unwrap_err()
    });
    let e = e0
        .setup(&mut c0, &mut Prg::from_seed([0; 16]))
        .map(|_| ())
        .unwrap_err();
    for e in [e, t.join().unwrap()] {
        assert!(
            matches!(e, EngineError::PeerMismatch(PeerMismatch::OtherRoles)),
            "{e}"
        );
    }
}

/// The reference's per-pixel (or per-vector) argmax, first maximum winning:
/// what the label circuit computes.
fn reference_labels(q: &QModel, y: &[u64]) -> Option<Vec<u64>> {
    let dims = q.output_shape().dims().to_vec();
    let (classes, pixels) = match dims[..] {
        [k] if k >= 2 => (k, 1),
        [c, h, w] if c >= 2 => (c, h * w),
        _ => return None,
    };
    Some(
        (0..pixels)
            .map(|p| {
                let mut best = 0;
                for c in 1..classes {
                    if (y[c * pixels + p] as i64) > (y[best * pixels + p] as i64) {
                        best = c;
                    }
                }
                best as u64
            })
            .collect(),
    )
}

/// Client-server mode on every importable model: what `inspect --mode
/// client-server` accepts, the server accepts and runs, bit-exact, and its
/// label circuit (per pixel for `[C, H, W]` outputs) gives the reference's
/// argmax; what it refuses, the server refuses at the same layer.
#[test]
fn client_server_runs_what_inspect_accepts_on_every_model() {
    use blindfold_engine::infer::local_engines;
    use blindfold_engine::party::OutputKind;
    let (mut ran, mut masks) = (0, 0);
    for path in every_model() {
        let name = path.display().to_string();
        let q = quantize(&load_onnx(&path).unwrap(), FracBits::DEFAULT).unwrap();
        let survey = Plan::survey(&q, Deployment::ClientServer);
        let first_refused = survey
            .iter()
            .find_map(|r| r.protocol.as_ref().err().map(|why| (r.node, why.clone())));
        let server = blindfold_engine::serve::CsServer::new(&q, &Default::default());
        match first_refused {
            Some((layer, why)) => match server {
                Err(EngineError::Unsupported {
                    layer: l, reason, ..
                }) => {
                    assert_eq!((l, &reason), (layer, &why), "{name}");
                }
                Err(e) => panic!("{name}: fails otherwise: {e}"),
                Ok(_) => panic!("{name}: inspect refuses layer {layer}, the server accepts"),
            },
            None => {
                server.unwrap_or_else(|e| panic!("{name}: inspect accepts, server: {e}"));
                if name.contains("/models/") {
                    // The zoo runs in zoo_client_server.rs.
                    continue;
                }
                ran += 1;
                let x = input_for(&q, 11);
                let want = run_plain_all(&q, &x).unwrap().swap_remove(q.output);
                let mut rng = Prg::from_seed([5; 16]);
                let [e0, e1] = local_engines(&q, Deployment::ClientServer, None, &mut rng).unwrap();
                let (e0b, e1b) = {
                    let [a, b] =
                        local_engines(&q, Deployment::ClientServer, None, &mut rng).unwrap();
                    (a, b)
                };
                let got = client_server_run(e0, e1, &x, OutputKind::Logits);
                assert_matches_reference(&got, &want, &name);
                if let Some(labels) = reference_labels(&q, &want) {
                    assert!(e0b.supports_label(), "{name}");
                    masks += (labels.len() > 1) as usize;
                    let got = client_server_run(e0b, e1b, &x, OutputKind::Label);
                    assert_eq!(got, labels, "{name}: secure argmax");
                }
            }
        }
    }
    assert!(ran >= 30, "only {ran} test vectors ran");
    assert!(masks >= 1, "no [C, H, W] output was tested");
}

/// One query in client-server mode: party 1 holds the input, party 0 a zero share.
fn client_server_run(
    e0: PartyEngine,
    e1: PartyEngine,
    x: &[u64],
    kind: blindfold_engine::party::OutputKind,
) -> Vec<u64> {
    let (mut c0, mut c1) = MemoryChannel::pair();
    let x1 = x.to_vec();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = e1.setup(&mut c1, &mut rng).unwrap();
        let b = e1.offline(&mut c1, &mut s, &mut rng).unwrap();
        e1.online_with(&mut c1, b, x1, kind).unwrap().0
    });
    let mut rng = Prg::from_seed([0; 16]);
    let mut s = e0.setup(&mut c0, &mut rng).unwrap();
    let b = e0.offline(&mut c0, &mut s, &mut rng).unwrap();
    let y0 = e0
        .online_with(&mut c0, b, vec![0; x.len()], kind)
        .unwrap()
        .0;
    let y1 = t.join().unwrap();
    blindfold_engine::sharing::reconstruct(&y0, &y1)
}
