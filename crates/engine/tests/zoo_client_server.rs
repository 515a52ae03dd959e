//! Every zoo network in client-server mode: the server (party 0) holds the
//! plaintext quantized model, the client (party 1) the weightless program and
//! the input; both on threads over an in-memory channel, fixed seeds, one
//! session per network and a fresh bundle per query (one direction of HE
//! preprocessing, the server garbling every circuit, Beaver squares). The
//! output (and, for vector outputs, the secure argmax label) must equal the
//! plaintext fixed-point reference bit for bit.

mod common;

use blindfold_core::Prg;
use blindfold_engine::infer::local_engines;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::plan::{Deployment, Garbling, Roles};
use blindfold_model::engine::{argmax_ring, encode_input, run_plain_all};
use blindfold_model::quant::QModel;
use common::model as load;

/// Inputs per network.
const N: usize = 8;

/// Run the inputs through both parties (`common::run_client_server`).
fn run(e0: PartyEngine, e1: PartyEngine, xs: &[Vec<u64>], kind: OutputKind) -> Vec<Vec<u64>> {
    common::run_client_server(e0, e1, xs, kind)
}

fn inputs(q: &QModel) -> Vec<Vec<u64>> {
    let len = q.input_shape().numel();
    if len == 784 {
        let ds = common::digits();
        (0..N)
            .map(|i| encode_input(q, &ds.image_f32(i)).unwrap())
            .collect()
    } else {
        let mut rng = Prg::from_seed([7; 16]);
        (0..N)
            .map(|_| {
                let x: Vec<f32> = (0..len)
                    .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
                    .collect();
                encode_input(q, &x).unwrap()
            })
            .collect()
    }
}

fn check_roles(name: &str, roles: Option<Roles>) {
    let q = load(name);
    let xs = inputs(&q);
    let want: Vec<Vec<u64>> = xs
        .iter()
        .map(|x| run_plain_all(&q, x).unwrap().swap_remove(q.output))
        .collect();
    let mut rng = Prg::from_seed([42; 16]);
    let [e0, e1] = local_engines(&q, Deployment::ClientServer, roles, &mut rng).unwrap();
    let got = run(e0, e1, &xs, OutputKind::Logits);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name} input {i}: client-server output differs");
    }
    // The label circuit: only the argmax leaves the protocol.
    let [e0, e1] = local_engines(&q, Deployment::ClientServer, roles, &mut rng).unwrap();
    if e0.supports_label() {
        let labels = run(e0, e1, &xs[..2], OutputKind::Label);
        for (l, w) in labels.iter().zip(&want) {
            assert_eq!(l, &vec![argmax_ring(w) as u64], "{name}: secure label");
        }
    }
}

fn check(name: &str) {
    check_roles(name, None);
}

#[test]
fn minionn() {
    check("minionn");
}

#[test]
fn deepsecure() {
    check("deepsecure");
}

#[test]
fn ppml_a() {
    check("ppml_a");
}

#[test]
fn ppml_b() {
    check("ppml_b");
}

#[test]
fn ppml_c() {
    check("ppml_c");
}

#[test]
fn secureml() {
    check("secureml");
}

#[test]
fn cryptonets() {
    check("cryptonets");
}

#[test]
fn sok_mnist() {
    check("sok_mnist");
}

#[test]
fn sok_ecg() {
    check("sok_ecg");
}

/// The other garbling policies give the same answers (they are what the
/// benchmark compares).
#[test]
fn client_garbles_or_alternate() {
    use blindfold_core::PartyId;
    for g in [Garbling::Fixed(PartyId::P1), Garbling::Alternate] {
        check_roles("ppml_c", Some(Roles::single_weight_holder(PartyId::P0, g)));
    }
}

#[test]
fn bnn() {
    check("bnn");
}

/// A stand-alone channel affine map (one OT direction: the client's mask
/// against the server's scales).
#[test]
fn standalone_channel_affine() {
    let m = blindfold_model::load_onnx(
        common::root().join("testdata/onnx/hand_identity_constant_dropout_13.onnx"),
    )
    .unwrap();
    let q = blindfold_model::quant::quantize(&m, blindfold_core::FracBits::DEFAULT).unwrap();
    let xs = inputs(&q);
    let mut rng = Prg::from_seed([43; 16]);
    let [e0, e1] = local_engines(&q, Deployment::ClientServer, None, &mut rng).unwrap();
    let got = run(e0, e1, &xs, OutputKind::Logits);
    for (i, (g, x)) in got.iter().zip(&xs).enumerate() {
        assert_eq!(
            g,
            &run_plain_all(&q, x).unwrap().swap_remove(q.output),
            "input {i}"
        );
    }
}
