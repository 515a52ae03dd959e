//! Fuzz target `wire_link_auth` (see `blindfold_fuzz::targets::wire_link_auth`).

fn main() {
    blindfold_fuzz::run("wire_link_auth", blindfold_fuzz::targets::wire_link_auth);
}
