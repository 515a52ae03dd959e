//! Pairing the servers: P1 dials P0 twice per attempt (an offline and an online
//! link, both greeting with the attempt's random nonce); P0 pairs only the two
//! links of one attempt, and keeps a bounded number of unpaired greetings.
//!
//! ```text
//!   P1: attempt ← 16 random bytes
//!       dial ── Hello::Link {Offline, attempt} ──▶ P0 ┐ pair by attempt,
//!       dial ── Hello::Link {Online,  attempt} ──▶ P0 ┘ then setup on the offline link
//! ```

use super::wire::{Hello, LinkKind};
use crate::share::PairingKey;
use crate::{EngineError, Result};
use blindfold_core::Prg;
use blindfold_net::{Channel, Connection, Transport};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long P1 tries to reach P0 per dial.
const DIAL: Duration = Duration::from_millis(500);
/// Unpaired greetings P0 keeps per link kind.
const MAX_UNPAIRED: usize = 8;

/// A link greeting received by P0.
pub(super) struct PeerLink<C> {
    pub kind: LinkKind,
    pub attempt: [u8; 16],
    pub ch: C,
}

/// P0's unpaired links, by attempt.
pub(super) struct Pairing<C> {
    offline: HashMap<[u8; 16], C>,
    online: HashMap<[u8; 16], C>,
}

impl<C> Default for Pairing<C> {
    fn default() -> Self {
        Pairing {
            offline: HashMap::new(),
            online: HashMap::new(),
        }
    }
}

impl<C> Pairing<C> {
    /// Keep `link` (the latest per attempt and kind); the offline and online
    /// links of its attempt once both have come.
    pub fn offer(&mut self, link: PeerLink<C>) -> Option<(C, C)> {
        let a = link.attempt;
        match link.kind {
            LinkKind::Offline => self.offline.insert(a, link.ch),
            LinkKind::Online => self.online.insert(a, link.ch),
        };
        // Bound what unpaired (possibly bogus) greetings can hold.
        for m in [&mut self.offline, &mut self.online] {
            if m.len() > MAX_UNPAIRED {
                m.retain(|k, _| *k == a);
            }
        }
        if self.offline.contains_key(&a) && self.online.contains_key(&a) {
            match (self.offline.remove(&a), self.online.remove(&a)) {
                (Some(off), Some(on)) => return Some((off, on)),
                _ => return None,
            }
        }
        None
    }

    /// Drop every unpaired link.
    pub fn clear(&mut self) {
        self.offline.clear();
        self.online.clear();
    }
}

/// How long P1 gives P0 to complete the pairing proof of one link.
const PROVE: Duration = Duration::from_secs(10);

/// P1: open the offline and the online link of one attempt, proving the
/// split's pairing secret on each (and checking P0's proof). Over TLS the
/// transport has already checked P0's certificate; a certificate of another
/// role is refused here too.
pub(super) fn dial<T: Transport>(
    transport: &T,
    peer: &str,
    attempt: [u8; 16],
    key: &PairingKey,
    rng: &mut Prg,
) -> Result<(T::Conn, T::Conn)> {
    let mut one = |kind| -> Result<T::Conn> {
        let mut ch = transport.connect(peer, Instant::now() + DIAL)?;
        if let Some(id) = ch.peer_identity() {
            if id != "p0" {
                return Err(EngineError::WrongIdentity {
                    what: "peer link",
                    got: Some(id.to_string()),
                    want: "p0",
                });
            }
        }
        ch.set_deadline(Some(Instant::now() + PROVE))?;
        ch.send_vec(Hello::Link { kind, attempt }.encode())?;
        ch.flush()?;
        super::pairing::prove_p1(&mut ch, key, kind, &attempt, rng)?;
        ch.set_deadline(None)?;
        Ok(ch)
    };
    let off = one(LinkKind::Offline)?;
    let on = one(LinkKind::Online)?;
    Ok((off, on))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: LinkKind, a: u8, ch: u32) -> PeerLink<u32> {
        PeerLink {
            kind,
            attempt: [a; 16],
            ch,
        }
    }

    #[test]
    fn only_links_of_one_attempt_pair() {
        let mut p = Pairing::default();
        assert_eq!(p.offer(link(LinkKind::Offline, 1, 10)), None);
        assert_eq!(p.offer(link(LinkKind::Online, 2, 20)), None);
        // A newer offline link of attempt 1 replaces the older one.
        assert_eq!(p.offer(link(LinkKind::Offline, 1, 11)), None);
        assert_eq!(p.offer(link(LinkKind::Online, 1, 12)), Some((11, 12)));
        assert_eq!(p.offer(link(LinkKind::Offline, 2, 21)), Some((21, 20)));
        // Many bogus greetings are bounded; the latest still pairs.
        for a in 0..50 {
            assert_eq!(p.offer(link(LinkKind::Online, 100 + a, 0)), None);
        }
        assert!(p.online.len() <= MAX_UNPAIRED);
        assert_eq!(p.offer(link(LinkKind::Offline, 149, 7)), Some((7, 0)));
    }
}
