//! # blindfold-net
//!
//! Protocol code never touches sockets: it talks to a [`Channel`].
//! (Skeleton: the real implementation lands with issue 3.)
#![deny(unsafe_code)]

/// Errors of a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("peer closed the connection")]
    Closed,
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, NetError>;

/// A reliable, ordered, authenticated duplex message channel to the other party.
pub trait Channel: Send {
    /// Queue one message (a frame) to the peer.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receive the next message from the peer.
    fn recv(&mut self) -> Result<Vec<u8>>;
    /// Push queued messages out.
    fn flush(&mut self) -> Result<()>;
}
