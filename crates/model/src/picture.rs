//! Pictures for people: segmentation masks as coloured PNGs, grayscale
//! images, and side-by-side sheets (the input, then masks) with short
//! captions in a built-in bitmap font.
//!
//! Colours are fixed: class 0 (background) black, classes 1 to 10 ten
//! clearly distinct colours ([`PALETTE`]), larger classes cycle through them.
//! A mask alone is written as an indexed PNG whose palette is that table, so
//! its pixels map one to one to the model's output map.

use crate::data::DataError;

/// The colour of class 0 (background) and of classes 1 to 10.
pub const PALETTE: [[u8; 3]; 11] = [
    [0, 0, 0],       // 0 background: black
    [230, 25, 75],   // 1 red
    [60, 180, 75],   // 2 green
    [255, 225, 25],  // 3 yellow
    [0, 130, 200],   // 4 blue
    [245, 130, 48],  // 5 orange
    [145, 30, 180],  // 6 purple
    [70, 240, 240],  // 7 cyan
    [240, 50, 230],  // 8 magenta
    [210, 245, 60],  // 9 lime
    [250, 190, 212], // 10 pink
];

/// The [`PALETTE`] entry of `class`: 0 for background, classes from 1 cycle
/// through entries 1 to 10.
pub fn palette_index(class: u32) -> u8 {
    if class == 0 {
        0
    } else {
        1 + ((class - 1) % 10) as u8
    }
}

/// The colour of `class`.
pub fn class_colour(class: u32) -> [u8; 3] {
    PALETTE[palette_index(class) as usize]
}

fn check_size(h: usize, w: usize, len: usize) -> Result<(u32, u32), DataError> {
    let err = DataError::PixelCount { h, w, len };
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w32), Ok(h32)) if w > 0 && h > 0 && h.checked_mul(w) == Some(len) => Ok((w32, h32)),
        _ => Err(err),
    }
}

/// A mask (`rows × cols` classes, row-major) as an 8-bit indexed PNG with
/// the [`PALETTE`] colours.
pub fn encode_mask_png(rows: usize, cols: usize, mask: &[u32]) -> Result<Vec<u8>, DataError> {
    let (w32, h32) = check_size(rows, cols, mask.len())?;
    let idx: Vec<u8> = mask.iter().map(|&c| palette_index(c)).collect();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w32, h32);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(PALETTE.concat());
        let mut wr = enc.write_header().map_err(DataError::PngEncode)?;
        wr.write_image_data(&idx).map_err(DataError::PngEncode)?;
    }
    Ok(out)
}

/// Floats in `[0, 1]` (a model input) as 8-bit gray levels (clamped).
pub fn unit_to_gray(v: &[f32]) -> Vec<u8> {
    v.iter()
        .map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// An RGB picture, 8 bits per channel, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub rows: usize,
    pub cols: usize,
    /// `rows × cols × 3` bytes.
    pub rgb: Vec<u8>,
}

/// Background of a sheet.
pub const SHEET_BACKGROUND: [u8; 3] = [255, 255, 255];
/// Caption colour.
pub const CAPTION: [u8; 3] = [0, 0, 0];

impl Picture {
    /// A picture of one colour.
    pub fn filled(rows: usize, cols: usize, colour: [u8; 3]) -> Picture {
        Picture {
            rows,
            cols,
            rgb: colour.repeat(rows * cols),
        }
    }

    /// A grayscale image (`rows × cols` levels).
    pub fn gray(rows: usize, cols: usize, levels: &[u8]) -> Result<Picture, DataError> {
        check_size(rows, cols, levels.len())?;
        Ok(Picture {
            rows,
            cols,
            rgb: levels.iter().flat_map(|&g| [g, g, g]).collect(),
        })
    }

    /// A mask (`rows × cols` classes) in the [`PALETTE`] colours.
    pub fn mask(rows: usize, cols: usize, mask: &[u32]) -> Result<Picture, DataError> {
        check_size(rows, cols, mask.len())?;
        Ok(Picture {
            rows,
            cols,
            rgb: mask.iter().flat_map(|&c| class_colour(c)).collect(),
        })
    }

    /// The colour at row `r`, column `c`.
    pub fn pixel(&self, r: usize, c: usize) -> [u8; 3] {
        let i = 3 * (r * self.cols + c);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn set(&mut self, r: usize, c: usize, colour: [u8; 3]) {
        if r < self.rows && c < self.cols {
            let i = 3 * (r * self.cols + c);
            self.rgb[i..i + 3].copy_from_slice(&colour);
        }
    }

    /// Every pixel repeated `k × k` times (nearest neighbour; `k = 0` is 1).
    pub fn scaled(&self, k: usize) -> Picture {
        let k = k.max(1);
        let mut out = Picture::filled(self.rows * k, self.cols * k, [0; 3]);
        for r in 0..out.rows {
            for c in 0..out.cols {
                out.set(r, c, self.pixel(r / k, c / k));
            }
        }
        out
    }

    /// Copy `other` with its top-left corner at (`top`, `left`), clipped.
    pub fn blit(&mut self, other: &Picture, top: usize, left: usize) {
        for r in 0..other.rows {
            for c in 0..other.cols {
                self.set(top + r, left + c, other.pixel(r, c));
            }
        }
    }

    /// Draw `text` with its top-left corner at (`top`, `left`), each font
    /// pixel `scale × scale`, clipped. Letters are drawn upper case;
    /// characters the font lacks are drawn as `?`.
    pub fn text(&mut self, top: usize, left: usize, text: &str, scale: usize, colour: [u8; 3]) {
        let s = scale.max(1);
        for (i, ch) in text.chars().enumerate() {
            let g = glyph(ch);
            let x0 = left + i * (GLYPH_W + 1) * s;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                        for dy in 0..s {
                            for dx in 0..s {
                                self.set(top + row * s + dy, x0 + col * s + dx, colour);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The picture as an 8-bit RGB PNG.
    pub fn encode_png(&self) -> Result<Vec<u8>, DataError> {
        let (w32, h32) = check_size(self.rows, self.cols, self.rgb.len() / 3)?;
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w32, h32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().map_err(DataError::PngEncode)?;
            wr.write_image_data(&self.rgb)
                .map_err(DataError::PngEncode)?;
        }
        Ok(out)
    }
}

/// Width of a font glyph, in font pixels.
pub const GLYPH_W: usize = 5;
/// Height of a font glyph, in font pixels.
pub const GLYPH_H: usize = 7;

/// Width in pixels of `text` drawn at `scale` (one font pixel of space
/// between letters, none after the last).
pub fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    (n * (GLYPH_W + 1)).saturating_sub(1) * scale.max(1)
}

/// Panels side by side on a white sheet, each with an optional caption
/// under it: every panel is enlarged by `scale` and, if it is smaller than
/// the largest panel, by the largest whole factor that still fits that size
/// (an input of half the mask's size is drawn at the mask's size). Panels are
/// top-aligned and centred in their column, with a gap of `2 × scale`
/// pixels (at least 2) around each.
pub fn side_by_side(panels: &[(Picture, &str)], scale: usize) -> Picture {
    let scale = scale.max(1);
    let gap = (2 * scale).max(2);
    let max_r = panels.iter().map(|(p, _)| p.rows).max().unwrap_or(0);
    let max_c = panels.iter().map(|(p, _)| p.cols).max().unwrap_or(0);
    let fitted: Vec<Picture> = panels
        .iter()
        .map(|(p, _)| {
            let fit = (max_r / p.rows.max(1)).min(max_c / p.cols.max(1)).max(1);
            p.scaled(scale * fit)
        })
        .collect();
    let text_scale = scale.div_ceil(2);
    let captioned = panels.iter().any(|(_, t)| !t.is_empty());
    let caption_h = if captioned {
        gap + GLYPH_H * text_scale
    } else {
        0
    };
    let col_w: Vec<usize> = fitted
        .iter()
        .zip(panels)
        .map(|(p, (_, t))| p.cols.max(text_width(t, text_scale)))
        .collect();
    let panel_h = fitted.iter().map(|p| p.rows).max().unwrap_or(0);
    let width = col_w.iter().sum::<usize>() + gap * (panels.len() + 1);
    let height = gap + panel_h + caption_h + gap;
    let mut sheet = Picture::filled(height, width, SHEET_BACKGROUND);
    let mut left = gap;
    for ((p, (_, text)), w) in fitted.iter().zip(panels).zip(&col_w) {
        sheet.blit(p, gap, left + (w - p.cols) / 2);
        if !text.is_empty() {
            let tw = text_width(text, text_scale);
            sheet.text(
                gap + panel_h + gap,
                left + (w - tw) / 2,
                text,
                text_scale,
                CAPTION,
            );
        }
        left += w + gap;
    }
    sheet
}

fn glyph(ch: char) -> [u8; GLYPH_H] {
    let up = ch.to_ascii_uppercase();
    if up == ' ' {
        return [0; GLYPH_H];
    }
    FONT.iter()
        .find(|(c, _)| *c == up)
        .or_else(|| FONT.iter().find(|(c, _)| *c == '?'))
        .map(|(_, g)| *g)
        .unwrap_or([0; GLYPH_H])
}

/// A 5×7 font: upper-case letters, digits and a few signs; each row's five
/// low bits, the leftmost pixel the highest bit.
const FONT: &[(char, [u8; GLYPH_H])] = &[
    (
        'A',
        [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'B',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'C',
        [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
    ),
    (
        'D',
        [
            0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100,
        ],
    ),
    (
        'E',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'F',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'G',
        [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
    ),
    (
        'H',
        [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'I',
        [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        'J',
        [
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
    ),
    (
        'K',
        [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'L',
        [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'M',
        [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'N',
        [
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
    ),
    (
        'O',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'P',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'Q',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
    ),
    (
        'R',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'S',
        [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
    ),
    (
        'T',
        [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'U',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'V',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
    ),
    (
        'W',
        [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
    ),
    (
        'X',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
    ),
    (
        'Y',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'Z',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
    ),
    (
        '0',
        [
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
    ),
    (
        '1',
        [
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        '2',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
    ),
    (
        '3',
        [
            0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '4',
        [
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
    ),
    (
        '5',
        [
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '6',
        [
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '7',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
    ),
    (
        '8',
        [
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '9',
        [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
    ),
    (
        '.',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100,
        ],
    ),
    (
        ',',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000,
        ],
    ),
    (
        ':',
        [
            0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000,
        ],
    ),
    (
        '-',
        [
            0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000,
        ],
    ),
    (
        '+',
        [
            0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000,
        ],
    ),
    (
        '=',
        [
            0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000,
        ],
    ),
    (
        '/',
        [
            0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000,
        ],
    ),
    (
        '%',
        [
            0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011,
        ],
    ),
    (
        '(',
        [
            0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010,
        ],
    ),
    (
        ')',
        [
            0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000,
        ],
    ),
    (
        '_',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111,
        ],
    ),
    (
        '#',
        [
            0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010,
        ],
    ),
    (
        '?',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100,
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode_png;

    /// Decode a PNG with the `png` crate, palettes expanded: `(rows, cols,
    /// RGB bytes)`.
    fn decode_rgb(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
        dec.set_transformations(png::Transformations::EXPAND);
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.height as usize, info.width as usize, buf)
    }

    #[test]
    fn palette_is_distinct_and_cycles() {
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                let d: u32 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u32).sum();
                assert!(d >= 60, "{a:?} and {b:?} are too close");
            }
        }
        assert_eq!(class_colour(0), [0, 0, 0]);
        assert_eq!(class_colour(11), class_colour(1));
        assert_eq!(class_colour(20), class_colour(10));
        assert_eq!(palette_index(u32::MAX), 1 + ((u32::MAX - 1) % 10) as u8);
    }

    #[test]
    fn mask_png_round_trip() {
        let (rows, cols) = (3, 5);
        let mask: Vec<u32> = (0..15).map(|i| i % 13).collect();
        let bytes = encode_mask_png(rows, cols, &mask).unwrap();
        let (h, w, rgb) = decode_rgb(&bytes);
        assert_eq!((h, w), (rows, cols));
        for (i, &c) in mask.iter().enumerate() {
            assert_eq!(rgb[3 * i..3 * i + 3], class_colour(c), "pixel {i}");
        }
        // The project's decoder reads it too (as gray, the channel mean).
        let (h, w, px) = decode_png(&bytes).unwrap();
        assert_eq!((h, w), (rows, cols));
        let [r, g, b] = class_colour(mask[4]);
        let want = (r as f32 + g as f32 + b as f32) / 3.0 / 255.0;
        assert!((px[4] - want).abs() < 1e-6);
        // The RGB picture of the mask has the same pixels.
        let pic = Picture::mask(rows, cols, &mask).unwrap();
        assert_eq!(decode_rgb(&pic.encode_png().unwrap()).2, rgb);
        assert!(matches!(
            encode_mask_png(3, 4, &mask),
            Err(DataError::PixelCount { .. })
        ));
        assert!(encode_mask_png(0, 0, &[]).is_err());
    }

    #[test]
    fn gray_round_trip() {
        let levels: Vec<u8> = (0..=255).collect();
        let pic = Picture::gray(16, 16, &levels).unwrap();
        let (h, w, px) = decode_png(&pic.encode_png().unwrap()).unwrap();
        assert_eq!((h, w), (16, 16));
        for (p, &l) in px.iter().zip(&levels) {
            assert_eq!(*p, l as f32 / 255.0);
        }
        assert_eq!(
            unit_to_gray(&[-1.0, 0.0, 0.5, 1.0, 7.0]),
            vec![0, 0, 128, 255, 255]
        );
        assert!(Picture::gray(2, 2, &[0; 3]).is_err());
    }

    #[test]
    fn sheets_put_panels_side_by_side() {
        // A 2x2 gray input beside two 4x4 masks, scaled by 3: the input is
        // drawn at the masks' size.
        let input = Picture::gray(2, 2, &[0, 100, 200, 255]).unwrap();
        let a = Picture::mask(4, 4, &[1; 16]).unwrap();
        let b = Picture::mask(4, 4, &[2; 16]).unwrap();
        let sheet = side_by_side(&[(input, ""), (a, ""), (b, "")], 3);
        let gap = 6;
        assert_eq!(sheet.rows, gap + 12 + gap);
        assert_eq!(sheet.cols, gap + 3 * (12 + gap));
        assert_eq!(sheet.pixel(0, 0), SHEET_BACKGROUND);
        assert_eq!(sheet.pixel(gap, gap), [0; 3]);
        assert_eq!(sheet.pixel(gap + 11, gap + 11), [255; 3]);
        assert_eq!(sheet.pixel(gap + 5, gap + 6), [100; 3]);
        assert_eq!(sheet.pixel(gap, 2 * gap + 12), class_colour(1));
        assert_eq!(sheet.pixel(gap + 11, 3 * gap + 35), class_colour(2));
        // Written and read back, the pixels are the same.
        let (h, w, rgb) = decode_rgb(&sheet.encode_png().unwrap());
        assert_eq!((h, w, rgb), (sheet.rows, sheet.cols, sheet.rgb.clone()));

        // Captions go under the panels, in the caption colour.
        let m = Picture::mask(8, 8, &[3; 64]).unwrap();
        let sheet = side_by_side(&[(m.clone(), "input"), (m, "secure")], 4);
        let captions = sheet.rows - (8 + 8 * 4 + 8);
        assert_eq!(captions, 8 + GLYPH_H * 2);
        let dark = (8 + 32 + 8..sheet.rows)
            .flat_map(|r| (0..sheet.cols).map(move |c| (r, c)))
            .filter(|&(r, c)| sheet.pixel(r, c) == CAPTION)
            .count();
        assert!(dark > 50, "{dark} caption pixels");
        // A caption wider than its panel widens the column.
        let narrow = Picture::mask(1, 1, &[0]).unwrap();
        let s = side_by_side(&[(narrow, "secure")], 1);
        assert_eq!(s.cols, 2 + text_width("secure", 1) + 2);
    }

    #[test]
    fn font_covers_captions() {
        for ch in "input plain secure truth float dice 0.93 mask-12 (a/b) 50%:".chars() {
            let g = glyph(ch);
            if ch != ' ' {
                assert_ne!(g, glyph('?'), "{ch:?} is missing");
                assert!(g.iter().any(|&r| r != 0));
            }
            assert!(g.iter().all(|&r| r < 32));
        }
        assert_eq!(glyph('~'), glyph('?'));
        let mut letters: Vec<char> = FONT.iter().map(|(c, _)| *c).collect();
        letters.sort();
        letters.dedup();
        assert_eq!(letters.len(), FONT.len(), "a character listed twice");
        assert_eq!(text_width("ab", 2), 22);
        assert_eq!(text_width("", 2), 0);
    }
}
