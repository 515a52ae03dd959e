//! Preprocessing of binarized dense layers by correlated oblivious transfers
//! (two-server mode; DESIGN section 7).
//!
//! A binarized layer's weights are `±1`, additively shared as `W = W0 + W1`
//! like any weight. Bit 1 of the shares gives a second, multiplicative sharing
//! for free: `±1` is `...01` or `...11`, exactly one share is odd so no carry
//! reaches bit 1, hence `bit1(W0) ⊕ bit1(W1) = bit1(W)` and, with
//! `σb = 1 − 2·bit1(Wb)`, `W = σ0·σ1` element-wise. Each party computes its `σb`
//! from its own share; nothing new is stored or revealed.
//!
//! The material is the same as the homomorphic preprocessing's (so the online
//! phase is unchanged): party b draws its mask `Rb` and needs a share of
//! `W0·R1 + W1·R0`. It gets a share of `W·(R0 + R1)` from two batches of
//! additively correlated OTs (Gilboa), one per direction, and subtracts
//! `Wb·Rb`, which it computes alone:
//!
//! ```text
//!   sender (mask R, signs σ_s)                  receiver (signs σ_r = 1 − 2c)
//!   u_ij = σ_s,ij · R_j, correlation 2·u_ij      choice bits c_ij
//!            ◀──── IKNP extension (16 B/OT) ──────
//!            ───── correction (8 B/OT) ──────────▶
//!   gets r_ij                                    gets r_ij + c_ij·2u_ij
//!   share  Σ_j (u_ij + r_ij)                     share  −Σ_j (r_ij + c_ij·2u_ij)
//!   (sum: Σ_j (1 − 2c_ij)·u_ij = Σ_j σ_r,ij σ_s,ij R_j = (W·R)_i; both
//!   shares uniform, the pads r being uniform)
//! ```
//!
//! One OT per weight and direction: 24 bytes each way per weight, against a
//! few ciphertexts per layer for the homomorphic path. Semi-honest, like the
//! rest of the engine: the OTs hide the sender's `u` (masked by the receiver's
//! view of the random OT) and the receiver's choice bits (uniform: bit 1 of a
//! uniform share).

use crate::Result;
use blindfold_he::{DirectedShares, MaskShares};
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// OTs per slice of [`symmetric_cot`]: each party queues at most this many
/// OTs' IKNP columns (16 MiB) and corrections (8 MiB) before reading the
/// peer's, far inside the transport's write queue (no deadlock when both send
/// at once) and its frame limit.
pub const SLICE: usize = 1 << 20;

/// Our sender's pads and our receiver's outputs (secret, zeroized on drop).
pub type CotOutputs = (Zeroizing<Vec<u64>>, Zeroizing<Vec<u64>>);

/// Both directions of additively correlated OT at once: as receiver with
/// `choices` (when we have a receiver session) and as sender of `xs` (when we
/// have a sender session), slice by slice: our receiver's extension first, then
/// our sender's answer, then our receiver's corrections. Each flight is sent
/// before the matching receive on both sides, so neither party waits on the
/// other. Returns (our sender's pads `r`, our receiver's `r + c·x`); a missing
/// session gives an empty vector. Both parties' sessions must mirror each
/// other (one direction each way, or one direction only) and agree on the
/// lengths.
pub fn symmetric_cot(
    ch: &mut impl Channel,
    sender: Option<&mut CotSender>,
    receiver: Option<&mut CotReceiver>,
    xs: &[u64],
    choices: &[bool],
) -> Result<CotOutputs> {
    symmetric_cot_sliced(ch, sender, receiver, xs, choices, SLICE)
}

/// [`symmetric_cot`] with slices of `slice` OTs.
fn symmetric_cot_sliced(
    ch: &mut impl Channel,
    mut sender: Option<&mut CotSender>,
    mut receiver: Option<&mut CotReceiver>,
    xs: &[u64],
    choices: &[bool],
    slice: usize,
) -> Result<CotOutputs> {
    let mut sent = Zeroizing::new(Vec::with_capacity(if sender.is_some() {
        xs.len()
    } else {
        0
    }));
    let mut got = Zeroizing::new(Vec::with_capacity(if receiver.is_some() {
        choices.len()
    } else {
        0
    }));
    let slices = xs.len().max(choices.len()).div_ceil(slice);
    for k in 0..slices {
        let part = |n: usize| (k * slice).min(n)..((k + 1) * slice).min(n);
        let c = &choices[part(choices.len())];
        let h = match receiver.as_deref_mut() {
            Some(r) => Some(Zeroizing::new(r.receive_random(ch, c)?)),
            None => None,
        };
        if let Some(s) = sender.as_deref_mut() {
            sent.extend(Zeroizing::new(s.send_correlated_u64(ch, &xs[part(xs.len())])?).iter());
        }
        if let Some(h) = h {
            let d = Zeroizing::new(ch.recv_u64s(c.len())?);
            got.extend(
                h.iter().zip(d.iter()).zip(c).map(|((k, &di), &b)| {
                    (k.0 as u64).wrapping_sub(di & 0u64.wrapping_sub(b as u64))
                }),
            );
        }
    }
    Ok((sent, got))
}

/// One binarized dense layer: this party's additive weight share
/// (`[outputs, inputs]`, row-major).
pub struct BinaryLayerJob<'a> {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: &'a [u64],
}

/// `σb` as a choice bit: bit 1 of the share (`σb = 1 − 2·bit`).
fn sign_bit(w: u64) -> bool {
    (w >> 1) & 1 == 1
}

/// Both directions' OTs for every layer in one batch each, returning each
/// layer's material: `R` and `M = share(W·R) − Wb·Rb`, `T = 0`. Both parties
/// call it the same way (the schedule is symmetric).
pub fn preprocess(
    ch: &mut impl Channel,
    sender: &mut CotSender,
    receiver: &mut CotReceiver,
    layers: &[BinaryLayerJob<'_>],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<DirectedShares>> {
    let masks: Vec<Vec<u64>> = layers
        .iter()
        .map(|l| (0..l.inputs).map(|_| rng.next_u64()).collect())
        .collect();
    // The OT inputs are as secret as the masks and the weight shares.
    let mut u = Zeroizing::new(Vec::new());
    let mut choices = Zeroizing::new(Vec::new());
    for (l, r) in layers.iter().zip(&masks) {
        for row in l.weight.chunks_exact(l.inputs) {
            for (&w, &rj) in row.iter().zip(r) {
                let c = sign_bit(w);
                u.push(if c { rj.wrapping_neg() } else { rj });
                choices.push(c);
            }
        }
    }
    // The sender's correlation is 2u, so that σ_r·u = u − c·(2u) and both
    // shares of it, Σ(u + r) and −Σ(r + c·2u), are uniform in every bit.
    let u2: Zeroizing<Vec<u64>> = Zeroizing::new(u.iter().map(|v| v.wrapping_mul(2)).collect());
    let (sent, got) = symmetric_cot(ch, Some(sender), Some(receiver), &u2, &choices)?;
    let mut out = Vec::with_capacity(layers.len());
    let mut at = 0;
    for (l, r) in layers.iter().zip(masks) {
        let own = Zeroizing::new(blindfold_model::kernels::dense(
            l.inputs, l.outputs, &r, l.weight,
        ));
        let m: Vec<u64> = own
            .iter()
            .enumerate()
            .map(|(o, &mine)| {
                let span = at + o * l.inputs..at + (o + 1) * l.inputs;
                span.fold(0u64, |acc, k| {
                    acc.wrapping_add(u[k])
                        .wrapping_add(sent[k])
                        .wrapping_sub(got[k])
                })
                .wrapping_sub(mine)
            })
            .collect();
        at += l.inputs * l.outputs;
        out.push(DirectedShares {
            mask: Some(MaskShares { r, m }),
            t: Some(vec![0; l.outputs]),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::{Block, Prg};
    use blindfold_net::MemoryChannel;

    /// Several slices, both directions at once, one direction only: the
    /// receiver gets `r + c·x` for the sender's `r`.
    #[test]
    fn symmetric_cot_in_slices() {
        let n = 2_500;
        let mut g = Prg::from_seed([4; 16]);
        let xs0: Vec<u64> = (0..n).map(|_| g.gen_u64()).collect();
        let xs1: Vec<u64> = (0..n).map(|_| g.gen_u64()).collect();
        let c0: Vec<bool> = (0..n).map(|_| g.gen_u64() & 1 == 1).collect();
        let c1: Vec<bool> = (0..n).map(|_| g.gen_u64() & 1 == 1).collect();
        for both in [true, false] {
            let (mut a, mut b) = MemoryChannel::pair();
            let (xs1c, c1c) = (xs1.clone(), c1.clone());
            let t = std::thread::spawn(move || {
                let mut rng = Prg::from_seed([9; 16]);
                let mut recv = CotReceiver::setup(&mut b, &mut rng).unwrap();
                let mut send = both.then(|| CotSender::setup(&mut b, Block(5), &mut rng).unwrap());
                symmetric_cot_sliced(&mut b, send.as_mut(), Some(&mut recv), &xs1c, &c1c, 1000)
                    .unwrap()
            });
            let mut rng = Prg::from_seed([8; 16]);
            let mut send = CotSender::setup(&mut a, Block(6), &mut rng).unwrap();
            let mut recv = both.then(|| CotReceiver::setup(&mut a, &mut rng).unwrap());
            let empty = Vec::new();
            let (s0, g0) = symmetric_cot_sliced(
                &mut a,
                Some(&mut send),
                recv.as_mut(),
                &xs0,
                if both { &c0 } else { &empty },
                1000,
            )
            .unwrap();
            let (s1, g1) = t.join().unwrap();
            for i in 0..n {
                let want = s0[i].wrapping_add(if c1[i] { xs0[i] } else { 0 });
                assert_eq!(g1[i], want, "P1 receives, OT {i}");
            }
            if both {
                for i in 0..n {
                    let want = s1[i].wrapping_add(if c0[i] { xs1[i] } else { 0 });
                    assert_eq!(g0[i], want, "P0 receives, OT {i}");
                }
            } else {
                assert!(g0.is_empty() && s1.is_empty());
            }
        }
    }

    /// Both parties on two threads, fresh IKNP sessions both ways; the
    /// material satisfies `M0 + T0 + M1 + T1 = W0·R1 + W1·R0` for `±1` weights
    /// shared at random, what the online phase needs.
    #[test]
    fn material_is_the_cross_terms() {
        let (inputs, outputs) = (37, 5);
        let mut g = Prg::from_seed([3; 16]);
        let w: Vec<u64> = (0..inputs * outputs)
            .map(|_| if g.gen_u64() & 1 == 1 { 1 } else { u64::MAX })
            .collect();
        let w0: Vec<u64> = (0..w.len()).map(|_| g.gen_u64()).collect();
        let w1: Vec<u64> = w.iter().zip(&w0).map(|(a, b)| a.wrapping_sub(*b)).collect();
        let (mut c0, mut c1) = MemoryChannel::pair();
        let w1c = w1.clone();
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([9; 16]);
            let recv = CotReceiver::setup(&mut c1, &mut rng).unwrap();
            let send = CotSender::setup(&mut c1, Block(77), &mut rng).unwrap();
            let (mut send, mut recv) = (send, recv);
            let job = BinaryLayerJob {
                inputs,
                outputs,
                weight: &w1c,
            };
            preprocess(&mut c1, &mut send, &mut recv, &[job], &mut rng).unwrap()
        });
        let mut rng = Prg::from_seed([8; 16]);
        let mut send = CotSender::setup(&mut c0, Block(0x5eed), &mut rng).unwrap();
        let mut recv = CotReceiver::setup(&mut c0, &mut rng).unwrap();
        let job = BinaryLayerJob {
            inputs,
            outputs,
            weight: &w0,
        };
        let s0 = preprocess(&mut c0, &mut send, &mut recv, &[job], &mut rng)
            .unwrap()
            .remove(0);
        let s1 = t.join().unwrap().remove(0);
        let (m0, m1) = (s0.mask.as_ref().unwrap(), s1.mask.as_ref().unwrap());
        let cross0 = blindfold_model::kernels::dense(inputs, outputs, &m1.r, &w0);
        let cross1 = blindfold_model::kernels::dense(inputs, outputs, &m0.r, &w1);
        for o in 0..outputs {
            let got = m0.m[o]
                .wrapping_add(m1.m[o])
                .wrapping_add(s0.t.as_ref().unwrap()[o])
                .wrapping_add(s1.t.as_ref().unwrap()[o]);
            assert_eq!(got, cross0[o].wrapping_add(cross1[o]), "output {o}");
        }
    }
}
