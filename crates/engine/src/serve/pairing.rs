//! Authenticating a peer link by the split's pairing secret, which only the two
//! share files hold: each side proves it with an HMAC over both parties' fresh
//! nonces, so nothing a client (or an observer of the link) can see lets it
//! pose as either server, and a recorded exchange does not replay.
//!
//! ```text
//!   P1 ── Hello::Link {kind, attempt} ──────────────────────────▶ P0
//!   P1 ◀── Challenge {n0} ─────────────────────────────────────── P0
//!   P1 ── Proof {n1, HMAC_k("P1" | kind | attempt | n0 | n1)} ──▶ P0  check
//!   P1 ◀── Confirm {HMAC_k("P0" | kind | attempt | n0 | n1)} ──── P0  check
//! ```
//!
//! P0 runs its side on the connection's own thread, under the greeting's
//! deadline and the tiny greeting frame limit: only a link that has proved the
//! secret reaches the leader. Over TLS the link must also carry P1's
//! certificate (checked before the challenge).

use super::wire::{LinkAuth, LinkKind};
use crate::share::PairingKey;
use crate::{EngineError, Result};
use blindfold_core::PartyId;
use blindfold_net::Connection;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"blindfold peer link v1";

fn mac(
    key: &PairingKey,
    prover: PartyId,
    kind: LinkKind,
    attempt: &[u8; 16],
    n0: &[u8; 32],
    n1: &[u8; 32],
) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(&key.0).expect("HMAC takes any key length");
    m.update(DOMAIN);
    m.update(&[prover.index() as u8, kind as u8]);
    m.update(attempt);
    m.update(n0);
    m.update(n1);
    m
}

fn send<C: Connection>(ch: &mut C, m: LinkAuth) -> Result<()> {
    ch.send_vec(m.encode())?;
    ch.flush()?;
    Ok(())
}

fn recv<C: Connection>(ch: &mut C) -> Result<LinkAuth> {
    Ok(LinkAuth::decode(&ch.recv()?)?)
}

/// P0's side, after P1's greeting.
pub(super) fn verify_p1<C: Connection>(
    ch: &mut C,
    key: &PairingKey,
    kind: LinkKind,
    attempt: &[u8; 16],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    let mut n0 = [0u8; 32];
    rng.fill_bytes(&mut n0);
    send(ch, LinkAuth::Challenge { nonce: n0 })?;
    let LinkAuth::Proof {
        nonce: n1,
        mac: tag,
    } = recv(ch)?
    else {
        return Err(EngineError::PairingRefused("expected a proof"));
    };
    mac(key, PartyId::P1, kind, attempt, &n0, &n1)
        .verify_slice(&tag)
        .map_err(|_| EngineError::PairingRefused("wrong pairing proof (not this split's P1)"))?;
    let confirm = mac(key, PartyId::P0, kind, attempt, &n0, &n1).finalize();
    send(
        ch,
        LinkAuth::Confirm {
            mac: confirm.into_bytes().into(),
        },
    )
}

/// P1's side, after sending its greeting.
pub(super) fn prove_p1<C: Connection>(
    ch: &mut C,
    key: &PairingKey,
    kind: LinkKind,
    attempt: &[u8; 16],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    let LinkAuth::Challenge { nonce: n0 } = recv(ch)? else {
        return Err(EngineError::PairingRefused("expected a challenge"));
    };
    let mut n1 = [0u8; 32];
    rng.fill_bytes(&mut n1);
    let tag = mac(key, PartyId::P1, kind, attempt, &n0, &n1).finalize();
    send(
        ch,
        LinkAuth::Proof {
            nonce: n1,
            mac: tag.into_bytes().into(),
        },
    )?;
    let LinkAuth::Confirm { mac: tag } = recv(ch)? else {
        return Err(EngineError::PairingRefused("expected a confirmation"));
    };
    mac(key, PartyId::P0, kind, attempt, &n0, &n1)
        .verify_slice(&tag)
        .map_err(|_| EngineError::PairingRefused("wrong pairing proof (not this split's P0)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::Prg;
    use blindfold_net::{Listener, MemoryNetwork, Transport};
    use std::time::{Duration, Instant};

    fn run(k0: PairingKey, k1: PairingKey) -> (Result<()>, Result<()>) {
        let net = MemoryNetwork::new();
        let l = net.listen();
        let addr = l.local_addr();
        let t = std::thread::spawn(move || {
            let mut ch = l
                .accept(Instant::now() + Duration::from_secs(5))
                .unwrap()
                .unwrap();
            verify_p1(
                &mut ch,
                &k0,
                LinkKind::Offline,
                &[7; 16],
                &mut Prg::from_seed([1; 16]),
            )
        });
        let mut ch = net
            .connect(&addr, Instant::now() + Duration::from_secs(5))
            .unwrap();
        ch.set_deadline(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        let p1 = prove_p1(
            &mut ch,
            &k1,
            LinkKind::Offline,
            &[7; 16],
            &mut Prg::from_seed([2; 16]),
        );
        (t.join().unwrap(), p1)
    }

    #[test]
    fn the_same_secret_pairs_another_does_not() {
        let (a, b) = run(PairingKey([5; 32]), PairingKey([5; 32]));
        assert!(a.is_ok() && b.is_ok());
        let (a, b) = run(PairingKey([5; 32]), PairingKey([6; 32]));
        assert!(matches!(a, Err(EngineError::PairingRefused(_))), "{a:?}");
        assert!(b.is_err());
    }
}
