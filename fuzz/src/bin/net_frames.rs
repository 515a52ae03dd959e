//! Fuzz target `net_frames` (see `blindfold_fuzz::targets::net_frames`).

fn main() {
    blindfold_fuzz::run("net_frames", blindfold_fuzz::targets::net_frames);
}
