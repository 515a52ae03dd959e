//! Dense row-major tensors.

use std::fmt;

/// A tensor shape (row-major, outermost first). Batch dimensions are not part of
/// model shapes: a CHW image has shape `[C, H, W]`.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }
    /// Number of elements (saturating: an absurd shape never wraps to a small one).
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", parts.join("x"))
    }
}

/// A dense tensor: a shape and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    shape: Shape,
    data: Vec<T>,
}

/// Error for a data length that does not match a shape.
#[derive(Debug, thiserror::Error)]
#[error("tensor data has {len} elements but shape {shape} needs {need}")]
pub struct ShapeError {
    pub shape: Shape,
    pub len: usize,
    pub need: usize,
}

impl<T> Tensor<T> {
    /// Build a tensor, checking that the data length matches the shape.
    pub fn new(shape: Shape, data: Vec<T>) -> Result<Tensor<T>, ShapeError> {
        let need = shape.numel();
        if data.len() != need {
            return Err(ShapeError {
                shape,
                len: data.len(),
                need,
            });
        }
        Ok(Tensor { shape, data })
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Same data, new shape with the same element count.
    pub fn reshape(self, shape: Shape) -> Result<Tensor<T>, ShapeError> {
        Tensor::new(shape, self.data)
    }
    /// Apply `f` element-wise.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(f).collect(),
        }
    }
}

impl<T: Clone + Default> Tensor<T> {
    pub fn zeros(shape: Shape) -> Tensor<T> {
        let n = shape.numel();
        Tensor {
            shape,
            data: vec![T::default(); n],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_mismatch_is_an_error() {
        let e = Tensor::new(Shape::new([2, 3]), vec![0u64; 5]).unwrap_err();
        assert_eq!(e.need, 6);
        assert!(e.to_string().contains("2x3"));
    }
}
