//! Where bundled models and data live.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The repository root: `BLINDFOLD_HOME`, else the current directory if it holds
/// `models/`, else the source tree this binary was built from.
pub fn home() -> PathBuf {
    if let Ok(h) = std::env::var("BLINDFOLD_HOME") {
        return PathBuf::from(h);
    }
    let cwd = PathBuf::from(".");
    if cwd.join("models").join("zoo.json").exists() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A model argument: an existing path, or a zoo name.
pub fn model_path(arg: &str) -> Result<PathBuf> {
    let p = PathBuf::from(arg);
    if p.exists() {
        return Ok(p);
    }
    let z = home().join("models").join(format!("{arg}.onnx"));
    if z.exists() {
        return Ok(z);
    }
    bail!("no model file '{arg}' and no zoo model of that name (see `blindfold zoo`)")
}

/// The bundled MNIST test subset.
pub fn default_data() -> PathBuf {
    home().join("data").join("mnist-test-1k")
}

/// The bundled segmentation test set: 64x64 canvases of digits and their
/// per-pixel masks (class 0 background, class d + 1 digit d).
pub fn default_segmentation_data() -> PathBuf {
    home().join("data").join("mnist-seg-test-100")
}

/// The segmentation model `demo --segment` runs by default (`models/unet.onnx`).
pub const DEFAULT_SEGMENTATION_MODEL: &str = "unet";
