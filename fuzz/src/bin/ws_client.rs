//! Fuzz target `ws_client` (see `blindfold_fuzz::targets::ws_client`).

fn main() {
    blindfold_fuzz::run("ws_client", blindfold_fuzz::targets::ws_client);
}
