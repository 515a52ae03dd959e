//! Fuzz targets for every decoder of outside data (see `docs/FUZZING.md`).
//!
//! Each target is a plain function `fn(&[u8])` in [`targets`] that feeds the
//! bytes to one decoder and asserts only what must hold: no panic, and, where
//! the format has an encoder and one encoding per value, that encoding the
//! decoded value gives back the input. [`TARGETS`] lists them all; each has a
//! binary in `src/bin/` (named like the target) and a seed corpus in
//! `corpus/<target>/`.
//!
//! The binaries are fuzzers under `cargo afl build` (which sets `--cfg
//! fuzzing`) and, in a plain build, replay the files given as arguments, so a
//! crash input can be rerun under a debugger. `tests/replay.rs` runs every
//! corpus file through its target without any fuzzer (what CI does).

#![deny(unsafe_code)]

pub mod targets;

/// A fuzz target: it feeds its input to one decoder.
pub type Target = fn(&[u8]);

/// Every target: its name (binary, corpus directory) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("onnx", targets::onnx),
    ("onnx_external", targets::onnx_external),
    ("share_file", targets::share_file),
    ("idx", targets::idx),
    ("npy", targets::npy),
    ("png", targets::png),
    ("wire_hello", targets::wire_hello),
    ("wire_model_info", targets::wire_model_info),
    ("wire_query", targets::wire_query),
    ("wire_reply", targets::wire_reply),
    ("wire_job", targets::wire_job),
    ("wire_job_answer", targets::wire_job_answer),
    ("wire_peer_hello", targets::wire_peer_hello),
    ("wire_link_auth", targets::wire_link_auth),
    ("wire_cs_info", targets::wire_cs_info),
    ("wire_cs_request", targets::wire_cs_request),
    ("he_public_key", targets::he_public_key),
    ("he_ciphertext", targets::he_ciphertext),
    ("he_sparse_ciphertext", targets::he_sparse_ciphertext),
    ("he_query", targets::he_query),
    ("he_response", targets::he_response),
    ("ot_base", targets::ot_base),
    ("cmp_peer", targets::cmp_peer),
    ("ws_client", targets::ws_client),
    ("net_frames", targets::net_frames),
    ("tls_pem", targets::tls_pem),
    ("fhe_profile", targets::fhe_profile),
    ("fhe_secret_key", targets::fhe_secret_key),
    ("fhe_eval_key", targets::fhe_eval_key),
    ("fhe_ciphertexts", targets::fhe_ciphertexts),
];

/// The body of every target binary: fuzz `f` under AFL, or (plain build) run
/// it once on each file named on the command line.
pub fn run(name: &str, f: Target) {
    #[cfg(fuzzing)]
    {
        let _ = name;
        afl::fuzz!(|data: &[u8]| f(data));
    }
    #[cfg(not(fuzzing))]
    replay(name, f);
}

/// As [`run`], for a decoder that catches a dependency's panics on purpose
/// (`blindfold_fhe::files` decodes ciphertexts inside `catch_unwind`, the `fhe`
/// crate's decoder being able to panic): AFL's usual panic hook aborts at the
/// panic, before that `catch_unwind` is reached, and would report a crash the
/// program does not have. Without the hook a panic that leaves the target is
/// still an abort, so still a crash.
pub fn run_catching(name: &str, f: Target) {
    #[cfg(fuzzing)]
    {
        let _ = name;
        afl::fuzz_nohook!(|data: &[u8]| f(data));
    }
    #[cfg(not(fuzzing))]
    replay(name, f);
}

#[cfg(not(fuzzing))]
fn replay(name: &str, f: Target) {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: {name} FILE... (built without `cargo afl`, this binary replays inputs)");
        std::process::exit(2);
    }
    for file in files {
        match std::fs::read(&file) {
            Ok(data) => {
                f(&data);
                println!("{name}: {file}: ok");
            }
            Err(e) => {
                eprintln!("{name}: {file}: {e}");
                std::process::exit(2);
            }
        }
    }
}
