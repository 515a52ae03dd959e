//! The OT comparison stack as one party sees it: base OTs, the IKNP
//! bootstrap, silent-OT extensions, then the offline and online phases of a
//! comparison, every message from the peer taken from the input.

use blindfold_cmp::{CmpSession, Op, Role};
use blindfold_core::Prg;
use blindfold_net::{Channel, NetError};
use blindfold_ot::LpnParams;

/// Tiny LPN parameters (no security; small messages, fast runs): 512 outputs
/// per extension of which 400 fresh.
pub const FUZZ_LPN: LpnParams = LpnParams { k: 64, t: 8, h: 6 };

/// The fuzzed party's generator seed (the corpus generator records a run with it).
pub const FUZZ_SEED: [u8; 16] = [7; 16];

/// Elements per comparison: small enough for one tiny extension.
pub const FUZZ_ELEMENTS: usize = 2;

/// The operations the first input byte selects (low two bits).
pub fn fuzz_op(selector: u8) -> Op {
    match selector & 3 {
        0 => Op::ReluTrunc { k: 64, f: 12 },
        1 => Op::Trunc { k: 64, f: 12 },
        2 => Op::Sign { k: 64 },
        _ => Op::MaxPool {
            window: 2,
            relu: true,
            f: 12,
        },
    }
}

/// The fuzzed party's role (bit 2 of the selector).
pub fn fuzz_role(selector: u8) -> Role {
    if selector & 4 == 0 {
        Role::A
    } else {
        Role::B
    }
}

/// The fuzzed party's input shares.
pub fn fuzz_inputs(op: Op) -> Vec<u64> {
    (0..FUZZ_ELEMENTS * op.arity())
        .map(|i| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect()
}

/// A channel whose received messages are the frames of a byte string
/// (`u32` little-endian length, then the payload), and whose sends vanish.
pub struct ScriptChannel<'a> {
    rest: &'a [u8],
}

impl<'a> ScriptChannel<'a> {
    pub fn new(script: &'a [u8]) -> Self {
        ScriptChannel { rest: script }
    }
}

/// Frame `msgs` for a [`ScriptChannel`].
pub fn script(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

impl Channel for ScriptChannel<'_> {
    fn send(&mut self, _msg: &[u8]) -> blindfold_net::Result<()> {
        Ok(())
    }

    fn recv(&mut self) -> blindfold_net::Result<Vec<u8>> {
        if self.rest.len() < 4 {
            return Err(NetError::Closed);
        }
        let len = u32::from_le_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]);
        let len = len as usize;
        let body = &self.rest[4..];
        if body.len() < len {
            return Err(NetError::Truncated {
                expected: len,
                got: body.len(),
            });
        }
        let (msg, tail) = body.split_at(len);
        self.rest = tail;
        Ok(msg.to_vec())
    }

    fn flush(&mut self) -> blindfold_net::Result<()> {
        Ok(())
    }
}

/// Run one party of a comparison session (role and operation from the first
/// byte) on the peer messages of the rest.
pub fn cmp_peer(data: &[u8]) {
    if let Some(out) = cmp_peer_run(data) {
        assert_eq!(out.len(), FUZZ_ELEMENTS, "one output share per element");
    }
}

/// [`cmp_peer`]'s run: the output shares if every phase accepted the peer's
/// messages (the corpus seeds, recorded from honest peers, must get there).
pub fn cmp_peer_run(data: &[u8]) -> Option<Vec<u64>> {
    let (&selector, script) = data.split_first()?;
    let (role, op) = (fuzz_role(selector), fuzz_op(selector));
    let mut ch = ScriptChannel::new(script);
    let mut rng = Prg::from_seed(FUZZ_SEED);
    let dirs = [(FUZZ_LPN, FUZZ_LPN, false); 2];
    let mut session = CmpSession::setup_with(&mut ch, role, dirs, &mut rng).ok()?;
    let material = session.offline(&mut ch, op, FUZZ_ELEMENTS, &mut rng).ok()?;
    material.online(&mut ch, &fuzz_inputs(op)).ok()
}
