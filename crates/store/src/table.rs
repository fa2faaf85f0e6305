//! Typed tables: a named key space inside a database's single sled tree.
//!
//! Every table of a service lives in one sled tree under its own prefix, so one
//! `apply_batch` can change several tables atomically (sled batches are atomic per tree,
//! also across a crash).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;
use crate::keys::KeyCodec;

/// A value that can be stored in a table.
pub trait Value: Sized {
    /// The stored bytes.
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError>;
    /// Decodes stored bytes; corrupt bytes are an error, never a panic.
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError>;
}

impl<T: Serialize + DeserializeOwned> Value for T {
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_allocvec(self).map_err(|e| StoreError::Encode(e.to_string()))
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// For a field added at the end of a stored record: the field, or its default when the
/// record ends before it. Records are postcard, which has no field tags: a record an
/// earlier build wrote ends before such a field, and decoding it fails at the end of the
/// input; this reads that as "absent" instead of failing the whole record. Use it as
/// `#[serde(default, deserialize_with = "coldchain_store::absent_as_default")]`, only on
/// the last fields of a record that is stored alone (never inside another record).
pub fn absent_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(T::deserialize(deserializer).unwrap_or_default())
}

/// A typed table: keys `K` (order-preserving), values `V`.
pub struct Table<K, V> {
    prefix: &'static [u8],
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Table<K, V> {}

impl<K: KeyCodec, V: Value> Table<K, V> {
    /// A table under `name`. Names must be unique within a database and must not be a
    /// prefix of one another; the store's own tables start with `_`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            prefix: name.as_bytes(),
            _types: PhantomData,
        }
    }

    /// The raw sled key of `key`.
    pub fn raw_key(&self, key: &K) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 1 + 32);
        out.extend_from_slice(self.prefix);
        out.push(b'/');
        key.encode_into(&mut out);
        out
    }

    /// The raw prefix of every key whose leading parts encode to `key_prefix`.
    pub fn raw_prefix(&self, key_prefix: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 1 + key_prefix.len());
        out.extend_from_slice(self.prefix);
        out.push(b'/');
        out.extend_from_slice(key_prefix);
        out
    }

    /// Decodes a raw sled key of this table back into `K`.
    pub fn decode_key(&self, raw: &[u8]) -> Result<K, StoreError> {
        let start = self.prefix.len() + 1;
        if raw.len() < start || &raw[..self.prefix.len()] != self.prefix {
            return Err(StoreError::Corrupt("key outside its table".into()));
        }
        K::decode(&raw[start..]).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The key bytes relative to the table (what a page token can carry).
    pub fn relative_key<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        raw.get(self.prefix.len() + 1..).unwrap_or_default()
    }
}
