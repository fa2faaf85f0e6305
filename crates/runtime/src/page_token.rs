//! Page tokens: an opaque, tamper-evident position in a scan.
//!
//! A token carries the last key returned and a digest binding it to the query's filters.
//! A token that was altered, truncated, or used with other filters is `INVALID_ARGUMENT`.

use sha2::{Digest, Sha256};

use crate::error::ServiceError;

const VERSION: u8 = 1;
const TAG_LEN: usize = 8;

/// Makes a token for the position `last_key` of a query whose filters encode to `query`.
pub fn encode(query: &[u8], last_key: &[u8]) -> String {
    let mut raw = Vec::with_capacity(1 + last_key.len() + TAG_LEN);
    raw.push(VERSION);
    raw.extend_from_slice(last_key);
    raw.extend_from_slice(&tag(query, last_key));
    hex(&raw)
}

/// Reads a token back: `Ok(None)` for an empty token (the first page).
pub fn decode(query: &[u8], token: &str) -> Result<Option<Vec<u8>>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ServiceError::invalid("page_token", "is not a token this query returned");
    if token.len() > 4096 {
        return Err(invalid());
    }
    let raw = unhex(token).ok_or_else(invalid)?;
    if raw.len() < 1 + TAG_LEN || raw[0] != VERSION {
        return Err(invalid());
    }
    let (body, mac) = raw[1..].split_at(raw.len() - 1 - TAG_LEN);
    if mac != tag(query, body) {
        return Err(invalid());
    }
    Ok(Some(body.to_vec()))
}

fn tag(query: &[u8], key: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = Sha256::new();
    hasher.update((query.len() as u64).to_be_bytes());
    hasher.update(query);
    hasher.update(key);
    let digest = hasher.finalize();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&digest[..TAG_LEN]);
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xF) as usize] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let token = encode(b"sku=a", b"\x00key\xff");
        assert_eq!(
            decode(b"sku=a", &token).unwrap(),
            Some(b"\x00key\xff".to_vec())
        );
        assert_eq!(decode(b"sku=a", "").unwrap(), None);
    }

    #[test]
    fn another_query_or_a_flipped_byte_is_refused() {
        let token = encode(b"sku=a", b"key");
        assert!(decode(b"sku=b", &token).is_err());
        let mut tampered = token.into_bytes();
        tampered[4] = if tampered[4] == b'0' { b'1' } else { b'0' };
        assert!(decode(b"sku=a", &String::from_utf8(tampered).unwrap()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(token in ".{0,200}") {
            let _ = decode(b"q", &token);
        }

        #[test]
        fn arbitrary_hex_is_refused(bytes: Vec<u8>) {
            prop_assert!(decode(b"q", &hex(&bytes)).is_err() || bytes.is_empty());
        }
    }
}
