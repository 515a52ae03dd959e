//! The fuzz targets, one function per decoder of outside data.
//!
//! A target returns quietly on anything the decoder refuses: an error is the
//! right answer to a malformed input. It panics (a finding) when the decoder
//! panics, or when a property of the format fails.

mod cmp;
mod data;
mod fhe;
mod he;
mod net;
mod onnx;
mod share;
mod tls;
mod wire;
mod ws;

pub use cmp::{
    cmp_peer, cmp_peer_run, fuzz_inputs, fuzz_op, fuzz_role, script, ScriptChannel, FUZZ_ELEMENTS,
    FUZZ_LPN, FUZZ_SEED,
};
pub use data::{idx, npy, png};
pub use fhe::{
    fhe_ciphertexts, fhe_eval_key, fhe_files, fhe_fixture, fhe_model, fhe_profile, fhe_secret_key,
    small_profile, trim_ciphertext_file, FheFiles, FheFixture, FHE_MODEL, FHE_SMALL_DEGREE,
};
pub use he::{
    fixture, he_ciphertext, he_public_key, he_query, he_response, he_sparse_ciphertext, HeFixture,
    FUZZ_DEGREE,
};
pub use net::{net_frames, ot_base};
pub use onnx::{join_external, onnx, onnx_external, split_external, EXTERNAL_FILE};
pub use share::share_file;
pub use tls::{join_pem, tls_pem};
pub use wire::{
    wire_cs_info, wire_cs_request, wire_hello, wire_job, wire_job_answer, wire_link_auth,
    wire_model_info, wire_peer_hello, wire_query, wire_reply,
};
pub use ws::ws_client;
