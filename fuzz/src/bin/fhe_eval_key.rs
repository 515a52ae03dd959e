//! Fuzz target `fhe_eval_key` (see `blindfold_fuzz::targets::fhe_eval_key`).

fn main() {
    blindfold_fuzz::run("fhe_eval_key", blindfold_fuzz::targets::fhe_eval_key);
}
