//! Serving messages (`blindfold_engine::serve::wire`), one target per decoder.
//!
//! The format has one encoding per message: fixed-width fields, explicit
//! counts, the whole frame consumed, no optional fields. So every message that
//! decodes must encode back to exactly the input bytes. The comparison is on
//! bytes, not values: a `Reply` may carry NaN costs, which `==` refuses.

use blindfold_engine::serve::wire::{
    CsGo, CsInfo, CsRequest, Hello, Job, JobAnswer, LinkAuth, ModelInfo, PeerHello, Query, Reply,
    WireResult,
};

fn round_trip<M>(data: &[u8], decode: fn(&[u8]) -> WireResult<M>, encode: fn(&M) -> Vec<u8>) {
    if let Ok(m) = decode(data) {
        assert_eq!(encode(&m), data, "re-encoding differs");
    }
}

/// `Hello::decode`: the first frame of every connection to a server.
pub fn wire_hello(data: &[u8]) {
    round_trip(data, Hello::decode, Hello::encode);
}

/// `ModelInfo::decode`: what a client reads from a server.
pub fn wire_model_info(data: &[u8]) {
    round_trip(data, ModelInfo::decode, ModelInfo::encode);
    if let Ok(m) = ModelInfo::decode(data) {
        // The input length a client derives must not overflow.
        let _ = m.input_len();
    }
}

/// `Query::decode`: a client's query at a server.
pub fn wire_query(data: &[u8]) {
    round_trip(data, Query::decode, Query::encode);
}

/// `Reply::decode`: a server's answer at a client.
pub fn wire_reply(data: &[u8]) {
    round_trip(data, Reply::decode, Reply::encode);
}

/// `Job::decode`: P0's instruction at P1.
pub fn wire_job(data: &[u8]) {
    round_trip(data, Job::decode, Job::encode);
}

/// `JobAnswer::decode`: P1's answer at P0.
pub fn wire_job_answer(data: &[u8]) {
    round_trip(data, JobAnswer::decode, JobAnswer::encode);
}

/// `PeerHello::decode`: the first message between the servers.
pub fn wire_peer_hello(data: &[u8]) {
    round_trip(data, PeerHello::decode, PeerHello::encode);
}

/// `LinkAuth::decode`: the pairing proof on a new peer link (read by P0 from a
/// stranger before it has authenticated).
pub fn wire_link_auth(data: &[u8]) {
    round_trip(data, LinkAuth::decode, LinkAuth::encode);
}

/// `CsInfo::decode`: what a client-server client reads from its server, and
/// the weightless program inside it (the share-file decoder, validated).
pub fn wire_cs_info(data: &[u8]) {
    round_trip(data, CsInfo::decode, CsInfo::encode);
    if let Ok(info) = CsInfo::decode(data) {
        let _ = blindfold_engine::Roles::from_wire(info.roles);
        let _ = blindfold_engine::ModelShare::from_bytes(&info.program);
    }
}

/// `CsRequest::decode` (what a client-server server reads from a client
/// between queries) and `CsGo::decode` (the go-ahead or refusal the client reads).
pub fn wire_cs_request(data: &[u8]) {
    round_trip(data, CsRequest::decode, CsRequest::encode);
    if let Ok(Ok(())) = CsGo::decode(data) {
        assert_eq!(CsGo::encode(), data, "re-encoding differs");
    }
}
