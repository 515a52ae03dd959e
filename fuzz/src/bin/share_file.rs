//! Fuzz target `share_file` (see `blindfold_fuzz::targets::share_file`).

fn main() {
    blindfold_fuzz::run("share_file", blindfold_fuzz::targets::share_file);
}
