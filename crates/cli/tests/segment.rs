//! `blindfold segment`, the Dice table of `eval` and `demo --segment` on a
//! small model whose output is a `[2, 10, 10]` map (`upsample_nearest_ts13`:
//! a 5x5 input, conv, ReLU, nearest upsampling, conv), with synthetic masks.

use blindfold_model::data::{decode_png, encode_png, write_npy};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODEL: &str = "upsample_nearest_ts13";
/// Synthetic items.
const N: usize = 4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> PathBuf {
    repo().join(format!("testdata/onnx/{MODEL}.onnx"))
}

/// A scratch directory of its own per test.
fn scratch(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("segment-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn blindfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blindfold"))
        .env("BLINDFOLD_HOME", repo())
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = blindfold(args);
    assert!(
        out.status.success(),
        "blindfold {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run, require exit code 1 without a panic, return stderr.
fn fails(args: &[&str]) -> String {
    let out = blindfold(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "blindfold {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// `N` pseudo-random 5x5 images and 10x10 masks (class 1 where the
/// upsampled pixel is bright) in `dir`.
fn write_set(dir: &Path) -> Vec<u8> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let images: Vec<u8> = (0..N * 25)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let mut masks = Vec::new();
    for n in 0..N {
        for r in 0..10 {
            for c in 0..10 {
                masks.push((images[n * 25 + (r / 2) * 5 + c / 2] > 100) as u8);
            }
        }
    }
    std::fs::write(
        dir.join("images.idx3-ubyte"),
        idx(&[N as u32, 5, 5], &images),
    )
    .unwrap();
    std::fs::write(
        dir.join("masks.idx3-ubyte"),
        idx(&[N as u32, 10, 10], &masks),
    )
    .unwrap();
    images
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Pixels of a decoded mask PNG that are background (black).
fn black(png: &Path) -> (usize, usize, usize) {
    let (h, w, px) = decode_png(&std::fs::read(png).unwrap()).unwrap();
    (h, w, px.iter().filter(|&&v| v == 0.0).count())
}

#[test]
fn segment_writes_a_mask_that_decodes() {
    let dir = scratch("png");
    let images = write_set(&dir);
    let input = repo().join(format!("testdata/onnx/{MODEL}.input.npy"));
    let out = dir.join("mask.png");
    let m = model();
    let v = json(&ok(&[
        "segment",
        m.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["out"], out.to_str().unwrap());
    assert_eq!(
        (v["rows"].as_u64(), v["cols"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(v["classes"], 2);
    let pixels: Vec<u64> = v["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(pixels.iter().sum::<u64>(), 100);
    let (h, w, bg) = black(&out);
    assert_eq!((h, w, bg as u64), (10, 10, pixels[0]));

    // Scaled, with a side-by-side sheet, and the summary a person reads.
    let big = dir.join("big.png");
    let sheet = dir.join("sheet.png");
    let text = ok(&[
        "segment",
        m.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        big.to_str().unwrap(),
        "--scale",
        "3",
        "--sheet",
        sheet.to_str().unwrap(),
    ]);
    assert!(text.contains("10x10 mask of 2 classes"), "{text}");
    assert!(text.contains("pixels per class"), "{text}");
    let (h, w, bg) = black(&big);
    assert_eq!((h, w, bg as u64), (30, 30, 9 * pixels[0]));
    let (h, w, _) = decode_png(&std::fs::read(&sheet).unwrap()).unwrap();
    assert!(h > 30 && w > 60, "{h}x{w}");

    // The secure mode gives the same mask.
    let secure = dir.join("secure.png");
    let s = json(&ok(&[
        "segment",
        m.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        secure.to_str().unwrap(),
        "--mode",
        "two-server",
        "--json",
    ]));
    assert_eq!(s["pixels"], v["pixels"]);
    assert!(s["cost"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        std::fs::read(&secure).unwrap(),
        std::fs::read(&out).unwrap()
    );

    // An IDX image file with --index, and the same image as a PNG.
    let file = dir.join("images.idx3-ubyte");
    let from_idx = json(&ok(&[
        "segment",
        m.to_str().unwrap(),
        file.to_str().unwrap(),
        "--index",
        "2",
        "--out",
        dir.join("idx.png").to_str().unwrap(),
        "--json",
    ]));
    let png = dir.join("image2.png");
    std::fs::write(&png, encode_png(5, 5, &images[50..75]).unwrap()).unwrap();
    let from_png = json(&ok(&[
        "segment",
        m.to_str().unwrap(),
        png.to_str().unwrap(),
        "--out",
        dir.join("png.png").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(from_idx["pixels"], from_png["pixels"]);
    assert_eq!(
        std::fs::read(dir.join("idx.png")).unwrap(),
        std::fs::read(dir.join("png.png")).unwrap()
    );
}

#[test]
fn segment_refuses_bad_inputs() {
    let dir = scratch("bad");
    write_set(&dir);
    let m = model();
    let m = m.to_str().unwrap();
    let out = dir.join("mask.png");
    let out = out.to_str().unwrap();
    let wrong = dir.join("wrong.npy");
    std::fs::write(&wrong, write_npy(&[1, 1, 6, 6], &[0.0; 36])).unwrap();
    let wrong = wrong.to_str().unwrap();
    let images = dir.join("images.idx3-ubyte");
    let images = images.to_str().unwrap();
    let input = repo().join(format!("testdata/onnx/{MODEL}.input.npy"));
    let input = input.to_str().unwrap();

    // A model that classifies.
    let err = fails(&["segment", "minionn", input, "--out", out]);
    assert!(err.contains("does not segment"), "{err}");
    // Wrong input sizes: an array, a PNG, an IDX file.
    let err = fails(&["segment", m, wrong, "--out", out]);
    assert!(err.contains("does not fit the model input"), "{err}");
    let png = dir.join("big.png");
    std::fs::write(&png, encode_png(6, 6, &[0; 36]).unwrap()).unwrap();
    let err = fails(&["segment", m, png.to_str().unwrap(), "--out", out]);
    assert!(err.contains("does not fit the model input"), "{err}");
    let big = dir.join("big.idx3-ubyte");
    std::fs::write(&big, idx(&[1, 6, 6], &[0; 36])).unwrap();
    let err = fails(&["segment", m, big.to_str().unwrap(), "--out", out]);
    assert!(err.contains("does not fit the model input"), "{err}");
    // An index past the end, an index for a file that is not IDX.
    let err = fails(&["segment", m, images, "--index", "4", "--out", out]);
    assert!(err.contains("past the end"), "{err}");
    let err = fails(&["segment", m, input, "--index", "0", "--out", out]);
    assert!(err.contains("--index"), "{err}");
    // Garbage and missing files.
    let junk = dir.join("junk.png");
    std::fs::write(&junk, b"\x89PNG not really").unwrap();
    fails(&["segment", m, junk.to_str().unwrap(), "--out", out]);
    let err = fails(&["segment", m, "/nonexistent/x.npy", "--out", out]);
    assert!(err.contains("/nonexistent/x.npy"), "{err}");
    assert!(!Path::new(out).exists());
}

#[test]
fn eval_prints_dice_for_a_segmentation_set() {
    let dir = scratch("eval");
    write_set(&dir);
    let m = model();
    let m = m.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let text = ok(&["eval", m, "--data", d]);
    for want in [
        "Dice",
        "class 0 (background)",
        "class 1",
        "mean over foreground",
        "plain = float on 4/4",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let v = json(&ok(&["eval", m, "--data", d, "--json"]));
    let s = &v["segmentation"];
    assert_eq!(s["classes"], 2);
    assert_eq!(s["plain"]["per_class"].as_array().unwrap().len(), 2);
    assert_eq!(s["plain"]["truth_pixels"].as_array().unwrap().len(), 2);
    assert!(s["plain"]["mean_foreground"].as_f64().unwrap() > 0.0);
    // Two servers: the masks are the reference's.
    let v = json(&ok(&[
        "eval",
        m,
        "--data",
        d,
        "--mode",
        "two-server",
        "--limit",
        "2",
        "--json",
    ]));
    assert_eq!(v["n"], 2);
    assert_eq!(v["segmentation"]["mask_exact"], 1.0);
    assert_eq!(v["segmentation"]["secure"], v["segmentation"]["plain"]);
    assert_eq!(v["bit_exact"], 1.0);
    // A classification model on a set with masks only.
    let err = fails(&["eval", "minionn", "--data", d]);
    assert!(err.contains("no class labels"), "{err}");
    // Masks of another size than the model's map.
    std::fs::write(
        dir.join("masks.idx3-ubyte"),
        idx(&[N as u32, 5, 5], &[0; N * 25]),
    )
    .unwrap();
    let err = fails(&["eval", m, "--data", d]);
    assert!(err.contains("outputs 10x10 maps"), "{err}");
}

#[test]
fn segmentation_demo_writes_pictures() {
    let dir = scratch("demo");
    write_set(&dir);
    let pictures = dir.join("pictures");
    let m = model();
    let text = ok(&[
        "demo",
        "--segment",
        "--model",
        m.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--count",
        "2",
        "--out",
        pictures.to_str().unwrap(),
        "--scale",
        "2",
    ]);
    assert!(
        text.contains("secure mask = plaintext mask on 2/2"),
        "{text}"
    );
    for i in 0..2 {
        let p = pictures.join(format!("canvas{i}.png"));
        assert!(text.contains(p.to_str().unwrap()), "{text}");
        let (h, w, _) = decode_png(&std::fs::read(&p).unwrap()).unwrap();
        // Four 20x20 panels side by side, captions under them.
        assert!(h > 20 && w > 80, "{h}x{w}");
    }
    // Without a model file: the default's path in the error.
    let out = Command::new(env!("CARGO_BIN_EXE_blindfold"))
        .env("BLINDFOLD_HOME", &dir)
        .args(["demo", "--segment"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("models/unet.onnx"), "{err}");
}
