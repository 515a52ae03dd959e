//! Fuzz target `idx` (see `blindfold_fuzz::targets::idx`).

fn main() {
    blindfold_fuzz::run("idx", blindfold_fuzz::targets::idx);
}
