//! TLS material as loaded (`blindfold_net::TlsIdentity::from_pem`, and a
//! browser port's certificate and key by `tls::browser_server_config`): the CA, a
//! role's certificate chain and its private key, all PEM. The input is split
//! in three at its first two `0x00` bytes (PEM is text, so a NUL never occurs
//! in a real file); the role is picked by the first byte.

use blindfold_net::{TlsIdentity, TlsRole};

pub fn tls_pem(data: &[u8]) {
    let Some((&r, rest)) = data.split_first() else {
        return;
    };
    let role = TlsRole::ALL[r as usize % TlsRole::ALL.len()];
    let mut parts = rest.splitn(3, |&b| b == 0);
    let (ca, cert, key) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if let Ok(id) = TlsIdentity::from_pem(role, ca, cert, key) {
        assert_eq!(id.role(), role);
    }
    // The same certificate and key as a browser port's (`serve --ws-cert`).
    let _ = blindfold_net::tls::browser_server_config(cert, key);
}

/// The fuzz input for `tls_pem` made of real files.
pub fn join_pem(role: u8, ca: &[u8], cert: &[u8], key: &[u8]) -> Vec<u8> {
    let mut v = vec![role];
    v.extend_from_slice(ca);
    v.push(0);
    v.extend_from_slice(cert);
    v.push(0);
    v.extend_from_slice(key);
    v
}
