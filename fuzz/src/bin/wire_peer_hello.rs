//! Fuzz target `wire_peer_hello` (see `blindfold_fuzz::targets::wire_peer_hello`).

fn main() {
    blindfold_fuzz::run("wire_peer_hello", blindfold_fuzz::targets::wire_peer_hello);
}
