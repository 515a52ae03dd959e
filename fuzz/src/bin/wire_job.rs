//! Fuzz target `wire_job` (see `blindfold_fuzz::targets::wire_job`).

fn main() {
    blindfold_fuzz::run("wire_job", blindfold_fuzz::targets::wire_job);
}
