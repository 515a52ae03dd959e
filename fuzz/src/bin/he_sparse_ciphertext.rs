//! Fuzz target `he_sparse_ciphertext` (see `blindfold_fuzz::targets::he_sparse_ciphertext`).

fn main() {
    blindfold_fuzz::run(
        "he_sparse_ciphertext",
        blindfold_fuzz::targets::he_sparse_ciphertext,
    );
}
