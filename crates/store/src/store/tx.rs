//! A write's view of the database: its own changes over the staged ones over sled.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::StoreError;
use crate::group_commit::GroupCommit;
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

/// Which versions not yet in sled a read sees (see `crate::overlay`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sees {
    /// Every staged one: a writer under the writer lock.
    Staged,
    /// Those of generations up to this one: any other reader, at the durable mark.
    Durable(u64),
}

impl Sees {
    /// What a reader outside the writer lock sees now. Read before the overlay: a
    /// generation is in the overlay before it is marked durable.
    pub(crate) fn durable(commit: &GroupCommit) -> Self {
        Self::Durable(commit.durable_through())
    }

    fn through(self) -> u64 {
        match self {
            Self::Staged => u64::MAX,
            Self::Durable(generation) => generation,
        }
    }
}

/// Reads a raw key through the write's own changes, then the overlay, then the tree.
///
/// The overlay before the tree: the apply thread writes a value to sled before it prunes
/// it from the overlay, so a key missed in the overlay is (at least as new) in the tree.
pub(crate) fn view_get(
    tree: &sled::Tree,
    commit: &GroupCommit,
    sees: Sees,
    own: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    raw: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(value) = own.get(raw) {
        return Ok(value.clone());
    }
    let found = {
        let overlay = commit.overlay();
        let found = match sees {
            Sees::Staged => overlay.latest(raw),
            Sees::Durable(through) => overlay.durable(raw, through),
        };
        found.map(|value| value.map(<[u8]>::to_vec))
    };
    if let Some(value) = found {
        return Ok(value);
    }
    Ok(tree.get(raw)?.map(|v| v.to_vec()))
}

/// The tree's entries from `start` while their keys begin with `prefix`, with the overlay's
/// versions (as `sees` says) over them, in key order.
///
/// The overlay is copied first (see [`view_get`] for why that order), the tree read lazily.
pub(crate) fn merged_scan(
    tree: &sled::Tree,
    commit: &GroupCommit,
    sees: Sees,
    start: Bound<Vec<u8>>,
    prefix: Vec<u8>,
) -> Merged {
    let overlay: Vec<StagedEntry> = commit
        .overlay()
        .range((start.clone(), Bound::Unbounded), sees.through())
        .take_while(|(key, _)| key.starts_with(&prefix))
        .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
        .collect();
    let tree_prefix = prefix.clone();
    let tree = tree
        .range::<Vec<u8>, _>((start, Bound::Unbounded))
        .take_while(move |entry| match entry {
            Ok((key, _)) => key.starts_with(&tree_prefix),
            Err(_) => true,
        });
    Merged {
        overlay: overlay.into_iter().peekable(),
        tree: (Box::new(tree) as Box<dyn Iterator<Item = TreeEntry> + Send>).peekable(),
    }
}

type TreeEntry = sled::Result<(sled::IVec, sled::IVec)>;
/// A copied overlay version: the raw key and its value (`None` = deleted).
type StagedEntry = (Vec<u8>, Option<Vec<u8>>);

/// A scan of the tree with a copy of the overlay's versions over it: an overlay value
/// replaces the tree's for its key, an overlay delete hides it.
pub(crate) struct Merged {
    overlay: std::iter::Peekable<std::vec::IntoIter<StagedEntry>>,
    tree: std::iter::Peekable<Box<dyn Iterator<Item = TreeEntry> + Send>>,
}

impl Iterator for Merged {
    type Item = TreeEntry;

    fn next(&mut self) -> Option<TreeEntry> {
        loop {
            let from_overlay = match (self.overlay.peek(), self.tree.peek()) {
                (None, None) => return None,
                (None, Some(_)) | (Some(_), Some(Err(_))) => false,
                (Some(_), None) => true,
                (Some((staged, _)), Some(Ok((stored, _)))) => {
                    match staged.as_slice().cmp(stored.as_ref()) {
                        std::cmp::Ordering::Greater => false,
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => {
                            // The overlay's version is newer than the tree's.
                            self.tree.next();
                            true
                        }
                    }
                }
            };
            if !from_overlay {
                return self.tree.next();
            }
            if let Some((key, Some(value))) = self.overlay.next() {
                return Some(Ok((key.into(), value.into())));
            }
            // A delete not yet applied: the key is gone.
        }
    }
}

/// The staged changes of one write, seen through its own reads.
pub struct WriteTx<'a> {
    pub(super) tree: &'a sled::Tree,
    /// Changes of earlier writes, staged but not yet applied, in its overlay.
    pub(super) commit: &'a GroupCommit,
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
            return decode(
                view_get(self.tree, self.commit, Sees::Staged, &self.overlay, &raw)?.as_deref(),
            );
        };
        if let Some(cached) = rows.borrow().get(&raw) {
            return decode(cached.as_deref());
        }
        let current = view_get(self.tree, self.commit, Sees::Staged, &BTreeMap::new(), &raw)?;
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
        let staged = merged_scan(
            self.tree,
            self.commit,
            Sees::Staged,
            Bound::Included(prefix.clone()),
            prefix.clone(),
        );
        for entry in staged {
            let (key, value) = entry?;
            merged.insert(key.to_vec(), value.to_vec());
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
