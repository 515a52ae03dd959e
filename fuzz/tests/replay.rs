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
