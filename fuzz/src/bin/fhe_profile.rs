//! Fuzz target `fhe_profile` (see `blindfold_fuzz::targets::fhe_profile`).

fn main() {
    blindfold_fuzz::run("fhe_profile", blindfold_fuzz::targets::fhe_profile);
}
