//! Fuzz target `he_query` (see `blindfold_fuzz::targets::he_query`).

fn main() {
    blindfold_fuzz::run("he_query", blindfold_fuzz::targets::he_query);
}
