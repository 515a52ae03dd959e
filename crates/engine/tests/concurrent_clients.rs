//! Many clients at once: the servers accept them concurrently, serve them one
//! after another on the peer link, and every answer matches the reference.

use blindfold_core::{FracBits, Prg};
use blindfold_engine::server::LocalCluster;
use blindfold_model::data::load_idx_dir;
use blindfold_model::engine::{argmax_ring, run_plain};
use blindfold_model::load_onnx;
use blindfold_model::quant::quantize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn six_clients_at_once_get_exact_answers() {
    let m = load_onnx(root().join("models/ppml_b.onnx")).unwrap();
    let q = quantize(&m, FracBits::DEFAULT).unwrap();
    let ds = Arc::new(load_idx_dir(&root().join("data/mnist-test-1k")).unwrap());
    let mut rng = Prg::from_seed([11; 16]);
    let cluster = Arc::new(LocalCluster::start(&q, 2, &mut rng).unwrap());
    let q = Arc::new(q);
    let handles: Vec<_> = (0..6)
        .map(|c| {
            let (cluster, ds, q) = (cluster.clone(), ds.clone(), q.clone());
            std::thread::spawn(move || {
                let mut rng = Prg::from_seed([c as u8 + 100; 16]);
                for k in 0..3 {
                    let i = c * 3 + k;
                    let x = ds.image_f32(i);
                    let want = run_plain(&q, &x).unwrap();
                    let a = cluster.query(&x, &mut rng).unwrap();
                    assert_eq!(a.ring, want, "client {c}, digit {i}: not bit-exact");
                    assert_eq!(a.label, argmax_ring(&want));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a client failed");
    }
}
