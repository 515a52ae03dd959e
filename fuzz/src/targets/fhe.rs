//! Non-interactive FHE files (`blindfold_fhe::files`): the profile a server
//! publishes, the client's secret-key file, the evaluation keys a client
//! uploads, and query and result ciphertexts.
//!
//! Each file is `BFFHE`, a kind byte, a version, then a fixed-width bincode
//! body; keys and ciphertexts inside it are the `fhe` crate's protobuf bytes.
//! Key files carry their own BFV parameters (the decoder builds contexts from
//! them); ciphertext files are decoded against the parameters of a real
//! deployment ([`fhe_fixture`]: the zoo model [`FHE_MODEL`] in the batch
//! layout, what `blindfold fhe eval` and `serve --mode fhe` hold).
//!
//! The targets require only that decoding returns, `Ok` or `Err`: the formats
//! allow trailing bytes and the `fhe` crate's protobuf has several encodings
//! per value, so there is no byte-exact round trip to check.

use blindfold_core::Prg;
use blindfold_fhe::files::{self, ClientKeys, ServerKeys};
use blindfold_fhe::{Contexts, FheModel, FheQuant, Layout, Profile, Progress};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The model whose parameters the ciphertext target decodes against, relative
/// to the repository root.
pub const FHE_MODEL: &str = "models/sok_ecg.onnx";

/// Ring degree of the small key seeds ([`small_profile`]).
pub const FHE_SMALL_DEGREE: usize = 32;

/// What the ciphertext target decodes against: the model in the batch layout
/// and its BFV contexts. Built once per process.
pub struct FheFixture {
    pub model: FheModel,
    pub ctx: Contexts,
}

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(FHE_MODEL)
}

/// [`FHE_MODEL`] lowered for FHE in `layout`.
pub fn fhe_model(layout: Layout) -> FheModel {
    let path = model_path();
    let model =
        blindfold_model::load_onnx(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    FheModel::new(&model, FheQuant::default(), layout).expect("the FHE model lowers")
}

pub fn fhe_fixture() -> &'static FheFixture {
    static F: OnceLock<FheFixture> = OnceLock::new();
    F.get_or_init(|| {
        let model = fhe_model(Layout::Batch);
        let ctx = Contexts::new(&model.params).expect("BFV contexts");
        FheFixture { model, ctx }
    })
}

/// `files::profile_from_bytes`: what a client reads from a server.
pub fn fhe_profile(data: &[u8]) {
    let _ = files::profile_from_bytes(data);
}

/// `ClientKeys::from_bytes`: the secret-key file, with the parameters it names
/// (contexts are built from them).
pub fn fhe_secret_key(data: &[u8]) {
    let _ = ClientKeys::from_bytes(data);
}

/// `ServerKeys::from_bytes`: the evaluation keys a server receives from a
/// client (relinearization keys, and the rotation keys of the latency layout),
/// with the parameters they name.
pub fn fhe_eval_key(data: &[u8]) {
    let _ = ServerKeys::from_bytes(data);
}

/// `files::decode_ciphertext_file` as a query (fresh ciphertexts, what a server
/// checks before evaluating) and as a result (what a client decrypts), against
/// the fixture's parameters.
pub fn fhe_ciphertexts(data: &[u8]) {
    let f = fhe_fixture();
    for result in [false, true] {
        let _ = files::decode_ciphertext_file(data, &f.ctx, result);
    }
}

/// `profile` with the ring degree [`FHE_SMALL_DEGREE`] (its primes and moduli,
/// `= 1 mod 2n` for the larger degree, stay valid) and only the rotations that
/// exist at that degree: keys of a few kilobytes instead of megabytes, decoded
/// by the same code, which takes the parameters from the file.
pub fn small_profile(profile: &Profile) -> Profile {
    let mut p = profile.clone();
    p.params.degree = FHE_SMALL_DEGREE;
    p.rotations.retain(|&r| r < FHE_SMALL_DEGREE / 2);
    p
}

/// A query or result file with only the first `keep` ciphertexts of each
/// prime of each group; everything else (header, fingerprint, key id, layout,
/// input count) unchanged. `decode_ciphertext_file` does not check the count
/// against the model, so the trimmed file still decodes, with a real file's
/// ciphertexts, at a fraction of its size.
///
/// The body is bincode with fixed-width integers: fingerprint (16 bytes), key
/// id (16), layout (u32 tag), inputs (u64), then `groups[group][prime][ct]` as
/// nested vectors (u64 lengths) of byte strings.
pub fn trim_ciphertext_file(file: &[u8], keep: usize) -> Vec<u8> {
    fn u64_at(file: &[u8], pos: &mut usize) -> usize {
        let b: [u8; 8] = file[*pos..*pos + 8].try_into().expect("8 bytes");
        *pos += 8;
        u64::from_le_bytes(b) as usize
    }
    let mut pos = 7 + 16 + 16 + 4 + 8;
    let mut out = file[..pos].to_vec();
    let groups = u64_at(file, &mut pos);
    out.extend_from_slice(&(groups as u64).to_le_bytes());
    for _ in 0..groups {
        let primes = u64_at(file, &mut pos);
        out.extend_from_slice(&(primes as u64).to_le_bytes());
        for _ in 0..primes {
            let n = u64_at(file, &mut pos);
            out.extend_from_slice(&(n.min(keep) as u64).to_le_bytes());
            for i in 0..n {
                let start = pos;
                let len = u64_at(file, &mut pos);
                pos += len;
                if i < keep {
                    out.extend_from_slice(&file[start..pos]);
                }
            }
        }
    }
    assert_eq!(pos, file.len(), "a ciphertext file ends after its groups");
    out
}

/// The files of one client of [`FHE_MODEL`] as the crate writes them, from
/// fixed seeds.
pub struct FheFiles {
    pub profile: Vec<u8>,
    pub secret: Vec<u8>,
    pub eval: Vec<u8>,
    pub query: Vec<u8>,
    pub result: Vec<u8>,
}

/// Generate every file of the flow for `model`: profile, keys (seed `[1; 16]`),
/// a query of one input (all `0.5`) and the server's result for it.
pub fn fhe_files(model: &FheModel) -> FheFiles {
    let profile = model.profile();
    let mut prg = Prg::from_seed([1; 16]);
    let (client, secret, eval) = files::generate(&profile, &mut prg).expect("keys");
    let query = client
        .encrypt(&[vec![0.5f32; profile.input_len]], &mut prg)
        .expect("query");
    let (server_keys, _, _) = ServerKeys::from_bytes(&eval).expect("evaluation keys decode");
    let result = files::Server::new(model.clone())
        .expect("server")
        .evaluate(&server_keys, &query, &Progress::none())
        .expect("evaluation");
    FheFiles {
        profile: files::profile_to_bytes(&profile),
        secret,
        eval,
        query,
        result,
    }
}
