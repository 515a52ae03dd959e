//! The model kernels and the homomorphic packing read one geometry type
//! (`blindfold_core::geom::ConvGeom`) the same way, and the shared types keep the
//! share-file encoding they had as plain fields.

use bincode::Options;
use blindfold_core::{ConvGeom, FracBits, PartyId};
use blindfold_he::packing::linear_reference;
use blindfold_he::LinearShape;
use blindfold_model::kernels::conv2d;
use serde::Serialize;

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 11
}

#[test]
fn model_kernel_and_he_reference_agree_on_one_geometry() {
    let mut st = 7u64;
    let mut tried = 0;
    while tried < 300 {
        let mut pick = |n: u64| (lcg(&mut st) % n) as usize;
        let g = ConvGeom {
            c_in: 1 + pick(3),
            h: 1 + pick(8),
            w: 1 + pick(8),
            c_out: 1 + pick(3),
            kh: 1 + pick(4),
            kw: 1 + pick(4),
            stride: [1 + pick(3), 1 + pick(3)],
            pads: [pick(3), pick(3), pick(3), pick(3)],
        };
        if g.validate().is_err() {
            continue;
        }
        tried += 1;
        let x: Vec<u64> = (0..g.input_len()).map(|_| lcg(&mut st)).collect();
        let w: Vec<u64> = (0..g.weight_len()).map(|_| lcg(&mut st)).collect();
        let shape = LinearShape::Conv2d(g);
        let he = linear_reference(&shape, &x, &w).expect("valid geometry");
        assert_eq!(he, conv2d(&g, &x, &w), "{g:?}");
        assert_eq!(he.len(), g.out_len());
    }
}

/// The same for transposed convolutions: the model kernel and the packing's
/// reference (and, through `LayerPlan`, the packed product) agree wherever the
/// packing accepts the geometry.
#[test]
fn model_kernel_and_he_reference_agree_on_transposed_geometries() {
    use blindfold_core::geom::ConvTransposeGeom;
    use blindfold_model::kernels::conv_transpose2d;
    let mut st = 11u64;
    let mut tried = 0;
    while tried < 300 {
        let mut pick = |n: u64| (lcg(&mut st) % n) as usize;
        let stride = [1 + pick(3), 1 + pick(3)];
        let g = ConvTransposeGeom {
            c_in: 1 + pick(3),
            h: 1 + pick(6),
            w: 1 + pick(6),
            c_out: 1 + pick(3),
            kh: 1 + pick(4),
            kw: 1 + pick(4),
            stride,
            pads: [pick(3), pick(3), pick(3), pick(3)],
            output_padding: [pick(stride[0] as u64), pick(stride[1] as u64)],
        };
        if g.validate().is_err() {
            continue;
        }
        let x: Vec<u64> = (0..g.input_len()).map(|_| lcg(&mut st)).collect();
        let w: Vec<u64> = (0..g.weight_len()).map(|_| lcg(&mut st)).collect();
        let shape = LinearShape::ConvTranspose2d(g);
        let Ok(he) = linear_reference(&shape, &x, &w) else {
            continue; // a pad the packing refuses (the planner says so)
        };
        tried += 1;
        assert_eq!(he, conv_transpose2d(&g, &x, &w), "{g:?}");
        assert_eq!(he.len(), g.out_len());
    }
}

/// `ConvGeom` as share files have encoded it since version 1.
#[derive(Serialize)]
struct ConvGeomV1 {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pads: [usize; 4],
}

#[test]
fn shared_types_keep_the_share_file_encoding() {
    let g = ConvGeom {
        c_in: 3,
        h: 32,
        w: 31,
        c_out: 16,
        kh: 5,
        kw: 3,
        stride: [2, 1],
        pads: [1, 2, 3, 4],
    };
    let old = ConvGeomV1 {
        c_in: 3,
        h: 32,
        w: 31,
        c_out: 16,
        kh: 5,
        kw: 3,
        stride: [2, 1],
        pads: [1, 2, 3, 4],
    };
    assert_eq!(enc(&g), enc(&old));
    assert_eq!(enc(&FracBits(12)), enc(&12u32));
    assert_eq!(enc(&PartyId::P1), enc(&1u8));
    let back: PartyId = opts().deserialize(&enc(&0u8)).expect("party 0");
    assert_eq!(back, PartyId::P0);
    assert!(opts().deserialize::<PartyId>(&enc(&2u8)).is_err());
}

fn opts() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding()
}

/// Encode with the share-file options.
fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    opts().serialize(v).expect("in-memory serialization")
}
