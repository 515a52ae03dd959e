//! Time the individual RLWE steps (release build): where do milliseconds go?
use std::time::Instant;

use blindfold_core::Prg;
use blindfold_he::rlwe::flood_bits;
use blindfold_he::ResponseFlood;
use blindfold_he::{HeParams, Plaintext, SecretKey, SeededCiphertext};

fn t<F: FnMut() -> R, R>(name: &str, reps: usize, mut f: F) -> R {
    let mut r = f();
    let s = Instant::now();
    for _ in 0..reps {
        r = f();
    }
    println!(
        "{name:>28}: {:8.3} ms",
        s.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    r
}

fn main() {
    let params = HeParams::new().unwrap();
    let mut rng = Prg::from_seed([1; 16]);
    let sk = t("keygen", 5, || {
        SecretKey::generate(&params, &mut Prg::from_seed([2; 16])).unwrap()
    });
    let pk = t("public key", 5, || {
        sk.public_key(&mut Prg::from_seed([3; 16])).unwrap()
    });
    let pk_bytes = pk.to_bytes();
    t("read public key (checked)", 5, || {
        blindfold_he::PublicKey::from_bytes(&params, &pk_bytes).unwrap()
    });
    let m = rng.gen_u64s(8192);
    let w = rng.gen_u64s(8192);
    let pt = t("plaintext (weights)", 5, || {
        Plaintext::new(&params, &w, 8192).unwrap()
    });
    let ct = t("encrypt", 10, || sk.encrypt(&m, &mut rng).unwrap());
    let mut bytes = Vec::new();
    t("write query ct", 10, || {
        bytes.clear();
        ct.write(&params, &mut bytes)
    });
    let back = t("read query ct (checked)", 10, || {
        SeededCiphertext::from_bytes(&params, &bytes).unwrap()
    });
    let full = t("expand (NTT c0 + a)", 10, || back.expand(&params).unwrap());
    let prod = t("mul_plain", 10, || full.mul_plain(&pt));
    let neg = rng.gen_u64s(8192);
    let mut p2 = prod.clone();
    t("add_plain", 10, || p2.add_plain(&params, &neg).unwrap());
    t("encrypt_zero", 10, || pk.encrypt_zero(&mut rng).unwrap());
    let k = flood_bits(8192, 1);
    let r = t("rerandomize", 10, || {
        let mut c = prod.clone();
        c.rerandomize(&pk, k, &mut rng).unwrap();
        c
    });
    let sw = t("mod switch", 10, || {
        let mut c = r.clone();
        c.mod_switch_to_response(&params).unwrap();
        c
    });
    let pos: Vec<usize> = (0..8192).step_by(8).collect();
    let tm = rng.gen_u64s(pos.len());
    let flood = ResponseFlood::for_products(&params, 8192, 1).unwrap();
    t("finish_response (fused)", 10, || {
        prod.clone()
            .finish_response(&pk, &pos, &tm, &flood, &mut rng)
            .unwrap()
    });
    let sp = t("sparsify", 10, || sw.sparsify(&pos).unwrap());
    t("decrypt_sparse", 10, || sk.decrypt_sparse(&sp).unwrap());
    t("decrypt full level", 10, || sk.decrypt(&full).unwrap());
    t("prg 32k u64", 10, || rng.gen_u64s(32768));
}
