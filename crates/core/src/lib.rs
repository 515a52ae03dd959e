//! # blindfold-core
//!
//! The vocabulary every other blindfold crate speaks:
//!
//! * [`ring`]: the ring `Z_2^64` (wrapping `u64`), fixed-point encoding with
//!   [`FracBits`] fractional bits, and the truncations of DESIGN section 2;
//! * [`tensor`]: a dense row-major tensor of ring elements or floats;
//! * [`prg`]: an AES-128-CTR pseudo-random generator with `fork()` sub-streams;
//! * [`geom`]: convolution and pooling geometry ([`ConvGeom`],
//!   [`ConvTransposeGeom`], [`PoolGeom`]) with checked output-size arithmetic,
//!   shared by the model, the homomorphic packing and the engine;
//! * [`PartyId`]: which of the two computing parties we are.
#![deny(unsafe_code)]

pub mod block;
pub mod geom;
pub mod link;
pub mod prg;
pub mod ring;
pub mod rng09;
pub mod tensor;

pub use block::Block;
pub use geom::{ConvGeom, ConvTransposeGeom, GeomError, PoolGeom};
pub use link::LinkSpec;
pub use prg::{Prg, Seed};
pub use ring::FracBits;
pub use tensor::{Shape, Tensor};

/// One of the two computing parties (servers P0 and P1, or client and server).
///
/// Serialized as its index, a `u8` (0 or 1); any other value is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartyId {
    P0,
    P1,
}

impl PartyId {
    /// 0 or 1.
    pub fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
        }
    }
    /// The other party.
    pub fn other(self) -> PartyId {
        match self {
            PartyId::P0 => PartyId::P1,
            PartyId::P1 => PartyId::P0,
        }
    }
    /// Parse 0 or 1.
    pub fn from_index(i: usize) -> Option<PartyId> {
        match i {
            0 => Some(PartyId::P0),
            1 => Some(PartyId::P1),
            _ => None,
        }
    }
}

impl std::fmt::Display for PartyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P{}", self.index())
    }
}

impl serde::Serialize for PartyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.index() as u8)
    }
}

impl<'de> serde::Deserialize<'de> for PartyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PartyId, D::Error> {
        let i = u8::deserialize(d)?;
        PartyId::from_index(i as usize).ok_or_else(|| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Unsigned(i.into()), &"0 or 1")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_id_serializes_as_its_index() {
        assert_eq!(serde_json::to_string(&PartyId::P1).unwrap(), "1");
        assert_eq!(serde_json::from_str::<PartyId>("0").unwrap(), PartyId::P0);
        assert!(serde_json::from_str::<PartyId>("2").is_err());
        assert_eq!(serde_json::to_string(&FracBits(12)).unwrap(), "12");
        assert_eq!(serde_json::from_str::<FracBits>("7").unwrap(), FracBits(7));
    }
}
