//! Fuzz target `fhe_ciphertexts` (see `blindfold_fuzz::targets::fhe_ciphertexts`).

fn main() {
    blindfold_fuzz::run_catching("fhe_ciphertexts", blindfold_fuzz::targets::fhe_ciphertexts);
}
