//! Fuzz target `png` (see `blindfold_fuzz::targets::png`).

fn main() {
    blindfold_fuzz::run("png", blindfold_fuzz::targets::png);
}
