//! An in-memory duplex channel pair, for tests with both parties on two threads.
//!
//! Messages move through unbounded `std::sync::mpsc` queues, so `send` never
//! blocks and `flush` is a no-op. Dropping one end makes the other's `recv`
//! return [`NetError::Closed`] once the queued messages are consumed.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::{Channel, Connection, Meter, NetError, Result, Stats, DEFAULT_MAX_FRAME, FRAME_HEADER};

/// One end of an in-memory duplex channel. `Send`: move it to another thread.
pub struct MemoryChannel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    meter: Meter,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    max_frame: usize,
}

impl MemoryChannel {
    /// Two connected ends.
    pub fn pair() -> (MemoryChannel, MemoryChannel) {
        let (tx_a, rx_b) = mpsc::channel();
        let (tx_b, rx_a) = mpsc::channel();
        (
            MemoryChannel {
                tx: tx_a,
                rx: rx_a,
                meter: Meter::new(),
                timeout: None,
                deadline: None,
                max_frame: DEFAULT_MAX_FRAME,
            },
            MemoryChannel {
                tx: tx_b,
                rx: rx_b,
                meter: Meter::new(),
                timeout: None,
                deadline: None,
                max_frame: DEFAULT_MAX_FRAME,
            },
        )
    }

    /// Make `recv` fail with [`NetError::Timeout`] after waiting `t` (`None`: wait forever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.timeout = t;
    }
}

impl Channel for MemoryChannel {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_vec(msg.to_vec())
    }

    fn send_vec(&mut self, msg: Vec<u8>) -> Result<()> {
        if msg.len() > self.max_frame {
            return Err(NetError::FrameTooLarge {
                len: msg.len(),
                max: self.max_frame,
            });
        }
        let n = msg.len() + FRAME_HEADER;
        self.tx.send(msg).map_err(|_| NetError::Closed)?;
        self.meter.on_send(n);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let left = match self.deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(NetError::Timeout),
            },
        };
        let wait = match (left, self.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let m = match wait {
            None => self.rx.recv().map_err(|_| NetError::Closed)?,
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => NetError::Timeout,
                RecvTimeoutError::Disconnected => NetError::Closed,
            })?,
        };
        if m.len() > self.max_frame {
            return Err(NetError::FrameTooLarge {
                len: m.len(),
                max: self.max_frame,
            });
        }
        self.meter.on_recv(m.len() + FRAME_HEADER);
        Ok(m)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn set_phase(&mut self, label: &str) {
        self.meter.set_phase(label)
    }

    fn stats(&self) -> Stats {
        self.meter.stats()
    }
}

impl Connection for MemoryChannel {
    fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.deadline = deadline;
        Ok(())
    }
    fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max.min(u32::MAX as usize);
    }
    fn peer(&self) -> String {
        "memory channel".into()
    }
}
