//! Geometry of convolutions, transposed convolutions and pooling windows on
//! `[C, H, W]` tensors (no batch dimension), shared by the model IR and kernels,
//! the homomorphic packing and the two-party engine.
//!
//! Conventions: weights are OIHW (`[c_out, c_in, kh, kw]`) for a convolution and
//! `[c_in, c_out, kh, kw]` for a transposed one; `stride` is `[rows, columns]`;
//! `pads` is `[top, left, bottom, right]` (ONNX order), padding is zeros (or never
//! wins, for max-pool).
//!
//! The output-size arithmetic is checked: [`window_count`] and [`transpose_len`]
//! return `None` instead of overflowing or underflowing, and the `out_*` methods of
//! the geometry types return 0 for a geometry their `validate` rejects, so a
//! geometry read from a file never panics an operator. Validate geometries from
//! files or peers once (`validate`) and use the infallible methods afterwards.
//!
//! The serialized layout (serde, field order) is the one share files have always
//! used for `ConvGeom` and `ConvTransposeGeom`.

use serde::{Deserialize, Serialize};

/// Why a geometry is not meaningful.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GeomError {
    /// A size, kernel dimension or stride is zero.
    #[error("zero {what} in {geom}")]
    Zero { what: &'static str, geom: String },
    /// The window does not fit the padded input (or pads remove the whole output
    /// of a transposed convolution).
    #[error("no output: window {kernel:?} on input {input:?} with pads {pads:?} in {geom}")]
    NoOutput {
        kernel: [usize; 2],
        input: [usize; 2],
        pads: [usize; 4],
        geom: String,
    },
    /// A pooling pad is not smaller than the window (a window could lie entirely
    /// in the padding).
    #[error("padding {pads:?} not smaller than the window {kernel:?}")]
    PadNotSmallerThanWindow {
        kernel: [usize; 2],
        pads: [usize; 4],
    },
    /// A size or an element count does not fit in `usize`.
    #[error("size overflow in {0}")]
    Overflow(String),
}

/// Number of window positions along one axis: `(len + pad_lo + pad_hi - kernel) /
/// stride + 1`.
///
/// `None` when `kernel` or `stride` is zero, when the kernel is larger than the
/// padded axis, or when the padded length overflows.
pub fn window_count(
    len: usize,
    kernel: usize,
    stride: usize,
    pad_lo: usize,
    pad_hi: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    let padded = len.checked_add(pad_lo)?.checked_add(pad_hi)?;
    Some(padded.checked_sub(kernel)? / stride + 1)
}

/// Output length along one axis of a transposed convolution: `(len - 1) * stride +
/// kernel + output_padding - pad_lo - pad_hi`.
///
/// `None` when `len`, `kernel` or `stride` is zero, when an intermediate overflows,
/// or when the pads leave no output.
pub fn transpose_len(
    len: usize,
    kernel: usize,
    stride: usize,
    pad_lo: usize,
    pad_hi: usize,
    output_padding: usize,
) -> Option<usize> {
    if len == 0 || kernel == 0 || stride == 0 {
        return None;
    }
    let full = (len - 1)
        .checked_mul(stride)?
        .checked_add(kernel)?
        .checked_add(output_padding)?;
    full.checked_sub(pad_lo.checked_add(pad_hi)?)
        .filter(|&v| v > 0)
}

/// Product of sizes, `None` on overflow.
fn checked_prod(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// Geometry of a 2-D convolution (no bias): input `[c_in, h, w]`, weights
/// `[c_out, c_in, kh, kw]`, output `[c_out, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvGeom {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    /// `[rows, columns]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl ConvGeom {
    /// Square input and kernel, equal strides and padding on all sides.
    pub fn square(
        c_in: usize,
        hw: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> ConvGeom {
        ConvGeom {
            c_in,
            h: hw,
            w: hw,
            c_out,
            kh: k,
            kw: k,
            stride: [stride, stride],
            pads: [pad; 4],
        }
    }

    /// Padded input height (saturating; exact for a validated geometry).
    pub fn padded_h(&self) -> usize {
        self.h
            .saturating_add(self.pads[0])
            .saturating_add(self.pads[2])
    }

    /// Padded input width (saturating; exact for a validated geometry).
    pub fn padded_w(&self) -> usize {
        self.w
            .saturating_add(self.pads[1])
            .saturating_add(self.pads[3])
    }

    /// Output height, or `None` if the geometry has no output.
    pub fn checked_out_h(&self) -> Option<usize> {
        window_count(self.h, self.kh, self.stride[0], self.pads[0], self.pads[2])
    }

    /// Output width, or `None` if the geometry has no output.
    pub fn checked_out_w(&self) -> Option<usize> {
        window_count(self.w, self.kw, self.stride[1], self.pads[1], self.pads[3])
    }

    /// Output height (0 for a geometry [`ConvGeom::validate`] rejects).
    pub fn out_h(&self) -> usize {
        self.checked_out_h().unwrap_or(0)
    }

    /// Output width (0 for a geometry [`ConvGeom::validate`] rejects).
    pub fn out_w(&self) -> usize {
        self.checked_out_w().unwrap_or(0)
    }

    /// Elements of the input (saturating).
    pub fn input_len(&self) -> usize {
        checked_prod(&[self.c_in, self.h, self.w]).unwrap_or(usize::MAX)
    }

    /// Elements of the weights (saturating).
    pub fn weight_len(&self) -> usize {
        checked_prod(&[self.c_out, self.c_in, self.kh, self.kw]).unwrap_or(usize::MAX)
    }

    /// Elements of the output (saturating).
    pub fn out_len(&self) -> usize {
        checked_prod(&[self.c_out, self.out_h(), self.out_w()]).unwrap_or(usize::MAX)
    }

    /// Check that the geometry is meaningful: no zero size, kernel or stride, the
    /// kernel fits the padded input, and every element count fits in `usize`.
    pub fn validate(&self) -> Result<(), GeomError> {
        let zero = |what| {
            Err(GeomError::Zero {
                what,
                geom: format!("{self:?}"),
            })
        };
        if self.c_in == 0 || self.c_out == 0 || self.h == 0 || self.w == 0 {
            return zero("size");
        }
        if self.kh == 0 || self.kw == 0 {
            return zero("kernel dimension");
        }
        if self.stride.contains(&0) {
            return zero("stride");
        }
        let overflow = || GeomError::Overflow(format!("{self:?}"));
        self.h
            .checked_add(self.pads[0])
            .and_then(|v| v.checked_add(self.pads[2]))
            .ok_or_else(overflow)?;
        self.w
            .checked_add(self.pads[1])
            .and_then(|v| v.checked_add(self.pads[3]))
            .ok_or_else(overflow)?;
        let (oh, ow) = match (self.checked_out_h(), self.checked_out_w()) {
            (Some(oh), Some(ow)) => (oh, ow),
            _ => {
                return Err(GeomError::NoOutput {
                    kernel: [self.kh, self.kw],
                    input: [self.h, self.w],
                    pads: self.pads,
                    geom: format!("{self:?}"),
                })
            }
        };
        checked_prod(&[self.c_in, self.h, self.w]).ok_or_else(overflow)?;
        checked_prod(&[self.c_out, self.c_in, self.kh, self.kw]).ok_or_else(overflow)?;
        checked_prod(&[self.c_out, oh, ow]).ok_or_else(overflow)?;
        Ok(())
    }
}

/// Geometry of a 2-D transposed convolution (no bias): input `[c_in, h, w]`,
/// weights `[c_in, c_out, kh, kw]`, output `[c_out, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvTransposeGeom {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    /// `[rows, columns]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`, removed from the full output.
    pub pads: [usize; 4],
    /// Extra rows and columns at the bottom and right of the output.
    pub output_padding: [usize; 2],
}

impl ConvTransposeGeom {
    /// Output height, or `None` if the geometry has no output.
    pub fn checked_out_h(&self) -> Option<usize> {
        transpose_len(
            self.h,
            self.kh,
            self.stride[0],
            self.pads[0],
            self.pads[2],
            self.output_padding[0],
        )
    }

    /// Output width, or `None` if the geometry has no output.
    pub fn checked_out_w(&self) -> Option<usize> {
        transpose_len(
            self.w,
            self.kw,
            self.stride[1],
            self.pads[1],
            self.pads[3],
            self.output_padding[1],
        )
    }

    /// Output height (0 for a geometry [`ConvTransposeGeom::validate`] rejects).
    pub fn out_h(&self) -> usize {
        self.checked_out_h().unwrap_or(0)
    }

    /// Output width (0 for a geometry [`ConvTransposeGeom::validate`] rejects).
    pub fn out_w(&self) -> usize {
        self.checked_out_w().unwrap_or(0)
    }

    /// Elements of the input (saturating).
    pub fn input_len(&self) -> usize {
        checked_prod(&[self.c_in, self.h, self.w]).unwrap_or(usize::MAX)
    }

    /// Elements of the weights (saturating).
    pub fn weight_len(&self) -> usize {
        checked_prod(&[self.c_in, self.c_out, self.kh, self.kw]).unwrap_or(usize::MAX)
    }

    /// Elements of the output (saturating).
    pub fn out_len(&self) -> usize {
        checked_prod(&[self.c_out, self.out_h(), self.out_w()]).unwrap_or(usize::MAX)
    }

    /// Check that the geometry is meaningful: no zero size, kernel or stride, some
    /// output left after the pads, and every element count fits in `usize`.
    pub fn validate(&self) -> Result<(), GeomError> {
        let zero = |what| {
            Err(GeomError::Zero {
                what,
                geom: format!("{self:?}"),
            })
        };
        if self.c_in == 0 || self.c_out == 0 || self.h == 0 || self.w == 0 {
            return zero("size");
        }
        if self.kh == 0 || self.kw == 0 {
            return zero("kernel dimension");
        }
        if self.stride.contains(&0) {
            return zero("stride");
        }
        let overflow = || GeomError::Overflow(format!("{self:?}"));
        let (oh, ow) = match (self.checked_out_h(), self.checked_out_w()) {
            (Some(oh), Some(ow)) => (oh, ow),
            _ => {
                return Err(GeomError::NoOutput {
                    kernel: [self.kh, self.kw],
                    input: [self.h, self.w],
                    pads: self.pads,
                    geom: format!("{self:?}"),
                })
            }
        };
        checked_prod(&[self.c_in, self.h, self.w]).ok_or_else(overflow)?;
        checked_prod(&[self.c_in, self.c_out, self.kh, self.kw]).ok_or_else(overflow)?;
        checked_prod(&[self.c_out, oh, ow]).ok_or_else(overflow)?;
        Ok(())
    }
}

/// Pooling geometry on a `[c, h, w]` input; the output is `[c, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// `[rows, columns]`.
    pub kernel: [usize; 2],
    /// `[rows, columns]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl PoolGeom {
    /// Output height, or `None` if the geometry has no output.
    pub fn checked_out_h(&self) -> Option<usize> {
        window_count(
            self.h,
            self.kernel[0],
            self.stride[0],
            self.pads[0],
            self.pads[2],
        )
    }

    /// Output width, or `None` if the geometry has no output.
    pub fn checked_out_w(&self) -> Option<usize> {
        window_count(
            self.w,
            self.kernel[1],
            self.stride[1],
            self.pads[1],
            self.pads[3],
        )
    }

    /// Output height (0 for a geometry [`PoolGeom::validate`] rejects).
    pub fn out_h(&self) -> usize {
        self.checked_out_h().unwrap_or(0)
    }

    /// Output width (0 for a geometry [`PoolGeom::validate`] rejects).
    pub fn out_w(&self) -> usize {
        self.checked_out_w().unwrap_or(0)
    }

    /// Elements of the output (saturating).
    pub fn out_len(&self) -> usize {
        checked_prod(&[self.c, self.out_h(), self.out_w()]).unwrap_or(usize::MAX)
    }

    /// Check that the geometry is meaningful: no zero size, window or stride, the
    /// window fits the padded input, every pad is smaller than the window (so no
    /// window is empty: [`PoolGeom::windows`] never yields an empty list), and
    /// every element count fits in `usize`.
    pub fn validate(&self) -> Result<(), GeomError> {
        let zero = |what| {
            Err(GeomError::Zero {
                what,
                geom: format!("{self:?}"),
            })
        };
        if self.c == 0 || self.h == 0 || self.w == 0 {
            return zero("size");
        }
        if self.kernel.contains(&0) {
            return zero("window dimension");
        }
        if self.stride.contains(&0) {
            return zero("stride");
        }
        if self.pads[0] >= self.kernel[0]
            || self.pads[2] >= self.kernel[0]
            || self.pads[1] >= self.kernel[1]
            || self.pads[3] >= self.kernel[1]
        {
            return Err(GeomError::PadNotSmallerThanWindow {
                kernel: self.kernel,
                pads: self.pads,
            });
        }
        let (oh, ow) = match (self.checked_out_h(), self.checked_out_w()) {
            (Some(oh), Some(ow)) => (oh, ow),
            _ => {
                return Err(GeomError::NoOutput {
                    kernel: self.kernel,
                    input: [self.h, self.w],
                    pads: self.pads,
                    geom: format!("{self:?}"),
                })
            }
        };
        let overflow = || GeomError::Overflow(format!("{self:?}"));
        checked_prod(&[self.c, self.h, self.w]).ok_or_else(overflow)?;
        checked_prod(&[self.c, oh, ow]).ok_or_else(overflow)?;
        Ok(())
    }

    /// For each output element (row-major over `[c, out_h, out_w]`), the input
    /// indices inside its window (padding positions omitted). The secure engines
    /// use this to gather max-pool inputs.
    pub fn windows(&self) -> Vec<Vec<usize>> {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut res = Vec::with_capacity(self.out_len());
        for c in 0..self.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut win = Vec::with_capacity(self.kernel[0] * self.kernel[1]);
                    for ky in 0..self.kernel[0] {
                        let iy = (oy * self.stride[0] + ky) as isize - self.pads[0] as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        for kx in 0..self.kernel[1] {
                            let ix = (ox * self.stride[1] + kx) as isize - self.pads[1] as isize;
                            if ix < 0 || ix >= self.w as isize {
                                continue;
                            }
                            win.push((c * self.h + iy as usize) * self.w + ix as usize);
                        }
                    }
                    res.push(win);
                }
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Window start positions along an axis, enumerated one by one: a window at
    /// padded offset `start` covers `start..start + kernel` of the padded axis.
    fn naive_window_count(len: usize, kernel: usize, stride: usize, lo: usize, hi: usize) -> usize {
        let padded = len + lo + hi;
        let mut count = 0;
        let mut start = 0;
        while start + kernel <= padded {
            count += 1;
            start += stride;
        }
        count
    }

    /// Output length of a transposed convolution by scattering every input
    /// position through every kernel tap and keeping the span inside the pads.
    fn naive_transpose_len(
        len: usize,
        kernel: usize,
        stride: usize,
        lo: usize,
        hi: usize,
        out_pad: usize,
    ) -> Option<usize> {
        let mut last = None;
        for i in 0..len {
            for k in 0..kernel {
                let full = i * stride + k;
                last = Some(last.map_or(full, |l: usize| l.max(full)));
            }
        }
        // The full output spans 0..=last plus the output padding; pads cut both ends.
        let full_len = last? + 1 + out_pad;
        full_len.checked_sub(lo + hi).filter(|&v| v > 0)
    }

    proptest! {
        #[test]
        fn window_count_matches_enumeration(
            len in 0usize..20, kernel in 1usize..7, stride in 1usize..5,
            lo in 0usize..4, hi in 0usize..4,
        ) {
            let naive = naive_window_count(len, kernel, stride, lo, hi);
            let got = window_count(len, kernel, stride, lo, hi);
            if kernel <= len + lo + hi {
                prop_assert_eq!(got, Some(naive));
            } else {
                prop_assert_eq!(naive, 0);
                prop_assert_eq!(got, None);
            }
        }

        #[test]
        fn transpose_len_matches_scatter(
            len in 0usize..12, kernel in 1usize..6, stride in 1usize..4,
            lo in 0usize..6, hi in 0usize..6, out_pad in 0usize..3,
        ) {
            prop_assert_eq!(
                transpose_len(len, kernel, stride, lo, hi, out_pad),
                naive_transpose_len(len, kernel, stride, lo, hi, out_pad)
            );
        }

        #[test]
        fn sizes_never_panic(
            a in any::<usize>(), b in any::<usize>(), c in any::<usize>(),
            d in any::<usize>(), e in any::<usize>(), f in any::<usize>(),
        ) {
            if let Some(n) = window_count(a, b, c, d, e) {
                let want = (a as u128 + d as u128 + e as u128 - b as u128) / c as u128 + 1;
                prop_assert_eq!(n as u128, want);
            }
            if let Some(n) = transpose_len(a, b, c, d, e, f) {
                let want = (a as u128 - 1) * c as u128 + b as u128 + f as u128
                    - d as u128 - e as u128;
                prop_assert_eq!(n as u128, want);
            }
            let g = ConvGeom { c_in: a, h: b, w: c, c_out: d, kh: e, kw: f, stride: [a, b], pads: [c, d, e, f] };
            if g.validate().is_ok() {
                prop_assert!(g.out_h() > 0 && g.out_w() > 0);
            }
            let _ = (g.out_len(), g.input_len(), g.weight_len(), g.padded_h());
            let t = ConvTransposeGeom { c_in: a, h: b, w: c, c_out: d, kh: e, kw: f, stride: [c, d], pads: [e, f, a, b], output_padding: [c, d] };
            let _ = (t.validate(), t.out_len());
            let p = PoolGeom { c: a, h: b, w: c, kernel: [d, e], stride: [f, a], pads: [b, c, d, e] };
            let _ = (p.validate(), p.out_len());
        }

        /// Every window `windows()` lists is the naive window clipped to the input,
        /// there is one per output element, and none is empty once validated.
        #[test]
        fn pool_windows_match_enumeration(
            c in 1usize..3, h in 1usize..8, w in 1usize..8, kh in 1usize..4, kw in 1usize..4,
            sh in 1usize..3, sw in 1usize..3, pt in 0usize..3, pl in 0usize..3, pb in 0usize..3, pr in 0usize..3,
        ) {
            let g = PoolGeom { c, h, w, kernel: [kh, kw], stride: [sh, sw], pads: [pt, pl, pb, pr] };
            let wins = g.windows();
            let (oh, ow) = (naive_window_count(h, kh, sh, pt, pb), naive_window_count(w, kw, sw, pl, pr));
            prop_assert_eq!((g.out_h(), g.out_w()), (oh, ow));
            prop_assert_eq!(wins.len(), c * oh * ow);
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut want = Vec::new();
                        for y in 0..h {
                            for x in 0..w {
                                let (py, px) = (y + pt, x + pl);
                                if py >= oy * sh && py < oy * sh + kh && px >= ox * sw && px < ox * sw + kw {
                                    want.push((ch * h + y) * w + x);
                                }
                            }
                        }
                        prop_assert_eq!(&wins[(ch * oh + oy) * ow + ox], &want);
                    }
                }
            }
            if g.validate().is_ok() {
                prop_assert!(wins.iter().all(|win| !win.is_empty()));
            }
        }

        #[test]
        fn conv_out_matches_enumeration(
            h in 1usize..10, w in 1usize..10, kh in 1usize..5, kw in 1usize..5,
            sh in 1usize..4, sw in 1usize..4, pt in 0usize..3, pl in 0usize..3, pb in 0usize..3, pr in 0usize..3,
        ) {
            let g = ConvGeom { c_in: 2, h, w, c_out: 3, kh, kw, stride: [sh, sw], pads: [pt, pl, pb, pr] };
            let (oh, ow) = (naive_window_count(h, kh, sh, pt, pb), naive_window_count(w, kw, sw, pl, pr));
            prop_assert_eq!((g.out_h(), g.out_w()), (oh, ow));
            prop_assert_eq!(g.validate().is_ok(), oh > 0 && ow > 0);
            prop_assert_eq!(g.out_len(), 3 * oh * ow);
        }
    }

    #[test]
    fn validate_rejects() {
        let ok = ConvGeom::square(1, 5, 2, 3, 1, 0);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!((ok.out_h(), ok.out_w(), ok.out_len()), (3, 3, 18));
        let big_kernel = ConvGeom { kh: 6, ..ok };
        assert!(matches!(
            big_kernel.validate(),
            Err(GeomError::NoOutput { .. })
        ));
        assert_eq!(big_kernel.out_h(), 0);
        assert!(matches!(
            ConvGeom {
                stride: [0, 1],
                ..ok
            }
            .validate(),
            Err(GeomError::Zero { .. })
        ));
        let huge = ConvGeom {
            pads: [usize::MAX, 0, 1, 0],
            ..ok
        };
        assert!(matches!(huge.validate(), Err(GeomError::Overflow(_))));
        let t = ConvTransposeGeom {
            c_in: 1,
            h: 2,
            w: 2,
            c_out: 1,
            kh: 1,
            kw: 1,
            stride: [1, 1],
            pads: [1, 0, 1, 0],
            output_padding: [0, 0],
        };
        assert!(matches!(t.validate(), Err(GeomError::NoOutput { .. })));
        assert_eq!(t.out_h(), 0);
        let p = PoolGeom {
            c: 1,
            h: 4,
            w: 4,
            kernel: [2, 2],
            stride: [2, 2],
            pads: [2, 0, 0, 0],
        };
        assert!(matches!(
            p.validate(),
            Err(GeomError::PadNotSmallerThanWindow { .. })
        ));
    }
}
