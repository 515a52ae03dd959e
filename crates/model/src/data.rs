//! Outside data: IDX datasets (the MNIST format), `.npy` arrays and PNG images.
//! Every decoder checks sizes before allocating and reports what is wrong.

use crate::ModelError;
use std::path::Path;

/// A labelled image dataset: `n` images of `rows × cols` bytes, row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub rows: usize,
    pub cols: usize,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Image `i` as floats in `[0, 1]`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        let n = self.rows * self.cols;
        self.images[i * n..(i + 1) * n]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect()
    }
}

/// Largest IDX payload accepted (the full MNIST training images are 47 MB).
const MAX_IDX_BYTES: usize = 1 << 30;

/// Parse an IDX file of unsigned bytes; returns its dimensions and data.
pub fn parse_idx_u8(bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), String> {
    if bytes.len() < 4 {
        return Err("file shorter than the 4-byte IDX magic".into());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (magic must start with two zero bytes)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(format!("IDX rank {rank} is not between 1 and 4"));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err("truncated IDX header".into());
    }
    let mut dims = Vec::with_capacity(rank);
    let mut total: usize = 1;
    for k in 0..rank {
        let d =
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize;
        dims.push(d);
        total = total
            .checked_mul(d)
            .filter(|&t| t <= MAX_IDX_BYTES)
            .ok_or("IDX dimensions too large")?;
    }
    let body = &bytes[header..];
    if body.len() != total {
        return Err(format!(
            "IDX dimensions {dims:?} need {total} data bytes, file has {}",
            body.len()
        ));
    }
    Ok((dims, body.to_vec()))
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|error| ModelError::Io {
        path: path.into(),
        error,
    })
}

fn data_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Data {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Load an image IDX file and its label IDX file.
pub fn load_idx_dataset(images: &Path, labels: &Path) -> Result<Dataset, ModelError> {
    let (idims, idata) = parse_idx_u8(&read(images)?).map_err(|r| data_err(images, r))?;
    let (ldims, ldata) = parse_idx_u8(&read(labels)?).map_err(|r| data_err(labels, r))?;
    if idims.len() != 3 {
        return Err(data_err(
            images,
            format!("expected [n, rows, cols] images, got {idims:?}"),
        ));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(data_err(
            labels,
            format!("{ldims:?} labels for {} images", idims[0]),
        ));
    }
    Ok(Dataset {
        rows: idims[1],
        cols: idims[2],
        images: idata,
        labels: ldata,
    })
}

/// Load a dataset from a directory holding `images.idx3-ubyte` and
/// `labels.idx1-ubyte` (also accepted: the `*-images-idx3-ubyte` /
/// `*-labels-idx1-ubyte` names of the original distributions, test split first).
pub fn load_idx_dir(dir: &Path) -> Result<Dataset, ModelError> {
    let simple = (dir.join("images.idx3-ubyte"), dir.join("labels.idx1-ubyte"));
    if simple.0.exists() {
        return load_idx_dataset(&simple.0, &simple.1);
    }
    for prefix in ["t10k", "train"] {
        let i = dir.join(format!("{prefix}-images-idx3-ubyte"));
        let l = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        if i.exists() && l.exists() {
            return load_idx_dataset(&i, &l);
        }
    }
    Err(data_err(
        dir,
        "no images.idx3-ubyte / labels.idx1-ubyte found",
    ))
}

/// Parse a `.npy` file holding float32 (or float64) values in C order.
/// Returns the shape and the values.
pub fn parse_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (hlen, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
                12,
            )
        }
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| ".npy header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or("missing descr")?;
    let width = if descr.starts_with("'<f4'") || descr.starts_with("'float32'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(format!(
            "dtype {} is not little-endian float32/float64",
            descr.split(',').next().unwrap_or("")
        ));
    };
    let fortran = field("fortran_order").ok_or("missing fortran_order")?;
    if fortran.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_s = field("shape").ok_or("missing shape")?;
    let open = shape_s.find('(').ok_or("bad shape")?;
    let close = shape_s.find(')').ok_or("bad shape")?;
    let mut shape = Vec::new();
    for part in shape_s[open + 1..close].split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        shape.push(
            p.parse::<usize>()
                .map_err(|_| format!("bad dimension '{p}'"))?,
        );
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= 1 << 28)
        .ok_or("array too large")?;
    let body = &bytes[end..];
    if body.len() != n * width {
        return Err(format!(
            "shape {shape:?} needs {} data bytes, file has {}",
            n * width,
            body.len()
        ));
    }
    let vals = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok((shape, vals))
}

/// Serialize float32 values as a `.npy` file.
pub fn write_npy(shape: &[usize], vals: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in vals {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decode a grayscale (or RGB, averaged) 8-bit PNG to floats in `[0, 1]`.
/// Returns `(height, width, pixels)`.
pub fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("not a PNG image: {e}"))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w * h > 1 << 24 {
        return Err(format!("image of {w}x{h} pixels is too large"));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt PNG: {e}"))?;
    let ch = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("indexed PNG not expanded".into()),
    };
    let data = &buf[..info.buffer_size()];
    let px: Vec<f32> = data
        .chunks_exact(ch)
        .map(|p| {
            let c = if ch >= 3 {
                (p[0] as f32 + p[1] as f32 + p[2] as f32) / 3.0
            } else {
                p[0] as f32
            };
            c / 255.0
        })
        .collect();
    Ok((h, w, px))
}

/// Encode 8-bit grayscale pixels as a PNG.
pub fn encode_png(h: usize, w: usize, pixels: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Read a model input from a `.npy` (float32 of the model's input shape, with or
/// without a leading batch dimension of 1) or a PNG (for `[1, H, W]` inputs;
/// pixels scaled to `[0, 1]`).
pub fn load_input(path: &Path, input_shape: &[usize]) -> Result<Vec<f32>, ModelError> {
    let bytes = read(path)?;
    let want: usize = input_shape.iter().product();
    if bytes.starts_with(b"\x89PNG") {
        let (h, w, px) = decode_png(&bytes).map_err(|r| data_err(path, r))?;
        if input_shape.len() != 3
            || input_shape[0] != 1
            || input_shape[1] != h
            || input_shape[2] != w
        {
            return Err(data_err(
                path,
                format!("a {h}x{w} grayscale image does not fit the model input {input_shape:?}"),
            ));
        }
        return Ok(px);
    }
    let (shape, vals) = parse_npy(&bytes).map_err(|r| data_err(path, r))?;
    let stripped: &[usize] = match shape.as_slice() {
        [1, rest @ ..] if rest == input_shape => rest,
        s => s,
    };
    if stripped != input_shape && !(shape.len() == 1 && shape[0] == want) {
        return Err(data_err(
            path,
            format!("array of shape {shape:?} does not fit the model input {input_shape:?}"),
        ));
    }
    Ok(vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn idx_roundtrip_and_malformed() {
        let (d, b) = parse_idx_u8(&idx(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8])).unwrap();
        assert_eq!(d, vec![2, 2, 2]);
        assert_eq!(b.len(), 8);
        assert!(parse_idx_u8(&[]).unwrap_err().contains("shorter"));
        assert!(parse_idx_u8(&[1, 0, 8, 1]).unwrap_err().contains("magic"));
        assert!(parse_idx_u8(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0])
            .unwrap_err()
            .contains("type"));
        assert!(parse_idx_u8(&[0, 0, 8, 9]).unwrap_err().contains("rank"));
        assert!(parse_idx_u8(&[0, 0, 8, 2, 0, 0])
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_idx_u8(&idx(&[2, 2, 2], &[1, 2, 3]))
            .unwrap_err()
            .contains("need 8"));
        // A lying header must not cause a huge allocation.
        assert!(parse_idx_u8(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])).is_err());
    }

    #[test]
    fn npy_roundtrip_and_malformed() {
        let bytes = write_npy(&[1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let (s, v) = parse_npy(&bytes).unwrap();
        assert_eq!(s, vec![1, 2, 3]);
        assert_eq!(v[5], 6.5);
        assert!(parse_npy(b"hello").is_err());
        assert!(parse_npy(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("data bytes"));
        let mut bad = bytes.clone();
        let i = bad.windows(3).position(|w| w == b"<f4").unwrap();
        bad[i + 1] = b'i';
        assert!(parse_npy(&bad).unwrap_err().contains("dtype"));
        let mut short = bytes[..9].to_vec();
        short.push(0);
        assert!(parse_npy(&short).is_err());
    }

    #[test]
    fn png_roundtrip_and_garbage() {
        let px: Vec<u8> = (0..28 * 28).map(|i| (i % 256) as u8).collect();
        let bytes = encode_png(28, 28, &px).unwrap();
        let (h, w, v) = decode_png(&bytes).unwrap();
        assert_eq!((h, w), (28, 28));
        assert_eq!(v[255], 1.0);
        assert!(decode_png(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode_png(b"\x89PNG garbage").is_err());
    }
}
