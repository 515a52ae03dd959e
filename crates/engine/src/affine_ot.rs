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
        self.scale[e / (self.elements / self.scale.len()).max(1)]
    }
}

/// Every step's material, both directions batched and run at once. `ots`: our sender (we hold, the peer queries) and receiver (we query,
/// the peer holds) sessions, present exactly when that direction runs.
pub fn preprocess(
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
    let (snd, rcv) = ots;
    // The OT inputs and choices are as secret as the scales and the masks.
    let xs: Zeroizing<Vec<u64>> = Zeroizing::new(if snd.is_some() {
        jobs.iter()
            .flat_map(|j| (0..j.elements).map(move |e| j.scale_of(e)))
            .flat_map(|v| (0..64).map(move |k| v << k))
            .collect()
    } else {
        Vec::new()
    });
    let choices: Zeroizing<Vec<bool>> = Zeroizing::new(
        masks
            .iter()
            .flatten()
            .flat_map(|&v| (0..64).map(move |k| (v >> k) & 1 == 1))
            .collect(),
    );
    let (sent, got) =
        crate::binary_ot::symmetric_cot(ch, snd.as_mut(), rcv.as_mut(), &xs, &choices)?;
    let (sent, got) = (
        (!sent.is_empty()).then_some(sent),
        (!got.is_empty()).then_some(got),
    );
    let sum64 = |v: &[u64], e: usize| -> u64 {
        v[64 * e..64 * (e + 1)]
            .iter()
            .fold(0u64, |a, &x| a.wrapping_add(x))
    };
    debug_assert!(sent.as_ref().is_none_or(|v| v.len() == 64 * total));
    debug_assert!(got.as_ref().is_none_or(|v| v.len() == 64 * total));
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
