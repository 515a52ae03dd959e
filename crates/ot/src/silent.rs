//! Silent correlated OT: a Ferret-style LPN-based extension (Yang, Weng, Lan,
//! Zhang, Wang, CCS 2020), semi-honest, bootstrapped from IKNP.
//!
//! ```text
//!  SilentCotSender (Δ)                          SilentCotReceiver
//!  base: k + t·h COTs  v_i                       u_i, w_i = v_i ⊕ u_i·Δ
//!  (IKNP once, then the last k + t·h outputs of each extension)
//!
//!  single-point COT, per block j < t (2^h leaves), GGM tree from a fresh seed:
//!    level sums K_l^0 = ⊕ left children, K_l^1 = ⊕ right children
//!    ── (K_l^0 ⊕ H(v, τ), K_l^1 ⊕ H(v ⊕ Δ, τ)), l = 1..h ──▶   (one base COT
//!    per level: the receiver's choice bit u is the sibling of its path, so the
//!    punctured leaf α_j is set by the base choices; no message from it)
//!    ── ψ_j = Δ ⊕ ⊕_i s_j[i] ────────────────────────────▶   s_j ⊕ e_j·Δ (e_j = unit at α_j)
//!
//!  LPN (primal, regular noise, d = 10 public random rows of the k base COTs):
//!    y_i = s_i ⊕ ⊕_r v[A(i,r)]                   z_i = (s ⊕ eΔ)_i ⊕ ⊕_r w[A(i,r)]
//!                                                x_i = e_i ⊕ ⊕_r u[A(i,r)]
//!                          z_i = y_i ⊕ x_i·Δ
//! ```
//!
//! One extension is one flight from sender to receiver: `t·(2h + 1)` blocks
//! (570 KB for [`LpnParams::EXTEND`]) for `n − (k + t·h)` fresh COTs, about
//! 0.45 bits per OT. Parameters: the regular-noise pair of Ferret's Table 2
//! (128-bit computational security against the attacks the paper analyses:
//! Gaussian elimination, low-weight parity check, information set decoding),
//! [`LpnParams::SETUP`] to turn 39,934 IKNP OTs into 642,048, then
//! [`LpnParams::EXTEND`] for every later batch of 10,805,248.
//!
//! Random OT as from IKNP: `H(y_i, τ_i)`, `H(y_i ⊕ Δ, τ_i)` and `H(z_i, τ_i)`
//! with `τ_i` the OT's index in the session, never reused.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::hash::Tccr;
use crate::{check_len, Block, Channel, CotReceiver, CotSender, OtError, Result};

/// Parameters of one LPN-based extension: `t` blocks of `2^h` leaves
/// (`n = t·2^h` outputs), `k` base COTs in the LPN code, `d = 10` per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpnParams {
    pub k: usize,
    pub t: usize,
    pub h: u32,
}

/// Nonzero entries per row of the public LPN matrix.
pub const LPN_D: usize = 10;

impl LpnParams {
    /// Ferret, Table 2, regular noise, setup: `n = 642,048`, `k = 19,870`,
    /// `t = 2,508` (128-bit security).
    pub const SETUP: LpnParams = LpnParams {
        k: 19_870,
        t: 2_508,
        h: 8,
    };
    /// Ferret, Table 2, regular noise, extension: `n = 10,805,248`,
    /// `k = 589,760`, `t = 1,319` (128-bit security).
    pub const EXTEND: LpnParams = LpnParams {
        k: 589_760,
        t: 1_319,
        h: 13,
    };

    /// Outputs of one extension.
    pub fn n(&self) -> usize {
        self.t << self.h
    }

    /// Base COTs one extension consumes.
    pub fn base(&self) -> usize {
        self.k + self.t * self.h as usize
    }

    /// Fresh COTs one extension yields after keeping the next one's base.
    pub fn fresh(&self, next: &LpnParams) -> usize {
        self.n() - next.base()
    }

    /// Bytes the sender sends for one extension.
    pub fn bytes(&self) -> usize {
        16 * self.t * (2 * self.h as usize + 1)
    }

    fn check(&self) -> Result<()> {
        if self.h == 0 || self.h > 24 || self.t == 0 || self.k < LPN_D || self.n() <= self.base() {
            return Err(OtError::InvalidArgument("LPN parameters out of range"));
        }
        Ok(())
    }
}

/// The two fixed-key AES permutations of the GGM tree's length-doubling PRG
/// `G(s) = (π0(s) ⊕ s, π1(s) ⊕ s)`, and the public LPN matrix generator.
struct Ggm {
    left: Aes128,
    right: Aes128,
}

impl Ggm {
    fn new() -> Ggm {
        Ggm {
            left: Aes128::new(GenericArray::from_slice(b"blindfold ggm L0")),
            right: Aes128::new(GenericArray::from_slice(b"blindfold ggm R1")),
        }
    }

    /// Expand `parents` (level `l`) into `children` (level `l + 1`, twice as
    /// long): child `2i` left, `2i + 1` right.
    fn expand(&self, parents: &[Block], children: &mut [Block]) {
        debug_assert_eq!(children.len(), 2 * parents.len());
        const B: usize = 16;
        let mut l = [GenericArray::default(); B];
        let mut r = [GenericArray::default(); B];
        for (pc, cc) in parents.chunks(B).zip(children.chunks_mut(2 * B)) {
            let n = pc.len();
            for k in 0..n {
                l[k] = GenericArray::from(pc[k].to_bytes());
                r[k] = l[k];
            }
            self.left.encrypt_blocks(&mut l[..n]);
            self.right.encrypt_blocks(&mut r[..n]);
            for k in 0..n {
                let p = pc[k].0;
                cc[2 * k] = Block(u128::from_le_bytes(l[k].into()) ^ p);
                cc[2 * k + 1] = Block(u128::from_le_bytes(r[k].into()) ^ p);
            }
        }
        for v in l.iter_mut().chain(r.iter_mut()) {
            v.as_mut_slice().zeroize();
        }
    }
}

/// The public LPN matrix: `LPN_D` column indices in `[0, k)` for row `i` of
/// extension `ext`, from fixed-key AES in counter mode.
struct LpnCode {
    aes: Aes128,
}

impl LpnCode {
    fn new() -> LpnCode {
        LpnCode {
            aes: Aes128::new(GenericArray::from_slice(b"blindfold lpn A!")),
        }
    }

    /// `acc[i] ^= ⊕_r base[A(i, r)]` for `i` in `0..acc.len()`: row `i`'s
    /// indices are 32-bit words of `AES(ext, i, s)`, mapped to `[0, k)` by a
    /// multiply-shift (bias below `k / 2^32`).
    fn apply(&self, ext: u64, base: &[Block], acc: &mut [Block]) {
        let k = base.len() as u64;
        const B: usize = 8;
        let mut ctr = [GenericArray::default(); 3 * B];
        for (c, chunk) in acc.chunks_mut(B).enumerate() {
            let row0 = (c * B) as u64;
            let n = chunk.len();
            for j in 0..n {
                for s in 0..3 {
                    let v = ((ext as u128) << 64) | (((row0 + j as u64) as u128) << 2) | s as u128;
                    ctr[3 * j + s] = GenericArray::from(v.to_le_bytes());
                }
            }
            self.aes.encrypt_blocks(&mut ctr[..3 * n]);
            for j in 0..n {
                let mut x = Block::ZERO;
                for r in 0..LPN_D {
                    let word = u128::from_le_bytes(ctr[3 * j + r / 4].into());
                    let idx = (((word >> (32 * (r % 4))) as u32 as u64 * k) >> 32) as usize;
                    x ^= base[idx];
                }
                chunk[j] ^= x;
            }
        }
    }
}

/// The base COTs' hash tweaks of SPCOT levels: distinct from every random OT's
/// tweak (those count up from 0; these live at the top of the range).
fn spcot_tweak(ext: u64, j: usize) -> u64 {
    (1u64 << 63) | (ext << 32) | j as u64
}

/// The sender's GGM trees.
struct Tree;

impl Tree {
    /// Expand `tree[..2^h]` in place from the root `seed`, returning the level
    /// sums `(K_l^0, K_l^1)` for `l = 1..=h`.
    fn grow(
        ggm: &Ggm,
        seed: Block,
        tree: &mut [Block],
        scratch: &mut [Block],
        h: usize,
    ) -> Vec<(Block, Block)> {
        let mut sums = Vec::with_capacity(h);
        // Levels alternate between `tree` and `scratch`; the parity is chosen
        // so that level h lands in `tree`.
        let mut in_tree = h.is_multiple_of(2);
        if in_tree {
            tree[0] = seed;
        } else {
            scratch[0] = seed;
        }
        for l in 0..h {
            let width = 2usize << l;
            let (src, dst) = if in_tree {
                (&tree[..width / 2], &mut scratch[..width])
            } else {
                (&scratch[..width / 2], &mut tree[..width])
            };
            // Borrow checker: copy parents out of the other buffer first.
            let parents = src.to_vec();
            ggm.expand(&parents, dst);
            let (mut k0, mut k1) = (Block::ZERO, Block::ZERO);
            for pair in dst.chunks_exact(2) {
                k0 ^= pair[0];
                k1 ^= pair[1];
            }
            sums.push((k0, k1));
            in_tree = !in_tree;
        }
        debug_assert!(in_tree);
        sums
    }
}

/// The sender of silent correlated OT: holds `Δ`; each COT gives it `y_i`, the
/// receiver a random bit `x_i` and `y_i ⊕ x_i·Δ`.
pub struct SilentCotSender {
    delta: Block,
    params: LpnParams,
    /// Base COTs of the next extension (`params.base()` of them).
    base: Vec<Block>,
    /// COTs of the last extension not yet handed out, taken from `pos`.
    pool: Vec<Block>,
    pos: usize,
    extensions: u64,
    index: u64,
    ggm: Ggm,
    code: LpnCode,
    hash: Tccr,
    cost: ExtensionCost,
}

impl Drop for SilentCotSender {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.base.zeroize();
        self.pool.zeroize();
    }
}

/// The receiver of silent correlated OT.
pub struct SilentCotReceiver {
    params: LpnParams,
    /// Base COTs `w = v ⊕ u·Δ` of the next extension; `u = lsb(w)`.
    base: Vec<Block>,
    /// COTs not yet handed out; the choice bit of each is its lsb.
    pool: Vec<Block>,
    pos: usize,
    extensions: u64,
    index: u64,
    ggm: Ggm,
    code: LpnCode,
    hash: Tccr,
    cost: ExtensionCost,
}

impl Drop for SilentCotReceiver {
    fn drop(&mut self) {
        self.base.zeroize();
        self.pool.zeroize();
    }
}

/// What the steady-state extensions of one end have cost: totals, and the
/// last one per fresh OT (for amortizing it over the OTs it yields).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExtensionCost {
    /// Extensions after setup, seconds spent in them and bytes they moved.
    pub count: u64,
    pub secs: f64,
    pub bytes: u64,
    /// The last one's seconds and bytes per fresh OT.
    pub secs_per_ot: f64,
    pub bytes_per_ot: f64,
}

impl ExtensionCost {
    fn record(&mut self, secs: f64, bytes: usize, fresh: usize) {
        self.count += 1;
        self.secs += secs;
        self.bytes += bytes as u64;
        self.secs_per_ot = secs / fresh as f64;
        self.bytes_per_ot = bytes as f64 / fresh as f64;
    }
}

/// Make every sender value's lsb zero (`y ⊕= lsb(y)·Δ`, with `lsb(Δ) = 1`), so
/// the receiver's choice bit is the lsb of its value: `z = y ⊕ x·Δ` gives
/// `lsb(z) = x`. Re-randomizes which message is which, locally; the choice
/// bits stay uniform (IKNP's are, and LPN outputs are pseudorandom).
fn normalize(ys: &mut [Block], delta: Block) {
    for y in ys.iter_mut() {
        *y ^= delta.and_bit(y.lsb());
    }
}

fn check_pair(first: &LpnParams, params: &LpnParams) -> Result<()> {
    first.check()?;
    params.check()?;
    if first.n() <= params.base() || params.fresh(params) == 0 {
        return Err(OtError::InvalidArgument("LPN extension yields nothing"));
    }
    Ok(())
}

impl SilentCotSender {
    /// Base OT, IKNP for the setup extension's base, then one setup extension
    /// ([`LpnParams::SETUP`], then [`LpnParams::EXTEND`] for every later one).
    pub fn setup(
        ch: &mut impl Channel,
        delta: Block,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<SilentCotSender> {
        Self::setup_with(ch, delta, LpnParams::SETUP, LpnParams::EXTEND, rng)
    }

    /// As [`Self::setup`] with other parameters (the tests use small, insecure
    /// ones to run fast).
    pub fn setup_with(
        ch: &mut impl Channel,
        delta: Block,
        first: LpnParams,
        params: LpnParams,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<SilentCotSender> {
        check_pair(&first, &params)?;
        if !delta.lsb() {
            return Err(OtError::InvalidArgument("silent OT needs lsb(Δ) = 1"));
        }
        let mut iknp = CotSender::setup(ch, delta, rng)?;
        let mut base = iknp.send_correlated(ch, first.base())?;
        normalize(&mut base, delta);
        let mut s = SilentCotSender {
            delta,
            params,
            base,
            pool: Vec::new(),
            pos: 0,
            extensions: 0,
            index: 0,
            ggm: Ggm::new(),
            code: LpnCode::new(),
            hash: Tccr::new(),
            cost: ExtensionCost::default(),
        };
        s.extend(ch, first, rng)?;
        Ok(s)
    }

    /// The global offset.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// COTs left before the next extension.
    pub fn available(&self) -> usize {
        self.pool.len() - self.pos
    }

    /// Extensions run so far (the setup one included).
    pub fn extensions(&self) -> u64 {
        self.extensions
    }

    /// What the extensions after setup cost this end.
    pub fn cost(&self) -> ExtensionCost {
        self.cost
    }

    /// Run an extension now (the receiver calls its `refill` in step): the
    /// unused rest of the pool is dropped. Sessions call it at setup so that
    /// queries find a full pool and the cost per OT is measured.
    pub fn refill(
        &mut self,
        ch: &mut impl Channel,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<()> {
        self.extend(ch, self.params, rng)
    }

    /// One extension with parameters `cur` (whose base is `self.base`):
    /// refills the pool and keeps the next extension's base.
    fn extend(
        &mut self,
        ch: &mut impl Channel,
        cur: LpnParams,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let (k, h) = (cur.k, cur.h as usize);
        let leaves = 1usize << h;
        let ext = self.extensions;
        let mut out = vec![Block::ZERO; cur.n()];
        let mut msg = Vec::with_capacity(cur.bytes());
        let mut scratch = Zeroizing::new(vec![Block::ZERO; leaves]);
        {
            let spcot_base = &self.base[k..];
            for (j, tree) in out.chunks_exact_mut(leaves).enumerate() {
                let mut seed = [0u8; 16];
                rng.fill_bytes(&mut seed);
                let sums = Tree::grow(&self.ggm, Block::from_bytes(seed), tree, &mut scratch, h);
                seed.zeroize();
                let tw = spcot_tweak(ext, j * h);
                for (l, &(k0, k1)) in sums.iter().enumerate() {
                    let v = spcot_base[j * h + l];
                    let p0 = self.hash.hash(v, tw + l as u64);
                    let p1 = self.hash.hash(v ^ self.delta, tw + l as u64);
                    msg.extend_from_slice(&(k0 ^ p0).to_bytes());
                    msg.extend_from_slice(&(k1 ^ p1).to_bytes());
                }
                let mut psi = self.delta;
                for &x in tree.iter() {
                    psi ^= x;
                }
                msg.extend_from_slice(&psi.to_bytes());
            }
        }
        ch.send_vec(msg)?;
        ch.flush()?;
        self.code.apply(ext, &self.base[..k], &mut out);
        normalize(&mut out, self.delta);
        if self.extensions > 0 {
            let fresh = cur.n() - self.params.base();
            self.cost
                .record(started.elapsed().as_secs_f64(), cur.bytes(), fresh);
        }
        self.extensions += 1;
        self.base.zeroize();
        self.base = out.split_off(out.len() - self.params.base());
        self.pool.zeroize();
        self.pool = out;
        self.pos = 0;
        Ok(())
    }

    /// `n` correlated OTs `y_i` (the receiver gets `x_i`, `y_i ⊕ x_i·Δ`), and
    /// the session index of the first (for hash tweaks). Extends (one flight
    /// to the receiver) whenever the pool runs dry.
    pub fn correlated(
        &mut self,
        ch: &mut impl Channel,
        n: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(u64, Vec<Block>)> {
        let first = self.index;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.available() == 0 {
                self.extend(ch, self.params, rng)?;
            }
            let take = (n - out.len()).min(self.available());
            out.extend_from_slice(&self.pool[self.pos..self.pos + take]);
            self.pool[self.pos..self.pos + take].zeroize();
            self.pos += take;
        }
        self.index += n as u64;
        Ok((first, out))
    }

    /// `n` random OTs: pairs `(H(y_i, τ_i), H(y_i ⊕ Δ, τ_i))`; the receiver gets
    /// a random bit `x_i` and the pair's `x_i`-th element. Hashes straight out
    /// of the pool (no intermediate copy).
    pub fn random(
        &mut self,
        ch: &mut impl Channel,
        n: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<[Block; 2]>> {
        const B: usize = 256;
        let mut out = Vec::with_capacity(n);
        let mut h0 = [Block::ZERO; B];
        let mut h1 = [Block::ZERO; B];
        let mut flip = Zeroizing::new([Block::ZERO; B]);
        while out.len() < n {
            if self.available() == 0 {
                self.extend(ch, self.params, rng)?;
            }
            let take = (n - out.len()).min(self.available());
            let src = &mut self.pool[self.pos..self.pos + take];
            for chunk in src.chunks_mut(B) {
                let m = chunk.len();
                self.hash.hash_many(chunk, self.index, &mut h0[..m]);
                for (f, y) in flip.iter_mut().zip(chunk.iter()) {
                    *f = *y ^ self.delta;
                }
                self.hash.hash_many(&flip[..m], self.index, &mut h1[..m]);
                out.extend(h0[..m].iter().zip(&h1[..m]).map(|(a, b)| [*a, *b]));
                chunk.zeroize();
                self.index += m as u64;
            }
            self.pos += take;
        }
        h0.zeroize();
        h1.zeroize();
        Ok(out)
    }
}

impl SilentCotReceiver {
    /// The receiver's side of [`SilentCotSender::setup`].
    pub fn setup(
        ch: &mut impl Channel,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<SilentCotReceiver> {
        Self::setup_with(ch, LpnParams::SETUP, LpnParams::EXTEND, rng)
    }

    /// The receiver's side of [`SilentCotSender::setup_with`].
    pub fn setup_with(
        ch: &mut impl Channel,
        first: LpnParams,
        params: LpnParams,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<SilentCotReceiver> {
        check_pair(&first, &params)?;
        let mut iknp = CotReceiver::setup(ch, rng)?;
        let choices: Zeroizing<Vec<bool>> =
            Zeroizing::new((0..first.base()).map(|_| rng.next_u32() & 1 == 1).collect());
        let base = iknp.receive_correlated(ch, &choices)?;
        let mut r = SilentCotReceiver {
            params,
            base,
            pool: Vec::new(),
            pos: 0,
            extensions: 0,
            index: 0,
            ggm: Ggm::new(),
            code: LpnCode::new(),
            hash: Tccr::new(),
            cost: ExtensionCost::default(),
        };
        r.extend(ch, first)?;
        Ok(r)
    }

    /// COTs left before the next extension.
    pub fn available(&self) -> usize {
        self.pool.len() - self.pos
    }

    /// What the extensions after setup cost this end.
    pub fn cost(&self) -> ExtensionCost {
        self.cost
    }

    /// The receiver's side of [`SilentCotSender::refill`].
    pub fn refill(&mut self, ch: &mut impl Channel) -> Result<()> {
        self.extend(ch, self.params)
    }

    fn extend(&mut self, ch: &mut impl Channel, cur: LpnParams) -> Result<()> {
        let (k, h) = (cur.k, cur.h as usize);
        let leaves = 1usize << h;
        let ext = self.extensions;
        let msg = Zeroizing::new(ch.recv()?);
        check_len("silent OT extension", &msg, cur.bytes())?;
        // Timed from the sender's flight: waiting for it is the sender's time.
        let started = std::time::Instant::now();
        let block = |i: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&msg[16 * i..16 * i + 16]);
            Block::from_bytes(b)
        };
        let mut out = vec![Block::ZERO; cur.n()];
        let mut scratch = Zeroizing::new(vec![Block::ZERO; leaves]);
        {
            let spcot_base = &self.base[k..];
            let spcot_bit = |i: usize| spcot_base[i].lsb() as usize;
            for (j, tree) in out.chunks_exact_mut(leaves).enumerate() {
                let tw = spcot_tweak(ext, j * h);
                let m = j * (2 * h + 1);
                // The punctured leaf: at each level, the side not learned.
                let mut alpha = 0usize;
                for l in 0..h {
                    let u = spcot_bit(j * h + l);
                    alpha = (alpha << 1) | (1 - u);
                }
                // Level by level; `cur` holds the known nodes of the level,
                // zero at the path node.
                let mut level = vec![Block::ZERO; 1];
                for l in 0..h {
                    let width = 2usize << l;
                    let dst = &mut scratch[..width];
                    self.ggm.expand(&level, dst);
                    let path = alpha >> (h - l); // path node at the parent level
                    let u = spcot_bit(j * h + l);
                    let key = self.hash.hash(spcot_base[j * h + l], tw + l as u64);
                    let mut sib = block(m + 2 * l + u) ^ key;
                    dst[2 * path] = Block::ZERO;
                    dst[2 * path + 1] = Block::ZERO;
                    for (i, x) in dst.iter().enumerate() {
                        if i & 1 == u {
                            sib ^= *x;
                        }
                    }
                    dst[2 * path + u] = sib;
                    level.zeroize();
                    level = dst.to_vec();
                }
                tree.copy_from_slice(&level);
                level.zeroize();
                let mut acc = block(m + 2 * h);
                for &x in tree.iter() {
                    acc ^= x;
                }
                tree[alpha] = acc;
            }
        }
        self.code.apply(ext, &self.base[..k], &mut out);
        if self.extensions > 0 {
            let fresh = cur.n() - self.params.base();
            self.cost
                .record(started.elapsed().as_secs_f64(), cur.bytes(), fresh);
        }
        self.extensions += 1;
        self.base.zeroize();
        self.base = out.split_off(out.len() - self.params.base());
        self.pool.zeroize();
        self.pool = out;
        self.pos = 0;
        Ok(())
    }

    /// `n` correlated OTs: random bits `x_i` and `y_i ⊕ x_i·Δ`, and the session
    /// index of the first. Extends whenever the pool runs dry.
    pub fn correlated(
        &mut self,
        ch: &mut impl Channel,
        n: usize,
    ) -> Result<(u64, Vec<bool>, Vec<Block>)> {
        let first = self.index;
        let mut out = Vec::with_capacity(n);
        let mut bits = Vec::with_capacity(n);
        while out.len() < n {
            if self.available() == 0 {
                self.extend(ch, self.params)?;
            }
            let take = (n - out.len()).min(self.available());
            let r = self.pos..self.pos + take;
            out.extend_from_slice(&self.pool[r.clone()]);
            bits.extend(self.pool[r.clone()].iter().map(|b| b.lsb()));
            self.pool[r].zeroize();
            self.pos += take;
        }
        self.index += n as u64;
        Ok((first, bits, out))
    }

    /// `n` random OTs: the choice bit `x_i` and `H(y_i ⊕ x_i·Δ, τ_i)`, hashed
    /// straight out of the pool.
    pub fn random(&mut self, ch: &mut impl Channel, n: usize) -> Result<(Vec<bool>, Vec<Block>)> {
        let mut bits = Vec::with_capacity(n);
        let mut out = vec![Block::ZERO; n];
        let mut done = 0usize;
        while done < n {
            if self.available() == 0 {
                self.extend(ch, self.params)?;
            }
            let take = (n - done).min(self.available());
            let r = self.pos..self.pos + take;
            self.hash.hash_many(
                &self.pool[r.clone()],
                self.index,
                &mut out[done..done + take],
            );
            bits.extend(self.pool[r.clone()].iter().map(|b| b.lsb()));
            self.pool[r].zeroize();
            self.pos += take;
            self.index += take as u64;
            done += take;
        }
        Ok((bits, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindfold_core::Prg;

    /// Small, insecure parameters so the tests run in milliseconds.
    const TINY_FIRST: LpnParams = LpnParams {
        k: 200,
        t: 40,
        h: 5,
    };
    const TINY: LpnParams = LpnParams {
        k: 300,
        t: 50,
        h: 6,
    };

    fn run(
        n: usize,
        first: LpnParams,
        params: LpnParams,
    ) -> (Block, Vec<Block>, Vec<bool>, Vec<Block>, u64, u64) {
        let (mut a, mut b) = blindfold_net::MemoryChannel::pair();
        let delta = Block(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        assert!(delta.lsb());
        let snd = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([1; 16]);
            let mut s =
                SilentCotSender::setup_with(&mut a, delta, first, params, &mut rng).unwrap();
            let (_, y) = s.correlated(&mut a, n, &mut rng).unwrap();
            (y, s.extensions(), a.stats().total().bytes())
        });
        let mut rng = Prg::from_seed([2; 16]);
        let mut r = SilentCotReceiver::setup_with(&mut b, first, params, &mut rng).unwrap();
        let (_, x, z) = r.correlated(&mut b, n).unwrap();
        let (y, ext, bytes) = snd.join().unwrap();
        (delta, y, x, z, ext, bytes)
    }

    #[test]
    fn correlation_holds_across_extensions() {
        let n = 3 * TINY.fresh(&TINY) + 17;
        let (delta, y, x, z, ext, _) = run(n, TINY_FIRST, TINY);
        assert!(ext >= 4, "{ext} extensions");
        let ones = x.iter().filter(|&&b| b).count();
        assert!(
            ones > n / 3 && ones < 2 * n / 3,
            "choice bits look biased: {ones}/{n}"
        );
        for i in 0..n {
            assert_eq!(z[i], y[i] ^ delta.and_bit(x[i]), "COT {i}");
        }
    }

    #[test]
    fn random_ots_match_the_choice() {
        let (mut a, mut b) = blindfold_net::MemoryChannel::pair();
        let snd = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([3; 16]);
            let mut s =
                SilentCotSender::setup_with(&mut a, Block(99 | 1), TINY_FIRST, TINY, &mut rng)
                    .unwrap();
            s.random(&mut a, 5000, &mut rng).unwrap()
        });
        let mut rng = Prg::from_seed([4; 16]);
        let mut r = SilentCotReceiver::setup_with(&mut b, TINY_FIRST, TINY, &mut rng).unwrap();
        let (x, m) = r.random(&mut b, 5000).unwrap();
        let pairs = snd.join().unwrap();
        for i in 0..5000 {
            assert_eq!(m[i], pairs[i][x[i] as usize]);
            assert_ne!(m[i], pairs[i][1 - x[i] as usize]);
        }
    }

    #[test]
    fn parameter_sets_are_ferrets() {
        assert_eq!(LpnParams::SETUP.n(), 642_048);
        assert_eq!(LpnParams::EXTEND.n(), 10_805_248);
        assert_eq!(LpnParams::SETUP.base(), 39_934);
        assert!(LpnParams::SETUP.n() > LpnParams::EXTEND.base());
        // 0.45 bits per fresh OT in steady state.
        let bits = 8.0 * LpnParams::EXTEND.bytes() as f64
            / LpnParams::EXTEND.fresh(&LpnParams::EXTEND) as f64;
        assert!(bits < 0.5, "{bits}");
    }

    #[test]
    fn malformed_extension_is_refused() {
        let (mut a, mut b) = blindfold_net::MemoryChannel::pair();
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_seed([5; 16]);
            let mut iknp = CotSender::setup(&mut a, Block(7), &mut rng).unwrap();
            iknp.send_correlated(&mut a, TINY_FIRST.base()).unwrap();
            a.send_vec(vec![0u8; 17]).unwrap();
            a.flush().unwrap();
        });
        let mut rng = Prg::from_seed([6; 16]);
        let e = SilentCotReceiver::setup_with(&mut b, TINY_FIRST, TINY, &mut rng);
        assert!(
            matches!(e, Err(OtError::BadMessage { .. })),
            "{:?}",
            e.err()
        );
        t.join().unwrap();
    }
}
