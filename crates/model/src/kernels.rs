//! Layer kernels written once over a [`Scalar`] and used by the float engine
//! (`f64`), the fixed-point reference (`u64`, wrapping) and the secure engines
//! (which apply the linear kernels to ring shares).
//!
//! The geometry types live in `blindfold_core::geom` (the homomorphic packing and
//! the engine use the same ones) and are re-exported here.

pub use blindfold_core::geom::{ConvGeom, ConvTransposeGeom, PoolGeom};

/// The arithmetic a kernel needs.
pub trait Scalar: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Maximum in the signed view.
    fn max(self, o: Self) -> Self;
}

impl Scalar for f64 {
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn mul(self, o: f64) -> f64 {
        self * o
    }
    fn max(self, o: f64) -> f64 {
        if o > self {
            o
        } else {
            self
        }
    }
}

impl Scalar for u64 {
    fn add(self, o: u64) -> u64 {
        self.wrapping_add(o)
    }
    fn mul(self, o: u64) -> u64 {
        self.wrapping_mul(o)
    }
    fn max(self, o: u64) -> u64 {
        if (o as i64) > (self as i64) {
            o
        } else {
            self
        }
    }
}

/// `out[co, oy, ox] = sum w[co, ci, ky, kx] * x[ci, oy*s+ky-pt, ox*s+kx-pl]`
/// (weights `[c_out, c_in, kh, kw]`, zero padding, no bias).
pub fn conv2d<T: Scalar>(g: &ConvGeom, x: &[T], weight: &[T]) -> Vec<T> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![T::default(); g.c_out * oh * ow];
    for co in 0..g.c_out {
        let o_plane = &mut out[co * oh * ow..(co + 1) * oh * ow];
        for ci in 0..g.c_in {
            let x_plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let wv = weight[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx];
                    for oy in 0..oh {
                        let iy = (oy * g.stride[0] + ky) as isize - g.pads[0] as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let row = &x_plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        for ox in 0..ow {
                            let ix = (ox * g.stride[1] + kx) as isize - g.pads[1] as isize;
                            if ix < 0 || ix >= g.w as isize {
                                continue;
                            }
                            let o = &mut o_plane[oy * ow + ox];
                            *o = o.add(wv.mul(row[ix as usize]));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Transposed convolution (no bias).
pub fn conv_transpose2d<T: Scalar>(g: &ConvTransposeGeom, x: &[T], weight: &[T]) -> Vec<T> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![T::default(); g.c_out * oh * ow];
    for ci in 0..g.c_in {
        for iy in 0..g.h {
            for ix in 0..g.w {
                let v = x[(ci * g.h + iy) * g.w + ix];
                for co in 0..g.c_out {
                    for ky in 0..g.kh {
                        let oy = (iy * g.stride[0] + ky) as isize - g.pads[0] as isize;
                        if oy < 0 || oy >= oh as isize {
                            continue;
                        }
                        for kx in 0..g.kw {
                            let ox = (ix * g.stride[1] + kx) as isize - g.pads[1] as isize;
                            if ox < 0 || ox >= ow as isize {
                                continue;
                            }
                            let wv = weight[((ci * g.c_out + co) * g.kh + ky) * g.kw + kx];
                            let o = &mut out[(co * oh + oy as usize) * ow + ox as usize];
                            *o = o.add(wv.mul(v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// `y = W x` with `W` `[outputs, inputs]`.
pub fn dense<T: Scalar>(inputs: usize, outputs: usize, x: &[T], weight: &[T]) -> Vec<T> {
    (0..outputs)
        .map(|o| {
            weight[o * inputs..(o + 1) * inputs]
                .iter()
                .zip(x)
                .fold(T::default(), |acc, (&w, &v)| acc.add(w.mul(v)))
        })
        .collect()
}

/// Per-channel scale (no shift): `y[c, ..] = s[c] * x[c, ..]`.
pub fn channel_scale<T: Scalar>(x: &[T], scale: &[T]) -> Vec<T> {
    let per = x.len() / scale.len().max(1);
    x.iter()
        .enumerate()
        .map(|(i, &v)| scale[i / per].mul(v))
        .collect()
}

/// Add `bias[c]` to every element of channel `c`.
pub fn add_channel_bias<T: Scalar>(y: &mut [T], bias: &[T]) {
    let per = y.len() / bias.len().max(1);
    for (i, v) in y.iter_mut().enumerate() {
        *v = v.add(bias[i / per]);
    }
}

/// Sum over each window (zero padding).
pub fn sum_pool<T: Scalar>(g: &PoolGeom, x: &[T]) -> Vec<T> {
    g.windows()
        .iter()
        .map(|win| win.iter().fold(T::default(), |a, &i| a.add(x[i])))
        .collect()
}

/// Maximum over each window (padding never wins).
pub fn max_pool<T: Scalar>(g: &PoolGeom, x: &[T]) -> Vec<T> {
    g.windows()
        .iter()
        .map(|win| {
            let mut it = win.iter();
            let first = it.next().map(|&i| x[i]).unwrap_or_default();
            it.fold(first, |a, &i| a.max(x[i]))
        })
        .collect()
}

/// Nearest-neighbour upsampling by integer factors.
pub fn resize_nearest<T: Scalar>(
    c: usize,
    h: usize,
    w: usize,
    scale: [usize; 2],
    x: &[T],
) -> Vec<T> {
    let (oh, ow) = (h * scale[0], w * scale[1]);
    let mut out = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                out.push(x[(ch * h + oy / scale[0]) * w + ox / scale[1]]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_conv(g: &ConvGeom, x: &[i64], w: &[i64]) -> Vec<i64> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut out = vec![0i64; g.c_out * oh * ow];
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0i64;
                    for ci in 0..g.c_in {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky) as i64 - g.pads[0] as i64;
                                let ix = (ox * g.stride[1] + kx) as i64 - g.pads[1] as i64;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    acc += w[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx]
                                        * x[(ci * g.h + iy as usize) * g.w + ix as usize];
                                }
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = acc;
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn ring_conv_matches_integer_conv(
            c_in in 1usize..3, c_out in 1usize..3, h in 3usize..8, w in 3usize..8,
            kh in 1usize..4, kw in 1usize..4, s in 1usize..3, p in 0usize..2, seed in any::<u64>()
        ) {
            let g = ConvGeom { c_in, h, w, c_out, kh, kw, stride: [s, s], pads: [p, p, p, p] };
            let mut st = seed;
            let mut next = || { st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((st >> 33) as i64 % 201) - 100 };
            let x: Vec<i64> = (0..c_in * h * w).map(|_| next()).collect();
            let wt: Vec<i64> = (0..c_out * c_in * kh * kw).map(|_| next()).collect();
            let want = naive_conv(&g, &x, &wt);
            let xr: Vec<u64> = x.iter().map(|&v| v as u64).collect();
            let wr: Vec<u64> = wt.iter().map(|&v| v as u64).collect();
            let got: Vec<i64> = conv2d(&g, &xr, &wr).iter().map(|&v| v as i64).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn conv_transpose_is_adjoint_of_conv() {
        // <conv(x), y> == <x, conv_transpose(y)> for the same weights.
        let g = ConvGeom {
            c_in: 2,
            h: 5,
            w: 5,
            c_out: 3,
            kh: 3,
            kw: 3,
            stride: [2, 2],
            pads: [1, 1, 1, 1],
        };
        let t = ConvTransposeGeom {
            c_in: 3,
            h: g.out_h(),
            w: g.out_w(),
            c_out: 2,
            kh: 3,
            kw: 3,
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            output_padding: [0, 0],
        };
        assert_eq!((t.out_h(), t.out_w()), (5, 5));
        let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..g.out_len()).map(|i| (i as f64 * 0.91).cos()).collect();
        let w: Vec<f64> = (0..54).map(|i| (i as f64 * 1.3).sin()).collect();
        // conv weight [co=3, ci=2] vs transpose weight [ci=3, co=2]: same array.
        let lhs: f64 = conv2d(&g, &x, &w).iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = conv_transpose2d(&t, &y, &w)
            .iter()
            .zip(&x)
            .map(|(a, b)| a * b)
            .sum();
        assert!((lhs - rhs).abs() < 1e-9);
    }

    /// Shape inference uses the checked core arithmetic: an empty input to a
    /// transposed convolution is an error, not an underflow.
    #[test]
    fn shape_inference_rejects_empty_transpose_input() {
        use crate::ir::{infer_shape, ConvTranspose, Op};
        use blindfold_core::Shape;
        let op = Op::ConvTranspose(ConvTranspose {
            weight: vec![0.0; 4],
            c_in: 1,
            c_out: 1,
            kh: 2,
            kw: 2,
            bias: vec![0.0],
            stride: [1, 1],
            pads: [0; 4],
            output_padding: [0, 0],
        });
        let empty = Shape::new([1, 0, 3]);
        assert!(infer_shape(&op, &[&empty], &empty).is_err());
        let ok = Shape::new([1, 2, 3]);
        assert_eq!(
            infer_shape(&op, &[&ok], &ok).unwrap(),
            Shape::new([1, 3, 4])
        );
    }

    #[test]
    fn pools_skip_padding() {
        let g = PoolGeom {
            c: 1,
            h: 2,
            w: 2,
            kernel: [2, 2],
            stride: [1, 1],
            pads: [1, 1, 0, 0],
        };
        let x = [
            (-5i64) as u64,
            (-6i64) as u64,
            (-7i64) as u64,
            (-8i64) as u64,
        ];
        let m: Vec<i64> = max_pool(&g, &x).iter().map(|&v| v as i64).collect();
        assert_eq!(m, vec![-5, -5, -5, -5]);
        let s: Vec<i64> = sum_pool(&g, &x).iter().map(|&v| v as i64).collect();
        assert_eq!(s, vec![-5, -11, -12, -26]);
    }
}
