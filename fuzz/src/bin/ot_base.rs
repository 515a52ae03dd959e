//! Fuzz target `ot_base` (see `blindfold_fuzz::targets::ot_base`).

fn main() {
    blindfold_fuzz::run("ot_base", blindfold_fuzz::targets::ot_base);
}
