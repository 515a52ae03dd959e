//! Fuzz target `wire_cs_info` (see `blindfold_fuzz::targets::wire_cs_info`).

fn main() {
    blindfold_fuzz::run("wire_cs_info", blindfold_fuzz::targets::wire_cs_info);
}
