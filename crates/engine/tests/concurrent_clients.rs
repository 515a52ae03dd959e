//! Many clients at once: the servers accept them concurrently, serve them one
//! after another on the peer link, and every answer matches the reference.

mod common;

use blindfold_core::Prg;
use blindfold_engine::serve::LocalCluster;
use blindfold_model::engine::{argmax_ring, run_plain};
use std::sync::Arc;

#[test]
fn six_clients_at_once_get_exact_answers() {
    let q = common::model("ppml_b");
    let ds = Arc::new(common::digits());
    let mut rng = Prg::from_seed([11; 16]);
    let cluster = Arc::new(LocalCluster::start(&q, 2, &mut rng).unwrap());
    let q = Arc::new(q);
    let handles: Vec<_> = (0..6)
        .map(|c| {
            let (cluster, ds, q) = (cluster.clone(), ds.clone(), q.clone());
            std::thread::spawn(move || {
                for k in 0..3 {
                    let i = c * 3 + k;
                    let x = ds.image_f32(i);
                    let want = run_plain(&q, &x).unwrap();
                    let a = cluster.query(&x).unwrap();
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
