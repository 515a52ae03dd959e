//! The zoo's UNet (models/unet.onnx: average pooling, a transposed
//! convolution, nearest upsampling, skip concatenations, 11 classes per
//! pixel) on bundled test canvases (data/mnist-seg-test-100), in both secure
//! modes: both parties on threads over an in-memory channel, the output map
//! bit-exact against the plaintext reference, and the mask-only answer (the
//! per-pixel argmax garbled circuit) equal to the reference's mask.

mod common;

use blindfold_core::{FracBits, Prg};
use blindfold_engine::infer::local_engines;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::plan::Deployment;
use blindfold_engine::sharing::{reconstruct, share0_from_seed, share_input};
use blindfold_model::data::load_idx_dir;
use blindfold_model::engine::{encode_input, run_plain};
use blindfold_model::quant::{quantize, QModel};
use blindfold_model::segment::{argmax_map_ring, MapShape};

/// Canvases per mode (each is a few seconds of protocol).
const N: usize = 2;

fn unet() -> QModel {
    let m = blindfold_model::load_onnx(common::root().join("models/unet.onnx")).unwrap();
    quantize(&m, FracBits::DEFAULT).unwrap()
}

/// One query of `kind` through both engines of `deployment`.
fn run(d: Deployment, e0: PartyEngine, e1: PartyEngine, x: &[u64], kind: OutputKind) -> Vec<u64> {
    let mut rng = Prg::from_seed([3; 16]);
    // Two-server: a seed and the masked input; client-server: (0, x).
    let (x0, x1) = match d {
        Deployment::TwoServer => {
            let (seed, x1) = share_input(x, &mut rng);
            (share0_from_seed(seed, x.len()), x1)
        }
        _ => (vec![0; x.len()], x.to_vec()),
    };
    let (mut c0, mut c1) = blindfold_net::MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = e1.setup(&mut c1, &mut rng).unwrap();
        let b = e1.offline(&mut c1, &mut s, &mut rng).unwrap();
        e1.online_with(&mut c1, b, x1, kind).unwrap().0
    });
    let mut rng = Prg::from_seed([0; 16]);
    let mut s = e0.setup(&mut c0, &mut rng).unwrap();
    let b = e0.offline(&mut c0, &mut s, &mut rng).unwrap();
    let y0 = e0.online_with(&mut c0, b, x0, kind).unwrap().0;
    reconstruct(&y0, &t.join().unwrap())
}

fn check(d: Deployment) {
    let q = unet();
    let map = MapShape::of(q.output_shape().dims()).expect("a [C, H, W] output");
    let ds = load_idx_dir(&common::root().join("data/mnist-seg-test-100")).unwrap();
    let mut rng = Prg::from_seed([8; 16]);
    for i in 0..N {
        let x = ds.image_f32(i);
        let want = run_plain(&q, &x).unwrap();
        let mask: Vec<u64> = argmax_map_ring(map, &want)
            .unwrap()
            .into_iter()
            .map(u64::from)
            .collect();
        let enc = encode_input(&q, &x).unwrap();
        let [e0, e1] = local_engines(&q, d, None, &mut rng).unwrap();
        assert_eq!(
            run(d, e0, e1, &enc, OutputKind::Logits),
            want,
            "{d} canvas {i}: output map"
        );
        let [e0, e1] = local_engines(&q, d, None, &mut rng).unwrap();
        assert_eq!(
            run(d, e0, e1, &enc, OutputKind::Label),
            mask,
            "{d} canvas {i}: mask"
        );
    }
}

#[test]
fn unet_client_server_bit_exact_and_mask() {
    check(Deployment::ClientServer);
}

#[test]
fn unet_two_server_bit_exact_and_mask() {
    check(Deployment::TwoServer);
}
