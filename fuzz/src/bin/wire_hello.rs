//! Fuzz target `wire_hello` (see `blindfold_fuzz::targets::wire_hello`).

fn main() {
    blindfold_fuzz::run("wire_hello", blindfold_fuzz::targets::wire_hello);
}
