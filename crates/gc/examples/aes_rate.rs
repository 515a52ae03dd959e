//! Raw fixed-key AES rate of the `aes` crate on this machine (blocks per second).
use blindfold_gc::hash::{AesBlock, FixedKeyHash};
use std::time::Instant;

fn main() {
    let h = FixedKeyHash::new();
    for batch in [8usize, 64, 256, 1024] {
        let mut buf = vec![AesBlock::default(); batch];
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_millis() < 300 {
            for _ in 0..100 {
                h.permute_blocks(&mut buf);
            }
            n += 100 * batch as u64;
        }
        println!(
            "batch {batch}: {:.3e} blocks/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
}
