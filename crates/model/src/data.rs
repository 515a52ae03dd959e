//! Outside data: IDX datasets (the MNIST format), `.npy` arrays and PNG images.
//! Every decoder checks sizes before allocating and reports what is wrong.

use crate::ModelError;
use std::path::Path;

/// A decoding failure of a dataset or input file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not start like a file of `format`.
    #[error("not {format} file ({detail})")]
    BadMagic {
        format: &'static str,
        detail: &'static str,
    },
    /// A header (`what`) cut short: `expected` bytes needed, `got` present.
    #[error("truncated {what}: {expected} bytes needed, {got} present")]
    Truncated {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{format} element type {dtype} is not supported ({supported})")]
    UnsupportedDtype {
        format: &'static str,
        dtype: String,
        supported: &'static str,
    },
    #[error("{format} version {version} is not supported")]
    UnsupportedVersion { format: &'static str, version: u8 },
    #[error("IDX rank {rank} is not between 1 and 4")]
    Rank { rank: u8 },
    /// The header's dimensions need `expected` data bytes; the file has `got`.
    #[error("dimensions {dims:?} need {expected} data bytes, file has {got}")]
    DataLength {
        dims: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge { what: &'static str, limit: usize },
    /// A `.npy` header that does not parse (`reason` says where).
    #[error(".npy header: {reason}")]
    NpyHeader { reason: String },
    #[error("Fortran-order arrays are not supported")]
    FortranOrder,
    #[error("not a PNG image: {0}")]
    Png(#[source] png::DecodingError),
    #[error("PNG color type {0} is not supported")]
    PngColor(&'static str),
    /// A `PLTE` chunk that is not 1 to 256 RGB triples (the `png` crate
    /// indexes past such a palette).
    #[error("PNG palette of {len} bytes (a palette is 1 to 256 RGB entries)")]
    PngPalette { len: usize },
    #[error("PNG encoding: {0}")]
    PngEncode(#[source] png::EncodingError),
    #[error("{h}x{w} pixels do not fit the {len}-byte buffer")]
    PixelCount { h: usize, w: usize, len: usize },
    /// An input (`what`: an array, an image) whose shape is not the model's.
    #[error("{what} of shape {got:?} does not fit the model input {expected:?}")]
    ShapeMismatch {
        what: &'static str,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("expected [n, rows, cols] images, got {got:?}")]
    ImageRank { got: Vec<usize> },
    #[error("{labels:?} labels for {images} images")]
    LabelCount { labels: Vec<usize>, images: usize },
    /// A labels file that is neither `[n]` (one class per image) nor
    /// `[n, rows, cols]` (one class per pixel).
    #[error("labels of dimensions {got:?}: expected [n] (classes) or [n, rows, cols] (masks)")]
    LabelRank { got: Vec<usize> },
    /// A masks file (`[n, rows, cols]`) whose count is not the images'.
    #[error("{masks} masks for {images} images")]
    MaskCount { masks: usize, images: usize },
    /// Masks whose size is not the one asked for.
    #[error("masks of {got:?} pixels, {expected:?} expected")]
    MaskSize {
        expected: [usize; 2],
        got: [usize; 2],
    },
    /// An IDX image index past the end of the file.
    #[error("image index {index} is past the end of a file of {count} images")]
    ImageIndex { index: usize, count: usize },
    #[error("no {0} found")]
    Missing(&'static str),
}

/// A labelled image dataset: `n` images of `rows × cols` bytes, row-major,
/// with one class per image (`labels`, a classification set), one class per
/// pixel (`masks`, a segmentation set), or both.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub rows: usize,
    pub cols: usize,
    pub images: Vec<u8>,
    /// One class per image; empty in a set that has masks only.
    pub labels: Vec<u8>,
    /// One class per pixel of each image, in a segmentation set.
    pub masks: Option<Masks>,
}

/// Per-pixel classes of `n` images: `n` maps of `rows × cols` bytes,
/// row-major. Usually the images' size; a model whose output map is smaller
/// or larger than its input comes with masks of its output's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masks {
    pub rows: usize,
    pub cols: usize,
    pub classes: Vec<u8>,
}

impl Masks {
    /// Masks from `n` maps of `rows × cols` classes.
    pub fn new(rows: usize, cols: usize, classes: Vec<u8>) -> Result<Masks, DataError> {
        let per = rows.checked_mul(cols).filter(|&p| p > 0);
        match per {
            Some(p) if classes.len().is_multiple_of(p) => Ok(Masks {
                rows,
                cols,
                classes,
            }),
            _ => Err(DataError::PixelCount {
                h: rows,
                w: cols,
                len: classes.len(),
            }),
        }
    }
    /// Pixels per mask.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }
    /// Number of masks.
    pub fn len(&self) -> usize {
        self.classes.len().checked_div(self.pixels()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Mask `i`, row-major.
    pub fn mask(&self, i: usize) -> &[u8] {
        let n = self.pixels();
        &self.classes[i * n..(i + 1) * n]
    }
}

impl Dataset {
    /// A segmentation set: `images` (`n` images of `rows × cols` bytes) and one
    /// mask per image, no class labels.
    pub fn segmentation(
        rows: usize,
        cols: usize,
        images: Vec<u8>,
        masks: Masks,
    ) -> Result<Dataset, DataError> {
        let per = rows.checked_mul(cols).filter(|&p| p > 0);
        let n = match per {
            Some(p) if images.len().is_multiple_of(p) => images.len() / p,
            _ => {
                return Err(DataError::PixelCount {
                    h: rows,
                    w: cols,
                    len: images.len(),
                })
            }
        };
        if masks.len() != n {
            return Err(DataError::MaskCount {
                masks: masks.len(),
                images: n,
            });
        }
        Ok(Dataset {
            rows,
            cols,
            images,
            labels: Vec::new(),
            masks: Some(masks),
        })
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        match &self.masks {
            Some(m) if self.labels.is_empty() => m.len(),
            _ => self.labels.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether every item has a class label (a classification set).
    pub fn has_labels(&self) -> bool {
        self.masks.is_none() || !self.labels.is_empty()
    }
    /// Image `i` as floats in `[0, 1]`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }
    /// Image `i`'s bytes, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }
    /// Mask `i`, in a segmentation set.
    pub fn mask(&self, i: usize) -> Option<&[u8]> {
        self.masks.as_ref().map(|m| m.mask(i))
    }
}

/// Largest IDX payload accepted (the full MNIST training images are 47 MB).
const MAX_IDX_BYTES: usize = 1 << 30;

/// Parse an IDX file of unsigned bytes; returns its dimensions and data.
pub fn parse_idx_u8(bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            what: "IDX magic",
            expected: 4,
            got: bytes.len(),
        });
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::BadMagic {
            format: "an IDX",
            detail: "magic must start with two zero bytes",
        });
    }
    if bytes[2] != 0x08 {
        return Err(DataError::UnsupportedDtype {
            format: "IDX",
            dtype: format!("0x{:02x}", bytes[2]),
            supported: "unsigned byte, 0x08",
        });
    }
    let rank = bytes[3];
    if rank == 0 || rank > 4 {
        return Err(DataError::Rank { rank });
    }
    let rank = rank as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            what: "IDX header",
            expected: header,
            got: bytes.len(),
        });
    }
    let mut dims = Vec::with_capacity(rank);
    let mut total: usize = 1;
    for k in 0..rank {
        let b = &bytes[4 + 4 * k..8 + 4 * k];
        let d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        dims.push(d);
        total =
            total
                .checked_mul(d)
                .filter(|&t| t <= MAX_IDX_BYTES)
                .ok_or(DataError::TooLarge {
                    what: "IDX data size",
                    limit: MAX_IDX_BYTES,
                })?;
    }
    let body = &bytes[header..];
    if body.len() != total {
        return Err(DataError::DataLength {
            dims,
            expected: total,
            got: body.len(),
        });
    }
    Ok((dims, body.to_vec()))
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|error| ModelError::Io {
        path: path.into(),
        error,
    })
}

fn data_err(path: &Path, error: DataError) -> ModelError {
    ModelError::Data {
        path: path.into(),
        error,
    }
}

/// Which of a dataset's two files an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Images,
    Labels,
}

/// A dataset from the contents of an image IDX file and a labels IDX file:
/// `[n]` labels are one class per image, `[n, rows, cols]` labels (magic
/// 0x00000803) are masks, one class per pixel.
pub fn parse_idx_dataset(images: &[u8], labels: &[u8]) -> Result<Dataset, DataError> {
    let (idims, idata) = parse_idx_u8(images)?;
    let (ldims, ldata) = parse_idx_u8(labels)?;
    assemble(idims, idata, ldims, ldata).map_err(|(_, e)| e)
}

fn assemble(
    idims: Vec<usize>,
    idata: Vec<u8>,
    ldims: Vec<usize>,
    ldata: Vec<u8>,
) -> Result<Dataset, (Side, DataError)> {
    if idims.len() != 3 {
        return Err((Side::Images, DataError::ImageRank { got: idims }));
    }
    let n = idims[0];
    match ldims.as_slice() {
        [count] if *count == n => Ok(Dataset {
            rows: idims[1],
            cols: idims[2],
            images: idata,
            labels: ldata,
            masks: None,
        }),
        [_] => Err((
            Side::Labels,
            DataError::LabelCount {
                labels: ldims,
                images: n,
            },
        )),
        [count, rows, cols] => {
            if *count != n {
                return Err((
                    Side::Labels,
                    DataError::MaskCount {
                        masks: *count,
                        images: n,
                    },
                ));
            }
            if n > 0 && (*rows == 0 || *cols == 0) {
                return Err((
                    Side::Labels,
                    DataError::PixelCount {
                        h: *rows,
                        w: *cols,
                        len: ldata.len(),
                    },
                ));
            }
            Ok(Dataset {
                rows: idims[1],
                cols: idims[2],
                images: idata,
                labels: Vec::new(),
                masks: Some(Masks {
                    rows: *rows,
                    cols: *cols,
                    classes: ldata,
                }),
            })
        }
        _ => Err((Side::Labels, DataError::LabelRank { got: ldims })),
    }
}

/// Load an image IDX file and its label IDX file: `[n]` labels (one class per
/// image) or `[n, rows, cols]` masks (one class per pixel; magic 0x00000803,
/// like the images).
pub fn load_idx_dataset(images: &Path, labels: &Path) -> Result<Dataset, ModelError> {
    let (idims, idata) = parse_idx_u8(&read(images)?).map_err(|e| data_err(images, e))?;
    let (ldims, ldata) = parse_idx_u8(&read(labels)?).map_err(|e| data_err(labels, e))?;
    assemble(idims, idata, ldims, ldata).map_err(|(side, e)| match side {
        Side::Images => data_err(images, e),
        Side::Labels => data_err(labels, e),
    })
}

/// The masks file beside `images.idx3-ubyte` in a segmentation set.
pub const MASKS_FILE: &str = "masks.idx3-ubyte";

/// Load a dataset from a directory holding `images.idx3-ubyte` and
/// `labels.idx1-ubyte` (one class per image), `masks.idx3-ubyte` (one class
/// per pixel), or both (also accepted: the `*-images-idx3-ubyte` /
/// `*-labels-idx1-ubyte` names of the original distributions, test split first).
pub fn load_idx_dir(dir: &Path) -> Result<Dataset, ModelError> {
    let simple = (dir.join("images.idx3-ubyte"), dir.join("labels.idx1-ubyte"));
    if simple.0.exists() {
        let masks = dir.join(MASKS_FILE);
        return match (simple.1.exists(), masks.exists()) {
            (true, false) => load_idx_dataset(&simple.0, &simple.1),
            (false, true) => load_idx_dataset(&simple.0, &masks),
            (true, true) => {
                let mut ds = load_idx_dataset(&simple.0, &simple.1)?;
                let with_masks = load_idx_dataset(&simple.0, &masks)?;
                if with_masks.masks.is_none() {
                    return Err(data_err(
                        &masks,
                        DataError::LabelRank {
                            got: vec![with_masks.labels.len()],
                        },
                    ));
                }
                ds.masks = with_masks.masks;
                Ok(ds)
            }
            (false, false) => Err(data_err(
                dir,
                DataError::Missing(
                    "labels.idx1-ubyte or masks.idx3-ubyte beside images.idx3-ubyte",
                ),
            )),
        };
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
        DataError::Missing("images.idx3-ubyte / labels.idx1-ubyte"),
    ))
}

/// Image `index` of an IDX image file (`[n, rows, cols]` bytes) as floats in
/// `[0, 1]`, for a model whose input is `[1, rows, cols]`.
pub fn load_idx_image(
    path: &Path,
    index: usize,
    input_shape: &[usize],
) -> Result<Vec<f32>, ModelError> {
    let (dims, body) = parse_idx_u8(&read(path)?).map_err(|e| data_err(path, e))?;
    idx_image(&dims, &body, index, input_shape).map_err(|e| data_err(path, e))
}

fn idx_image(
    dims: &[usize],
    body: &[u8],
    index: usize,
    input_shape: &[usize],
) -> Result<Vec<f32>, DataError> {
    let [count, rows, cols] = *dims else {
        return Err(DataError::ImageRank { got: dims.to_vec() });
    };
    if index >= count {
        return Err(DataError::ImageIndex { index, count });
    }
    if input_shape != [1, rows, cols] {
        return Err(DataError::ShapeMismatch {
            what: "an IDX image",
            expected: input_shape.to_vec(),
            got: vec![1, rows, cols],
        });
    }
    let n = rows * cols;
    Ok(body[index * n..(index + 1) * n]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect())
}

/// Whether `bytes` start like an IDX file of unsigned bytes of rank 3.
pub fn is_idx_images(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0, 0, 0x08, 0x03])
}

/// Largest `.npy` array accepted (elements).
const MAX_NPY_ELEMS: usize = 1 << 28;

/// Parse a `.npy` file holding float32 (or float64) values in C order.
/// Returns the shape and the values.
pub fn parse_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(DataError::BadMagic {
            format: "a .npy",
            detail: "bad magic",
        });
    }
    let major = bytes[6];
    let (hlen, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(DataError::Truncated {
                    what: ".npy header",
                    expected: 12,
                    got: bytes.len(),
                });
            }
            let b = &bytes[8..12];
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        version => {
            return Err(DataError::UnsupportedVersion {
                format: ".npy",
                version,
            })
        }
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or(DataError::Truncated {
            what: ".npy header",
            expected: start.saturating_add(hlen),
            got: bytes.len(),
        })?;
    let bad = |reason: &str| DataError::NpyHeader {
        reason: reason.into(),
    };
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| bad("missing descr"))?;
    let width = if descr.starts_with("'<f4'") || descr.starts_with("'float32'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(DataError::UnsupportedDtype {
            format: ".npy",
            dtype: descr.split(',').next().unwrap_or("").to_string(),
            supported: "little-endian float32/float64",
        });
    };
    let fortran = field("fortran_order").ok_or_else(|| bad("missing fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(DataError::FortranOrder);
    }
    let shape_s = field("shape").ok_or_else(|| bad("missing shape"))?;
    let open = shape_s.find('(').ok_or_else(|| bad("bad shape"))?;
    let close = shape_s.find(')').ok_or_else(|| bad("bad shape"))?;
    if close < open {
        return Err(bad("bad shape"));
    }
    let mut shape = Vec::new();
    for part in shape_s[open + 1..close].split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        shape.push(
            p.parse::<usize>()
                .map_err(|_| bad(&format!("bad dimension '{p}'")))?,
        );
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_NPY_ELEMS)
        .ok_or(DataError::TooLarge {
            what: ".npy array (elements)",
            limit: MAX_NPY_ELEMS,
        })?;
    let body = &bytes[end..];
    if body.len() != n * width {
        return Err(DataError::DataLength {
            dims: shape,
            expected: n * width,
            got: body.len(),
        });
    }
    let vals = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
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

/// Largest PNG accepted (pixels).
const MAX_PNG_PIXELS: usize = 1 << 24;

/// Decode a grayscale (or RGB, averaged) 8-bit PNG to floats in `[0, 1]`.
/// Returns `(height, width, pixels)`.
pub fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), DataError> {
    check_png_palette(bytes)?;
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(DataError::Png)?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w.checked_mul(h).is_none_or(|n| n > MAX_PNG_PIXELS) {
        return Err(DataError::TooLarge {
            what: "PNG image (pixels)",
            limit: MAX_PNG_PIXELS,
        });
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(DataError::Png)?;
    let ch = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(DataError::PngColor("indexed (not expanded)")),
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

/// Refuse a `PLTE` chunk whose length is not a multiple of 3 in 3..=768 before
/// the `png` crate sees it: its palette expansion (0.17) slices past the end of
/// such a palette and panics (found by fuzzing, `fuzz/corpus/png/regress-*`).
/// Only the chunk lengths are read; anything else malformed is the decoder's.
fn check_png_palette(bytes: &[u8]) -> Result<(), DataError> {
    let mut at = 8; // the signature
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"PLTE" if !len.is_multiple_of(3) || !(3..=768).contains(&len) => {
                return Err(DataError::PngPalette { len })
            }
            b"IDAT" | b"IEND" => return Ok(()),
            _ => {}
        }
        // Length, type, data, CRC.
        at = match at.checked_add(12).and_then(|a| a.checked_add(len)) {
            Some(next) => next,
            None => return Ok(()),
        };
    }
    Ok(())
}

/// Encode 8-bit grayscale pixels as a PNG.
pub fn encode_png(h: usize, w: usize, pixels: &[u8]) -> Result<Vec<u8>, DataError> {
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(DataError::PixelCount {
            h,
            w,
            len: pixels.len(),
        });
    };
    if h.checked_mul(w) != Some(pixels.len()) {
        return Err(DataError::PixelCount {
            h,
            w,
            len: pixels.len(),
        });
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w32, h32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(DataError::PngEncode)?;
        wr.write_image_data(pixels).map_err(DataError::PngEncode)?;
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
        let (h, w, px) = decode_png(&bytes).map_err(|e| data_err(path, e))?;
        if input_shape.len() != 3
            || input_shape[0] != 1
            || input_shape[1] != h
            || input_shape[2] != w
        {
            return Err(data_err(
                path,
                DataError::ShapeMismatch {
                    what: "a grayscale image",
                    expected: input_shape.to_vec(),
                    got: vec![1, h, w],
                },
            ));
        }
        return Ok(px);
    }
    let (shape, vals) = parse_npy(&bytes).map_err(|e| data_err(path, e))?;
    let stripped: &[usize] = match shape.as_slice() {
        [1, rest @ ..] if rest == input_shape => rest,
        s => s,
    };
    if stripped != input_shape && !(shape.len() == 1 && shape[0] == want) {
        return Err(data_err(
            path,
            DataError::ShapeMismatch {
                what: "an array",
                expected: input_shape.to_vec(),
                got: shape,
            },
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
        assert!(matches!(
            parse_idx_u8(&[]),
            Err(DataError::Truncated {
                expected: 4,
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            parse_idx_u8(&[1, 0, 8, 1]),
            Err(DataError::BadMagic { .. })
        ));
        assert!(matches!(
            parse_idx_u8(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0]),
            Err(DataError::UnsupportedDtype { .. })
        ));
        assert!(matches!(
            parse_idx_u8(&[0, 0, 8, 9]),
            Err(DataError::Rank { rank: 9 })
        ));
        assert!(matches!(
            parse_idx_u8(&[0, 0, 8, 2, 0, 0]),
            Err(DataError::Truncated {
                expected: 12,
                got: 6,
                ..
            })
        ));
        assert!(matches!(
            parse_idx_u8(&idx(&[2, 2, 2], &[1, 2, 3])),
            Err(DataError::DataLength {
                expected: 8,
                got: 3,
                ..
            })
        ));
        // A lying header must not cause a huge allocation.
        assert!(matches!(
            parse_idx_u8(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])),
            Err(DataError::TooLarge { .. })
        ));
        // Messages still say what is wrong.
        let e = parse_idx_u8(&idx(&[2, 2, 2], &[1, 2, 3])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dimensions [2, 2, 2] need 8 data bytes, file has 3"
        );
    }

    /// `bytes` with the first `from` replaced by `to`.
    fn patch(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let i = bytes.windows(from.len()).position(|w| w == from).unwrap();
        [&bytes[..i], to, &bytes[i + from.len()..]].concat()
    }

    #[test]
    fn npy_roundtrip_and_malformed() {
        let bytes = write_npy(&[1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let (s, v) = parse_npy(&bytes).unwrap();
        assert_eq!(s, vec![1, 2, 3]);
        assert_eq!(v[5], 6.5);
        assert!(matches!(
            parse_npy(b"hello"),
            Err(DataError::BadMagic { .. })
        ));
        assert!(matches!(
            parse_npy(&bytes[..bytes.len() - 1]),
            Err(DataError::DataLength {
                expected: 24,
                got: 23,
                ..
            })
        ));
        let mut bad = bytes.clone();
        let i = bad.windows(3).position(|w| w == b"<f4").unwrap();
        bad[i + 1] = b'i';
        assert!(matches!(
            parse_npy(&bad),
            Err(DataError::UnsupportedDtype { .. })
        ));
        let mut short = bytes[..9].to_vec();
        short.push(0);
        assert!(matches!(
            parse_npy(&short),
            Err(DataError::Truncated { .. })
        ));
        let mut v9 = bytes.clone();
        v9[6] = 9;
        assert!(matches!(
            parse_npy(&v9),
            Err(DataError::UnsupportedVersion { version: 9, .. })
        ));
        let fortran = patch(&bytes, b"False", b"True ");
        assert!(matches!(parse_npy(&fortran), Err(DataError::FortranOrder)));
        let huge = patch(&bytes, b"(1, 2, 3)", b"(99999999999)");
        assert!(matches!(parse_npy(&huge), Err(DataError::TooLarge { .. })));
        let weird = patch(&bytes, b"(1, 2, 3)", b")1, 2, 3(");
        assert!(matches!(
            parse_npy(&weird),
            Err(DataError::NpyHeader { .. })
        ));
    }

    #[test]
    fn png_roundtrip_and_garbage() {
        let px: Vec<u8> = (0..28 * 28).map(|i| (i % 256) as u8).collect();
        let bytes = encode_png(28, 28, &px).unwrap();
        let (h, w, v) = decode_png(&bytes).unwrap();
        assert_eq!((h, w), (28, 28));
        assert_eq!(v[255], 1.0);
        assert!(matches!(
            decode_png(&bytes[..bytes.len() / 2]),
            Err(DataError::Png(_))
        ));
        assert!(matches!(
            decode_png(b"\x89PNG garbage"),
            Err(DataError::Png(_))
        ));
        assert!(matches!(
            encode_png(28, 27, &px),
            Err(DataError::PixelCount { .. })
        ));
    }

    /// Found by fuzzing (`fuzz/corpus/png/regress-palette-*`): an indexed
    /// image whose palette is 2 bytes long made the `png` crate panic.
    #[test]
    fn png_palette_that_is_not_rgb_triples() {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
            bytes.extend_from_slice(kind);
            bytes.extend_from_slice(data);
            bytes.extend_from_slice(&[0; 4]); // CRC, not reached
        };
        // 3x1 pixels, 8-bit indexed.
        chunk(b"IHDR", &[0, 0, 0, 3, 0, 0, 0, 1, 8, 3, 0, 0, 0]);
        chunk(b"PLTE", &[0, 0]);
        chunk(b"IEND", &[]);
        assert!(matches!(
            decode_png(&bytes),
            Err(DataError::PngPalette { len: 2 })
        ));
        // The input the fuzzer found, with valid CRCs.
        let found = [
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
            0x44, 0x52, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x08, 0x03, 0x00, 0x00,
            0x00, 0x2c, 0x3e, 0xe4, 0x86, 0x00, 0x00, 0x00, 0x02, 0x50, 0x4c, 0x54, 0x45, 0x00,
            0x00, 0x12, 0x71, 0xcb, 0xc2, 0x00, 0x00, 0x00, 0x0f, 0x49, 0x44, 0x41, 0x54, 0x78,
            0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0x00, 0x00, 0x01, 0x04, 0xad, 0xa5, 0x4e, 0x4e,
            0xb4, 0xb7, 0x7e, 0x00, 0x49, 0xdb, 0x87, 0x00, 0x00, 0x20, 0xee, 0x82,
        ];
        assert!(matches!(
            decode_png(&found),
            Err(DataError::PngPalette { len: 2 })
        ));
    }

    #[test]
    fn inputs_of_the_wrong_shape() {
        let dir = std::env::temp_dir().join(format!("blindfold-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let npy = dir.join("x.npy");
        std::fs::write(&npy, write_npy(&[1, 2, 3], &[0.0; 6])).unwrap();
        assert_eq!(load_input(&npy, &[2, 3]).unwrap().len(), 6);
        match load_input(&npy, &[3, 2]) {
            Err(ModelError::Data {
                error: DataError::ShapeMismatch { expected, got, .. },
                ..
            }) => assert_eq!((expected, got), (vec![3, 2], vec![1, 2, 3])),
            other => panic!("{other:?}"),
        }
        let png = dir.join("x.png");
        std::fs::write(&png, encode_png(2, 3, &[0; 6]).unwrap()).unwrap();
        assert!(load_input(&png, &[1, 2, 3]).is_ok());
        assert!(matches!(
            load_input(&png, &[1, 3, 2]),
            Err(ModelError::Data {
                error: DataError::ShapeMismatch { .. },
                ..
            })
        ));
        assert!(matches!(
            load_idx_dir(&dir),
            Err(ModelError::Data {
                error: DataError::Missing(_),
                ..
            })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn masks_beside_images() {
        // Two 2x3 images, masks of the same size.
        let images = idx(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let masks = idx(&[2, 2, 3], &[0, 0, 1, 1, 2, 0, 3, 3, 3, 0, 0, 0]);
        let ds = parse_idx_dataset(&images, &masks).unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.labels.is_empty() && !ds.has_labels());
        assert_eq!(ds.mask(1), Some(&[3u8, 3, 3, 0, 0, 0][..]));
        assert_eq!(ds.image(1), &[6, 7, 8, 9, 10, 11]);
        // Masks of another size than the images (a model with a smaller or
        // larger output map): the count is what must match.
        let big = idx(&[2, 4, 6], &[1; 48]);
        let ds = parse_idx_dataset(&images, &big).unwrap();
        let m = ds.masks.as_ref().unwrap();
        assert_eq!((m.rows, m.cols, m.len()), (4, 6, 2));
        // The class-label path is unchanged.
        let labels = idx(&[2], &[7, 1]);
        let ds = parse_idx_dataset(&images, &labels).unwrap();
        assert_eq!(
            (ds.len(), ds.labels.clone(), ds.masks.is_none()),
            (2, vec![7, 1], true)
        );
        assert!(ds.has_labels());
    }

    #[test]
    fn malformed_masks() {
        let images = idx(&[2, 2, 3], &[0; 12]);
        // Three masks for two images.
        assert!(matches!(
            parse_idx_dataset(&images, &idx(&[3, 2, 3], &[0; 18])),
            Err(DataError::MaskCount {
                masks: 3,
                images: 2
            })
        ));
        // Three labels for two images.
        assert!(matches!(
            parse_idx_dataset(&images, &idx(&[3], &[0; 3])),
            Err(DataError::LabelCount { .. })
        ));
        // Rank 2 or 4: neither labels nor masks.
        for dims in [&[2u32, 6][..], &[2, 1, 2, 3]] {
            let n: u32 = dims.iter().product();
            assert!(matches!(
                parse_idx_dataset(&images, &idx(dims, &vec![0; n as usize])),
                Err(DataError::LabelRank { .. })
            ));
        }
        // Zero-sized masks of a non-empty set.
        assert!(matches!(
            parse_idx_dataset(&images, &idx(&[2, 0, 3], &[])),
            Err(DataError::PixelCount { .. })
        ));
        // A truncated masks file: the header's dimensions need more bytes.
        let masks = idx(&[2, 2, 3], &[0; 12]);
        assert!(matches!(
            parse_idx_dataset(&images, &masks[..masks.len() - 1]),
            Err(DataError::DataLength {
                expected: 12,
                got: 11,
                ..
            })
        ));
        assert!(matches!(
            parse_idx_dataset(&images, &masks[..10]),
            Err(DataError::Truncated { .. })
        ));
        // Images that are not [n, rows, cols].
        assert!(matches!(
            parse_idx_dataset(&idx(&[12], &[0; 12]), &masks),
            Err(DataError::ImageRank { .. })
        ));
        // The constructors check sizes too.
        assert!(Masks::new(2, 3, vec![0; 7]).is_err());
        assert!(Masks::new(0, 3, vec![]).is_err());
        let m = Masks::new(2, 3, vec![0; 12]).unwrap();
        assert!(matches!(
            Dataset::segmentation(2, 3, vec![0; 18], m.clone()),
            Err(DataError::MaskCount {
                masks: 2,
                images: 3
            })
        ));
        assert!(Dataset::segmentation(2, 3, vec![0; 13], m.clone()).is_err());
        assert_eq!(
            Dataset::segmentation(2, 3, vec![0; 12], m).unwrap().len(),
            2
        );
    }

    #[test]
    fn dataset_directories_with_masks() {
        let dir = std::env::temp_dir().join(format!("blindfold-masks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = dir.join("images.idx3-ubyte");
        std::fs::write(&images, idx(&[2, 2, 2], &[0; 8])).unwrap();
        // Images alone: says what is missing.
        match load_idx_dir(&dir) {
            Err(ModelError::Data {
                error: DataError::Missing(what),
                ..
            }) => assert!(what.contains(MASKS_FILE), "{what}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.join(MASKS_FILE), idx(&[2, 2, 2], &[1; 8])).unwrap();
        let ds = load_idx_dir(&dir).unwrap();
        assert_eq!((ds.len(), ds.mask(0).unwrap()), (2, &[1u8; 4][..]));
        // Labels and masks both: both kept.
        std::fs::write(dir.join("labels.idx1-ubyte"), idx(&[2], &[4, 5])).unwrap();
        let ds = load_idx_dir(&dir).unwrap();
        assert_eq!((ds.labels.clone(), ds.masks.is_some()), (vec![4, 5], true));
        // Masks of the wrong count name the masks file.
        std::fs::write(dir.join(MASKS_FILE), idx(&[3, 2, 2], &[1; 12])).unwrap();
        match load_idx_dir(&dir) {
            Err(ModelError::Data { path, error }) => {
                assert!(path.ends_with(MASKS_FILE), "{path:?}");
                assert!(matches!(error, DataError::MaskCount { .. }));
            }
            other => panic!("{other:?}"),
        }
        // One image of an IDX image file.
        std::fs::write(&images, idx(&[2, 2, 2], &[0, 0, 0, 0, 255, 0, 0, 255])).unwrap();
        assert_eq!(
            load_idx_image(&images, 1, &[1, 2, 2]).unwrap(),
            vec![1.0, 0.0, 0.0, 1.0]
        );
        assert!(matches!(
            load_idx_image(&images, 2, &[1, 2, 2]),
            Err(ModelError::Data {
                error: DataError::ImageIndex { index: 2, count: 2 },
                ..
            })
        ));
        assert!(matches!(
            load_idx_image(&images, 0, &[1, 3, 3]),
            Err(ModelError::Data {
                error: DataError::ShapeMismatch { .. },
                ..
            })
        ));
        assert!(matches!(
            load_idx_image(&dir.join("labels.idx1-ubyte"), 0, &[1, 2, 2]),
            Err(ModelError::Data {
                error: DataError::ImageRank { .. },
                ..
            })
        ));
        assert!(is_idx_images(&std::fs::read(&images).unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
