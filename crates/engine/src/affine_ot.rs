//! Preprocessing of per-channel affine maps with secret coefficients
//! (`y[c, ...] = s[c]·x[c, ...] + t[c]`: a batch normalization that could not
//! be folded into a linear layer, e.g. after a pool, a sign or a binarized
//! layer) by OT multiplication (Gilboa), in every deployment.
//!
//! The material is the linear layers' (`R`, `M`, `T`; the online phase is
//! theirs): for each direction in which the querier's mask `R` meets the
//! holder's scale share `s`, `M + T = s ∘ R`. Per element, the holder is the
//! correlated-OT sender with inputs `s[c(e)] << k` and the querier the receiver
//! with the bits of `R[e]` as choices, `k < 64`:
//! `Σ_k (r_k + R_k·(s << k)) − Σ_k r_k = s·R`. The querier keeps
//! `M = Σ_k received`, the holder `T = −Σ_k r_k`. 64 OTs, 24 bytes each way,
//! per element and direction: cheap for the few channels of a classifier's last
//! batch normalization, heavy for a normalization of a large feature map.

use crate::Result;
use blindfold_core::PartyId;
use blindfold_he::{DirectedShares, MaskShares};
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// One affine step: its element count and this party's scale shares (one per
/// channel; element `e` is in channel `e / (elements / channels)`).
pub struct AffineJob<'a> {
    pub elements: usize,
    pub scale: &'a [u64],
}

impl AffineJob<'_> {
    fn scale_of(&self, e: usize) -> u64 {
        self.scale[e / (self.elements / self.scale.len())]
    }
}

/// Every step's material, both directions batched (the one in which P0 sends
/// first). `ots`: our sender (we hold, the peer queries) and receiver (we query,
/// the peer holds) sessions, present exactly when that direction runs.
pub fn preprocess(
    party: PartyId,
    ch: &mut impl Channel,
    ots: &mut (Option<CotSender>, Option<CotReceiver>),
    i_query: bool,
    i_hold: bool,
    jobs: &[AffineJob<'_>],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<DirectedShares>> {
    let masks: Vec<Vec<u64>> = jobs
        .iter()
        .map(|j| {
            if i_query {
                (0..j.elements).map(|_| rng.next_u64()).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    let total: usize = jobs.iter().map(|j| j.elements).sum();
    let send = |ch: &mut _, s: &mut CotSender| -> Result<Zeroizing<Vec<u64>>> {
        let xs: Zeroizing<Vec<u64>> = Zeroizing::new(
            jobs.iter()
                .flat_map(|j| (0..j.elements).map(move |e| j.scale_of(e)))
                .flat_map(|v| (0..64).map(move |k| v << k))
                .collect(),
        );
        Ok(Zeroizing::new(s.send_correlated_u64(ch, &xs)?))
    };
    let receive = |ch: &mut _, r: &mut CotReceiver| -> Result<Zeroizing<Vec<u64>>> {
        let choices: Zeroizing<Vec<bool>> = Zeroizing::new(
            masks
                .iter()
                .flatten()
                .flat_map(|&v| (0..64).map(move |k| (v >> k) & 1 == 1))
                .collect(),
        );
        Ok(Zeroizing::new(r.receive_correlated_u64(ch, &choices)?))
    };
    let (mut sent, mut got) = (None, None);
    let (snd, rcv) = ots;
    if party == PartyId::P0 {
        if let Some(s) = snd.as_mut() {
            sent = Some(send(ch, s)?);
        }
        if let Some(r) = rcv.as_mut() {
            got = Some(receive(ch, r)?);
        }
    } else {
        if let Some(r) = rcv.as_mut() {
            got = Some(receive(ch, r)?);
        }
        if let Some(s) = snd.as_mut() {
            sent = Some(send(ch, s)?);
        }
    }
    let sum64 = |v: &[u64], e: usize| -> u64 {
        v[64 * e..64 * (e + 1)]
            .iter()
            .fold(0u64, |a, &x| a.wrapping_add(x))
    };
    debug_assert!(sent.as_ref().is_none_or(|v| v.len() == 64 * total));
    let mut out = Vec::with_capacity(jobs.len());
    let mut at = 0;
    for (j, r) in jobs.iter().zip(masks) {
        let range = at..at + j.elements;
        at += j.elements;
        let m: Vec<u64> = range
            .clone()
            .map(|e| got.as_ref().map_or(0, |g| sum64(g, e)))
            .collect();
        let t: Vec<u64> = range
            .map(|e| sent.as_ref().map_or(0, |s| sum64(s, e).wrapping_neg()))
            .collect();
        out.push(DirectedShares {
            mask: i_query.then(|| MaskShares { r, m }),
            t: i_hold.then_some(t),
        });
    }
    Ok(out)
}
