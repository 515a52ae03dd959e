//! Fuzz target `wire_cs_request` (see `blindfold_fuzz::targets::wire_cs_request`).

fn main() {
    blindfold_fuzz::run("wire_cs_request", blindfold_fuzz::targets::wire_cs_request);
}
