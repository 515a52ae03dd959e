//! The preprocessing protocol end to end: both parties on two threads over an
//! in-memory channel, fixed seeds, every zoo network's linear layers, and the
//! malformed-message paths.

use std::thread;

use blindfold_core::{PartyId, Prg};
use blindfold_he::bench::{bench, zoo_layers, ZOO};
use blindfold_he::packing::{linear_reference, ConvTransposeGeom, Lowering};
use blindfold_he::protocol::{answer_query, decrypt_response, encrypt_query, plan_network};
use blindfold_he::{
    preprocess, EncodedWeights, FcShape, HeError, HeParams, HeSession, LayerPlan, LinearShape,
    SecretKey,
};
use blindfold_net::MemoryChannel;

#[test]
fn every_zoo_layer_has_a_plan_that_fits() {
    let params = HeParams::new().unwrap();
    for name in ZOO {
        let layers = zoo_layers(name).unwrap();
        for (l, plan) in plan_network(&params, &layers).unwrap().iter().enumerate() {
            assert!(plan.m * plan.s <= 8192, "{name} layer {l}");
            eprintln!(
                "{name:>10} {:<40} in {} out {} products {} (Cg {}, To {}, m {})",
                layers[l].describe(),
                plan.input_cts(),
                plan.output_cts(),
                plan.products(),
                plan.c_g,
                plan.t_o,
                plan.m
            );
        }
    }
}

#[test]
fn two_threads_whole_network_shares_reconstruct() {
    // MiniONN's four linear layers plus a strided, padded convolution; `bench`
    // checks M0 + T1 = L(R0; W1) and M1 + T0 = L(R1; W0) for every layer.
    let mut layers = zoo_layers("minionn").unwrap();
    layers.push(zoo_layers("cryptonets").unwrap()[0]);
    let report = bench(&layers, 1).unwrap();
    assert_eq!(report.layers.len(), layers.len());
    assert!(report.total_bytes < 8_000_000);
}

#[test]
fn every_zoo_network_preprocesses_correctly() {
    for name in [
        "secureml",
        "cryptonets",
        "deepsecure",
        "sok_mnist",
        "sok_ecg",
        "ppml_c",
    ] {
        let r = bench(&zoo_layers(name).unwrap(), 1).unwrap();
        eprintln!("{name}: {:.1} ms, {} bytes", r.total_ms, r.total_bytes);
    }
}

#[test]
fn explicit_two_party_run_with_fixed_seeds() {
    let layers = vec![
        LinearShape::Fc(FcShape {
            inputs: 30,
            outputs: 7,
        }),
        LinearShape::Conv2d(blindfold_he::ConvGeom::square(2, 9, 3, 3, 2, 1)),
    ];
    let (c0, c1) = MemoryChannel::pair();
    let party = |id: PartyId, mut ch: MemoryChannel, layers: Vec<LinearShape>| {
        move || {
            let params = HeParams::new().unwrap();
            let mut rng = Prg::from_seed([10 + id.index() as u8; 16]);
            let session = HeSession::setup(id, &mut ch, &params, &mut rng).unwrap();
            let plans = plan_network(&params, &layers).unwrap();
            let w: Vec<Vec<u64>> = layers
                .iter()
                .map(|s| rng.gen_u64s(s.weight_len()))
                .collect();
            let enc: Vec<EncodedWeights> = plans
                .iter()
                .zip(&w)
                .map(|(p, w)| EncodedWeights::new(&params, p, w).unwrap())
                .collect();
            let out = preprocess(id, &mut ch, &session, &enc, &mut rng).unwrap();
            (out, w)
        }
    };
    let h = thread::spawn(party(PartyId::P1, c1, layers.clone()));
    let (out0, w0) = party(PartyId::P0, c0, layers.clone())();
    let (out1, w1) = h.join().unwrap();
    for (l, shape) in layers.iter().enumerate() {
        let (s0, s1) = (&out0[l].0, &out1[l].0);
        let want0 = linear_reference(shape, &s0.r, &w1[l]).unwrap();
        let got0: Vec<u64> =
            s0.m.iter()
                .zip(&s1.t)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
        assert_eq!(got0, want0, "direction P0 layer {l}");
        let want1 = linear_reference(shape, &s1.r, &w0[l]).unwrap();
        let got1: Vec<u64> =
            s1.m.iter()
                .zip(&s0.t)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
        assert_eq!(got1, want1, "direction P1 layer {l}");
        assert_eq!(
            out0[l].1.bytes, out1[l].1.bytes,
            "both count the same traffic"
        );
    }
}

/// Square transposed convolution geometry.
fn conv_t(
    c_in: usize,
    hw: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    output_padding: usize,
) -> ConvTransposeGeom {
    ConvTransposeGeom {
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: k,
        kw: k,
        stride: [stride, stride],
        pads: [pad; 4],
        output_padding: [output_padding; 2],
    }
}

/// One direction with the I/O-free steps: shares `M + T = L(R; W)`.
fn query_answer_decrypt(plan: &LayerPlan, seed: u8) {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([seed; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let shape = &plan.shape;
    let w = rng.gen_u64s(shape.weight_len());
    let ew = EncodedWeights::new(&params, plan, &w).unwrap();
    let r = rng.gen_u64s(shape.input_len());
    let q = encrypt_query(&sk, plan, 1, &r, &mut rng).unwrap();
    assert_eq!(q.len(), plan.query_bytes(&params));
    let (resp, t) = answer_query(&params, &pk, &ew, 1, &q, &mut rng).unwrap();
    assert_eq!(resp.len(), plan.response_bytes(&params));
    let m = decrypt_response(&sk, plan, 1, &resp).unwrap();
    let got: Vec<u64> = m
        .iter()
        .zip(t.iter())
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    assert_eq!(
        got,
        linear_reference(shape, &r, &w).unwrap(),
        "{} {:?}",
        shape.describe(),
        plan.lowering
    );
}

#[test]
fn transposed_convolutions_through_query_answer_decrypt() {
    let layers = [
        // Stride 2 with output padding (the UNet decoder's k3 s2 p1 op1).
        conv_t(4, 7, 3, 3, 2, 1, 1),
        // k2 s2: one 1×1 sub-pixel convolution with 4·c_out channels.
        conv_t(5, 6, 3, 2, 2, 0, 0),
        // Unequal axes, stride 3, asymmetric pads up to the bounds.
        ConvTransposeGeom {
            c_in: 2,
            h: 6,
            w: 4,
            c_out: 3,
            kh: 4,
            kw: 3,
            stride: [3, 2],
            pads: [1, 2, 3, 0],
            output_padding: [2, 1],
        },
        // Stride 1 (both lowerings coincide).
        conv_t(2, 6, 3, 3, 1, 1, 0),
    ];
    for (i, t) in layers.iter().enumerate() {
        let shape = LinearShape::ConvTranspose2d(*t);
        // The chosen plan, then the cheapest tiling of every lowering.
        let chosen = LayerPlan::new(&shape, 8192).unwrap();
        query_answer_decrypt(&chosen, 40 + i as u8);
        for lowering in shape.lowerings() {
            let plan = LayerPlan::with_cheapest_tiling(&shape, 8192, lowering).unwrap();
            query_answer_decrypt(&plan, 50 + i as u8);
        }
    }
    // A tiled plan of each form (several input and output ciphertexts).
    let big = LinearShape::ConvTranspose2d(conv_t(8, 32, 8, 3, 2, 1, 1));
    let chosen = LayerPlan::new(&big, 8192).unwrap();
    assert!(matches!(chosen.lowering, Lowering::SubPixel { .. }));
    assert!(chosen.input_cts() > 1 && chosen.output_cts() > 1);
    query_answer_decrypt(&chosen, 60);
    let dilated = LayerPlan::with_cheapest_tiling(&big, 8192, Lowering::Dilated).unwrap();
    assert!(dilated.input_cts() > 1);
    query_answer_decrypt(&dilated, 61);
}

#[test]
fn two_threads_transposed_layers_share_reconstruct() {
    // `bench` runs both directions and checks M0 + T1 = L(R0; W1) and
    // M1 + T0 = L(R1; W0) for every layer.
    let layers = vec![
        LinearShape::ConvTranspose2d(conv_t(4, 8, 4, 2, 2, 0, 0)),
        LinearShape::Conv2d(blindfold_he::ConvGeom::square(4, 16, 2, 3, 1, 1)),
        LinearShape::ConvTranspose2d(conv_t(2, 16, 2, 3, 2, 1, 1)),
    ];
    let report = bench(&layers, 1).unwrap();
    assert_eq!(report.layers.len(), 3);
    assert_eq!(
        report.layers[2].layer,
        "convT 2x16x16 -> 2 k3x3 s2x2 p1,1,1,1 op1,1"
    );
}

#[test]
fn malformed_queries_and_responses_are_rejected() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([20; 16]);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = sk.public_key(&mut rng).unwrap();
    let shape = LinearShape::Fc(FcShape {
        inputs: 10,
        outputs: 4,
    });
    let plan = LayerPlan::new(&shape, 8192).unwrap();
    let w = rng.gen_u64s(shape.weight_len());
    let ew = EncodedWeights::new(&params, &plan, &w).unwrap();
    let r = rng.gen_u64s(shape.input_len());
    let q = encrypt_query(&sk, &plan, 3, &r, &mut rng).unwrap();
    assert_eq!(q.len(), plan.query_bytes(&params));
    // Good path.
    let (resp, t) = answer_query(&params, &pk, &ew, 3, &q, &mut rng).unwrap();
    assert_eq!(resp.len(), plan.response_bytes(&params));
    let m = decrypt_response(&sk, &plan, 3, &resp).unwrap();
    let want = linear_reference(&shape, &r, &w).unwrap();
    let got: Vec<u64> = m
        .iter()
        .zip(t.iter())
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    assert_eq!(got, want);
    // Wrong layer number, truncation, extension, wrong tag, wrong count, garbage.
    assert!(matches!(
        answer_query(&params, &pk, &ew, 4, &q, &mut rng),
        Err(HeError::Malformed { .. })
    ));
    assert!(answer_query(&params, &pk, &ew, 3, &q[..q.len() - 1], &mut rng).is_err());
    let mut longer = q.clone();
    longer.push(0);
    assert!(answer_query(&params, &pk, &ew, 3, &longer, &mut rng).is_err());
    let mut bad = q.clone();
    bad[0] = 0x52;
    assert!(answer_query(&params, &pk, &ew, 3, &bad, &mut rng).is_err());
    let mut bad = q.clone();
    bad[5] = 2;
    assert!(answer_query(&params, &pk, &ew, 3, &bad, &mut rng).is_err());
    assert!(answer_query(&params, &pk, &ew, 3, &[], &mut rng).is_err());
    let junk: Vec<u8> = (0..q.len()).map(|i| (i * 131 % 251) as u8).collect();
    assert!(answer_query(&params, &pk, &ew, 3, &junk, &mut rng).is_err());
    assert!(decrypt_response(&sk, &plan, 3, &resp[..resp.len() - 3]).is_err());
    assert!(decrypt_response(&sk, &plan, 2, &resp).is_err());
    assert!(decrypt_response(&sk, &plan, 3, &q).is_err());
    // A response whose c1 residues are not reduced (the first 60-bit residue all ones).
    let mut bad = resp.clone();
    for b in &mut bad[9..9 + 8] {
        *b = 0xff;
    }
    assert!(matches!(
        decrypt_response(&sk, &plan, 3, &bad),
        Err(HeError::Unreduced { .. })
    ));
    // Wrong weight length is a local error.
    assert!(EncodedWeights::new(&params, &plan, &w[1..]).is_err());
    assert!(encrypt_query(&sk, &plan, 0, &r[1..], &mut rng).is_err());
}

#[test]
fn a_peer_that_disappears_is_an_error_not_a_hang() {
    let (mut c0, c1) = MemoryChannel::pair();
    drop(c1);
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([30; 16]);
    assert!(matches!(
        HeSession::setup(PartyId::P0, &mut c0, &params, &mut rng),
        Err(HeError::Net(_))
    ));
}
