//! Traffic counters per direction and per labelled phase.
//!
//! A *round* (a flight) is a maximal run of messages in one direction. From one
//! end's point of view a new outgoing round starts with the first `send` after a
//! `recv` (or the first send ever), a new incoming round with the first `recv`
//! after a `send`. A flight is charged to the phase current when it starts. The
//! number of sequential communication rounds of a protocol is
//! `rounds_sent + rounds_received` as seen from either end.

/// Label of the traffic sent before any [`Meter::set_phase`].
pub const DEFAULT_PHASE: &str = "default";

/// Counters of one phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Wire bytes sent (payload plus the 4-byte frame header per message).
    pub bytes_sent: u64,
    /// Wire bytes received (payload plus the 4-byte frame header per message).
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Outgoing flights started in this phase.
    pub rounds_sent: u64,
    /// Incoming flights started in this phase.
    pub rounds_received: u64,
}

impl Counters {
    /// Sequential rounds seen by this end (flights in either direction).
    pub fn rounds(&self) -> u64 {
        self.rounds_sent + self.rounds_received
    }
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
    fn add(&mut self, o: &Counters) {
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.messages_sent += o.messages_sent;
        self.messages_received += o.messages_received;
        self.rounds_sent += o.rounds_sent;
        self.rounds_received += o.rounds_received;
    }
}

/// A snapshot of a channel's counters: phases in order of first use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub phases: Vec<(String, Counters)>,
}

impl Stats {
    /// The counters of one phase, if it was ever used.
    pub fn phase(&self, label: &str) -> Option<&Counters> {
        self.phases.iter().find(|(l, _)| l == label).map(|(_, c)| c)
    }
    /// Sum over all phases.
    pub fn total(&self) -> Counters {
        let mut t = Counters::default();
        for (_, c) in &self.phases {
            t.add(c);
        }
        t
    }
    /// Sum over the phases whose label starts with `prefix` (e.g. `"layer3/"`).
    pub fn total_with_prefix(&self, prefix: &str) -> Counters {
        let mut t = Counters::default();
        for (l, c) in &self.phases {
            if l.starts_with(prefix) {
                t.add(c);
            }
        }
        t
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    None,
    Sent,
    Received,
}

/// The counters a channel keeps. Updating costs a few integer additions.
#[derive(Clone, Debug)]
pub struct Meter {
    phases: Vec<(String, Counters)>,
    current: usize,
    last: Dir,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    pub fn new() -> Meter {
        Meter {
            phases: vec![(DEFAULT_PHASE.to_string(), Counters::default())],
            current: 0,
            last: Dir::None,
        }
    }

    /// Charge the traffic that follows to `label` (created on first use).
    pub fn set_phase(&mut self, label: &str) {
        if self.phases[self.current].0 == label {
            return;
        }
        match self.phases.iter().position(|(l, _)| l == label) {
            Some(i) => self.current = i,
            None => {
                self.phases.push((label.to_string(), Counters::default()));
                self.current = self.phases.len() - 1;
            }
        }
    }

    /// The current phase label.
    pub fn phase(&self) -> &str {
        &self.phases[self.current].0
    }

    /// Record one message of `wire_bytes` sent.
    #[inline]
    pub fn on_send(&mut self, wire_bytes: usize) {
        let c = &mut self.phases[self.current].1;
        if self.last != Dir::Sent {
            c.rounds_sent += 1;
            self.last = Dir::Sent;
        }
        c.bytes_sent += wire_bytes as u64;
        c.messages_sent += 1;
    }

    /// Record one message of `wire_bytes` received.
    #[inline]
    pub fn on_recv(&mut self, wire_bytes: usize) {
        let c = &mut self.phases[self.current].1;
        if self.last != Dir::Received {
            c.rounds_received += 1;
            self.last = Dir::Received;
        }
        c.bytes_received += wire_bytes as u64;
        c.messages_received += 1;
    }

    /// A snapshot; phases that saw no traffic except the default one are kept.
    pub fn stats(&self) -> Stats {
        Stats {
            phases: self.phases.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_flights() {
        let mut m = Meter::new();
        m.on_send(10);
        m.on_send(10);
        m.on_recv(5);
        m.set_phase("online");
        m.on_recv(5); // same incoming flight, started in "default"
        m.on_send(1);
        let s = m.stats();
        let d = s.phase(DEFAULT_PHASE).unwrap();
        assert_eq!((d.rounds_sent, d.rounds_received), (1, 1));
        assert_eq!((d.bytes_sent, d.bytes_received), (20, 5));
        let o = s.phase("online").unwrap();
        assert_eq!((o.rounds_sent, o.rounds_received), (1, 0));
        assert_eq!(o.bytes_received, 5);
        assert_eq!(s.total().rounds(), 3);
        m.set_phase(DEFAULT_PHASE);
        assert_eq!(m.phase(), DEFAULT_PHASE);
    }
}
