#![no_main]
#![forbid(unsafe_code)]
//! Page tokens (`page_token::encode`, `page_token::decode`).
//!
//! - Arbitrary text never panics; a refusal is always INVALID_ARGUMENT on `page_token`.
//! - A token that decodes is exactly the token `encode` makes for that query and key, so
//!   nothing but our own tokens is ever accepted.
//! - A token round-trips for its own query (up to the 4,096-character limit on tokens), and
//!   never decodes for another query or with any one character changed.

use arbitrary::Arbitrary;
use coldchain_runtime::Code;
use coldchain_runtime::page_token::{decode, encode};
use libfuzzer_sys::fuzz_target;

/// The longest token `decode` reads.
const MAX_TOKEN_CHARS: usize = 4096;

#[derive(Debug, Arbitrary)]
enum Case {
    /// Any text as a token.
    Text(Vec<u8>, String),
    /// A token made for one query, used as-is, with another query, and tampered with.
    Made {
        query: Vec<u8>,
        other_query: Vec<u8>,
        key: Vec<u8>,
        at: usize,
        replacement: char,
        cut: usize,
    },
}

fn refused(query: &[u8], token: &str) -> bool {
    match decode(query, token) {
        Ok(_) => false,
        Err(error) => {
            assert_eq!(error.code, Code::InvalidArgument, "{error:?}");
            assert_eq!(error.field_violations.len(), 1, "{error:?}");
            assert_eq!(error.field_violations[0].field, "page_token");
            true
        }
    }
}

fuzz_target!(|case: Case| {
    match case {
        Case::Text(query, token) => {
            if refused(&query, &token) {
                return;
            }
            match decode(&query, &token) {
                Ok(None) => assert!(token.is_empty()),
                Ok(Some(key)) => assert_eq!(encode(&query, &key), token),
                Err(error) => panic!("decode is not deterministic: {error:?}"),
            }
        }
        Case::Made {
            query,
            other_query,
            key,
            at,
            replacement,
            cut,
        } => {
            let token = encode(&query, &key);
            if token.len() > MAX_TOKEN_CHARS {
                assert!(refused(&query, &token));
                return;
            }
            assert_eq!(decode(&query, &token).ok(), Some(Some(key.clone())));
            if other_query != query {
                assert!(refused(&other_query, &token));
            }
            // One character replaced by another.
            let at = at % token.len();
            let original = token.as_bytes()[at] as char;
            if replacement != original {
                let mut tampered = String::with_capacity(token.len() + 4);
                tampered.push_str(&token[..at]);
                tampered.push(replacement);
                tampered.push_str(&token[at + 1..]);
                assert!(refused(&query, &tampered), "{tampered:?} was accepted");
            }
            // Cut short (an empty token is the first page, not a refusal).
            let cut = cut % token.len();
            if cut > 0 {
                assert!(refused(&query, &token[..cut]));
            }
        }
    }
});
