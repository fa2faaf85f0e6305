//! A write's view of the database: its own changes over the staged ones over sled.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::StoreError;
use crate::group_commit::Staged;
use crate::keys::KeyCodec;
use crate::row_cache::RowCache;
use crate::table::{Table, Value};

pub(crate) fn decode_entry<K: KeyCodec, V: Value>(
    table: &Table<K, V>,
    entry: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<(K, V), StoreError> {
    let (key, value) = entry?;
    Ok((table.decode_key(&key)?, V::from_bytes(&value)?))
}

/// Reads a raw key through the write's own changes, then the staged ones, then the tree.
pub(crate) fn view_get(
    tree: &sled::Tree,
    shared: &BTreeMap<Vec<u8>, Staged>,
    own: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    raw: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(value) = own.get(raw) {
        return Ok(value.clone());
    }
    if let Some((_, value)) = shared.get(raw) {
        return Ok(value.clone());
    }
    Ok(tree.get(raw)?.map(|v| v.to_vec()))
}

/// The staged changes of one write, seen through its own reads.
pub struct WriteTx<'a> {
    pub(super) tree: &'a sled::Tree,
    /// Changes of earlier writes, staged but not yet applied.
    pub(super) shared: &'a BTreeMap<Vec<u8>, Staged>,
    /// The writer lock's row cache, for a write (a `RefCell`: reads fill it).
    pub(super) rows: Option<RefCell<&'a mut RowCache>>,
    /// This write's puts (`Some`) and deletes (`None`), by raw key.
    pub(super) overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) next_sequence: u64,
    pub(super) ledger: Vec<(u64, Vec<u8>)>,
    pub(super) now_ms: i64,
}

impl WriteTx<'_> {
    /// The instant of this write, from the store's clock (ms since the epoch).
    pub fn now_millis(&self) -> i64 {
        self.now_ms
    }

    /// Reads a value, including this write's own staged changes.
    pub fn get<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let raw = table.raw_key(key);
        let decode = |bytes: Option<&[u8]>| bytes.map(V::from_bytes).transpose();
        if let Some(own) = self.overlay.get(&raw) {
            return decode(own.as_deref());
        }
        let Some(rows) = &self.rows else {
            return decode(view_get(self.tree, self.shared, &self.overlay, &raw)?.as_deref());
        };
        if let Some(cached) = rows.borrow().get(&raw) {
            return decode(cached.as_deref());
        }
        let current = view_get(self.tree, self.shared, &BTreeMap::new(), &raw)?;
        rows.borrow_mut().fill(&raw, &current);
        decode(current.as_deref())
    }

    /// Stages a put.
    pub fn put<K: KeyCodec, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.overlay
            .insert(table.raw_key(key), Some(value.to_bytes()?));
        Ok(())
    }

    /// Stages a delete.
    pub fn delete<K: KeyCodec, V: Value>(&mut self, table: &Table<K, V>, key: &K) {
        self.overlay.insert(table.raw_key(key), None);
    }

    /// Every entry under `key_prefix`, in key order, including staged changes.
    pub fn scan_prefix<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key_prefix: &[u8],
    ) -> Result<Vec<(K, V)>, StoreError> {
        let prefix = table.raw_prefix(key_prefix);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, value) = entry?;
            merged.insert(key.to_vec(), value.to_vec());
        }
        for (key, (_, value)) in self.shared.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        for (key, value) in self.overlay.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        merged
            .into_iter()
            .map(|(key, value)| Ok((table.decode_key(&key)?, V::from_bytes(&value)?)))
            .collect()
    }

    /// Stages a ledger entry. `encode` gets the entry's sequence number and returns its
    /// bytes; the sequence is returned too.
    pub fn append_ledger(&mut self, encode: impl FnOnce(u64) -> Vec<u8>) -> u64 {
        let sequence = self.next_sequence + self.ledger.len() as u64;
        self.ledger.push((sequence, encode(sequence)));
        sequence
    }

    /// The sequence the next staged ledger entry would get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence + self.ledger.len() as u64
    }
}
