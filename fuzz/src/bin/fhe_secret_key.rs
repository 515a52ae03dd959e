//! Fuzz target `fhe_secret_key` (see `blindfold_fuzz::targets::fhe_secret_key`).

fn main() {
    blindfold_fuzz::run("fhe_secret_key", blindfold_fuzz::targets::fhe_secret_key);
}
