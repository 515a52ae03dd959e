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
//!   u_ij = σ_s,ij · R_j                          choice bits c_ij
//!            ◀──── IKNP extension (16 B/OT) ──────
//!            ───── correction (8 B/OT) ──────────▶
//!   gets r_ij                                    gets r_ij + c_ij·u_ij
//!   share  Σ_j (u_ij + 2 r_ij)                   share  −2 Σ_j (r_ij + c_ij·u_ij)
//!   (sum: Σ_j (1 − 2c_ij)·u_ij = Σ_j σ_r,ij σ_s,ij R_j = (W·R)_i)
//! ```
//!
//! One OT per weight and direction: 24 bytes each way per weight, against a
//! few ciphertexts per layer for the homomorphic path. Semi-honest, like the
//! rest of the engine: the OTs hide the sender's `u` (masked by the receiver's
//! view of the random OT) and the receiver's choice bits (uniform: bit 1 of a
//! uniform share).

use crate::Result;
use blindfold_core::PartyId;
use blindfold_he::{DirectedShares, MaskShares};
use blindfold_net::Channel;
use blindfold_ot::{CotReceiver, CotSender};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

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

/// Both directions' OTs for every layer in one batch each (P0's mask first),
/// returning each layer's material: `R` and `M = share(W·R) − Wb·Rb`, `T = 0`.
pub fn preprocess(
    party: PartyId,
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
    let (sent, got) = if party == PartyId::P0 {
        let s = Zeroizing::new(sender.send_correlated_u64(ch, &u)?);
        let g = Zeroizing::new(receiver.receive_correlated_u64(ch, &choices)?);
        (s, g)
    } else {
        let g = Zeroizing::new(receiver.receive_correlated_u64(ch, &choices)?);
        let s = Zeroizing::new(sender.send_correlated_u64(ch, &u)?);
        (s, g)
    };
    let mut out = Vec::with_capacity(layers.len());
    let mut at = 0;
    for (l, r) in layers.iter().zip(masks) {
        let own = blindfold_model::kernels::dense(l.inputs, l.outputs, &r, l.weight);
        let m: Vec<u64> = own
            .iter()
            .enumerate()
            .map(|(o, &mine)| {
                let span = at + o * l.inputs..at + (o + 1) * l.inputs;
                span.fold(0u64, |acc, k| {
                    acc.wrapping_add(u[k])
                        .wrapping_add(sent[k].wrapping_mul(2))
                        .wrapping_sub(got[k].wrapping_mul(2))
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
            preprocess(PartyId::P1, &mut c1, &mut send, &mut recv, &[job], &mut rng).unwrap()
        });
        let mut rng = Prg::from_seed([8; 16]);
        let mut send = CotSender::setup(&mut c0, Block(0x5eed), &mut rng).unwrap();
        let mut recv = CotReceiver::setup(&mut c0, &mut rng).unwrap();
        let job = BinaryLayerJob {
            inputs,
            outputs,
            weight: &w0,
        };
        let s0 = preprocess(PartyId::P0, &mut c0, &mut send, &mut recv, &[job], &mut rng)
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
