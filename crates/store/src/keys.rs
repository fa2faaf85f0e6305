//! Order-preserving key encoding.
//!
//! sled orders keys by their bytes, so every key part is encoded such that byte order equals
//! the natural order of the values: unsigned integers big-endian, signed integers with the
//! sign bit flipped, strings with their zero bytes escaped and a terminator that sorts below
//! every escaped byte. A tuple encodes as the concatenation of its parts, so a prefix of the
//! tuple is a byte prefix of its key and `scan_prefix` finds every key that starts with it.
//!
//! Decoding never panics: a truncated or malformed key is a [`KeyError`].

use std::fmt;

/// Why a key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// Escape for a zero byte inside a string, and the string terminator. `0x00 0x01` sorts
/// below `0x00 0xFF` and below every non-zero byte, so "ab" < "ab\0" < "abc".
const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// A value that can be one part of a key.
pub trait KeyPart: Sized {
    /// Appends the order-preserving encoding of `self`.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Reads one part from the front of `reader`.
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError>;
}

/// A whole key: one part or a tuple of parts.
pub trait KeyCodec: Sized {
    /// Appends the encoding of every part.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Decodes a whole key; trailing bytes are an error.
    fn decode(bytes: &[u8]) -> Result<Self, KeyError>;

    /// The encoding as a fresh vector.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_into(&mut out);
        out
    }
}

/// A cursor over encoded key bytes.
pub struct KeyReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> KeyReader<'a> {
    /// A reader positioned at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                KeyError(format!(
                    "needed {n} bytes at offset {}, key has {}",
                    self.pos,
                    self.bytes.len()
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), KeyError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(KeyError(format!(
                "{} trailing bytes after offset {}",
                self.bytes.len() - self.pos,
                self.pos
            )))
        }
    }
}

impl KeyPart for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok(u64::from_be_bytes(reader.take_array()?))
    }
}

impl KeyPart for u32 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok(u32::from_be_bytes(reader.take_array()?))
    }
}

impl KeyPart for i64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        // Flipping the sign bit maps i64::MIN..=i64::MAX onto 0..=u64::MAX in order.
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok((u64::from_be_bytes(reader.take_array()?) ^ (1 << 63)) as i64)
    }
}

impl KeyPart for i32 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u32) ^ (1 << 31)).to_be_bytes());
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok((u32::from_be_bytes(reader.take_array()?) ^ (1 << 31)) as i32)
    }
}

impl KeyPart for u8 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok(reader.take(1)?[0])
    }
}

impl KeyPart for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    fn decode_from(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        let mut raw = Vec::new();
        loop {
            let byte = reader.take(1)?[0];
            if byte != ESCAPE {
                raw.push(byte);
                continue;
            }
            match reader.take(1)?[0] {
                ESCAPED_ZERO => raw.push(0),
                TERMINATOR => break,
                other => {
                    return Err(KeyError(format!(
                        "invalid escape 0x00 0x{other:02x} in string part"
                    )));
                }
            }
        }
        String::from_utf8(raw).map_err(|_| KeyError("string part is not utf-8".into()))
    }
}

/// Appends the encoding of a string part; usable with borrowed strings.
pub fn encode_str(value: &str, out: &mut Vec<u8>) {
    for &byte in value.as_bytes() {
        if byte == 0 {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(byte);
        }
    }
    out.extend_from_slice(&[ESCAPE, TERMINATOR]);
}

impl<T: KeyPart> KeyCodec for T {
    fn encode_into(&self, out: &mut Vec<u8>) {
        KeyPart::encode_into(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut reader = KeyReader::new(bytes);
        let value = T::decode_from(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: KeyPart),+> KeyCodec for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode_into(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $( KeyPart::encode_into($name, out); )+
            }
            fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
                let mut reader = KeyReader::new(bytes);
                let value = ($($name::decode_from(&mut reader)?,)+);
                reader.finish()?;
                Ok(value)
            }
        }
    };
}

tuple_key!(A);
tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);
tuple_key!(A, B, C, D, E);

/// Builds a key prefix part by part, for scans over the leading parts of a tuple key.
#[derive(Default, Clone, Debug)]
pub struct Prefix(Vec<u8>);

impl Prefix {
    /// An empty prefix: matches every key.
    pub fn new() -> Self {
        Self(Vec::new())
    }
    /// Appends a string part.
    pub fn str(mut self, value: &str) -> Self {
        encode_str(value, &mut self.0);
        self
    }
    /// Appends any other part.
    pub fn part<P: KeyPart>(mut self, value: &P) -> Self {
        value.encode_into(&mut self.0);
        self
    }
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_order_is_preserved(a: u64, b: u64) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
        }

        #[test]
        fn i64_order_is_preserved(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(i64::decode(&a.encode()).unwrap(), a);
        }

        #[test]
        fn i32_round_trips_in_order(a: i32, b: i32) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(i32::decode(&a.encode()).unwrap(), a);
        }

        #[test]
        fn tuple_order_is_lexicographic(a: (String, u64), b: (String, u64)) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(<(String, u64)>::decode(&a.encode()).unwrap(), a);
        }

        #[test]
        fn strings_with_zero_bytes_round_trip(a in "[\\x00-\\x02a]{0,8}", b in "[\\x00-\\x02a]{0,8}") {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(String::decode(&a.encode()).unwrap(), a);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>) {
            let _ = <(String, i64, u64)>::decode(&bytes);
            let _ = <(u32, String)>::decode(&bytes);
            let _ = String::decode(&bytes);
        }

        #[test]
        fn prefix_of_tuple_is_byte_prefix(a: String, b: u64) {
            let prefix = Prefix::new().str(&a);
            prop_assert!((a, b).encode().starts_with(prefix.as_bytes()));
        }
    }

    #[test]
    fn a_string_prefix_does_not_match_a_longer_string() {
        let prefix = Prefix::new().str("ab");
        assert!(
            !("abc".to_string(), 1u64)
                .encode()
                .starts_with(prefix.as_bytes())
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = 7u64.encode();
        bytes.push(1);
        assert!(u64::decode(&bytes).is_err());
        assert!(u64::decode(&[1, 2]).is_err());
        assert!(String::decode(b"ab\x00\x07").is_err());
    }
}
