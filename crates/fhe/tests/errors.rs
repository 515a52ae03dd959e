//! Bad inputs are clear errors: a ReLU model, inputs outside the range, wrong
//! keys, foreign or truncated ciphertexts, a batch larger than the slots.

use blindfold_core::Prg;
use blindfold_fhe::files::{self, Server, ServerKeys};
use blindfold_fhe::{FheError, FheModel, FheQuant, Layout, Progress};
use std::path::PathBuf;

fn model(name: &str) -> blindfold_model::ir::Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../models/{name}.onnx"));
    blindfold_model::load_onnx(p).unwrap()
}

#[test]
fn relu_and_max_pool_are_refused_naming_the_layer() {
    for name in ["minionn", "ppml_b", "deepsecure"] {
        let e = FheModel::new(&model(name), FheQuant::default(), Layout::Batch).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("layer") && (msg.contains("relu") || msg.contains("maxpool")),
            "{name}: {msg}"
        );
    }
}

#[test]
fn files_are_checked() {
    let fm = FheModel::new(&model("sok_ecg"), FheQuant::default(), Layout::Batch).unwrap();
    let server = Server::new(fm.clone()).unwrap();
    let mut rng = Prg::from_seed([9; 16]);
    let (client, _, eval) = files::generate(&fm.profile(), &mut rng).unwrap();
    let (other, _, other_eval) = files::generate(&fm.profile(), &mut rng).unwrap();
    let (keys, _, _) = ServerKeys::from_bytes(&eval).unwrap();
    let (other_keys, _, _) = ServerKeys::from_bytes(&other_eval).unwrap();
    let x = vec![0.25f32; 180];

    // out of range, wrong length
    assert!(matches!(
        client.encrypt(&[vec![1.5f32; 180]], &mut rng),
        Err(FheError::Input(_))
    ));
    assert!(matches!(
        client.encrypt(&[vec![0.5f32; 179]], &mut rng),
        Err(FheError::Input(_))
    ));
    // a batch larger than the slots
    let too_many = vec![x.clone(); fm.params.slots() + 1];
    assert!(matches!(
        client.encrypt(&too_many, &mut rng),
        Err(FheError::Batch { .. })
    ));

    let q = client.encrypt(std::slice::from_ref(&x), &mut rng).unwrap();
    // ciphertexts under other keys
    let e = server
        .evaluate(&other_keys, &q, &Progress::none())
        .unwrap_err();
    assert!(matches!(e, FheError::Mismatch(_)), "{e}");
    // truncated and corrupted query files
    for cut in [0, 5, 7, 100, q.len() / 2, q.len() - 1] {
        let e = server
            .evaluate(&keys, &q[..cut], &Progress::none())
            .unwrap_err();
        assert!(matches!(e, FheError::Format(_)), "cut {cut}: {e}");
    }
    let mut bad = q.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    assert!(server.evaluate(&keys, &bad, &Progress::none()).is_err());
    // a query file given as a result, keys given as a query
    assert!(matches!(client.decrypt(&q), Err(FheError::Format(_))));
    assert!(matches!(
        server.evaluate(&keys, &eval, &Progress::none()),
        Err(FheError::Format(_))
    ));
    // a result decrypted with another client's key
    let r = server.evaluate(&keys, &q, &Progress::none()).unwrap();
    assert!(matches!(other.decrypt(&r), Err(FheError::Mismatch(_))));
    // the right key decrypts to the reference
    let (y, budget) = client.decrypt(&r).unwrap();
    assert_eq!(y[0], fm.program.run(&fm.program.encode_input(&x).unwrap()));
    assert!(budget > 0);
    // truncated evaluation keys
    for cut in [3, 9, eval.len() / 3] {
        assert!(ServerKeys::from_bytes(&eval[..cut]).is_err());
    }
    // keys for another model
    let fm2 = FheModel::new(&model("ppml_a"), FheQuant::default(), Layout::Batch).unwrap();
    let s2 = Server::new(fm2).unwrap();
    assert!(matches!(
        s2.evaluate(&keys, &q, &Progress::none()),
        Err(FheError::Mismatch(_))
    ));
}

/// A chain of 30 dense layers and squares: refused, naming the layer where it
/// stops fitting (the exact scale, squared at every square, outgrows `f64`
/// long before the noise of nine squares outgrows n = 32768).
#[test]
fn too_deep_is_refused_naming_the_layer() {
    use blindfold_core::Shape;
    use blindfold_model::ir::{Dense, Model, Node, Op};
    let mut nodes = vec![Node {
        name: "input".into(),
        op: Op::Input,
        inputs: vec![],
        shape: Shape::new(vec![1]),
    }];
    for i in 0..30 {
        let prev = nodes.len() - 1;
        nodes.push(Node {
            name: format!("fc{i}"),
            op: Op::Dense(Dense {
                weight: vec![1.0],
                inputs: 1,
                outputs: 1,
                bias: vec![0.0],
            }),
            inputs: vec![prev],
            shape: Shape::new(vec![1]),
        });
        nodes.push(Node {
            name: format!("sq{i}"),
            op: Op::Square,
            inputs: vec![prev + 1],
            shape: Shape::new(vec![1]),
        });
    }
    let output = nodes.len() - 1;
    let m = Model {
        name: "deep".into(),
        nodes,
        output,
        final_activation: None,
    };
    // inputs in {0, 1} and a weight of 1 keep every value in [0, 1]...
    let q = FheQuant {
        input_bits: 1,
        weight_bits: 2,
        input_range: (0.0, 0.5),
    };
    let e = FheModel::new(&m, q, Layout::Batch).unwrap_err();
    let msg = e.to_string();
    // ...so the values fit; the depth is what fails, and the layer is named
    assert!(
        msg.contains("layer fc") || msg.contains("layer sq"),
        "{msg}"
    );
    assert!(
        msg.contains("too many squares") || msg.contains("square(s)"),
        "{msg}"
    );
}

/// Profiles and parameters come from a server or a file: crafted ones are
/// refused before anything is built from them (no division by a zero period,
/// no contexts for a 2^20 ring or 200 primes).
#[test]
fn crafted_profiles_are_refused() {
    use blindfold_fhe::latency::InputPacking;
    let fm = FheModel::new(&model("sok_ecg"), FheQuant::default(), Layout::Latency).unwrap();
    let good = fm.profile();
    files::profile_from_bytes(&files::profile_to_bytes(&good)).unwrap();
    let mut crafted = vec![];
    let mut p = good.clone();
    p.packing = Some(InputPacking::Plain { period: 0 });
    crafted.push(p);
    let mut p = good.clone();
    if let Some(InputPacking::Im2col { cols, .. }) = &mut p.packing {
        cols[0][0] = u32::MAX;
    } else {
        p.packing = Some(InputPacking::Im2col {
            period: 0,
            blocks: 1,
            rows: 1,
            cols: vec![vec![0]],
        });
    }
    crafted.push(p);
    let mut p = good.clone();
    p.params.degree = 1 << 20;
    crafted.push(p);
    let mut p = good.clone();
    p.params.plaintext = vec![p.params.plaintext[0]; 200];
    crafted.push(p);
    let mut p = good.clone();
    p.rotations.push(0);
    crafted.push(p);
    let mut p = good.clone();
    p.output_scale = f64::NAN;
    crafted.push(p);
    for (i, p) in crafted.iter().enumerate() {
        let e = files::profile_from_bytes(&files::profile_to_bytes(p));
        assert!(e.is_err(), "crafted profile {i} accepted");
        // and keys cannot be made from it either
        assert!(
            files::generate(p, &mut Prg::from_seed([1; 16])).is_err(),
            "keys for crafted profile {i}"
        );
    }
}
