//! SHA-256 digests: the address of every object and page in an image.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

mod pair;
pub use pair::{content_and_pages, two};

/// A SHA-256 digest (32 bytes). Displayed and parsed as 64 lowercase hex digits.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The digest of the concatenation of `parts`.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Digest {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Digest(h.finalize().into())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits; `None` if `s` is anything else.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// The format 1.0 address of a chunk ([`crate::ChunkHome::Local`]):
/// SHA-256 of the concatenated SHA-256 digests of its pages. Since 1.1 a
/// chunk's address is the plain SHA-256 of its content
/// ([`crate::ChunkHome::LocalPlain`]).
pub fn chunk_address(page_digests: &[Digest]) -> Digest {
    Digest::of_parts(page_digests.iter().map(|d| &d.0[..]))
}

/// The format 1.0 address of chunk content (a whole number of pages).
pub fn chunk_address_of(content: &[u8]) -> Digest {
    let digests: Vec<Digest> = content
        .chunks(crate::limits::PAGE_SIZE)
        .map(Digest::of)
        .collect();
    chunk_address(&digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::of_parts([&b"a"[..], &b"bc"[..]]), d);
        assert_eq!(Digest::from_hex("zz"), None);
    }
}
