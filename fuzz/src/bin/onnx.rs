//! Fuzz target `onnx` (see `blindfold_fuzz::targets::onnx`).

fn main() {
    blindfold_fuzz::run("onnx", blindfold_fuzz::targets::onnx);
}
