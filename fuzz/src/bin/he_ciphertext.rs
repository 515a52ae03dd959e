//! Fuzz target `he_ciphertext` (see `blindfold_fuzz::targets::he_ciphertext`).

fn main() {
    blindfold_fuzz::run("he_ciphertext", blindfold_fuzz::targets::he_ciphertext);
}
