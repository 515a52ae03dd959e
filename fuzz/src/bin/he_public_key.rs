//! Fuzz target `he_public_key` (see `blindfold_fuzz::targets::he_public_key`).

fn main() {
    blindfold_fuzz::run("he_public_key", blindfold_fuzz::targets::he_public_key);
}
