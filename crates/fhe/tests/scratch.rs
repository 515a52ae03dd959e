use blindfold_core::Prg;
use blindfold_fhe::*;
use std::time::Instant;
#[test]
#[ignore]
fn scratch() {
    let name = std::env::var("M").unwrap_or("sok_mnist".into());
    let m = blindfold_model::load_onnx(format!(
        "{}/../../models/{name}.onnx",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let fm = FheModel::new(&m, FheQuant::default(), Layout::Batch).unwrap();
    eprintln!("{}", fm.params.describe());
    let ctx = Contexts::new(&fm.params).unwrap();
    let mut rng = Prg::from_seed([1; 16]);
    let (sk, ek) = keygen(&ctx, &[], &mut rng).unwrap();
    let x: Vec<i64> = fm
        .program
        .encode_input(&vec![0.5f32; fm.program.input_len()])
        .unwrap();
    let t = Instant::now();
    let cts = batch::encrypt(&ctx, &sk, &[x.clone()], fm.program.input_len(), &mut rng).unwrap();
    eprintln!("encrypt {:?}", t.elapsed());
    let t0 = Instant::now();
    let last = std::sync::Mutex::new(Instant::now());
    let names: Vec<String> = fm
        .program
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.kind, n.len))
        .collect();
    let pr = Progress(Box::new(|d, tot| {
        let mut l = last.lock().unwrap();
        let k = (d as usize - 1) % names.len();
        eprintln!("step {d}/{tot} {} {:?}", names[k], l.elapsed());
        *l = Instant::now();
    }));
    let _out = batch::evaluate(&ctx, &ek, &fm.program, cts, &pr).unwrap();
    eprintln!("total {:?}", t0.elapsed());
}

#[test]
#[ignore]
fn square_timing() {
    let m = blindfold_model::load_onnx(format!(
        "{}/../../models/sok_ecg.onnx",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let fm = FheModel::new(&m, FheQuant::default(), Layout::Batch).unwrap();
    let mut p = fm.params.clone();
    p.moduli = params::ciphertext_moduli(&[53, 53, 53, 53], 8192).unwrap();
    let ctx = Contexts::new(&p).unwrap();
    let mut rng = Prg::from_seed([1; 16]);
    let (sk, _ek) = keygen(&ctx, &[], &mut rng).unwrap();
    let x: Vec<i64> = vec![1; 180];
    let cts = batch::encrypt(&ctx, &sk, &[x], 180, &mut rng).unwrap();
    let c = &cts[0][0];
    for _ in 0..3 {
        let t = Instant::now();
        let s = c * c;
        eprintln!("square fresh {:?} {}", t.elapsed(), s.len());
    }
    let t = Instant::now();
    let s = &cts[0][1] * &cts[0][2];
    eprintln!("product {:?} {}", t.elapsed(), s.len());
}
