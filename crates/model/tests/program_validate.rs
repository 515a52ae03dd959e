//! `QModel::validate` (what share files are checked with) names the node and
//! the problem as a variant a caller can act on.

use blindfold_core::FracBits;
use blindfold_model::load_onnx;
use blindfold_model::quant::{quantize, ProgramError, ProgramErrorKind, QModel, QOp};
use std::path::Path;

fn minionn() -> QModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/minionn.onnx");
    quantize(&load_onnx(path).unwrap(), FracBits::DEFAULT).unwrap()
}

/// The kind of a node error, and the node it names.
fn node_err(q: &QModel) -> (usize, ProgramErrorKind) {
    match q.validate() {
        Err(ProgramError::Node { at, kind }) => {
            assert_eq!(at.name, q.nodes[at.node].name);
            (at.node, kind)
        }
        other => panic!("{other:?}"),
    }
}

fn first(q: &QModel, pred: fn(&QOp) -> bool) -> usize {
    q.nodes.iter().position(|n| pred(&n.op)).unwrap()
}

#[test]
fn a_quantized_model_is_valid() {
    assert_eq!(minionn().validate(), Ok(()));
}

#[test]
fn parameter_lengths() {
    let mut q = minionn();
    let i = first(&q, |op| matches!(op, QOp::Conv { .. }));
    let QOp::Conv { weight, .. } = &mut q.nodes[i].op else {
        unreachable!()
    };
    let expected = weight.len();
    weight.pop();
    assert_eq!(
        node_err(&q),
        (
            i,
            ProgramErrorKind::ParamLength {
                what: "weight",
                expected,
                got: expected - 1
            }
        )
    );
    let mut q = minionn();
    let i = first(&q, |op| matches!(op, QOp::Dense { .. }));
    let QOp::Dense { bias, outputs, .. } = &mut q.nodes[i].op else {
        unreachable!()
    };
    let outputs = *outputs;
    bias.push(0);
    assert_eq!(
        node_err(&q),
        (
            i,
            ProgramErrorKind::ParamLength {
                what: "bias",
                expected: outputs,
                got: outputs + 1
            }
        )
    );
}

#[test]
fn order_arity_scale_and_shape() {
    let mut q = minionn();
    q.nodes[2].inputs = vec![3];
    assert_eq!(node_err(&q), (2, ProgramErrorKind::NodeOrder { input: 3 }));

    let mut q = minionn();
    q.nodes[2].inputs.push(0);
    assert!(matches!(
        node_err(&q),
        (
            2,
            ProgramErrorKind::Arity {
                expected: 1,
                got: 2
            }
        )
    ));

    let mut q = minionn();
    q.nodes[1].frac = FracBits(3 * q.frac.0);
    assert!(matches!(node_err(&q), (1, ProgramErrorKind::Scale { .. })));

    let mut q = minionn();
    let last = q.output;
    let mut d = q.nodes[last].shape.dims().to_vec();
    d[0] += 1;
    q.nodes[last].shape = blindfold_core::Shape::new(d);
    assert!(matches!(
        node_err(&q),
        (n, ProgramErrorKind::Shape { .. }) if n == last
    ));

    let mut q = minionn();
    q.nodes[3].op = QOp::Input;
    assert!(matches!(node_err(&q), (3, ProgramErrorKind::ExtraInput)));
}

#[test]
fn program_level_errors() {
    let mut q = minionn();
    q.frac = FracBits(40);
    assert_eq!(q.validate(), Err(ProgramError::FracBits { frac: 40 }));
    let mut q = minionn();
    q.output = q.nodes.len();
    assert!(matches!(
        q.validate(),
        Err(ProgramError::OutputOutOfRange { .. })
    ));
    let mut q = minionn();
    q.nodes.remove(0);
    assert_eq!(q.validate(), Err(ProgramError::NoInput));
    // Messages keep naming the node.
    let mut q = minionn();
    q.nodes[2].inputs = vec![3];
    let msg = q.validate().unwrap_err().to_string();
    assert!(
        msg.starts_with("node 2 (") && msg.contains("not an earlier node"),
        "{msg}"
    );
}
