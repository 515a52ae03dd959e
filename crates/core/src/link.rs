//! A network link as a deployment declares it: a rate and a round-trip time.
//! The planner prices protocols on it, and benchmarks can shape a channel to
//! it (`--link 100mbit,20ms`).

use serde::{Deserialize, Serialize};

/// A rate in bits per second and a round-trip time in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkSpec {
    pub bits_per_s: u64,
    pub rtt_us: u64,
}

/// Why a link description does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("link {0:?}: expected RATE,RTT such as 1gbit,0.5ms or 100mbit,20ms (rate in kbit/mbit/gbit, RTT in us/ms/s)")]
pub struct LinkParseError(pub String);

impl LinkSpec {
    /// Two servers in one data centre: 1 Gbit/s, 0.5 ms.
    pub const LAN: LinkSpec = LinkSpec {
        bits_per_s: 1_000_000_000,
        rtt_us: 500,
    };
    /// A wide-area link: 100 Mbit/s, 20 ms.
    pub const WAN: LinkSpec = LinkSpec {
        bits_per_s: 100_000_000,
        rtt_us: 20_000,
    };

    /// Seconds to move `bytes` and wait `flights` one-way latencies.
    pub fn seconds(&self, bytes: f64, flights: f64) -> f64 {
        8.0 * bytes / self.bits_per_s as f64 + flights * self.rtt_us as f64 * 0.5e-6
    }

    /// Parse `RATE,RTT`, e.g. `1gbit,0.5ms`, `100mbit,20ms`, `10mbit,80ms`.
    pub fn parse(s: &str) -> Result<LinkSpec, LinkParseError> {
        let err = || LinkParseError(s.to_string());
        let (rate, rtt) = s.split_once(',').ok_or_else(err)?;
        let num = |t: &str, suffixes: &[(&str, f64)]| -> Option<f64> {
            let t = t.trim().to_ascii_lowercase();
            for (suf, mul) in suffixes {
                if let Some(v) = t.strip_suffix(suf) {
                    let v: f64 = v.trim().parse().ok()?;
                    return (v.is_finite() && v >= 0.0).then_some(v * mul);
                }
            }
            None
        };
        let bits = num(rate, &[("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)]).ok_or_else(err)?;
        let us = num(rtt, &[("us", 1.0), ("ms", 1e3), ("s", 1e6)]).ok_or_else(err)?;
        if !(1e3..=1e12).contains(&bits) || us > 10e6 {
            return Err(err());
        }
        Ok(LinkSpec {
            bits_per_s: bits.round() as u64,
            rtt_us: us.round() as u64,
        })
    }
}

impl std::fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.bits_per_s as f64;
        if b >= 1e9 {
            write!(f, "{}gbit", b / 1e9)?;
        } else if b >= 1e6 {
            write!(f, "{}mbit", b / 1e6)?;
        } else {
            write!(f, "{}kbit", b / 1e3)?;
        }
        write!(f, ",{}ms", self.rtt_us as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(LinkSpec::parse("1gbit,0.5ms").unwrap(), LinkSpec::LAN);
        assert_eq!(LinkSpec::parse("100mbit,20ms").unwrap(), LinkSpec::WAN);
        assert_eq!(LinkSpec::LAN.to_string(), "1gbit,0.5ms");
        assert_eq!(LinkSpec::WAN.to_string(), "100mbit,20ms");
        assert_eq!(LinkSpec::parse(" 10MBit , 250us").unwrap().rtt_us, 250);
        for bad in [
            "",
            "1gbit",
            "fast,1ms",
            "1gbit,soon",
            "-1mbit,1ms",
            "0kbit,1ms",
            "1gbit,100s",
            "nanmbit,1ms",
        ] {
            assert!(LinkSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prices_bytes_and_flights() {
        let t = LinkSpec::WAN.seconds(1.25e6, 2.0);
        assert!((t - (0.1 + 0.02)).abs() < 1e-9, "{t}");
    }
}
