//! Every message of the serving layer, typed, in one place.
//!
//! ```text
//!   client ── Hello::Client ─────────────▶ server      (first frame, any connection)
//!          ◀─ ModelInfo ───────────────────
//!          ── Query {id, kind, share} ────▶            (P0: seed; P1: values)
//!          ◀─ Reply::Ok {cost, output} | Reply::Error {code, message}
//!
//!   P1 ── Hello::Link {Offline|Online, attempt} ──▶ P0 (one per link, same attempt)
//!   P0 ── Job::Offline ──────────▶ P1, then both run the offline phase
//!   P0 ── Job::Have {query} ─────▶ P1 ── JobAnswer::Ready | Missing ─▶ P0
//!   P0 ── Job::Online {query, seq, kind} ─▶ P1 ── JobAnswer::Ready | Missing ─▶ P0,
//!         on Ready both run the online phase on bundle `seq`
//!
//!   P0 ⇄ P1: PeerHello {split, party, deployment, roles, fingerprint}, both at
//!         once, first on the offline link (`PartyEngine::setup`)
//!
//!   client-server mode (one connection per client, `cs_server` / `cs_client`):
//!   client ── Hello::CsClient ──▶ server ── CsInfo {public program, roles, limits} ─▶
//!   both: PeerHello and the session setup (`PartyEngine::setup`)
//!   then any number of: client ── CsRequest::Preprocess ─▶ ◀─ CsGo | Reply::Error,
//!                         both run one offline phase;
//!                       client ── CsRequest::Online {kind} ─▶ ◀─ CsGo | Reply::Error,
//!                         both run the online phase ◀─ Reply::Ok {server's output share}
//! ```
//!
//! Every message starts with the wire [`VERSION`] byte and a tag naming its
//! kind; greetings ([`Hello`]) carry a 4-byte [`MAGIC`] before them, so a
//! stranger's bytes are told apart from an old build's. Fields are fixed-width
//! little-endian integers; variable-length fields carry an explicit count,
//! checked against a limit and against the bytes present before anything is
//! allocated. A decoder consumes the whole message: trailing bytes are an error.
//! No field's presence is ever guessed from a length.

use crate::party::OutputKind;
use blindfold_core::{FracBits, PartyId};

/// The serving wire format's version.
/// Version 2: client-server messages, the per-pixel label circuit and
/// transposed convolutions in the plan (a version-1 peer runs other steps).
/// Version 3: binarized networks (narrow sign circuits, OT-preprocessed
/// binarized and channel-affine steps, the program's binarized layers).
pub const VERSION: u8 = 3;
/// The first bytes of a greeting.
pub const MAGIC: [u8; 4] = *b"BFSV";
/// Longest model name, model id or error message (bytes).
pub const MAX_TEXT: usize = 1024;
/// Most dimensions of an input shape.
pub const MAX_DIMS: usize = 8;
/// Most ring elements in one share (P1's input, a server's output): 2^25
/// values, 256 MiB, the channel's frame limit.
pub const MAX_VALUES: usize = 1 << 25;

/// A query's id, chosen by the client (random) and sent to both servers.
pub type QueryId = [u8; 16];

/// Why a message does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("{what}: not a blindfold serving greeting")]
    BadMagic { what: &'static str },
    #[error("wire version {got}; this build speaks version {want}")]
    Version { got: u8, want: u8 },
    #[error("{what}: unknown tag {tag:#04x}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{what}: message too short ({got} bytes, at least {need} needed)")]
    Truncated {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{what}: {extra} trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("{what}: {len} exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{what}: not UTF-8")]
    InvalidText { what: &'static str },
}

pub type WireResult<T> = std::result::Result<T, WireError>;

/// Appends fields.
struct Out(Vec<u8>);

impl Out {
    fn new(tag: u8) -> Out {
        Out(vec![VERSION, tag])
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f64(&mut self, v: f64) -> &mut Self {
        self.u64(v.to_bits())
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A u32 count, then the text (cut to [`MAX_TEXT`] bytes at a char boundary).
    fn text(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(MAX_TEXT);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u32(end as u32).bytes(&s.as_bytes()[..end])
    }
    fn values(&mut self, xs: &[u64]) -> &mut Self {
        self.u32(xs.len() as u32);
        self.0.reserve(xs.len() * 8);
        for x in xs {
            self.u64(*x);
        }
        self
    }
}

/// Reads fields of one message, checking lengths.
struct In<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    /// Check the version byte and return the tag.
    fn open(what: &'static str, buf: &'a [u8]) -> WireResult<(In<'a>, u8)> {
        let mut r = In { what, buf, pos: 0 };
        let v = r.u8()?;
        if v != VERSION {
            return Err(WireError::Version {
                got: v,
                want: VERSION,
            });
        }
        let tag = r.u8()?;
        Ok((r, tag))
    }
    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(WireError::Truncated {
                what: self.what,
                need: self.pos.saturating_add(n),
                got: self.buf.len(),
            }),
        }
    }
    fn array<const N: usize>(&mut self) -> WireResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> WireResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> WireResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> WireResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> WireResult<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A u64 that must fit a `usize` and be at most `max`.
    fn usize_max(&mut self, max: usize) -> WireResult<usize> {
        let v = self.u64()?;
        if v > max as u64 {
            return Err(WireError::TooLarge {
                what: self.what,
                len: v,
                max: max as u64,
            });
        }
        Ok(v as usize)
    }
    fn count(&mut self, max: usize) -> WireResult<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(WireError::TooLarge {
                what: self.what,
                len: n as u64,
                max: max as u64,
            });
        }
        Ok(n)
    }
    fn text(&mut self) -> WireResult<String> {
        let n = self.count(MAX_TEXT)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::InvalidText { what: self.what })
    }
    fn values(&mut self) -> WireResult<Vec<u64>> {
        let n = self.count(MAX_VALUES)?;
        // `take` checks that the bytes are there before anything is allocated.
        let b = self.take(n * 8)?;
        Ok(blindfold_net::bytes_to_u64s(b))
    }
    fn kind(&mut self) -> WireResult<OutputKind> {
        match self.u8()? {
            0 => Ok(OutputKind::Logits),
            1 => Ok(OutputKind::Label),
            tag => Err(WireError::UnknownTag {
                what: "output kind",
                tag,
            }),
        }
    }
    fn party(&mut self) -> WireResult<PartyId> {
        let tag = self.u8()?;
        PartyId::from_index(tag as usize).ok_or(WireError::UnknownTag { what: "party", tag })
    }
    fn unknown<T>(&self, tag: u8) -> WireResult<T> {
        Err(WireError::UnknownTag {
            what: self.what,
            tag,
        })
    }
    /// The message must end here.
    fn done(self) -> WireResult<()> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes {
                what: self.what,
                extra,
            }),
        }
    }
}

fn kind_byte(k: OutputKind) -> u8 {
    match k {
        OutputKind::Logits => 0,
        OutputKind::Label => 1,
    }
}

// Tags. Distinct across all messages, so a message sent on the wrong
// connection or at the wrong step is an unknown tag, never a misread.
const T_HELLO_CLIENT: u8 = 0x01;
const T_HELLO_LINK: u8 = 0x02;
const T_HELLO_CS_CLIENT: u8 = 0x03;
const T_CS_INFO: u8 = 0x18;
const T_CS_PREPROCESS: u8 = 0x80;
const T_CS_ONLINE: u8 = 0x81;
const T_CS_GO: u8 = 0x82;
const T_MODEL_INFO: u8 = 0x10;
const T_QUERY: u8 = 0x20;
const T_REPLY_OK: u8 = 0x30;
const T_REPLY_ERR: u8 = 0x31;
const T_JOB_OFFLINE: u8 = 0x40;
const T_JOB_ONLINE: u8 = 0x41;
const T_JOB_HAVE: u8 = 0x42;
const T_READY: u8 = 0x50;
const T_MISSING: u8 = 0x51;
const T_PEER_HELLO: u8 = 0x60;
const T_LINK_CHALLENGE: u8 = 0x70;
const T_LINK_PROOF: u8 = 0x71;
const T_LINK_CONFIRM: u8 = 0x72;
const LINK_OFFLINE: u8 = 1;
const LINK_ONLINE: u8 = 2;
const SHARE_SEED: u8 = 1;
const SHARE_VALUES: u8 = 2;

/// Which of P1's two links to P0 a greeting opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// Session setup, then bundle production on demand.
    Offline,
    /// Queries.
    Online,
}

/// The first message on any connection to a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// A client: the server answers with [`ModelInfo`].
    Client,
    /// A client-server client: the server answers with [`CsInfo`].
    CsClient,
    /// P1 opening a peer link to P0; `attempt` is fresh per dial attempt, so
    /// only the two links of one attempt pair up.
    Link { kind: LinkKind, attempt: [u8; 16] },
}

impl Hello {
    const WHAT: &'static str = "greeting";

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out(MAGIC.to_vec());
        o.u8(VERSION);
        match self {
            Hello::Client => {
                o.u8(T_HELLO_CLIENT);
            }
            Hello::CsClient => {
                o.u8(T_HELLO_CS_CLIENT);
            }
            Hello::Link { kind, attempt } => {
                o.u8(T_HELLO_LINK)
                    .u8(match kind {
                        LinkKind::Offline => LINK_OFFLINE,
                        LinkKind::Online => LINK_ONLINE,
                    })
                    .bytes(attempt);
            }
        }
        o.0
    }

    pub fn decode(b: &[u8]) -> WireResult<Hello> {
        if b.len() < MAGIC.len() || b[..MAGIC.len()] != MAGIC {
            return Err(WireError::BadMagic { what: Self::WHAT });
        }
        let (mut r, tag) = In::open(Self::WHAT, &b[MAGIC.len()..])?;
        let h = match tag {
            T_HELLO_CLIENT => Hello::Client,
            T_HELLO_CS_CLIENT => Hello::CsClient,
            T_HELLO_LINK => {
                let kind = match r.u8()? {
                    LINK_OFFLINE => LinkKind::Offline,
                    LINK_ONLINE => LinkKind::Online,
                    tag => {
                        return Err(WireError::UnknownTag {
                            what: "link kind",
                            tag,
                        })
                    }
                };
                Hello::Link {
                    kind,
                    attempt: r.array()?,
                }
            }
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(h)
    }
}

/// What a server tells a client about the model it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub party: PartyId,
    /// The split's id, hex.
    pub model_id: String,
    pub input_shape: Vec<usize>,
    pub frac_bits: FracBits,
    pub output_frac_bits: FracBits,
    pub output_len: usize,
    /// Preprocessed queries ready at this server right now.
    pub ready: usize,
}

/// The JSON form (CLI `--json` output): plain numbers for party and scales.
impl serde::Serialize for ModelInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ModelInfo", 8)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("party", &self.party.index())?;
        st.serialize_field("model_id", &self.model_id)?;
        st.serialize_field("input_shape", &self.input_shape)?;
        st.serialize_field("frac_bits", &self.frac_bits.0)?;
        st.serialize_field("output_frac_bits", &self.output_frac_bits.0)?;
        st.serialize_field("output_len", &self.output_len)?;
        st.serialize_field("ready", &self.ready)?;
        st.end()
    }
}

/// Largest fractional-bit count a server may announce.
const MAX_FRAC: u32 = 62;

impl ModelInfo {
    const WHAT: &'static str = "model info";

    /// Inputs per query (the product of the input shape).
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(T_MODEL_INFO);
        o.text(&self.name)
            .u8(self.party.index() as u8)
            .text(&self.model_id)
            .u8(self.input_shape.len().min(MAX_DIMS) as u8);
        for d in self.input_shape.iter().take(MAX_DIMS) {
            o.u64(*d as u64);
        }
        o.u32(self.frac_bits.0)
            .u32(self.output_frac_bits.0)
            .u64(self.output_len as u64)
            .u64(self.ready as u64);
        o.0
    }

    pub fn decode(b: &[u8]) -> WireResult<ModelInfo> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        if tag != T_MODEL_INFO {
            return r.unknown(tag);
        }
        let name = r.text()?;
        let party = r.party()?;
        let model_id = r.text()?;
        let dims = r.u8()? as usize;
        if dims > MAX_DIMS {
            return Err(WireError::TooLarge {
                what: "input shape",
                len: dims as u64,
                max: MAX_DIMS as u64,
            });
        }
        let mut input_shape = Vec::with_capacity(dims);
        // Every partial product is bounded, in the order `input_len`
        // multiplies: a zero dimension after huge ones must not hide an overflow.
        let mut numel: usize = 1;
        for _ in 0..dims {
            let d = r.usize_max(MAX_VALUES)?;
            numel = numel.saturating_mul(d);
            if numel > MAX_VALUES {
                return Err(WireError::TooLarge {
                    what: "input size",
                    len: numel as u64,
                    max: MAX_VALUES as u64,
                });
            }
            input_shape.push(d);
        }
        let mut frac = || -> WireResult<FracBits> {
            let f = r.u32()?;
            if f > MAX_FRAC {
                return Err(WireError::TooLarge {
                    what: "fractional bits",
                    len: f as u64,
                    max: MAX_FRAC as u64,
                });
            }
            Ok(FracBits(f))
        };
        let frac_bits = frac()?;
        let output_frac_bits = frac()?;
        let output_len = r.usize_max(MAX_VALUES)?;
        let ready = r.usize_max(u32::MAX as usize)?;
        r.done()?;
        Ok(ModelInfo {
            name,
            party,
            model_id,
            input_shape,
            frac_bits,
            output_frac_bits,
            output_len,
            ready,
        })
    }
}

/// A client's input share, in the form each server takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Share {
    /// P0: the seed its share expands from ([`crate::sharing::share0_from_seed`]).
    Seed([u8; 16]),
    /// P1: the masked input, one ring element per input value.
    Values(Vec<u64>),
}

/// A client's query to one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: QueryId,
    pub kind: OutputKind,
    pub share: Share,
}

impl Query {
    const WHAT: &'static str = "query";

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(T_QUERY);
        o.bytes(&self.id).u8(kind_byte(self.kind));
        match &self.share {
            Share::Seed(s) => o.u8(SHARE_SEED).bytes(s),
            Share::Values(v) => o.u8(SHARE_VALUES).values(v),
        };
        o.0
    }

    pub fn decode(b: &[u8]) -> WireResult<Query> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        if tag != T_QUERY {
            return r.unknown(tag);
        }
        let id = r.array()?;
        let kind = r.kind()?;
        let share = match r.u8()? {
            SHARE_SEED => Share::Seed(r.array()?),
            SHARE_VALUES => Share::Values(r.values()?),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "share form",
                    tag,
                })
            }
        };
        r.done()?;
        Ok(Query { id, kind, share })
    }
}

/// Costs a server reports with its output share.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
pub struct QueryCost {
    /// Offline phase of the bundle used (this server's view).
    pub offline_ms: f64,
    pub offline_bytes: u64,
    /// Online phase between the servers.
    pub online_ms: f64,
    pub online_bytes: u64,
    pub online_rounds: u64,
    /// Time the query waited for a bundle and the peer link.
    pub queue_ms: f64,
}

/// Why a server refused or failed a query (sent with the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The query message did not decode, or a query id was reused.
    BadRequest,
    /// The share does not fit the model (size, form, output kind).
    BadInput,
    /// The other server did not get (or lost) this query's share in time.
    MissingShare,
    /// The query waited longer than the server's timeout.
    Expired,
    /// The link between the servers failed or is not up.
    PeerUnavailable,
    /// Anything else that went wrong at the server.
    Internal,
    /// The server holds as many queries as it accepts (in all, or from this
    /// source); try again later.
    Busy,
}

impl ErrorCode {
    fn byte(self) -> u8 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::BadInput => 2,
            ErrorCode::MissingShare => 3,
            ErrorCode::Expired => 4,
            ErrorCode::PeerUnavailable => 5,
            ErrorCode::Internal => 6,
            ErrorCode::Busy => 7,
        }
    }
    fn from_byte(tag: u8) -> WireResult<ErrorCode> {
        Ok(match tag {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::BadInput,
            3 => ErrorCode::MissingShare,
            4 => ErrorCode::Expired,
            5 => ErrorCode::PeerUnavailable,
            6 => ErrorCode::Internal,
            7 => ErrorCode::Busy,
            tag => {
                return Err(WireError::UnknownTag {
                    what: "error code",
                    tag,
                })
            }
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorCode::BadRequest => "bad request",
            ErrorCode::BadInput => "bad input",
            ErrorCode::MissingShare => "missing share",
            ErrorCode::Expired => "expired",
            ErrorCode::PeerUnavailable => "peer unavailable",
            ErrorCode::Internal => "internal error",
            ErrorCode::Busy => "busy",
        })
    }
}

/// A server's answer to a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Ok { cost: QueryCost, output: Vec<u64> },
    Error { code: ErrorCode, message: String },
}

impl Reply {
    const WHAT: &'static str = "reply";

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error {
            code,
            message: message.into(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Ok { cost, output } => {
                let mut o = Out::new(T_REPLY_OK);
                o.f64(cost.offline_ms)
                    .u64(cost.offline_bytes)
                    .f64(cost.online_ms)
                    .u64(cost.online_bytes)
                    .u64(cost.online_rounds)
                    .f64(cost.queue_ms)
                    .values(output);
                o.0
            }
            Reply::Error { code, message } => {
                let mut o = Out::new(T_REPLY_ERR);
                o.u8(code.byte()).text(message);
                o.0
            }
        }
    }

    pub fn decode(b: &[u8]) -> WireResult<Reply> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        let reply = match tag {
            T_REPLY_OK => {
                let cost = QueryCost {
                    offline_ms: r.f64()?,
                    offline_bytes: r.u64()?,
                    online_ms: r.f64()?,
                    online_bytes: r.u64()?,
                    online_rounds: r.u64()?,
                    queue_ms: r.f64()?,
                };
                Reply::Ok {
                    cost,
                    output: r.values()?,
                }
            }
            T_REPLY_ERR => Reply::Error {
                code: ErrorCode::from_byte(r.u8()?)?,
                message: r.text()?,
            },
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(reply)
    }
}

/// P0's instruction to P1 on a peer link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// (Offline link) Both produce one bundle now.
    Offline,
    /// (Online link) Does P1 hold the share of `query`? Answered within a
    /// short wait with [`JobAnswer`].
    Have { query: QueryId },
    /// (Online link) Run the online phase of `query` on bundle `seq` (P1's
    /// next one) with output `kind`; P1 answers first, `Ready` to go ahead.
    Online {
        query: QueryId,
        seq: u64,
        kind: OutputKind,
    },
}

impl Job {
    const WHAT: &'static str = "link job";

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Job::Offline => Out::new(T_JOB_OFFLINE).0,
            Job::Have { query } => {
                let mut o = Out::new(T_JOB_HAVE);
                o.bytes(query);
                o.0
            }
            Job::Online { query, seq, kind } => {
                let mut o = Out::new(T_JOB_ONLINE);
                o.bytes(query).u64(*seq).u8(kind_byte(*kind));
                o.0
            }
        }
    }

    pub fn decode(b: &[u8]) -> WireResult<Job> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        let job = match tag {
            T_JOB_OFFLINE => Job::Offline,
            T_JOB_HAVE => Job::Have { query: r.array()? },
            T_JOB_ONLINE => Job::Online {
                query: r.array()?,
                seq: r.u64()?,
                kind: r.kind()?,
            },
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(job)
    }
}

/// P1's answer to [`Job::Have`] and [`Job::Online`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAnswer {
    /// P1 holds the client's share (and, for `Online`, starts the online phase).
    Ready,
    /// P1 does not hold it (or, for `Online`, cannot use it); nothing runs.
    Missing,
}

impl JobAnswer {
    const WHAT: &'static str = "job answer";

    pub fn encode(&self) -> Vec<u8> {
        Out::new(match self {
            JobAnswer::Ready => T_READY,
            JobAnswer::Missing => T_MISSING,
        })
        .0
    }

    pub fn decode(b: &[u8]) -> WireResult<JobAnswer> {
        let (r, tag) = In::open(Self::WHAT, b)?;
        let a = match tag {
            T_READY => JobAnswer::Ready,
            T_MISSING => JobAnswer::Missing,
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(a)
    }
}

/// The first message of a session between the servers (both send it at once,
/// `PartyEngine::setup`): what each must agree on before any key or OT flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// The split both shares come from.
    pub model_id: [u8; 16],
    pub party: PartyId,
    /// `Deployment::wire_id`.
    pub deployment: u8,
    /// `Roles::to_wire`.
    pub roles: [u8; crate::plan::Roles::WIRE_LEN],
    /// `share::architecture_fingerprint` of the program.
    pub fingerprint: u64,
}

impl PeerHello {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(T_PEER_HELLO);
        o.bytes(&self.model_id)
            .u8(self.party.index() as u8)
            .u8(self.deployment)
            .bytes(&self.roles)
            .u64(self.fingerprint);
        o.0
    }

    pub fn decode(b: &[u8]) -> WireResult<PeerHello> {
        let (mut r, tag) = In::open("peer hello", b)?;
        if tag != T_PEER_HELLO {
            return r.unknown(tag);
        }
        let h = PeerHello {
            model_id: r.array()?,
            party: r.party()?,
            deployment: r.u8()?,
            roles: r.array()?,
            fingerprint: r.u64()?,
        };
        r.done()?;
        Ok(h)
    }
}

/// Proving the split's pairing secret on a new peer link (`serve::pairing`),
/// before the link is handed to the leader.
///
/// ```text
///   P1 ── Hello::Link {kind, attempt} ──▶ P0
///   P1 ◀── Challenge {n0} ───────────────  P0
///   P1 ── Proof {n1, mac_P1} ────────────▶ P0   checks mac_P1
///   P1 ◀── Confirm {mac_P0} ─────────────  P0   P1 checks mac_P0
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkAuth {
    Challenge { nonce: [u8; 32] },
    Proof { nonce: [u8; 32], mac: [u8; 32] },
    Confirm { mac: [u8; 32] },
}

impl LinkAuth {
    const WHAT: &'static str = "link authentication";

    pub fn encode(&self) -> Vec<u8> {
        match self {
            LinkAuth::Challenge { nonce } => {
                let mut o = Out::new(T_LINK_CHALLENGE);
                o.bytes(nonce);
                o.0
            }
            LinkAuth::Proof { nonce, mac } => {
                let mut o = Out::new(T_LINK_PROOF);
                o.bytes(nonce).bytes(mac);
                o.0
            }
            LinkAuth::Confirm { mac } => {
                let mut o = Out::new(T_LINK_CONFIRM);
                o.bytes(mac);
                o.0
            }
        }
    }

    pub fn decode(b: &[u8]) -> WireResult<LinkAuth> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        let m = match tag {
            T_LINK_CHALLENGE => LinkAuth::Challenge { nonce: r.array()? },
            T_LINK_PROOF => LinkAuth::Proof {
                nonce: r.array()?,
                mac: r.array()?,
            },
            T_LINK_CONFIRM => LinkAuth::Confirm { mac: r.array()? },
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_auth_round_trip_and_malformed() {
        let ms = [
            LinkAuth::Challenge { nonce: [1; 32] },
            LinkAuth::Proof {
                nonce: [2; 32],
                mac: [3; 32],
            },
            LinkAuth::Confirm { mac: [4; 32] },
        ];
        malformed(&ms, LinkAuth::encode, LinkAuth::decode, 0);
    }

    #[test]
    fn client_server_messages_round_trip_and_malformed() {
        let infos = [
            CsInfo {
                label_only: false,
                max_pool: 4,
                roles: [1, 0, 0, 1, 0],
                program: vec![1, 2, 3, 4, 5],
            },
            CsInfo {
                label_only: true,
                max_pool: MAX_CS_POOL,
                roles: [1, 0, 0, 0, 0],
                program: Vec::new(),
            },
        ];
        malformed(&infos, CsInfo::encode, CsInfo::decode, 0);
        // A flag that is neither 0 nor 1, a pool beyond the limit, a program
        // longer than the limit (refused before anything is allocated).
        let mut b = infos[0].encode();
        b[2] = 2;
        assert!(matches!(
            CsInfo::decode(&b),
            Err(WireError::UnknownTag { tag: 2, .. })
        ));
        let mut b = infos[0].encode();
        b[3..7].copy_from_slice(&(MAX_CS_POOL as u32 + 1).to_le_bytes());
        assert!(matches!(
            CsInfo::decode(&b),
            Err(WireError::TooLarge { .. })
        ));
        let mut b = infos[0].encode();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            CsInfo::decode(&b),
            Err(WireError::TooLarge { .. })
        ));
        let reqs = [
            CsRequest::Preprocess,
            CsRequest::Online {
                kind: OutputKind::Logits,
            },
            CsRequest::Online {
                kind: OutputKind::Label,
            },
        ];
        malformed(&reqs, CsRequest::encode, CsRequest::decode, 0);
        let mut b = reqs[1].encode();
        b[2] = 7;
        assert!(matches!(
            CsRequest::decode(&b),
            Err(WireError::UnknownTag { tag: 7, .. })
        ));
        // The go-ahead, a refusal in its place, and anything else.
        assert_eq!(CsGo::decode(&CsGo::encode()), Ok(Ok(())));
        let refusal = Reply::error(ErrorCode::Busy, "full");
        assert_eq!(CsGo::decode(&refusal.encode()), Ok(Err(refusal)));
        assert!(CsGo::decode(&replies()[0].encode()).is_err());
        let mut b = CsGo::encode();
        b.push(0);
        assert!(CsGo::decode(&b).is_err());
        assert!(CsGo::decode(&[]).is_err());
    }

    #[test]
    fn peer_hello_round_trip_and_malformed() {
        let h = PeerHello {
            model_id: [3; 16],
            party: PartyId::P1,
            deployment: 1,
            roles: [3, 0, 0, 0, 0],
            fingerprint: 0x0123_4567_89ab_cdef,
        };
        malformed(
            std::slice::from_ref(&h),
            PeerHello::encode,
            PeerHello::decode,
            0,
        );
        let mut b = h.encode();
        b[2 + 16] = 2;
        assert_eq!(
            PeerHello::decode(&b),
            Err(WireError::UnknownTag {
                what: "party",
                tag: 2
            })
        );
    }

    fn info() -> ModelInfo {
        ModelInfo {
            name: "minionn é".into(),
            party: PartyId::P1,
            model_id: "ab".repeat(16),
            input_shape: vec![1, 1, 28, 28],
            frac_bits: FracBits(12),
            output_frac_bits: FracBits(13),
            output_len: 10,
            ready: 3,
        }
    }

    fn queries() -> Vec<Query> {
        vec![
            Query {
                id: [7; 16],
                kind: OutputKind::Logits,
                share: Share::Seed([9; 16]),
            },
            Query {
                id: [8; 16],
                kind: OutputKind::Label,
                share: Share::Values(vec![1, u64::MAX, 3]),
            },
            Query {
                id: [0; 16],
                kind: OutputKind::Logits,
                share: Share::Values(vec![]),
            },
        ]
    }

    fn replies() -> Vec<Reply> {
        vec![
            Reply::Ok {
                cost: QueryCost {
                    offline_ms: 1.5,
                    offline_bytes: 2,
                    online_ms: 3.25,
                    online_bytes: 4,
                    online_rounds: 5,
                    queue_ms: 0.0,
                },
                output: vec![9, 8, 7],
            },
            Reply::error(ErrorCode::BadInput, "input share has 3 values"),
            Reply::error(ErrorCode::Internal, ""),
        ]
    }

    fn jobs() -> Vec<Job> {
        vec![
            Job::Offline,
            Job::Have { query: [3; 16] },
            Job::Online {
                query: [4; 16],
                seq: 1 << 40,
                kind: OutputKind::Label,
            },
        ]
    }

    fn hellos() -> Vec<Hello> {
        vec![
            Hello::Client,
            Hello::CsClient,
            Hello::Link {
                kind: LinkKind::Offline,
                attempt: [5; 16],
            },
            Hello::Link {
                kind: LinkKind::Online,
                attempt: [6; 16],
            },
        ]
    }

    /// Round trip, every truncation, one trailing byte, a wrong version and an
    /// unknown tag, for every encoded message of one type.
    fn malformed<T: std::fmt::Debug + PartialEq>(
        msgs: &[T],
        enc: impl Fn(&T) -> Vec<u8>,
        dec: impl Fn(&[u8]) -> WireResult<T>,
        header: usize,
    ) {
        for m in msgs {
            let b = enc(m);
            assert_eq!(&dec(&b).unwrap(), m);
            for cut in 0..b.len() {
                match dec(&b[..cut]) {
                    Err(WireError::Truncated { need, got, .. }) if cut >= header => {
                        assert_eq!(got, cut - header, "{m:?} cut at {cut}");
                        assert!(need > got, "{m:?} cut at {cut}");
                    }
                    Err(WireError::BadMagic { .. }) if cut < header => {}
                    other => panic!("{m:?} cut at {cut}: {other:?}"),
                }
            }
            let mut t = b.clone();
            t.push(0);
            assert!(
                matches!(dec(&t), Err(WireError::TrailingBytes { extra: 1, .. })),
                "{m:?} with a trailing byte: {:?}",
                dec(&t)
            );
            let mut t = b.clone();
            t[header] = VERSION + 1;
            assert_eq!(
                dec(&t),
                Err(WireError::Version {
                    got: VERSION + 1,
                    want: VERSION
                })
            );
            let mut t = b.clone();
            t[header + 1] = 0xEE;
            assert!(
                matches!(dec(&t), Err(WireError::UnknownTag { tag: 0xEE, .. })),
                "{m:?} with tag 0xEE: {:?}",
                dec(&t)
            );
        }
    }

    #[test]
    fn hello_round_trip_and_malformed() {
        malformed(&hellos(), Hello::encode, Hello::decode, MAGIC.len());
        let mut b = Hello::Client.encode();
        b[0] = b'X';
        assert!(matches!(Hello::decode(&b), Err(WireError::BadMagic { .. })));
        // The old text greetings are not greetings any more.
        for old in [
            &b"BFCLIENT1"[..],
            b"BFLINK1",
            b"BFLINK1F",
            b"GET / HTTP/1.1",
        ] {
            assert!(matches!(
                Hello::decode(old),
                Err(WireError::BadMagic { .. })
            ));
        }
        let mut b = hellos()[2].encode();
        b[MAGIC.len() + 2] = 3;
        assert_eq!(
            Hello::decode(&b),
            Err(WireError::UnknownTag {
                what: "link kind",
                tag: 3
            })
        );
    }

    #[test]
    fn model_info_round_trip_and_malformed() {
        malformed(&[info()], ModelInfo::encode, ModelInfo::decode, 0);
        // A party index that is neither 0 nor 1.
        let b = info().encode();
        let party_at = 2 + 4 + info().name.len();
        let mut t = b.clone();
        t[party_at] = 2;
        assert_eq!(
            ModelInfo::decode(&t),
            Err(WireError::UnknownTag {
                what: "party",
                tag: 2
            })
        );
        // Too many dimensions, a huge dimension, bad fractional bits.
        let dims_at = party_at + 1 + 4 + info().model_id.len();
        let mut t = b.clone();
        t[dims_at] = 9;
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::TooLarge { len: 9, .. })
        ));
        let mut t = b.clone();
        t[dims_at + 1..dims_at + 9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::TooLarge { len: u64::MAX, .. })
        ));
        let frac_at = dims_at + 1 + 4 * 8;
        let mut t = b.clone();
        t[frac_at..frac_at + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::TooLarge { len: 99, .. })
        ));
        // A name that claims more bytes than the limit, or that is not UTF-8.
        let mut t = b.clone();
        t[2..6].copy_from_slice(&(MAX_TEXT as u32 + 1).to_le_bytes());
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::TooLarge { .. })
        ));
        let mut t = b.clone();
        t[6] = 0xFF;
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::InvalidText { .. })
        ));
        // Found by fuzzing (fuzz/corpus/wire_model_info/regress-input-len-overflow):
        // a product that overflows, hidden by a last dimension of zero, was
        // accepted, and `input_len` then overflowed.
        let huge = MAX_VALUES as u64;
        let mut t = b[..dims_at].to_vec();
        t.push(4);
        for d in [huge, huge, huge, 0] {
            t.extend_from_slice(&d.to_le_bytes());
        }
        t.extend_from_slice(&b[frac_at..]);
        assert!(matches!(
            ModelInfo::decode(&t),
            Err(WireError::TooLarge {
                what: "input size",
                ..
            })
        ));
        // Other messages are not model info.
        for other in [Hello::Client.encode()[4..].to_vec(), Job::Offline.encode()] {
            assert!(ModelInfo::decode(&other).is_err());
        }
    }

    #[test]
    fn query_round_trip_and_malformed() {
        malformed(&queries(), Query::encode, Query::decode, 0);
        let b = queries()[0].encode();
        let mut t = b.clone();
        t[18] = 2;
        assert_eq!(
            Query::decode(&t),
            Err(WireError::UnknownTag {
                what: "output kind",
                tag: 2
            })
        );
        let mut t = b.clone();
        t[19] = 7;
        assert_eq!(
            Query::decode(&t),
            Err(WireError::UnknownTag {
                what: "share form",
                tag: 7
            })
        );
        // A count that lies: more values than the limit, or than the bytes sent.
        let b = queries()[1].encode();
        let mut t = b.clone();
        t[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Query::decode(&t), Err(WireError::TooLarge { .. })));
        let mut t = b.clone();
        t[20..24].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            Query::decode(&t),
            Err(WireError::Truncated { need, got, .. }) if need == 24 + 32 && got == 24 + 24
        ));
        // The seed form is exactly 16 bytes: one more or one fewer never decodes.
        let b = queries()[0].encode();
        assert!(Query::decode(&b[..b.len() - 1]).is_err());
        let mut t = b.clone();
        t.push(1);
        assert!(matches!(
            Query::decode(&t),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn reply_round_trip_and_malformed() {
        malformed(&replies(), Reply::encode, Reply::decode, 0);
        let mut t = replies()[1].encode();
        t[2] = 0;
        assert_eq!(
            Reply::decode(&t),
            Err(WireError::UnknownTag {
                what: "error code",
                tag: 0
            })
        );
        // A long message is cut at the limit (on a character boundary).
        let long = "é".repeat(MAX_TEXT);
        let r = Reply::decode(&Reply::error(ErrorCode::Internal, long).encode()).unwrap();
        match r {
            Reply::Error { message, .. } => {
                assert!(message.len() <= MAX_TEXT && message.len() >= MAX_TEXT - 1)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn job_round_trip_and_malformed() {
        malformed(&jobs(), Job::encode, Job::decode, 0);
        malformed(
            &[JobAnswer::Ready, JobAnswer::Missing],
            JobAnswer::encode,
            JobAnswer::decode,
            0,
        );
        // A job is not an answer, nor the other way round.
        assert!(JobAnswer::decode(&Job::Offline.encode()).is_err());
        assert!(Job::decode(&JobAnswer::Ready.encode()).is_err());
        let mut t = jobs()[2].encode();
        let last = t.len() - 1;
        t[last] = 9;
        assert!(matches!(
            Job::decode(&t),
            Err(WireError::UnknownTag { tag: 9, .. })
        ));
    }
}

/// Largest public program a client-server client accepts (bytes).
pub const MAX_PROGRAM_BYTES: usize = 1 << 28;
/// Most bundles a client-server connection may keep preprocessed.
pub const MAX_CS_POOL: usize = 64;

/// What a client-server server tells its client: the public program (the
/// architecture and scales, every weight and bias zero, as a share file for
/// party 1), the roles the session runs, and the server's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsInfo {
    /// The server answers labels (or masks) only.
    pub label_only: bool,
    /// Bundles the server keeps per connection at most.
    pub max_pool: usize,
    /// `Roles::to_wire` of the session.
    pub roles: [u8; 5],
    /// `share::ModelShare::to_bytes` of the weightless program for party 1.
    pub program: Vec<u8>,
}

impl CsInfo {
    const WHAT: &'static str = "client-server model info";

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::new(T_CS_INFO);
        o.u8(self.label_only as u8)
            .u32(self.max_pool.min(MAX_CS_POOL) as u32)
            .bytes(&self.roles)
            .u32(self.program.len() as u32)
            .bytes(&self.program);
        o.0
    }

    pub fn decode(b: &[u8]) -> WireResult<CsInfo> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        if tag != T_CS_INFO {
            return r.unknown(tag);
        }
        let label_only = match r.u8()? {
            0 => false,
            1 => true,
            tag => {
                return Err(WireError::UnknownTag {
                    what: "label-only flag",
                    tag,
                })
            }
        };
        let max_pool = r.count(MAX_CS_POOL)?;
        let roles = r.array()?;
        let n = r.count(MAX_PROGRAM_BYTES)?;
        let program = r.take(n)?.to_vec();
        r.done()?;
        Ok(CsInfo {
            label_only,
            max_pool,
            roles,
            program,
        })
    }
}

/// A client-server client's request on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsRequest {
    /// Run one offline phase (both keep the bundle, in order).
    Preprocess,
    /// Run the online phase on the oldest bundle; the server then sends its
    /// output share in a [`Reply`].
    Online { kind: OutputKind },
}

impl CsRequest {
    const WHAT: &'static str = "client-server request";

    pub fn encode(&self) -> Vec<u8> {
        match self {
            CsRequest::Preprocess => Out::new(T_CS_PREPROCESS).0,
            CsRequest::Online { kind } => {
                let mut o = Out::new(T_CS_ONLINE);
                o.u8(kind_byte(*kind));
                o.0
            }
        }
    }

    pub fn decode(b: &[u8]) -> WireResult<CsRequest> {
        let (mut r, tag) = In::open(Self::WHAT, b)?;
        let q = match tag {
            T_CS_PREPROCESS => CsRequest::Preprocess,
            T_CS_ONLINE => CsRequest::Online { kind: r.kind()? },
            t => return r.unknown(t),
        };
        r.done()?;
        Ok(q)
    }
}

/// The server's go-ahead for a [`CsRequest`] (a refusal is a [`Reply::Error`]).
pub struct CsGo;

impl CsGo {
    const WHAT: &'static str = "client-server go-ahead";

    pub fn encode() -> Vec<u8> {
        Out::new(T_CS_GO).0
    }

    /// `Ok(Ok(()))` for the go-ahead, `Ok(Err(reply))` for a refusal.
    pub fn decode(b: &[u8]) -> WireResult<std::result::Result<(), Reply>> {
        let (r, tag) = In::open(Self::WHAT, b)?;
        if tag == T_CS_GO {
            r.done()?;
            return Ok(Ok(()));
        }
        match Reply::decode(b)? {
            e @ Reply::Error { .. } => Ok(Err(e)),
            Reply::Ok { .. } => Err(WireError::UnknownTag {
                what: Self::WHAT,
                tag: T_REPLY_OK,
            }),
        }
    }
}
