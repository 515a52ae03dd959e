//! OT-based secure comparison on additive shares in `Z_2^64`, the lean
//! alternative to garbled circuits for non-linear layers (CrypTFlow2 /
//! Cheetah style), on silent OT.
//!
//! ```text
//!  x = x_A + x_B (mod 2^64), |x| < 2^(k-1)         A = the comparison's OT sender
//!  u_A = x_A + 2^(k-1), u_B = x_B (mod 2^k)          x' = x + 2^(k-1) = u_A + u_B − w·2^k
//!  millionaires on the low k−1 bits, 4-bit chunks, 1-of-16 OTs (A sends):
//!     c' = [low(u_A) + low(u_B) ≥ 2^(k-1)]          (carry into bit k−1)
//!     c  = [low_f(u_A) + low_f(u_B) ≥ 2^f]           (carry out of the low f bits:
//!                                                    a subtree of the same comparison)
//!     chunk results combined by AND gates from bit triples (one exchange per level)
//!  DReLU b = [x ≥ 0] = m_A ⊕ m_B ⊕ c'               (m = bit k−1 of u)
//!  exact floor:  x >> f = (u_A>>f) + (u_B>>f) + c − w·2^(k−f) − 2^(k−1−f),
//!                w = maj(m_A, m_B, c'),  and b·w = b·m_A·m_B
//!  ReLU + truncation, one exchange of two OTs:
//!     A → B 1-of-8 on (b_B, c_B, m_B):  b·((u_A>>f) − 2^(k−1−f) + c − 2^(k−f)·m_A·m_B) − r_A
//!     B → A 1-of-2 on b_A:              b·(u_B>>f) − r_B
//! ```
//!
//! Every random OT comes from the silent OT of `blindfold-ot` (one session per
//! direction), drawn offline into a [`Material`] per layer; bit triples are
//! derived from random OTs without further messages (two per triple). Results
//! are exact: they equal the integer semantics of each [`Op`] for every input
//! with `|x| < 2^(k-1)` (max-pool: pairwise differences too).

pub mod bench;
pub mod bits;
pub mod kot;

use blindfold_core::Prg;
use blindfold_net::Channel;
use blindfold_ot::hash::Tccr;
use blindfold_ot::{Block, LpnParams, SilentCotReceiver, SilentCotSender};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use bits::{packed_len, BitReader, BitWriter};

/// Errors of the comparison protocols.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmpError {
    #[error(transparent)]
    Net(#[from] blindfold_net::NetError),
    #[error(transparent)]
    Ot(#[from] blindfold_ot::OtError),
    #[error("{what}: message of {got} bytes where {expected} were expected")]
    BadMessage {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("material made for another operation or size")]
    MaterialMismatch,
}

pub type Result<T> = std::result::Result<T, CmpError>;

/// Which end of the comparison this party is: `A` sends the millionaires' OT
/// messages, `B` receives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    A,
    B,
}

/// One non-linear operation on `n` shared elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `relu(x >>a f)` for `x` in `[-2^(k-1), 2^(k-1))`, `f < k`.
    ReluTrunc { k: u32, f: u32 },
    /// `x >>a f` (exact floor), `1 <= f < k`.
    Trunc { k: u32, f: u32 },
    /// `+1` if `x >= 0` else `-1`, `x` read as a signed `k`-bit number.
    Sign { k: u32 },
    /// Over windows of `window` consecutive inputs: `max_j x_j`, then
    /// `relu(· >>a f)` when `relu`, else `· >>a f`. Differences of inputs must
    /// lie in `[-2^63, 2^63)`.
    MaxPool { window: usize, relu: bool, f: u32 },
}

/// Bits per leaf chunk of the millionaires' protocol (1-of-16 OTs).
pub const CHUNK_BITS: u32 = 4;

/// The chunks `(offset, len)` of bits `[lo, hi)`.
fn chunks(lo: u32, hi: u32) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    let mut o = lo;
    while o < hi {
        let len = CHUNK_BITS.min(hi - o);
        v.push((o, len));
        o += len;
    }
    v
}

/// The comparison tree of one element: chunks of the low `f` bits and of bits
/// `[f, k−1)`, and how many AND gates combining them costs.
#[derive(Clone, Debug)]
struct Tree {
    low: Vec<(u32, u32)>,
    high: Vec<(u32, u32)>,
}

impl Tree {
    fn new(k: u32, f: u32) -> Tree {
        Tree {
            low: chunks(0, f),
            high: chunks(f, k - 1),
        }
    }

    fn leaf_rots(&self) -> usize {
        self.low
            .iter()
            .chain(&self.high)
            .map(|c| c.1 as usize)
            .sum()
    }

    /// Combinations per element (each a pair of AND gates sharing an operand,
    /// `eq_hi ∧ gt_lo` and `eq_hi ∧ eq_lo`): one per merge inside a part, and
    /// the final merge of the parts.
    fn combines(&self) -> usize {
        self.low.len().saturating_sub(1)
            + self.high.len().saturating_sub(1)
            + usize::from(!self.low.is_empty() && !self.high.is_empty())
    }
}

/// Random OTs (direction A→B, direction B→A) per element of a basic op.
fn basic_rots(op: &Op) -> (usize, usize) {
    let (k, f, fa, fb) = match *op {
        Op::ReluTrunc { k, f } => (k, f, 3, 1),
        Op::Trunc { k, f } => (k, f, 3, 0),
        Op::Sign { k } => (k, 0, 1, 0),
        Op::MaxPool { .. } => unreachable!("composite"),
    };
    let t = Tree::new(k, f);
    (t.leaf_rots() + t.combines() + fa, t.combines() + fb)
}

impl Op {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Op::ReluTrunc { k, f } => (2..=64).contains(&k) && f < k,
            Op::Trunc { k, f } => (2..=64).contains(&k) && f >= 1 && f < k,
            Op::Sign { k } => (2..=64).contains(&k),
            Op::MaxPool { window, f, .. } => window >= 1 && f < 64,
        };
        if ok {
            Ok(())
        } else {
            Err(CmpError::InvalidArgument(
                "comparison parameters out of range",
            ))
        }
    }

    /// Inputs per output element.
    pub fn arity(&self) -> usize {
        match *self {
            Op::MaxPool { window, .. } => window,
            _ => 1,
        }
    }

    /// The basic ops this one runs, each with its element count, for `n` outputs.
    fn schedule(&self, n: usize) -> Vec<(Op, usize)> {
        match *self {
            Op::MaxPool { window, relu, f } => {
                let mut v = Vec::new();
                let mut w = window;
                while w > 1 {
                    v.push((Op::ReluTrunc { k: 64, f: 0 }, n * (w / 2)));
                    w = w.div_ceil(2);
                }
                if relu {
                    v.push((Op::ReluTrunc { k: 64, f }, n));
                } else if f > 0 {
                    v.push((Op::Trunc { k: 64, f }, n));
                }
                v
            }
            op => vec![(op, n)],
        }
    }

    /// Random OTs `(A→B, B→A)` for `n` output elements.
    pub fn rots(&self, n: usize) -> (usize, usize) {
        self.schedule(n).iter().fold((0, 0), |(a, b), (op, m)| {
            let (x, y) = basic_rots(op);
            (a + x * m, b + y * m)
        })
    }

    /// Sequential exchanges online (each a flight both ways at once or one
    /// flight each way in turn).
    pub fn exchanges(&self) -> usize {
        self.schedule(1)
            .iter()
            .map(|(op, _)| {
                let (k, f) = match *op {
                    Op::ReluTrunc { k, f } | Op::Trunc { k, f } => (k, f),
                    Op::Sign { k } => (k, 0),
                    Op::MaxPool { .. } => unreachable!(),
                };
                let t = Tree::new(k, f);
                let lv = |n: usize| (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize;
                2 + lv(t.low.len()).max(lv(t.high.len()))
                    + usize::from(!t.low.is_empty() && !t.high.is_empty())
                    + 2
            })
            .sum()
    }

    /// Online bits both parties send, per output element.
    pub fn online_bits(&self) -> usize {
        self.schedule(1)
            .iter()
            .map(|(op, m)| {
                let (k, f, fin) = match *op {
                    Op::ReluTrunc { k, f } => (k, f, 4 + 8 * 64 + 2 * 64),
                    Op::Trunc { k, f } => (k, f, 3 + 8 * 64),
                    Op::Sign { k } => (k, 0, 1 + 2 * 64),
                    Op::MaxPool { .. } => unreachable!(),
                };
                let t = Tree::new(k, f);
                let leaves: usize = t
                    .low
                    .iter()
                    .chain(&t.high)
                    .map(|&(_, len)| len as usize + (2usize << len))
                    .sum();
                m * (leaves + 6 * t.combines() + fin)
            })
            .sum()
    }

    /// The plaintext semantics on one window of reconstructed inputs.
    pub fn plain(&self, x: &[u64]) -> u64 {
        let s = |v: u64| v as i64;
        match *self {
            Op::ReluTrunc { f, .. } => (s(x[0]) >> f).max(0) as u64,
            Op::Trunc { f, .. } => (s(x[0]) >> f) as u64,
            Op::Sign { k } => {
                let sh = 64 - k;
                if (s(x[0] << sh) >> sh) >= 0 {
                    1
                } else {
                    u64::MAX
                }
            }
            Op::MaxPool { relu, f, .. } => {
                let m = x.iter().map(|&v| s(v)).max().expect("window >= 1") >> f;
                if relu {
                    m.max(0) as u64
                } else {
                    m as u64
                }
            }
        }
    }
}

/// One party's silent OT sessions: this party as sender in its direction and
/// as receiver in the other.
pub struct CmpSession {
    role: Role,
    send: SilentCotSender,
    recv: SilentCotReceiver,
}

impl CmpSession {
    /// Set up both directions (A's sending first) for about `per_query`
    /// random OTs per query in each direction (A→B, B→A; from [`Op::rots`]).
    /// A direction that needs at least [`Self::LARGE`] per query runs
    /// Ferret's large extension (10.2 M OTs at 0.45 bits each, one run at setup
    /// so queries find a full pool); a smaller one stays with the setup-size
    /// parameters (602 K OTs per extension at 9 bits each), which spares small
    /// models a 173 MB pool and a second of setup.
    pub fn setup(
        ch: &mut impl Channel,
        role: Role,
        per_query: [usize; 2],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CmpSession> {
        let pick = |n: usize| {
            if n >= Self::LARGE {
                (LpnParams::SETUP, LpnParams::EXTEND, true)
            } else {
                (LpnParams::SETUP, LpnParams::SETUP, false)
            }
        };
        Self::setup_with(ch, role, [pick(per_query[0]), pick(per_query[1])], rng)
    }

    /// Random OTs per query from which a direction uses the large extension.
    pub const LARGE: usize = 200_000;

    /// As [`Self::setup`] with explicit `(first, params, refill)` per
    /// direction (A→B, B→A); tests use small, insecure parameters.
    pub fn setup_with(
        ch: &mut impl Channel,
        role: Role,
        dirs: [(LpnParams, LpnParams, bool); 2],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CmpSession> {
        let mut d = [0u8; 16];
        rng.fill_bytes(&mut d);
        // Silent OT wants lsb(Δ) = 1 (its receivers read choice bits off lsbs).
        let delta = Block(Block::from_bytes(d).0 | 1);
        d.zeroize();
        let [(fa, pa, ra), (fb, pb, rb)] = dirs;
        // A's direction first; a refill runs one full extension at once.
        Ok(match role {
            Role::A => {
                let mut send = SilentCotSender::setup_with(ch, delta, fa, pa, rng)?;
                if ra {
                    send.refill(ch, rng)?;
                }
                let mut recv = SilentCotReceiver::setup_with(ch, fb, pb, rng)?;
                if rb {
                    recv.refill(ch)?;
                }
                CmpSession { role, send, recv }
            }
            Role::B => {
                let mut recv = SilentCotReceiver::setup_with(ch, fa, pa, rng)?;
                if ra {
                    recv.refill(ch)?;
                }
                let mut send = SilentCotSender::setup_with(ch, delta, fb, pb, rng)?;
                if rb {
                    send.refill(ch, rng)?;
                }
                CmpSession { role, send, recv }
            }
        })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Offline: the random OTs of `op` on `n` output elements.
    pub fn offline(
        &mut self,
        ch: &mut impl Channel,
        op: Op,
        n: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Material> {
        op.validate()?;
        let (ra, rb) = op.rots(n);
        let (ns, nr) = match self.role {
            Role::A => (ra, rb),
            Role::B => (rb, ra),
        };
        let ext_before = {
            let (cs, cr) = (self.send.cost(), self.recv.cost());
            (cs.secs + cr.secs, cs.bytes + cr.bytes)
        };
        // A's direction first on both ends, so extensions line up.
        let (send, (bits, recv)) = match self.role {
            Role::A => {
                let s = self.send.random(ch, ns, rng)?;
                (s, self.recv.random(ch, nr)?)
            }
            Role::B => {
                let r = self.recv.random(ch, nr)?;
                (self.send.random(ch, ns, rng)?, r)
            }
        };
        let mut seed = [0u8; 16];
        rng.fill_bytes(&mut seed);
        let (cs, cr) = (self.send.cost(), self.recv.cost());
        let cost = OfflineCost {
            extension_secs: cs.secs + cr.secs - ext_before.0,
            extension_bytes: cs.bytes + cr.bytes - ext_before.1,
            amortized_secs: ns as f64 * cs.secs_per_ot + nr as f64 * cr.secs_per_ot,
            amortized_bytes: ns as f64 * cs.bytes_per_ot + nr as f64 * cr.bytes_per_ot,
        };
        Ok(Material {
            cost,
            role: self.role,
            op,
            n,
            send,
            recv,
            bits,
            sp: 0,
            rp: 0,
            seed,
        })
    }
}

/// What drawing one layer's random OTs cost this party beyond the draw itself:
/// the silent OT extensions that ran during it (an extension yields 10.2 M
/// OTs, so it lands on one query in several), and the same cost amortized
/// over the OTs drawn, at the last extension's measured rate. Honest per-query
/// figures report the measured draw minus `extension_*` plus `amortized_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OfflineCost {
    pub extension_secs: f64,
    pub extension_bytes: u64,
    pub amortized_secs: f64,
    pub amortized_bytes: f64,
}

/// One layer's random OTs (and a seed for this party's output masks), used
/// exactly once by [`Material::online`].
pub struct Material {
    /// The cost of drawing it (see [`OfflineCost`]).
    pub cost: OfflineCost,
    role: Role,
    op: Op,
    n: usize,
    /// Pads where this party is the OT sender (A→B for A, B→A for B).
    send: Vec<[Block; 2]>,
    /// Pads and choice bits where this party receives.
    recv: Vec<Block>,
    bits: Vec<bool>,
    sp: usize,
    rp: usize,
    seed: [u8; 16],
}

impl Drop for Material {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
        self.bits.zeroize();
        self.seed.zeroize();
    }
}

/// Shares of a double bit triple: `a`, `b1`, `b2`, `c1 = a·b1`, `c2 = a·b2`.
type Triple2 = [u8; 5];

impl Material {
    pub fn op(&self) -> Op {
        self.op
    }

    pub fn elements(&self) -> usize {
        self.n
    }

    /// The next `n` sender pads (a range of `self.send`).
    fn take_send(&mut self, n: usize) -> Result<std::ops::Range<usize>> {
        let r = self.sp..self.sp + n;
        if r.end > self.send.len() {
            return Err(CmpError::MaterialMismatch);
        }
        self.sp = r.end;
        Ok(r)
    }

    /// The next `n` receiver pads and choice bits (a range of `self.recv`).
    fn take_recv(&mut self, n: usize) -> Result<std::ops::Range<usize>> {
        let r = self.rp..self.rp + n;
        if r.end > self.recv.len() {
            return Err(CmpError::MaterialMismatch);
        }
        self.rp = r.end;
        Ok(r)
    }

    /// `n` double triples from one random OT each way (no messages): the
    /// cross terms `a_B·b_kA` from A→B (B's choice bit, two of A's pad bits)
    /// and `a_A·b_kB` from B→A.
    fn triples(&mut self, n: usize) -> Result<Vec<Triple2>> {
        let bit = |b: Block, k: u32| ((b.0 >> k) & 1) as u8;
        let rs = self.take_send(n)?;
        let rr = self.take_recv(n)?;
        let (send, recv, bits) = (&self.send[rs], &self.recv[rr.clone()], &self.bits[rr]);
        Ok(send
            .iter()
            .zip(recv.iter().zip(bits))
            .map(|(p, (q, &c))| {
                // As sender: my b_k = bit_k(p0) ⊕ bit_k(p1), share bit_k(p0) of
                // (peer's choice)·b_k; as receiver: my a = c, share bit_k(q) of
                // a·(peer's b_k).
                let a = c as u8;
                let b1 = bit(p[0], 0) ^ bit(p[1], 0);
                let b2 = bit(p[0], 1) ^ bit(p[1], 1);
                let c1 = (a & b1) ^ bit(p[0], 0) ^ bit(*q, 0);
                let c2 = (a & b2) ^ bit(p[0], 1) ^ bit(*q, 1);
                [a, b1, b2, c1, c2]
            })
            .collect())
    }

    /// `x ∧ y1` and `x ∧ y2` on shared bits, pairwise, with one exchange.
    fn and2(
        &mut self,
        ch: &mut impl Channel,
        x: &[u8],
        y1: &[u8],
        y2: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let t = self.triples(x.len())?;
        let mut w = BitWriter::with_capacity_bits(3 * x.len());
        for (i, tr) in t.iter().enumerate() {
            let v = (x[i] ^ tr[0]) | ((y1[i] ^ tr[1]) << 1) | ((y2[i] ^ tr[2]) << 2);
            w.put(v as u64, 3);
        }
        let mine = w.finish();
        ch.send(&mine)?;
        ch.flush()?;
        let peer = ch.recv()?;
        check(&peer, packed_len(x.len(), 3), "AND openings")?;
        let (mut rm, mut rp) = (BitReader::new(&mine), BitReader::new(&peer));
        let is_a = self.role == Role::A;
        let mut z1 = Vec::with_capacity(x.len());
        let mut z2 = Vec::with_capacity(x.len());
        for tr in &t {
            let o = (rm.get(3) ^ rp.get(3)) as u8;
            let (e, f1, f2) = (o & 1, (o >> 1) & 1, (o >> 2) & 1);
            let pub_ef = |f: u8| if is_a { e & f } else { 0 };
            z1.push(tr[3] ^ (e & tr[1]) ^ (f1 & tr[0]) ^ pub_ef(f1));
            z2.push(tr[4] ^ (e & tr[2]) ^ (f2 & tr[0]) ^ pub_ef(f2));
        }
        Ok((z1, z2))
    }

    /// Online: this party's shares of `op` on `xs` (`n·arity` shares, windows
    /// consecutive for max-pool), the peer running the same call.
    pub fn online(mut self, ch: &mut impl Channel, xs: &[u64]) -> Result<Vec<u64>> {
        if xs.len() != self.n * self.op.arity() {
            return Err(CmpError::MaterialMismatch);
        }
        let out = match self.op {
            Op::MaxPool { window, relu, f } => {
                let mut cur: Vec<Vec<u64>> = xs.chunks(window).map(|w| w.to_vec()).collect();
                while cur[0].len() > 1 {
                    // Pairwise max(a, b) = b + relu(a − b); an odd last passes.
                    let diffs: Vec<u64> = cur
                        .iter()
                        .flat_map(|w| w.chunks_exact(2).map(|p| p[0].wrapping_sub(p[1])))
                        .collect();
                    let r = self.basic(ch, Op::ReluTrunc { k: 64, f: 0 }, &diffs)?;
                    let mut it = r.into_iter();
                    for w in cur.iter_mut() {
                        let mut next = Vec::with_capacity(w.len().div_ceil(2));
                        for p in w.chunks(2) {
                            next.push(match p {
                                [a, b] => {
                                    let _ = a;
                                    b.wrapping_add(it.next().ok_or(CmpError::MaterialMismatch)?)
                                }
                                [a] => *a,
                                _ => unreachable!(),
                            });
                        }
                        *w = next;
                    }
                }
                let m: Vec<u64> = cur.into_iter().map(|w| w[0]).collect();
                if relu {
                    self.basic(ch, Op::ReluTrunc { k: 64, f }, &m)?
                } else if f > 0 {
                    self.basic(ch, Op::Trunc { k: 64, f }, &m)?
                } else {
                    m
                }
            }
            op => self.basic(ch, op, xs)?,
        };
        if self.sp != self.send.len() || self.rp != self.recv.len() {
            return Err(CmpError::MaterialMismatch);
        }
        Ok(out)
    }

    /// One basic op on `xs` (one input per element).
    fn basic(&mut self, ch: &mut impl Channel, op: Op, xs: &[u64]) -> Result<Vec<u64>> {
        let (k, f) = match op {
            Op::ReluTrunc { k, f } | Op::Trunc { k, f } => (k, f),
            Op::Sign { k } => (k, 0),
            Op::MaxPool { .. } => return Err(CmpError::MaterialMismatch),
        };
        let n = xs.len();
        let is_a = self.role == Role::A;
        let kmask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        let low_mask = (1u64 << (k - 1)) - 1;
        // u = x + 2^(k-1) on A's share, reduced mod 2^k.
        let u: Vec<u64> = xs
            .iter()
            .map(|&x| {
                if is_a {
                    x.wrapping_add(1u64 << (k - 1)) & kmask
                } else {
                    x & kmask
                }
            })
            .collect();
        let top: Vec<u8> = u.iter().map(|&v| ((v >> (k - 1)) & 1) as u8).collect();
        // The millionaires' input: A's low k−1 bits; B's complement of its own.
        let cmp_in: Vec<u64> = u
            .iter()
            .map(|&v| if is_a { v & low_mask } else { !v & low_mask })
            .collect();
        let (carry_k1, carry_f) = self.millionaires(ch, &Tree::new(k, f), &cmp_in)?;
        let shift = |v: u64, s: u32| if s >= 64 { 0 } else { v << s };
        let big = shift(1, k - f); // 2^(k−f), zero when k − f = 64
        let half = 1u64 << (k - 1 - f); // 2^(k−1−f)
        let mut prg = Prg::from_seed(self.seed);
        // Bump the seed so a composite op's later basic ops draw fresh masks.
        self.seed[0] = self.seed[0].wrapping_add(1);
        let hash = Tccr::new();
        Ok(match op {
            Op::ReluTrunc { .. } => {
                // Choice of B in the A→B OT: (b_B, c_B, m_B); A's in B→A: b_A.
                let b_share: Vec<u8> = top.iter().zip(&carry_k1).map(|(m, c)| m ^ c).collect();
                let h: Vec<u64> = u.iter().map(|&v| v >> f).collect();
                let masks: Vec<u64> = (0..n).map(|_| prg.next_u64()).collect();
                if is_a {
                    // Send corrections for B→A (choice b_A), receive B's for A→B.
                    let vs: Vec<u64> = b_share.iter().map(|&b| b as u64).collect();
                    let rr = self.take_recv(n)?;
                    ch.send(&kot::corrections(&vs, 1, &self.bits[rr.clone()]))?;
                    ch.flush()?;
                    let d = ch.recv()?;
                    let rs = self.take_send(3 * n)?;
                    let cts = kot::send(&hash, &d, n, 3, 64, &self.send[rs.clone()], |i, j| {
                        let (beta, gamma, mu) =
                            ((j & 1) as u8, ((j >> 1) & 1) as u8, (j >> 2) as u64);
                        let b = (b_share[i] ^ beta) as u64;
                        let c = (carry_f[i] ^ gamma) as u64;
                        let v = h[i]
                            .wrapping_sub(half)
                            .wrapping_add(c)
                            .wrapping_sub(big.wrapping_mul(top[i] as u64 & mu));
                        b.wrapping_mul(v).wrapping_sub(masks[i])
                    })?;
                    ch.send_vec(cts)?;
                    ch.flush()?;
                    let got = kot::receive(&hash, &ch.recv()?, &vs, 1, 64, &self.recv[rr.clone()])?;
                    got.iter()
                        .zip(&masks)
                        .map(|(g, r)| g.wrapping_add(*r))
                        .collect()
                } else {
                    let vs: Vec<u64> = (0..n)
                        .map(|i| {
                            b_share[i] as u64 | (carry_f[i] as u64) << 1 | (top[i] as u64) << 2
                        })
                        .collect();
                    let rr = self.take_recv(3 * n)?;
                    ch.send(&kot::corrections(&vs, 3, &self.bits[rr.clone()]))?;
                    ch.flush()?;
                    let d = ch.recv()?;
                    let rs = self.take_send(n)?;
                    let cts = kot::send(&hash, &d, n, 1, 64, &self.send[rs.clone()], |i, j| {
                        let b = (b_share[i] ^ j as u8) as u64;
                        b.wrapping_mul(h[i]).wrapping_sub(masks[i])
                    })?;
                    ch.send_vec(cts)?;
                    ch.flush()?;
                    let got = kot::receive(&hash, &ch.recv()?, &vs, 3, 64, &self.recv[rr.clone()])?;
                    got.iter()
                        .zip(&masks)
                        .map(|(g, r)| g.wrapping_add(*r))
                        .collect()
                }
            }
            Op::Trunc { .. } => {
                // A→B 1-of-8 on B's (c_B, c'_B, m_B): c − 2^(k−f)·maj(m_A, m_B, c').
                let h: Vec<u64> = u.iter().map(|&v| v >> f).collect();
                if is_a {
                    let masks: Vec<u64> = (0..n).map(|_| prg.next_u64()).collect();
                    let d = ch.recv()?;
                    let rs = self.take_send(3 * n)?;
                    let cts = kot::send(&hash, &d, n, 3, 64, &self.send[rs.clone()], |i, j| {
                        let c = (carry_f[i] ^ (j & 1) as u8) as u64;
                        let cc = carry_k1[i] ^ ((j >> 1) & 1) as u8;
                        let mb = (j >> 2) as u8;
                        let ma = top[i];
                        let w = ((ma & mb) | (ma & cc) | (mb & cc)) as u64;
                        c.wrapping_sub(big.wrapping_mul(w)).wrapping_sub(masks[i])
                    })?;
                    ch.send_vec(cts)?;
                    ch.flush()?;
                    h.iter()
                        .zip(&masks)
                        .map(|(h, r)| h.wrapping_sub(half).wrapping_add(*r))
                        .collect()
                } else {
                    let vs: Vec<u64> = (0..n)
                        .map(|i| {
                            carry_f[i] as u64 | (carry_k1[i] as u64) << 1 | (top[i] as u64) << 2
                        })
                        .collect();
                    let rr = self.take_recv(3 * n)?;
                    ch.send(&kot::corrections(&vs, 3, &self.bits[rr.clone()]))?;
                    ch.flush()?;
                    let got = kot::receive(&hash, &ch.recv()?, &vs, 3, 64, &self.recv[rr.clone()])?;
                    got.iter()
                        .zip(&h)
                        .map(|(g, h)| g.wrapping_add(*h))
                        .collect()
                }
            }
            Op::Sign { .. } => {
                // A→B 1-of-2 on b_B: 2b − 1.
                let b_share: Vec<u8> = top.iter().zip(&carry_k1).map(|(m, c)| m ^ c).collect();
                if is_a {
                    let masks: Vec<u64> = (0..n).map(|_| prg.next_u64()).collect();
                    let d = ch.recv()?;
                    let rs = self.take_send(n)?;
                    let cts = kot::send(&hash, &d, n, 1, 64, &self.send[rs.clone()], |i, j| {
                        let b = (b_share[i] ^ j as u8) as u64;
                        (2 * b).wrapping_sub(1).wrapping_sub(masks[i])
                    })?;
                    ch.send_vec(cts)?;
                    ch.flush()?;
                    masks
                } else {
                    let vs: Vec<u64> = b_share.iter().map(|&b| b as u64).collect();
                    let rr = self.take_recv(n)?;
                    ch.send(&kot::corrections(&vs, 1, &self.bits[rr.clone()]))?;
                    ch.flush()?;
                    kot::receive(&hash, &ch.recv()?, &vs, 1, 64, &self.recv[rr.clone()])?
                }
            }
            Op::MaxPool { .. } => unreachable!(),
        })
    }

    /// Boolean shares of `[a > b]` over the whole tree (`c'`, the carry into
    /// bit k−1) and over its low part (`c`, the carry out of the low f bits;
    /// zero shares when f = 0). A holds `a` in `xs`, B holds `b`.
    fn millionaires(
        &mut self,
        ch: &mut impl Channel,
        tree: &Tree,
        xs: &[u64],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let n = xs.len();
        let leaves: Vec<(u32, u32)> = tree.low.iter().chain(&tree.high).copied().collect();
        let nl = leaves.len();
        // Leaf OTs, element-major: (gt, eq) of each chunk, 2-bit messages.
        let mut gt = vec![0u8; n * nl];
        let mut eq = vec![0u8; n * nl];
        let rots = tree.leaf_rots();
        if self.role == Role::A {
            let d = ch.recv()?;
            let expected: usize = n * leaves.iter().map(|c| c.1 as usize).sum::<usize>();
            check(&d, expected.div_ceil(8), "millionaires corrections")?;
            let rs = self.take_send(n * rots)?;
            let mut prg = Prg::from_seed(self.seed);
            self.seed[1] = self.seed[1].wrapping_add(1);
            let mut rd = BitReader::new(&d);
            let mut out = BitWriter::with_capacity_bits(n * nl * 32);
            // Per chunk length: the slot masks B_l (slots j with bit l set)
            // and the message table T[a] (slot j = [a > j] | [a == j] << 1).
            let tables: Vec<(Vec<u32>, Vec<u32>, u32)> = (0..=CHUNK_BITS)
                .map(|len| {
                    let slots = 1u32 << len;
                    let b: Vec<u32> = (0..len)
                        .map(|l| {
                            (0..slots)
                                .filter(|j| (j >> l) & 1 == 1)
                                .fold(0u32, |m, j| m | (3 << (2 * j)))
                        })
                        .collect();
                    let t: Vec<u32> = (0..slots)
                        .map(|a| {
                            (0..slots).fold(0u32, |m, j| {
                                m | ((((a > j) as u32) | (((a == j) as u32) << 1)) << (2 * j))
                            })
                        })
                        .collect();
                    let full = if slots == 16 {
                        u32::MAX
                    } else {
                        (1u32 << (2 * slots)) - 1
                    };
                    (b, t, full)
                })
                .collect();
            let pads = &self.send[rs];
            let mut pp = 0usize;
            let mut rnd = 0u64;
            let mut left = 0u32;
            for i in 0..n {
                for (c, &(off, len)) in leaves.iter().enumerate() {
                    if left < 2 {
                        rnd = prg.next_u64();
                        left = 64;
                    }
                    let (sg, se) = ((rnd & 1) as u32, ((rnd >> 1) & 1) as u32);
                    rnd >>= 2;
                    left -= 2;
                    gt[i * nl + c] = sg as u8;
                    eq[i * nl + c] = se as u8;
                    let a = ((xs[i] >> off) & ((1u64 << len) - 1)) as usize;
                    let di = rd.get(len) as u32;
                    let (b, t, full) = &tables[len as usize];
                    // Slot j under p_l^{(j ⊕ d)_l}: the 1-pads where bit l of j
                    // differs from d_l.
                    let mut word = t[a] ^ (((sg | (se << 1)) * 0x5555_5555) & full);
                    for l in 0..len as usize {
                        let m1 = if (di >> l) & 1 == 1 {
                            !b[l] & full
                        } else {
                            b[l]
                        };
                        let p = &pads[pp + l];
                        word ^= (p[0].0 as u32 & !m1) | (p[1].0 as u32 & m1);
                    }
                    pp += len as usize;
                    out.put((word & full) as u64, 2 << len);
                }
            }
            ch.send_vec(out.finish())?;
            ch.flush()?;
        } else {
            let rr = self.take_recv(n * rots)?;
            let (bits, pads) = (&self.bits[rr.clone()], &self.recv[rr]);
            let mut w = BitWriter::with_capacity_bits(n * rots);
            let mut vals = Vec::with_capacity(n * nl);
            let mut pp = 0usize;
            for &x in xs {
                for &(off, len) in &leaves {
                    let v = (x >> off) & ((1u64 << len) - 1);
                    let mut c = 0u64;
                    for l in 0..len as usize {
                        c |= (bits[pp + l] as u64) << l;
                    }
                    pp += len as usize;
                    w.put(v ^ c, len);
                    vals.push(v);
                }
            }
            ch.send_vec(w.finish())?;
            ch.flush()?;
            let cts = ch.recv()?;
            let expected: usize = n * leaves.iter().map(|c| 2usize << c.1).sum::<usize>();
            check(&cts, expected.div_ceil(8), "millionaires messages")?;
            let mut rd = BitReader::new(&cts);
            let mut pp = 0usize;
            for i in 0..n {
                for (c, &(_, len)) in leaves.iter().enumerate() {
                    let v = vals[i * nl + c];
                    let mut x = rd.get(2 << len) >> (2 * v);
                    for pl in &pads[pp..pp + len as usize] {
                        x ^= (pl.0 >> (2 * v)) as u64;
                    }
                    pp += len as usize;
                    gt[i * nl + c] = (x & 1) as u8;
                    eq[i * nl + c] = ((x >> 1) & 1) as u8;
                }
            }
        }
        // Combine each part, level by level, both parts in the same exchange.
        let n_low = tree.low.len();
        let mut parts: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(), Vec::new()];
        for c in 0..nl {
            let node = (
                (0..n).map(|i| gt[i * nl + c]).collect::<Vec<u8>>(),
                (0..n).map(|i| eq[i * nl + c]).collect::<Vec<u8>>(),
            );
            parts[usize::from(c >= n_low)].push(node);
        }
        while parts.iter().any(|p| p.len() > 1) {
            // Every merge of this level: (eq_hi ∧ gt_lo), (eq_hi ∧ eq_lo).
            let (mut x, mut y1, mut y2) = (Vec::new(), Vec::new(), Vec::new());
            for p in &parts {
                for pair in p.chunks_exact(2) {
                    let (lo, hi) = (&pair[0], &pair[1]);
                    x.extend_from_slice(&hi.1);
                    y1.extend_from_slice(&lo.0);
                    y2.extend_from_slice(&lo.1);
                }
            }
            let (za, zb) = self.and2(ch, &x, &y1, &y2)?;
            let (mut zai, mut zbi) = (za.chunks_exact(n), zb.chunks_exact(n));
            for p in parts.iter_mut() {
                let mut next = Vec::with_capacity(p.len().div_ceil(2));
                for pair in p.chunks(2) {
                    match pair {
                        [lo, hi] => {
                            let _ = lo;
                            let a = zai.next().ok_or(CmpError::MaterialMismatch)?;
                            let b = zbi.next().ok_or(CmpError::MaterialMismatch)?;
                            let g: Vec<u8> = hi.0.iter().zip(a).map(|(g, a)| g ^ a).collect();
                            next.push((g, b.to_vec()));
                        }
                        [one] => next.push(one.clone()),
                        _ => unreachable!(),
                    }
                }
                *p = next;
            }
        }
        let low = parts[0].pop();
        let high = parts[1].pop();
        Ok(match (low, high) {
            (Some(l), Some(h)) => {
                let (z, _) = self.and2(ch, &h.1, &l.0, &vec![0; n])?;
                let c1: Vec<u8> = h.0.iter().zip(&z).map(|(g, z)| g ^ z).collect();
                (c1, l.0)
            }
            (None, Some(h)) => (h.0, vec![0; n]),
            (Some(l), None) => (l.0.clone(), l.0),
            (None, None) => (vec![0; n], vec![0; n]),
        })
    }
}

fn check(msg: &[u8], expected: usize, what: &'static str) -> Result<()> {
    if msg.len() == expected {
        Ok(())
    } else {
        Err(CmpError::BadMessage {
            what,
            expected,
            got: msg.len(),
        })
    }
}
