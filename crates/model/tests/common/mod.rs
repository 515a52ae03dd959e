//! Helpers shared by the model crate's tests that build ONNX graphs by hand.
#![allow(dead_code)]

use onnx_protobuf::*;
use protobuf::MessageField;

/// A float tensor value named `name` with fixed dimensions.
pub fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
    use onnx_protobuf::tensor_shape_proto::{dimension::Value as DV, Dimension};
    let mut sh = TensorShapeProto::new();
    for &d in dims {
        let mut dd = Dimension::new();
        dd.value = Some(DV::DimValue(d));
        sh.dim.push(dd);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = 1;
    tt.shape = MessageField::some(sh);
    let mut t = TypeProto::new();
    t.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = MessageField::some(t);
    v
}
