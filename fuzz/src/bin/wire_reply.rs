//! Fuzz target `wire_reply` (see `blindfold_fuzz::targets::wire_reply`).

fn main() {
    blindfold_fuzz::run("wire_reply", blindfold_fuzz::targets::wire_reply);
}
