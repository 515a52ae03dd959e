//! Helpers shared by the model crate's tests that build ONNX graphs by hand.
#![allow(dead_code)]

use onnx_protobuf::*;
use protobuf::{Message, MessageField};

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

pub fn ints_init(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 7;
    t.int64_data = v.to_vec();
    t
}
pub fn f_init(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    t.float_data = v.to_vec();
    t
}
pub fn node(op: &str, ins: &[&str], out: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.input = ins.iter().map(|s| s.to_string()).collect();
    n.output = vec![out.into()];
    n.attribute = attrs;
    n
}
pub fn a_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = protobuf::EnumOrUnknown::new(attribute_proto::AttributeType::INT);
    a.i = v;
    a
}
pub fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = protobuf::EnumOrUnknown::new(attribute_proto::AttributeType::INTS);
    a.ints = v.to_vec();
    a
}
pub fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, xdims: &[i64]) -> Vec<u8> {
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.node = nodes;
    g.initializer = inits;
    g.input.push(vi("x", xdims));
    g.output.push(vi("y", &[]));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut o = OperatorSetIdProto::new();
    o.version = 13;
    m.opset_import.push(o);
    m.graph = MessageField::some(g);
    m.write_to_bytes().unwrap()
}
