//! FHE over a transport: a server thread with the model, a client that makes
//! its keys, uploads the evaluation keys and queries twice; results equal the
//! integer reference. A client with keys for another model gets an error.

use blindfold_core::Prg;
use blindfold_fhe::files::Server;
use blindfold_fhe::service::{self, FheClient, ServiceConfig};
use blindfold_fhe::{FheModel, FheQuant, Layout};
use blindfold_net::{Listener, MemoryNetwork};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn model(name: &str) -> blindfold_model::ir::Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../models/{name}.onnx"));
    blindfold_model::load_onnx(p).unwrap()
}

#[test]
fn queries_over_a_transport_match_the_reference() {
    // sok_ecg's latency profile lists 40 x 180 connections (about 30 KB):
    // far wider than the 1 KiB frames the server reads a hello with
    for layout in [Layout::Batch, Layout::Latency] {
        let fm = FheModel::new(&model("sok_ecg"), FheQuant::default(), layout).unwrap();
        assert!(
            layout == Layout::Batch
                || blindfold_fhe::files::profile_to_bytes(&fm.profile()).len() > 4 << 10
        );
        let server = Arc::new(Server::new(fm.clone()).unwrap());
        let net = MemoryNetwork::new();
        let listener = net.listen();
        let addr = listener.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = ServiceConfig {
            verbose: false,
            ..ServiceConfig::default()
        };
        let h = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || service::run(server, listener, cfg, stop))
        };
        let mut rng = Prg::from_seed([4; 16]);
        let mut client =
            FheClient::connect(&net, &addr, Duration::from_secs(10), &mut rng).unwrap();
        for round in 0..2 {
            let xs: Vec<Vec<f32>> = (0..2)
                .map(|i| {
                    (0..180)
                        .map(|j| ((i + j + round) % 10) as f32 / 10.0)
                        .collect()
                })
                .collect();
            let a = client.query(&xs, &mut rng).unwrap();
            assert!(a.noise_budget > 0 && a.upload_bytes > 0 && a.download_bytes > 0);
            for (x, y) in xs.iter().zip(&a.outputs) {
                assert_eq!(*y, fm.program.run(&fm.program.encode_input(x).unwrap()));
            }
        }
        // out-of-range input: refused on the client before anything is sent
        assert!(client.query(&[vec![2.0; 180]], &mut rng).is_err());
        stop.store(true, Ordering::Relaxed);
        drop(client);
        h.join().unwrap().unwrap();
    }
}
