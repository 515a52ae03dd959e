//! Segmentation outputs: a model whose output is a `[classes, rows, cols]`
//! map of scores (logits) gives one class per pixel, the per-pixel argmax over
//! the channel axis; masks are scored against the truth with the Dice
//! coefficient.
//!
//! Ties go to the first maximum (the lowest class index), in floating point
//! and in the ring alike: the secure argmax circuit decides the same way, so
//! the plaintext and secure masks of one ring output are equal.

use serde::Serialize;

/// A segmentation failure: the model, the masks or a prediction do not fit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The model's output is not a `[classes, rows, cols]` map with at least
    /// two classes.
    #[error(
        "the model's output {shape:?} is not a [classes, rows, cols] map with at least 2 classes"
    )]
    NotAMap { shape: Vec<usize> },
    /// Scores or masks of another length than the map's.
    #[error("{what} has {got} values, the {classes}x{rows}x{cols} map needs {expected}")]
    Length {
        what: &'static str,
        classes: usize,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    /// Masks whose size is not the model's output map's.
    #[error("the masks are {got:?} pixels, the model outputs {expected:?} maps")]
    MaskSize {
        expected: [usize; 2],
        got: [usize; 2],
    },
    /// A mask pixel whose class the model does not have.
    #[error("a mask pixel of class {class}, but the model has {classes} classes")]
    MaskClass { class: u32, classes: usize },
    /// A dataset without class labels for a model that does not segment.
    #[error("the dataset has per-pixel masks but no class labels, and the model's output {shape:?} is not a segmentation map")]
    NoLabels { shape: Vec<usize> },
}

/// The shape of a segmentation output: `classes` maps of `rows × cols`
/// scores, channel-major (`[C, H, W]`, row-major within a channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MapShape {
    pub classes: usize,
    pub rows: usize,
    pub cols: usize,
}

impl MapShape {
    /// The map shape of an output of dimensions `dims`: rank 3, at least two
    /// classes, no empty axis.
    pub fn of(dims: &[usize]) -> Option<MapShape> {
        match *dims {
            [classes, rows, cols] if classes >= 2 && rows > 0 && cols > 0 => Some(MapShape {
                classes,
                rows,
                cols,
            }),
            _ => None,
        }
    }

    /// [`Self::of`], or the error naming the shape.
    pub fn require(dims: &[usize]) -> Result<MapShape, SegmentError> {
        Self::of(dims).ok_or_else(|| SegmentError::NotAMap {
            shape: dims.to_vec(),
        })
    }

    /// Pixels per map (`rows × cols`).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Values of the whole output (`classes × rows × cols`).
    pub fn len(&self) -> usize {
        self.classes * self.pixels()
    }

    /// Never true for a shape from [`Self::of`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn length(&self, what: &'static str, got: usize, expected: usize) -> SegmentError {
        SegmentError::Length {
            what,
            classes: self.classes,
            rows: self.rows,
            cols: self.cols,
            expected,
            got,
        }
    }
}

/// Per-pixel argmax over the channel axis of `scores` (`[C, H, W]`) under the
/// order `gt` (`gt(a, b)`: `a` beats `b`); the first maximum wins.
fn argmax_by<T: Copy>(
    map: MapShape,
    scores: &[T],
    gt: impl Fn(T, T) -> bool,
) -> Result<Vec<u32>, SegmentError> {
    if scores.len() != map.len() {
        return Err(map.length("the output", scores.len(), map.len()));
    }
    let p = map.pixels();
    let mut best: Vec<T> = scores[..p].to_vec();
    let mut class = vec![0u32; p];
    for c in 1..map.classes {
        let channel = &scores[c * p..(c + 1) * p];
        for ((b, k), &v) in best.iter_mut().zip(class.iter_mut()).zip(channel) {
            // Strictly greater: on a tie the earlier (lower) class stays.
            if gt(v, *b) {
                *b = v;
                *k = c as u32;
            }
        }
    }
    Ok(class)
}

/// Per-pixel classes of a float output (`[C, H, W]` scores); ties go to the
/// lowest class. A NaN score never wins over a number (nor a number over a
/// NaN in channel 0).
pub fn argmax_map(map: MapShape, scores: &[f64]) -> Result<Vec<u32>, SegmentError> {
    argmax_by(map, scores, |a, b| a > b)
}

/// Per-pixel classes of a fixed-point output (ring values, compared as
/// signed two's-complement integers); ties go to the lowest class, as in the
/// secure argmax circuit.
pub fn argmax_map_ring(map: MapShape, ring: &[u64]) -> Result<Vec<u32>, SegmentError> {
    argmax_by(map, ring, |a, b| (a as i64) > (b as i64))
}

/// Pixels per class of a mask (`classes` counts; larger classes are not
/// counted).
pub fn class_counts(mask: &[u32], classes: usize) -> Vec<u64> {
    let mut n = vec![0u64; classes];
    for &c in mask {
        if let Some(k) = n.get_mut(c as usize) {
            *k += 1;
        }
    }
    n
}

/// Dice counts accumulated over a dataset: per class `|P ∩ T|`, `|P|`, `|T|`
/// summed over every pixel of every item (not a mean of per-item scores, so
/// small objects weigh by their size), and the same for foreground (any class
/// but 0) against background.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiceCounts {
    inter: Vec<u64>,
    pred: Vec<u64>,
    truth: Vec<u64>,
    fg: [u64; 3],
    correct: u64,
    pixels: u64,
    items: usize,
}

impl DiceCounts {
    /// Empty counts for `classes` classes (class 0 is background).
    pub fn new(classes: usize) -> DiceCounts {
        DiceCounts {
            inter: vec![0; classes],
            pred: vec![0; classes],
            truth: vec![0; classes],
            fg: [0; 3],
            correct: 0,
            pixels: 0,
            items: 0,
        }
    }

    pub fn classes(&self) -> usize {
        self.inter.len()
    }

    /// Items added.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Add one item: a predicted mask and the true one, pixel for pixel. A
    /// class outside `0..classes` on either side is an error (and nothing is
    /// added).
    pub fn add<P, T>(&mut self, pred: &[P], truth: &[T]) -> Result<(), SegmentError>
    where
        P: Copy + Into<u32>,
        T: Copy + Into<u32>,
    {
        let classes = self.classes();
        if pred.len() != truth.len() {
            return Err(SegmentError::Length {
                what: "the predicted mask",
                classes,
                rows: 1,
                cols: truth.len(),
                expected: truth.len(),
                got: pred.len(),
            });
        }
        let out_of_range = |class: u32| SegmentError::MaskClass { class, classes };
        if let Some(&c) = truth.iter().find(|&&c| c.into() as usize >= classes) {
            return Err(out_of_range(c.into()));
        }
        if let Some(&c) = pred.iter().find(|&&c| c.into() as usize >= classes) {
            return Err(out_of_range(c.into()));
        }
        for (&p, &t) in pred.iter().zip(truth) {
            let (p, t) = (p.into() as usize, t.into() as usize);
            self.pred[p] += 1;
            self.truth[t] += 1;
            if p == t {
                self.inter[p] += 1;
                self.correct += 1;
            }
            let (pf, tf) = (p != 0, t != 0);
            self.fg[0] += (pf && tf) as u64;
            self.fg[1] += pf as u64;
            self.fg[2] += tf as u64;
        }
        self.pixels += pred.len() as u64;
        self.items += 1;
        Ok(())
    }

    /// Dice of class `c`: `2|P ∩ T| / (|P| + |T|)`; `None` when the class is
    /// in neither the predictions nor the truth.
    pub fn dice(&self, c: usize) -> Option<f64> {
        dice(self.inter[c], self.pred[c], self.truth[c])
    }

    /// Dice of every class (`None`: absent from both).
    pub fn per_class(&self) -> Vec<Option<f64>> {
        (0..self.classes()).map(|c| self.dice(c)).collect()
    }

    /// Mean Dice over the classes present (in the predictions or the truth).
    pub fn mean(&self) -> Option<f64> {
        mean(self.per_class().into_iter().flatten())
    }

    /// Mean Dice over the foreground classes present (all but class 0).
    pub fn mean_foreground(&self) -> Option<f64> {
        mean(self.per_class().into_iter().skip(1).flatten())
    }

    /// Dice of foreground (any class but 0) against background, whatever the
    /// class: how well the objects are found, not named.
    pub fn foreground(&self) -> Option<f64> {
        dice(self.fg[0], self.fg[1], self.fg[2])
    }

    /// Fraction of pixels whose class is right.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        (self.pixels > 0).then(|| self.correct as f64 / self.pixels as f64)
    }

    /// Everything above, for a report.
    pub fn report(&self) -> DiceReport {
        DiceReport {
            per_class: self.per_class(),
            mean: self.mean(),
            mean_foreground: self.mean_foreground(),
            foreground: self.foreground(),
            pixel_accuracy: self.pixel_accuracy(),
            predicted_pixels: self.pred.clone(),
            truth_pixels: self.truth.clone(),
        }
    }
}

fn dice(inter: u64, pred: u64, truth: u64) -> Option<f64> {
    let both = pred + truth;
    (both > 0).then(|| 2.0 * inter as f64 / both as f64)
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Dice scores of one set of predictions against the truth (JSON: `null`
/// for a class absent from both, and for means over no class).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiceReport {
    /// Dice of each class, class 0 (background) first.
    pub per_class: Vec<Option<f64>>,
    /// Mean over the classes present.
    pub mean: Option<f64>,
    /// Mean over the foreground classes present (all but class 0).
    pub mean_foreground: Option<f64>,
    /// Foreground (any class but 0) against background.
    pub foreground: Option<f64>,
    /// Fraction of pixels whose class is right.
    pub pixel_accuracy: Option<f64>,
    /// Pixels predicted per class, over the whole dataset.
    pub predicted_pixels: Vec<u64>,
    /// Pixels per class in the truth.
    pub truth_pixels: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAP: MapShape = MapShape {
        classes: 3,
        rows: 1,
        cols: 4,
    };

    #[test]
    fn shapes() {
        assert_eq!(
            MapShape::of(&[11, 64, 64]),
            Some(MapShape {
                classes: 11,
                rows: 64,
                cols: 64
            })
        );
        for bad in [&[10][..], &[1, 8, 8], &[2, 0, 8], &[1, 2, 8, 8], &[]] {
            assert_eq!(MapShape::of(bad), None, "{bad:?}");
            assert_eq!(
                MapShape::require(bad),
                Err(SegmentError::NotAMap {
                    shape: bad.to_vec()
                })
            );
        }
    }

    #[test]
    fn argmax_per_pixel_first_maximum_wins() {
        // Channels: [0, 1, 2, 2], [0, 3, 2, 1], [5, 3, 2, 2].
        let f = [0.0, 1.0, 2.0, 2.0, 0.0, 3.0, 2.0, 1.0, 5.0, 3.0, 2.0, 2.0];
        assert_eq!(argmax_map(MAP, &f).unwrap(), vec![2, 1, 0, 0]);
        // The same in the ring, with negative values: -1 < 0 in the signed view.
        let r: Vec<u64> = [-3i64, -1, 7, i64::MIN, -2, -1, 7, i64::MAX, -5, 0, 6, -1]
            .iter()
            .map(|&v| v as u64)
            .collect();
        assert_eq!(argmax_map_ring(MAP, &r).unwrap(), vec![1, 2, 0, 1]);
        assert!(matches!(
            argmax_map(MAP, &f[..11]),
            Err(SegmentError::Length {
                expected: 12,
                got: 11,
                ..
            })
        ));
        assert!(argmax_map_ring(MAP, &[0; 13]).is_err());
    }

    #[test]
    fn dice_by_hand() {
        let mut d = DiceCounts::new(4);
        // Truth: class 1 on 2 pixels, class 2 on 1; prediction: class 1 on 1
        // of them and on one background pixel; class 3 in neither.
        d.add(&[1u32, 0, 0, 1, 0], &[1u8, 1, 2, 0, 0]).unwrap();
        let r = d.report();
        assert_eq!(r.per_class[1], Some(2.0 * 1.0 / 4.0));
        assert_eq!(r.per_class[2], Some(0.0));
        assert_eq!(r.per_class[3], None);
        // Background: predicted 3 (pixels 1, 2, 4), true 2 (3, 4), both on 1.
        assert_eq!(r.per_class[0], Some(2.0 / 5.0));
        assert_eq!(r.mean, Some((0.4 + 0.5 + 0.0) / 3.0));
        assert_eq!(r.mean_foreground, Some(0.25));
        // Foreground: predicted {0, 3}, true {0, 1, 2}, both {0}.
        assert_eq!(r.foreground, Some(2.0 / 5.0));
        assert_eq!(r.pixel_accuracy, Some(2.0 / 5.0));
        assert_eq!(r.predicted_pixels, vec![3, 2, 0, 0]);
        assert_eq!(r.truth_pixels, vec![2, 2, 1, 0]);
        // Nothing added: no class present, nothing to average.
        let e = DiceCounts::new(3).report();
        assert_eq!((e.mean, e.foreground, e.pixel_accuracy), (None, None, None));
        // Out-of-range classes and lengths are refused, and add nothing.
        assert_eq!(
            d.add(&[0u32, 0], &[0u8, 4]),
            Err(SegmentError::MaskClass {
                class: 4,
                classes: 4
            })
        );
        assert!(d.add(&[9u32], &[0u8]).is_err());
        assert!(d.add(&[0u32], &[0u8, 0]).is_err());
        assert_eq!(d.items(), 1);
        assert_eq!(d.report(), r);
        assert_eq!(class_counts(&[0, 2, 2, 7], 3), vec![1, 0, 2]);
    }

    fn naive_argmax(map: MapShape, v: &[i64]) -> Vec<u32> {
        (0..map.pixels())
            .map(|p| {
                let mut best = 0;
                for c in 1..map.classes {
                    if v[c * map.pixels() + p] > v[best * map.pixels() + p] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }

    fn map_and_values() -> impl Strategy<Value = (MapShape, Vec<i64>)> {
        (2usize..6, 1usize..5, 1usize..5).prop_flat_map(|(classes, rows, cols)| {
            let map = MapShape {
                classes,
                rows,
                cols,
            };
            // Few distinct values: many ties.
            let vals = prop::collection::vec(
                prop_oneof![-3i64..3, Just(i64::MIN), Just(i64::MAX)],
                map.len(),
            );
            (Just(map), vals)
        })
    }

    fn masks(classes: u32) -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
        (1usize..40).prop_flat_map(move |n| {
            (
                prop::collection::vec(0..classes, n),
                prop::collection::vec(0..classes, n),
            )
        })
    }

    proptest! {
        /// The ring argmax is the argmax of the signed view, first maximum on
        /// ties; the float argmax agrees on the same values.
        #[test]
        fn ring_and_float_argmax_match_the_definition((map, v) in map_and_values()) {
            let want = naive_argmax(map, &v);
            let ring: Vec<u64> = v.iter().map(|&x| x as u64).collect();
            prop_assert_eq!(argmax_map_ring(map, &ring).unwrap(), want.clone());
            let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            prop_assert_eq!(argmax_map(map, &f).unwrap(), want.clone());
            // Every class index is in range and a pixel's winner is a maximum.
            for (p, &c) in want.iter().enumerate() {
                let best = v[c as usize * map.pixels() + p];
                for k in 0..map.classes {
                    prop_assert!(v[k * map.pixels() + p] <= best);
                    if (k as u32) < c {
                        prop_assert!(v[k * map.pixels() + p] < best);
                    }
                }
            }
        }

        /// Dice lies in [0, 1], is symmetric in prediction and truth, is 1 for
        /// every present class of a perfect prediction, and accumulating items
        /// equals adding them as one.
        #[test]
        fn dice_properties((p, t) in masks(4), (p2, t2) in masks(4)) {
            let mut a = DiceCounts::new(4);
            a.add(&p, &t).unwrap();
            let mut b = DiceCounts::new(4);
            b.add(&t, &p).unwrap();
            prop_assert_eq!(a.per_class(), b.per_class());
            prop_assert_eq!(a.foreground(), b.foreground());
            for d in a.per_class().into_iter().flatten().chain(a.foreground()) {
                prop_assert!((0.0..=1.0).contains(&d));
            }
            // Absent classes are excluded; present ones are not.
            for c in 0..4u32 {
                let present = p.contains(&c) || t.contains(&c);
                prop_assert_eq!(a.dice(c as usize).is_some(), present);
            }
            let mut perfect = DiceCounts::new(4);
            perfect.add(&t, &t).unwrap();
            for d in perfect.per_class().into_iter().flatten() {
                prop_assert_eq!(d, 1.0);
            }
            prop_assert_eq!(perfect.mean(), Some(1.0));
            prop_assert_eq!(perfect.pixel_accuracy(), Some(1.0));

            a.add(&p2, &t2).unwrap();
            let mut whole = DiceCounts::new(4);
            whole.add(&[p.clone(), p2.clone()].concat(), &[t.clone(), t2.clone()].concat()).unwrap();
            prop_assert_eq!(a.report(), whole.report());
        }

        /// Foreground Dice is the Dice of class 1 of the binarised masks.
        #[test]
        fn foreground_is_binary_dice((p, t) in masks(5)) {
            let bin = |m: &[u32]| m.iter().map(|&c| (c != 0) as u32).collect::<Vec<_>>();
            let mut d = DiceCounts::new(5);
            d.add(&p, &t).unwrap();
            let mut b = DiceCounts::new(2);
            b.add(&bin(&p), &bin(&t)).unwrap();
            prop_assert_eq!(d.foreground(), b.dice(1));
        }
    }
}
