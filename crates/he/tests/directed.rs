//! One direction of the preprocessing (one weight holder): only the querier
//! sends a public key and queries, only the holder answers, and `M + T` is the
//! product of the querier's mask with the holder's weights. Both parties on two
//! threads over an in-memory channel, fixed seeds.

use blindfold_core::{PartyId, Prg};
use blindfold_he::packing::{linear_reference, ConvTransposeGeom};
use blindfold_he::{
    preprocess_directed, protocol::plan_network, Directions, EncodedWeights, FcShape, HeParams,
    HeSession, LayerJob, LinearShape,
};
use blindfold_net::{Channel, MemoryChannel};
use std::thread;

#[test]
fn one_direction_gives_the_product_and_sends_only_its_messages() {
    let layers = vec![
        LinearShape::Fc(FcShape {
            inputs: 30,
            outputs: 7,
        }),
        LinearShape::Fc(FcShape {
            inputs: 100,
            outputs: 12,
        }),
        // A transposed convolution with stride 2 and output padding.
        LinearShape::ConvTranspose2d(ConvTransposeGeom {
            c_in: 3,
            h: 6,
            w: 5,
            c_out: 2,
            kh: 3,
            kw: 3,
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            output_padding: [1, 1],
        }),
    ];
    for querier in [PartyId::P0, PartyId::P1] {
        let dirs = Directions::only(querier);
        let (c0, c1) = MemoryChannel::pair();
        let party = |id: PartyId, mut ch: MemoryChannel, layers: Vec<LinearShape>| {
            move || {
                let params = HeParams::new().unwrap();
                let mut rng = Prg::from_seed([30 + id.index() as u8; 16]);
                let session =
                    HeSession::setup_directed(id, &mut ch, &params, dirs, &mut rng).unwrap();
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
                let jobs: Vec<LayerJob<'_>> = plans
                    .iter()
                    .zip(&enc)
                    .map(|(plan, e)| LayerJob {
                        plan,
                        weights: dirs.answers(id).then_some(e),
                    })
                    .collect();
                let out = preprocess_directed(id, &mut ch, &session, &jobs, &mut rng).unwrap();
                let sent = ch.stats().total().messages_sent;
                (out, w, sent)
            }
        };
        let h = thread::spawn(party(PartyId::P1, c1, layers.clone()));
        let (out0, w0, sent0) = party(PartyId::P0, c0, layers.clone())();
        let (out1, w1, sent1) = h.join().unwrap();
        let (q_out, a_out, a_w) = match querier {
            PartyId::P0 => (&out0, &out1, &w1),
            PartyId::P1 => (&out1, &out0, &w0),
        };
        for (l, shape) in layers.iter().enumerate() {
            let mask = q_out[l].0.mask.as_ref().expect("the querier has a mask");
            assert!(q_out[l].0.t.is_none(), "the querier answers nothing");
            assert!(a_out[l].0.mask.is_none(), "the holder queries nothing");
            let t = a_out[l].0.t.as_ref().expect("the holder has T");
            let want = linear_reference(shape, &mask.r, &a_w[l]).unwrap();
            let got: Vec<u64> = mask
                .m
                .iter()
                .zip(t)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
            assert_eq!(got, want, "querier {querier}, layer {l}");
        }
        // Querier: its public key and one query per layer; holder: one answer per layer.
        let (qs, hs) = match querier {
            PartyId::P0 => (sent0, sent1),
            PartyId::P1 => (sent1, sent0),
        };
        assert_eq!(qs, 1 + layers.len() as u64, "querier {querier}");
        assert_eq!(hs, layers.len() as u64, "holder, querier {querier}");
    }
}
