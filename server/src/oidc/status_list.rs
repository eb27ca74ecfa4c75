//! The Token Status List encoding (draft-ietf-oauth-status-list): one bit per access token,
//! set when the token is no longer valid, packed least-significant bit first, compressed with
//! DEFLATE in the zlib format and carried base64url-encoded in a `statuslist+jwt`.
//!
//! This module is the format only: building and decoding lists, and the claims of the list
//! token and of the `status` claim a referenced token carries. Issuing indexes and serving
//! lists: [`super::status_lists`].

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The `typ` of a status list token.
pub const TYP: &str = "statuslist+jwt";
/// Its media type (the `Accept` a verifier sends, the `Content-Type` it gets).
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";
/// The largest list this encoder builds or a verifier accepts (bits).
pub const MAX_LEN: usize = 1 << 27;

/// The status bit of `len` tokens: 0 valid, 1 invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBits {
    bytes: Vec<u8>,
    len: usize,
}

/// Why a list could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("the list is not base64url")]
    Base64,
    #[error("the list is not zlib-compressed data")]
    Zlib,
    #[error("the list is larger than {MAX_LEN} entries")]
    TooLarge,
    #[error("only one bit per status is supported, not {0}")]
    Bits(u8),
}

impl StatusBits {
    /// `len` valid tokens.
    pub fn new(len: usize) -> Self {
        Self { bytes: vec![0; len.div_ceil(8)], len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks token `idx` invalid, growing the list to hold it; an index at or beyond
    /// [`MAX_LEN`] is refused.
    pub fn set(&mut self, idx: usize) -> Result<(), ListError> {
        if idx >= MAX_LEN {
            return Err(ListError::TooLarge);
        }
        if idx >= self.len {
            self.len = idx + 1;
            self.bytes.resize(self.len.div_ceil(8), 0);
        }
        self.bytes[idx / 8] |= 1 << (idx % 8);
        Ok(())
    }

    /// Marks tokens `start..end` invalid (those within the list).
    pub fn set_range(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        let mut i = start;
        while i < end {
            if i.is_multiple_of(8) && end - i >= 8 {
                let whole = (end - i) / 8;
                self.bytes[i / 8..i / 8 + whole].fill(0xFF);
                i += whole * 8;
            } else {
                self.bytes[i / 8] |= 1 << (i % 8);
                i += 1;
            }
        }
    }

    /// Whether token `idx` is invalid; `None` for an index beyond the list, which a verifier
    /// must treat as an invalid token (the draft: a status it cannot resolve).
    pub fn get(&self, idx: usize) -> Option<bool> {
        self.bytes.get(idx / 8).map(|b| b & (1 << (idx % 8)) != 0)
    }

    /// The `lst` value: base64url (no padding) of the zlib-compressed bytes.
    pub fn encode(&self) -> String {
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(self.bytes.len() / 8),
            flate2::Compression::best(),
        );
        // Writing to and finishing into a Vec fail only if memory does, which aborts anyway.
        z.write_all(&self.bytes).unwrap_or_else(|e| unreachable!("zlib into a Vec: {e}"));
        let compressed = z.finish().unwrap_or_else(|e| unreachable!("zlib into a Vec: {e}"));
        URL_SAFE_NO_PAD.encode(compressed)
    }

    /// Reads an `lst` value (as a verifier does). The length is the bytes' bits: a list does not
    /// say how many of its last byte's bits are used.
    pub fn decode(lst: &str) -> Result<Self, ListError> {
        let compressed = URL_SAFE_NO_PAD.decode(lst.trim_end_matches('=')).map_err(|_| ListError::Base64)?;
        let mut bytes = Vec::new();
        // At most MAX_LEN bits: a small hostile input must not inflate without bound.
        let limit = u64::try_from(MAX_LEN / 8 + 1).unwrap_or(u64::MAX);
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|_| ListError::Zlib)?;
        if bytes.len() * 8 > MAX_LEN {
            return Err(ListError::TooLarge);
        }
        let len = bytes.len() * 8;
        Ok(Self { bytes, len })
    }
}

/// `status_list` in a status list token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListClaim {
    pub bits: u8,
    pub lst: String,
}

impl ListClaim {
    pub fn of(bits: &StatusBits) -> Self {
        Self { bits: 1, lst: bits.encode() }
    }

    pub fn decode(&self) -> Result<StatusBits, ListError> {
        if self.bits != 1 {
            return Err(ListError::Bits(self.bits));
        }
        StatusBits::decode(&self.lst)
    }
}

/// The claims of a status list token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTokenClaims {
    /// The list's own URI (what referenced tokens name as `uri`).
    pub sub: String,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Seconds a verifier may cache it before fetching it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    pub status_list: ListClaim,
}

/// The `status` claim of a referenced (access) token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClaim {
    pub status_list: StatusRef,
}

/// Where a token's status is: index `idx` of the list at `uri`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRef {
    pub idx: u64,
    pub uri: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_packed_least_significant_first() {
        // The draft's example: statuses 1,0,0,1,1,1,0,1 | 1,1,0,0,0,1,0,1 are bytes B9 A3.
        let mut s = StatusBits::new(16);
        for (i, v) in [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1].iter().enumerate() {
            if *v == 1 {
                s.set(i).unwrap();
            }
        }
        assert_eq!(s.bytes, vec![0xB9, 0xA3]);
        assert_eq!(
            (s.get(0), s.get(1), s.get(15), s.get(14)),
            (Some(true), Some(false), Some(true), Some(false))
        );
        assert_eq!(s.get(1000), None, "beyond the list: unresolvable");
    }

    #[test]
    fn the_drafts_example_list_decodes_to_its_bytes() {
        // draft-ietf-oauth-status-list, "Status List in JSON Format" (bits 1).
        let s = StatusBits::decode("eNrbuRgAAhcBXQ").unwrap();
        assert_eq!(s.bytes, vec![0xB9, 0xA3]);
    }

    #[test]
    fn a_list_survives_encoding_and_a_million_mostly_valid_tokens_stay_small() {
        let mut s = StatusBits::new(1_000_000);
        for i in (0..1_000_000).step_by(997) {
            s.set(i).unwrap();
        }
        let lst = s.encode();
        let back = StatusBits::decode(&lst).unwrap();
        assert_eq!(back.bytes, s.bytes);
        assert_eq!((back.get(997 * 3), back.get(997 * 3 + 1)), (Some(true), Some(false)));
        // 125,000 bytes of bits, about a thousand set: far smaller compressed.
        assert!(lst.len() < 20_000, "{}", lst.len());
    }

    #[test]
    fn a_range_sets_exactly_its_bits_and_stays_within_the_list() {
        let mut s = StatusBits::new(40);
        s.set_range(3, 21);
        let set: Vec<usize> = (0..40).filter(|&i| s.get(i) == Some(true)).collect();
        assert_eq!(set, (3..21).collect::<Vec<_>>());
        s.set_range(30, 1000);
        assert_eq!(s.len(), 40, "a range never grows the list");
        assert_eq!((s.get(29), s.get(30), s.get(39)), (Some(false), Some(true), Some(true)));
        let mut all = StatusBits::new(16);
        all.set_range(0, 16);
        assert_eq!(all.bytes, vec![0xFF, 0xFF]);
    }

    #[test]
    fn a_list_grows_to_hold_a_new_index() {
        let mut s = StatusBits::new(0);
        assert!(s.is_empty());
        s.set(20).unwrap();
        assert_eq!(s.len(), 21);
        assert_eq!(s.get(20), Some(true));
        assert_eq!(s.set(MAX_LEN), Err(ListError::TooLarge));
        assert_eq!(s.set(usize::MAX), Err(ListError::TooLarge));
    }

    #[test]
    fn hostile_lists_are_refused_not_inflated() {
        assert_eq!(StatusBits::decode("not base64 !"), Err(ListError::Base64));
        assert_eq!(StatusBits::decode("AAAA"), Err(ListError::Zlib));
        // A zlib bomb: 64 MiB of zeros compress to a few KB, beyond MAX_LEN bits.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 64 << 20]).unwrap();
        let bomb = URL_SAFE_NO_PAD.encode(z.finish().unwrap());
        assert_eq!(StatusBits::decode(&bomb), Err(ListError::TooLarge));
        let claim = ListClaim { bits: 2, lst: StatusBits::new(8).encode() };
        assert_eq!(claim.decode(), Err(ListError::Bits(2)));
    }

    #[test]
    fn the_claims_have_the_drafts_shape() {
        let r =
            StatusClaim { status_list: StatusRef { idx: 7, uri: "https://id.example/statuslists/1".into() } };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({ "status_list": { "idx": 7, "uri": "https://id.example/statuslists/1" } })
        );
        let t = ListTokenClaims {
            sub: "https://id.example/statuslists/1".into(),
            iat: 1,
            exp: None,
            ttl: Some(5),
            status_list: ListClaim::of(&StatusBits::new(8)),
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["status_list"]["bits"], 1);
        assert!(v.get("exp").is_none());
    }
}
