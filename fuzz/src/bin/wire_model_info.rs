//! Fuzz target `wire_model_info` (see `blindfold_fuzz::targets::wire_model_info`).

fn main() {
    blindfold_fuzz::run("wire_model_info", blindfold_fuzz::targets::wire_model_info);
}
