//! Fuzz target `wire_query` (see `blindfold_fuzz::targets::wire_query`).

fn main() {
    blindfold_fuzz::run("wire_query", blindfold_fuzz::targets::wire_query);
}
