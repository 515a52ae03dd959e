//! Fuzz target `npy` (see `blindfold_fuzz::targets::npy`).

fn main() {
    blindfold_fuzz::run("npy", blindfold_fuzz::targets::npy);
}
