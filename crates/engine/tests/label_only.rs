//! Label-only answers: the servers run an argmax garbled circuit over the shared
//! logits and return shares of the label. Both parties over the in-memory channel,
//! then the TCP service, compared with the plaintext reference's argmax.

mod common;

use blindfold_core::Prg;
use blindfold_engine::party::{OutputKind, PartyEngine};
use blindfold_engine::serve::LocalCluster;
use blindfold_engine::share::split;
use blindfold_engine::sharing::{reconstruct, share0_from_seed, share_input};
use blindfold_model::engine::{argmax_ring, encode_input, run_plain};
use blindfold_net::MemoryChannel;

#[test]
fn label_only_in_process_matches_reference_argmax() {
    let q = common::model("ppml_b");
    let ds = common::digits();
    let mut rng = Prg::from_seed([9; 16]);
    let [s0, s1] = split(&q, &mut rng);
    let (e0, e1) = (PartyEngine::new(s0).unwrap(), PartyEngine::new(s1).unwrap());
    assert!(e0.supports_label());
    let n = 8;
    let xs: Vec<Vec<u64>> = (0..n)
        .map(|i| encode_input(&q, &ds.image_f32(i)).unwrap())
        .collect();
    let shares: Vec<_> = xs.iter().map(|x| share_input(x, &mut rng)).collect();
    let x1s: Vec<Vec<u64>> = shares.iter().map(|s| s.1.clone()).collect();
    let (mut c0, mut c1) = MemoryChannel::pair();
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_seed([1; 16]);
        let mut s = e1.setup(&mut c1, &mut rng).unwrap();
        x1s.into_iter()
            .enumerate()
            .map(|(i, x1)| {
                let b = e1.offline(&mut c1, &mut s, &mut rng).unwrap();
                let kind = if i % 2 == 0 {
                    OutputKind::Label
                } else {
                    OutputKind::Logits
                };
                e1.online_with(&mut c1, b, x1, kind).unwrap().0
            })
            .collect::<Vec<_>>()
    });
    let mut rng0 = Prg::from_seed([0; 16]);
    let mut s = e0.setup(&mut c0, &mut rng0).unwrap();
    let len = q.input_shape().numel();
    let y0s: Vec<Vec<u64>> = shares
        .iter()
        .enumerate()
        .map(|(i, (seed, _))| {
            let b = e0.offline(&mut c0, &mut s, &mut rng0).unwrap();
            let kind = if i % 2 == 0 {
                OutputKind::Label
            } else {
                OutputKind::Logits
            };
            e0.online_with(&mut c0, b, share0_from_seed(*seed, len), kind)
                .unwrap()
                .0
        })
        .collect();
    let y1s = t.join().unwrap();
    for i in 0..n {
        let want = argmax_ring(&run_plain(&q, &ds.image_f32(i)).unwrap());
        let got = reconstruct(&y0s[i], &y1s[i]);
        if i % 2 == 0 {
            assert_eq!(got.len(), 1, "label only: one value");
            assert_eq!(got[0] as usize, want, "digit {i}");
        } else {
            assert_eq!(got.len(), 10);
            assert_eq!(argmax_ring(&got), want, "digit {i}");
        }
    }
}

#[test]
fn label_only_over_tcp() {
    let q = common::model("minionn");
    let ds = common::digits();
    let mut rng = Prg::from_seed([5; 16]);
    let cluster = LocalCluster::start(&q, 2, &mut rng).unwrap();
    for i in 0..3 {
        let x = ds.image_f32(i);
        let want = argmax_ring(&run_plain(&q, &x).unwrap());
        let a = cluster.query_label(&x).unwrap();
        assert_eq!(a.label, want);
        assert!(a.scores.is_empty(), "no scores leave the servers");
        let b = cluster.query(&x).unwrap();
        assert_eq!(b.label, want);
        assert_eq!(b.scores.len(), 10);
    }
}

/// A `[C, H, W]` output: the label circuit is a per-pixel argmax over the
/// channels, and a label-only query returns the mask alone (two-server
/// cluster over TCP).
#[test]
fn mask_only_answer_is_the_reference_per_pixel_argmax() {
    use blindfold_core::FracBits;
    let path = common::root().join("testdata/onnx/upsample_nearest_ts13.onnx");
    let q = blindfold_model::quant::quantize(
        &blindfold_model::load_onnx(&path).unwrap(),
        FracBits::DEFAULT,
    )
    .unwrap();
    let dims = q.output_shape().dims().to_vec();
    let (c, hw) = (dims[0], dims[1] * dims[2]);
    let mut rng = Prg::from_seed([4; 16]);
    let x: Vec<f32> = (0..q.input_shape().numel())
        .map(|_| (rng.gen_u64() >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    let y = run_plain(&q, &x).unwrap();
    let want: Vec<u32> = (0..hw)
        .map(|p| {
            let mut best = 0;
            for k in 1..c {
                if (y[k * hw + p] as i64) > (y[best * hw + p] as i64) {
                    best = k;
                }
            }
            best as u32
        })
        .collect();
    let cluster = LocalCluster::start(&q, 1, &mut rng).unwrap();
    let a = cluster.query_label(&x).unwrap();
    assert_eq!(a.mask.as_deref(), Some(&want[..]));
    assert!(a.scores.is_empty());
}
