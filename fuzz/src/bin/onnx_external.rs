//! Fuzz target `onnx_external` (see `blindfold_fuzz::targets::onnx_external`).

fn main() {
    blindfold_fuzz::run("onnx_external", blindfold_fuzz::targets::onnx_external);
}
