//! Fuzz target `tls_pem` (see `blindfold_fuzz::targets::tls_pem`).

fn main() {
    blindfold_fuzz::run("tls_pem", blindfold_fuzz::targets::tls_pem);
}
