#![no_main]
#![forbid(unsafe_code)]
//! The store's order-preserving key encoding.
//!
//! - Arbitrary bytes decoded as every key shape the services use never panic, and a key
//!   that decodes is canonical: encoding the decoded value gives back exactly those bytes
//!   (so two different byte strings never name the same row).
//! - Typed keys round-trip, and byte order equals value order (what scans rely on).
//! - A `Prefix` of leading parts is a byte prefix of the whole key.
//! - `KeyReader` never reads past the end, whatever lengths it is asked for.

use std::fmt::Debug;

use arbitrary::Arbitrary;
use coldchain_store::keys::KeyReader;
use coldchain_store::{KeyCodec, KeyPart, Prefix};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Case {
    /// Raw bytes, as a corrupt row's key would be read.
    Decode(Vec<u8>),
    /// Pairs of typed keys of the shapes the services use.
    Str(String, String),
    StrU64((String, u64), (String, u64)),
    StrI64U32((String, i64, u32), (String, i64, u32)),
    I32Str((i32, String), (i32, String)),
    StrI32Str((String, i32, String), (String, i32, String)),
    StrStrStr((String, String, String), (String, String, String)),
    Mixed((u8, i64, String, u32, i32), (u8, i64, String, u32, i32)),
    /// The leading parts of a key as a scan prefix.
    Prefix(String, i64, String),
    /// A sequence of reads from a reader over raw bytes.
    Reader(Vec<u8>, Vec<Read>),
}

#[derive(Debug, Arbitrary)]
enum Read {
    Take(usize),
    U64,
    Str,
}

/// A key that decodes is exactly the encoding of what it decodes to.
fn decodes_canonically<K: KeyCodec + Debug>(bytes: &[u8]) {
    if let Ok(key) = K::decode(bytes) {
        assert_eq!(key.encode(), bytes, "non-canonical key decoded as {key:?}");
    }
}

/// Round trip, and byte order equals value order.
fn round_trips_in_order<K: KeyCodec + Ord + Debug>(a: &K, b: &K) {
    let (ea, eb) = (a.encode(), b.encode());
    assert_eq!(&K::decode(&ea).expect("an encoded key decodes"), a);
    assert_eq!(&K::decode(&eb).expect("an encoded key decodes"), b);
    assert_eq!(a.cmp(b), ea.cmp(&eb), "order of {a:?} and {b:?}");
}

fuzz_target!(|case: Case| {
    match case {
        Case::Decode(bytes) => {
            decodes_canonically::<String>(&bytes);
            decodes_canonically::<u64>(&bytes);
            decodes_canonically::<(String, u64)>(&bytes);
            decodes_canonically::<(String, i64)>(&bytes);
            decodes_canonically::<(String, i64, u32)>(&bytes);
            decodes_canonically::<(i64, String)>(&bytes);
            decodes_canonically::<(i32, String)>(&bytes);
            decodes_canonically::<(String, i32)>(&bytes);
            decodes_canonically::<(String, String)>(&bytes);
            decodes_canonically::<(String, i32, String)>(&bytes);
            decodes_canonically::<(String, String, String)>(&bytes);
            decodes_canonically::<(u8, i64, String, u32, i32)>(&bytes);
        }
        Case::Str(a, b) => round_trips_in_order(&a, &b),
        Case::StrU64(a, b) => round_trips_in_order(&a, &b),
        Case::StrI64U32(a, b) => round_trips_in_order(&a, &b),
        Case::I32Str(a, b) => round_trips_in_order(&a, &b),
        Case::StrI32Str(a, b) => round_trips_in_order(&a, &b),
        Case::StrStrStr(a, b) => round_trips_in_order(&a, &b),
        Case::Mixed(a, b) => round_trips_in_order(&a, &b),
        Case::Prefix(a, b, c) => {
            let key = (a.clone(), b, c).encode();
            assert!(key.starts_with(Prefix::new().as_bytes()));
            assert!(key.starts_with(Prefix::new().str(&a).as_bytes()));
            assert!(key.starts_with(Prefix::new().str(&a).part(&b).as_bytes()));
        }
        Case::Reader(bytes, reads) => {
            let mut reader = KeyReader::new(&bytes);
            let mut consumed = 0usize;
            for read in reads {
                let before = consumed;
                match read {
                    Read::Take(n) => {
                        if let Ok(taken) = reader.take(n) {
                            assert_eq!(taken.len(), n);
                            consumed += n;
                        }
                    }
                    Read::U64 => {
                        if reader.take_array::<8>().is_ok() {
                            consumed += 8;
                        }
                    }
                    Read::Str => match String::decode_from(&mut reader) {
                        Ok(s) => consumed += s.encode().len(),
                        // A failed part leaves the reader somewhere inside it: a caller
                        // gives up on the key, and so does this sequence.
                        Err(_) => return,
                    },
                }
                assert!(consumed >= before && consumed <= bytes.len());
                assert_eq!(reader.is_empty(), consumed == bytes.len());
            }
            assert_eq!(reader.finish().is_ok(), consumed == bytes.len());
        }
    }
});
