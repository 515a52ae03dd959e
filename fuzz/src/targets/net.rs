//! Bytes from a peer below the serving messages: the channel's framing
//! (`blindfold_net::FramedChannel`) and the base-OT points (`blindfold_ot::base`).

use blindfold_core::Prg;
use blindfold_net::{Channel, FramedChannel, FRAME_HEADER};
use blindfold_ot::base::{receiver_step, BaseOtSender};
use std::io::Cursor;

/// `FramedChannel::recv` on a byte stream from a peer: frames are read until
/// the stream ends or a frame is refused. A frame is a `u32` length and that many
/// bytes, one encoding per frame sequence, so the frames received, sent again,
/// give back exactly the bytes they were read from.
pub fn net_frames(data: &[u8]) {
    let mut rx = FramedChannel::new(Cursor::new(data), std::io::sink());
    let mut frames = Vec::new();
    while let Ok(frame) = rx.recv() {
        frames.push(frame);
    }
    // The channel reads ahead (a buffered reader): count what the frames took.
    let used: usize = frames.iter().map(|f| FRAME_HEADER + f.len()).sum();
    let mut tx = FramedChannel::new(std::io::empty(), Vec::new());
    for f in &frames {
        tx.send(f).expect("a received frame can be sent");
    }
    assert_eq!(tx.writer().as_slice(), &data[..used], "frames re-encode");
}

/// Base OT (Chou–Orlandi): the receiver decodes the sender's point `A`, the
/// sender decodes the receiver's points `B_j`. Input: one byte giving the
/// number of OTs (0 to 3), the 32-byte `A`, then the reply. Points that do not
/// decode (non-canonical, identity, wrong length) must be errors.
pub fn ot_base(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n % 4) as usize;
    let (a, reply) = rest.split_at(rest.len().min(32));
    let mut rng = Prg::from_seed([3; 16]);
    let choices = vec![true; n];
    if let Ok((msg, keys)) = receiver_step(&mut rng, &choices, a) {
        assert_eq!(msg.len(), 32 * n);
        assert_eq!(keys.len(), n);
    }
    let (sender, _) = BaseOtSender::new(&mut rng);
    if let Ok(keys) = sender.finish(n, reply) {
        assert_eq!(keys.len(), n);
        assert_eq!(reply.len(), 32 * n);
    }
}
