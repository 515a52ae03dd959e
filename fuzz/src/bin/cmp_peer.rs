//! Fuzz target `cmp_peer` (see `blindfold_fuzz::targets::cmp_peer`).

fn main() {
    blindfold_fuzz::run("cmp_peer", blindfold_fuzz::targets::cmp_peer);
}
