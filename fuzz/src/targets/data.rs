//! Dataset and input files: IDX, `.npy`, PNG (`blindfold_model::data`).

use blindfold_model::data::{decode_png, encode_png, parse_idx_u8, parse_npy, write_npy};

/// `parse_idx_u8`. IDX has one encoding per value (the header is fixed by the
/// dimensions, the body must fill it exactly), so a file that parses is
/// rebuilt byte for byte from its dimensions and data.
pub fn idx(data: &[u8]) {
    let Ok((dims, body)) = parse_idx_u8(data) else {
        return;
    };
    let mut again = vec![0, 0, 0x08, dims.len() as u8];
    for &d in &dims {
        let d = u32::try_from(d).expect("an IDX dimension is a u32");
        again.extend_from_slice(&d.to_be_bytes());
    }
    again.extend_from_slice(&body);
    assert_eq!(again, data, "IDX re-encoding differs");
}

/// `parse_npy`. The header's spelling is free (spaces, key order, version), so
/// the property is on values: writing what was read and reading it again gives
/// the same shape and the same float32 bits.
pub fn npy(data: &[u8]) {
    let Ok((shape, vals)) = parse_npy(data) else {
        return;
    };
    let n: usize = shape.iter().product();
    assert_eq!(n, vals.len(), "element count of shape {shape:?}");
    let written = write_npy(&shape, &vals);
    let (shape2, vals2) = parse_npy(&written).expect("parse_npy(write_npy(..))");
    assert_eq!(shape2, shape);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&vals2), bits(&vals));
}

/// `decode_png`. PNG has many encodings of one image, and the decoder averages
/// colour channels into floats, so the property is: the decoded image, written
/// back as 8-bit grayscale, decodes to the same size and to those 8-bit values.
pub fn png(data: &[u8]) {
    let Ok((h, w, px)) = decode_png(data) else {
        return;
    };
    assert_eq!(h.checked_mul(w), Some(px.len()), "{h}x{w} image");
    assert!(
        px.iter().all(|v| (0.0..=1.0).contains(v)),
        "pixel outside [0, 1]"
    );
    let bytes: Vec<u8> = px.iter().map(|v| (v * 255.0).round() as u8).collect();
    let Ok(png) = encode_png(h, w, &bytes) else {
        // A zero-sized image decodes (the png crate reads it) but cannot be
        // written; nothing to compare.
        assert!(h == 0 || w == 0, "encode_png refused a {h}x{w} image");
        return;
    };
    let (h2, w2, px2) = decode_png(&png).expect("decode_png(encode_png(..))");
    assert_eq!((h2, w2), (h, w));
    let want: Vec<f32> = bytes.iter().map(|&b| b as f32 / 255.0).collect();
    assert_eq!(px2, want);
}
