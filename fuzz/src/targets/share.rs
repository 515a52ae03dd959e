//! Share files (`blindfold_engine::share`).

use blindfold_engine::ModelShare;

/// `ModelShare::from_bytes`: magic, version, then fixed-width bincode, which
/// has one encoding per value (booleans, option and enum tags are checked,
/// trailing bytes refused). So a file that decodes is re-encoded byte for byte,
/// and that encoding decodes to the same share.
pub fn share_file(data: &[u8]) {
    let Ok(share) = ModelShare::from_bytes(data) else {
        return;
    };
    let bytes = share.to_bytes();
    assert_eq!(bytes, data, "share file re-encoding differs");
    let again = ModelShare::from_bytes(&bytes).expect("a re-encoded share decodes");
    // Compared as bytes: the program may hold NaN scales, which `==` refuses.
    assert_eq!(again.to_bytes(), bytes);
}
