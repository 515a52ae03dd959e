//! Every corpus file through its target, without a fuzzer: what CI runs
//! (`fuzz/ci.sh`). A crash input kept as a regression (`corpus/<target>/regress-*`)
//! is replayed the same way.

use blindfold_fuzz::TARGETS;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let d = dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays() {
    let mut total = 0;
    for &(name, f) in TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "target {name} has no corpus");
        for file in &files {
            let data = std::fs::read(file).expect("read corpus file");
            f(&data);
        }
        println!("{name}: {} inputs", files.len());
        total += files.len();
    }
    println!("{total} inputs replayed");
}

/// Each target's seeds also go through every other target: cheap, and the
/// decoders must refuse foreign formats without panicking.
#[test]
fn every_target_refuses_the_others_inputs() {
    let all: Vec<Vec<u8>> = TARGETS
        .iter()
        .flat_map(|&(name, _)| corpus(name))
        .map(|p| std::fs::read(p).expect("read corpus file"))
        .collect();
    for &(_, f) in TARGETS {
        for data in &all {
            f(data);
        }
    }
}

#[test]
fn every_target_has_a_binary_and_no_binary_lacks_a_target() {
    let mut bins: Vec<String> = std::fs::read_dir(dir().join("src/bin"))
        .expect("src/bin")
        .map(|e| {
            let p = e.expect("dir entry").path();
            p.file_stem().expect("stem").to_string_lossy().into_owned()
        })
        .collect();
    bins.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(bins, names);
}

/// Truncations and single-byte changes of every seed: a few thousand inputs
/// near the valid ones, in well under a second.
#[test]
fn seeds_mutated_near_their_valid_form() {
    for &(name, f) in TARGETS {
        for file in corpus(name) {
            let data = std::fs::read(&file).expect("read corpus file");
            let step = (data.len() / 64).max(1);
            for cut in (0..data.len()).step_by(step) {
                f(&data[..cut]);
                let mut flipped = data.clone();
                flipped[cut] ^= 0x80;
                f(&flipped);
            }
        }
    }
}

/// The FHE query and result seeds are real files cut down to a ciphertext
/// (`examples/make_corpus.rs`, `fhe_seeds`; the whole ones are 27 MB and
/// 3 MB). Here the whole files are generated again: they decode against the
/// target's parameters, with every ciphertext, so do their cut-down forms, and
/// the targets take them.
#[test]
fn fhe_whole_files_decode() {
    use blindfold_fhe::files::{
        decode_ciphertext_file, profile_from_bytes, ClientKeys, ServerKeys,
    };
    use blindfold_fuzz::targets::{fhe_files, fhe_fixture, trim_ciphertext_file};
    let f = fhe_fixture();
    let profile = f.model.profile();
    let primes = f.ctx.primes();
    let files = fhe_files(&f.model);
    assert_eq!(
        profile_from_bytes(&files.profile).expect("profile"),
        profile
    );
    ClientKeys::from_bytes(&files.secret).expect("secret key");
    ServerKeys::from_bytes(&files.eval).expect("evaluation keys");
    let count =
        |file: &[u8], result| decode_ciphertext_file(file, &f.ctx, result).expect("decodes");
    assert_eq!(count(&files.query, false), profile.input_len * primes);
    assert_eq!(count(&files.result, true), profile.output_len * primes);
    for keep in [0, 1] {
        assert_eq!(
            count(&trim_ciphertext_file(&files.query, keep), false),
            keep * primes
        );
        assert_eq!(
            count(&trim_ciphertext_file(&files.result, keep), true),
            keep * primes
        );
    }
    for &(name, t) in TARGETS.iter().filter(|(n, _)| n.starts_with("fhe_")) {
        for file in [
            &files.profile,
            &files.secret,
            &files.eval,
            &files.query,
            &files.result,
        ] {
            t(file);
        }
        println!("{name}: the whole files");
    }
}

/// The comparison seeds are honest peers' messages: replayed, the fuzzed
/// party gets through setup, offline and online (so the fuzzer starts from
/// inputs that reach every phase, and a change of the protocol that makes the
/// seeds stale fails here, not silently).
#[test]
fn comparison_seeds_reach_the_online_phase() {
    let files = corpus("cmp_peer");
    assert_eq!(files.len(), 8, "one seed per role and operation");
    for file in &files {
        let data = std::fs::read(file).expect("read seed");
        let out = blindfold_fuzz::targets::cmp_peer_run(&data);
        assert!(out.is_some(), "{}: the run stopped early", file.display());
    }
}
