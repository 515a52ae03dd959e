//! Constant tensors: decoding a `TensorProto` (raw bytes, typed fields, or
//! external data) into a [`Const`], sizes checked before anything is allocated.
//!
//! `onnx-protobuf`'s own tensor helper panics on some data types, hence this.

use super::external::{ExternalDataError, ExternalDir};
use super::{MAX_DIM, MAX_TENSOR_ELEMS};
use onnx_protobuf::{
    tensor_proto::{DataLocation, DataType},
    TensorProto,
};
use protobuf::Enum;
use std::borrow::Cow;

/// A constant tensor during import.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Const {
    pub(crate) dims: Vec<usize>,
    pub(crate) data: ConstData,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ConstData {
    F(Vec<f32>),
    I(Vec<i64>),
}

impl Const {
    pub(crate) fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    pub(crate) fn floats(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F(v) => v.clone(),
            ConstData::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    pub(crate) fn ints(&self) -> Vec<i64> {
        match &self.data {
            ConstData::F(v) => v.iter().map(|&x| x as i64).collect(),
            ConstData::I(v) => v.clone(),
        }
    }
    pub(crate) fn len(&self) -> usize {
        match &self.data {
            ConstData::F(v) => v.len(),
            ConstData::I(v) => v.len(),
        }
    }
    pub(crate) fn is_int(&self) -> bool {
        matches!(self.data, ConstData::I(_))
    }
    /// A tensor of `dims` holding `f`, of the element kind of `like`.
    pub(crate) fn with_data(dims: Vec<usize>, like: &ConstData, f: Vec<f64>) -> Const {
        let data = match like {
            ConstData::F(_) => ConstData::F(f.iter().map(|&x| x as f32).collect()),
            ConstData::I(_) => ConstData::I(f.iter().map(|&x| x as i64).collect()),
        };
        Const { dims, data }
    }
    pub(crate) fn as_f64(&self) -> Vec<f64> {
        match &self.data {
            ConstData::F(v) => v.iter().map(|&x| x as f64).collect(),
            ConstData::I(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    pub(crate) fn scalar_f(v: f32) -> Const {
        Const {
            dims: vec![],
            data: ConstData::F(vec![v]),
        }
    }
    pub(crate) fn vec_i(v: Vec<i64>) -> Const {
        Const {
            dims: vec![v.len()],
            data: ConstData::I(v),
        }
    }
}

/// Why a tensor could not be decoded.
#[derive(Debug)]
pub(crate) enum TensorError {
    /// The tensor itself is malformed or of an unsupported type.
    Malformed(String),
    /// Its external data could not be used.
    External(ExternalDataError),
}

impl From<String> for TensorError {
    fn from(s: String) -> Self {
        TensorError::Malformed(s)
    }
}

impl From<&str> for TensorError {
    fn from(s: &str) -> Self {
        TensorError::Malformed(s.into())
    }
}

/// Bytes per element in raw (little-endian) form, for the types we decode.
fn raw_width(dt: DataType) -> Option<usize> {
    match dt {
        DataType::FLOAT | DataType::INT32 => Some(4),
        DataType::DOUBLE | DataType::INT64 => Some(8),
        DataType::BOOL | DataType::UINT8 | DataType::INT8 => Some(1),
        _ => None,
    }
}

/// Decode `t`. External data is read through `external`; without one it is
/// refused ([`ExternalDataError::NoBaseDirectory`]).
pub(crate) fn tensor_to_const(
    t: &TensorProto,
    external: Option<&ExternalDir>,
) -> Result<Const, TensorError> {
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut numel: usize = 1;
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}").into());
        }
        if d as u64 > MAX_DIM as u64 {
            return Err(format!("dimension {d} exceeds {MAX_DIM}").into());
        }
        dims.push(d as usize);
        numel = numel
            .checked_mul(d as usize)
            .filter(|&n| n <= MAX_TENSOR_ELEMS)
            .ok_or("tensor too large")?;
    }
    let dt = DataType::from_i32(t.data_type)
        .ok_or_else(|| format!("unknown data type {}", t.data_type))?;
    let width = raw_width(dt).ok_or_else(|| format!("data type {dt:?} is not supported"))?;
    let is_external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
    if !is_external && !t.external_data.is_empty() {
        return Err("has external_data entries but data_location is not EXTERNAL".into());
    }
    let raw: Cow<[u8]> = if is_external {
        let inline = !t.raw_data.is_empty()
            || !t.float_data.is_empty()
            || !t.double_data.is_empty()
            || !t.int32_data.is_empty()
            || !t.int64_data.is_empty();
        let dir = external.ok_or(TensorError::External(ExternalDataError::NoBaseDirectory))?;
        if inline {
            return Err(TensorError::External(ExternalDataError::InlineAndExternal));
        }
        // numel * width fits: numel <= 2^28, width <= 8.
        let need = (numel * width) as u64;
        Cow::Owned(
            dir.read(&t.external_data, need)
                .map_err(TensorError::External)?,
        )
    } else {
        Cow::Borrowed(&t.raw_data)
    };
    let use_raw = is_external || !raw.is_empty() || numel == 0;
    if use_raw && raw.len() != numel * width {
        return Err(format!(
            "raw data has {} bytes, {} needed for {:?}",
            raw.len(),
            numel * width,
            dims
        )
        .into());
    }
    let data = match dt {
        DataType::FLOAT if use_raw => ConstData::F(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DataType::FLOAT => ConstData::F(t.float_data.clone()),
        DataType::DOUBLE if use_raw => ConstData::F(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(le8(c)) as f32)
                .collect(),
        ),
        DataType::DOUBLE => ConstData::F(t.double_data.iter().map(|&x| x as f32).collect()),
        DataType::INT64 if use_raw => ConstData::I(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(le8(c)))
                .collect(),
        ),
        DataType::INT64 => ConstData::I(t.int64_data.clone()),
        DataType::INT32 if use_raw => ConstData::I(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        DataType::INT32 => ConstData::I(t.int32_data.iter().map(|&x| x as i64).collect()),
        DataType::INT8 if use_raw => ConstData::I(raw.iter().map(|&b| b as i8 as i64).collect()),
        DataType::BOOL | DataType::UINT8 if use_raw => {
            ConstData::I(raw.iter().map(|&b| b as i64).collect())
        }
        DataType::BOOL | DataType::UINT8 | DataType::INT8 => {
            ConstData::I(t.int32_data.iter().map(|&x| x as i64).collect())
        }
        other => return Err(format!("data type {other:?} is not supported").into()),
    };
    let c = Const { dims, data };
    if c.len() != numel {
        return Err(format!("has {} values for shape {:?}", c.len(), c.dims).into());
    }
    Ok(c)
}

/// The first 8 bytes of a chunk from `chunks_exact(8)`.
fn le8(c: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[..8]);
    b
}
