//! Fuzz target `he_response` (see `blindfold_fuzz::targets::he_response`).

fn main() {
    blindfold_fuzz::run("he_response", blindfold_fuzz::targets::he_response);
}
