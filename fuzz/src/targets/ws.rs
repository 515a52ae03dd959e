//! The WebSocket bridge's reading of a browser's bytes (`net::ws`).

/// A request head, then (for an upgrade) frames: no panic, and the payload
/// never exceeds the input.
pub fn ws_client(data: &[u8]) {
    if let Ok(got) = blindfold_net::ws::decode_client_bytes(data) {
        assert!(got.upgrade || got.payload.is_empty());
        assert!(got.payload.len() <= data.len());
    }
}
