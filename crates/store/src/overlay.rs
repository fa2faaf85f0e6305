//! The changes that are not in sled yet: staged by writers, then logged (durable), then
//! applied to sled off the request path by the apply thread.
//!
//! Every version of a key newer than what sled holds is kept, tagged with the generation
//! that staged it. Two kinds of readers look through it:
//! - a writer, under the writer lock, sees the newest version of every key, durable or not
//!   (a check-then-act rule must see every earlier write);
//! - any other reader sees the newest version whose generation is durable, and sled under
//!   it: an acknowledged write is visible at once, a write that may still be lost in a crash
//!   is never seen.
//!
//! The apply thread writes a generation's values to sled *before* it prunes them here, so a
//! reader that misses a key in the overlay finds it (or something newer) in sled. Versions
//! are pruned by generation through `by_generation`, so pruning costs what was applied, not
//! the size of the overlay.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// A raw key's value in one generation: `None` is a delete.
pub(crate) type Version = (u64, Option<Vec<u8>>);

/// What the overlay says about a key: not there (read sled), or this value (`None` = deleted).
pub(crate) type Found<'a> = Option<Option<&'a [u8]>>;

#[derive(Default)]
pub(crate) struct Overlay {
    /// Every unapplied version of each key, oldest first.
    versions: BTreeMap<Vec<u8>, Vec<Version>>,
    /// The keys each generation staged, oldest generation first (for pruning).
    by_generation: VecDeque<(u64, Vec<Vec<u8>>)>,
    /// The bytes of keys and values held (the budget writers are held to).
    bytes: usize,
}

impl Overlay {
    /// Records `value` for `key` as of `generation`, which is never older than a version
    /// already recorded. A key staged twice in one generation keeps the later value.
    pub(crate) fn insert(&mut self, generation: u64, key: Vec<u8>, value: Option<Vec<u8>>) {
        let added = key.len() + value.as_ref().map_or(0, Vec::len);
        let versions = self.versions.entry(key.clone()).or_default();
        match versions.last_mut() {
            Some((staged_by, last)) if *staged_by == generation => {
                self.bytes -= last.as_ref().map_or(0, Vec::len);
                self.bytes += value.as_ref().map_or(0, Vec::len);
                *last = value;
                return;
            }
            _ => versions.push((generation, value)),
        }
        self.bytes += added;
        match self.by_generation.back_mut() {
            Some((last, keys)) if *last == generation => keys.push(key),
            _ => self.by_generation.push_back((generation, vec![key])),
        }
    }

    /// The newest version of `key` (a writer's view).
    pub(crate) fn latest(&self, key: &[u8]) -> Found<'_> {
        self.versions
            .get(key)
            .and_then(|versions| versions.last())
            .map(|(_, value)| value.as_deref())
    }

    /// The newest version of `key` staged by a generation up to `durable` (a reader's view).
    pub(crate) fn durable(&self, key: &[u8], durable: u64) -> Found<'_> {
        self.versions.get(key).and_then(|versions| {
            versions
                .iter()
                .rev()
                .find(|(generation, _)| *generation <= durable)
                .map(|(_, value)| value.as_deref())
        })
    }

    /// The keys in `range` with their value as of generation `through` (`u64::MAX`: the
    /// newest), in key order; keys with no such version are left out.
    pub(crate) fn range(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        through: u64,
    ) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.versions
            .range::<Vec<u8>, _>(range)
            .filter_map(move |(key, versions)| {
                versions
                    .iter()
                    .rev()
                    .find(|(generation, _)| *generation <= through)
                    .map(|(_, value)| (key.as_slice(), value.as_deref()))
            })
    }

    /// Drops every version staged by a generation up to `applied`: sled has it, or a newer
    /// one. Returns the bytes freed.
    pub(crate) fn prune(&mut self, applied: u64) -> usize {
        let before = self.bytes;
        while let Some((generation, _)) = self.by_generation.front() {
            if *generation > applied {
                break;
            }
            let Some((_, keys)) = self.by_generation.pop_front() else {
                break;
            };
            for key in keys {
                let Some(versions) = self.versions.get_mut(&key) else {
                    continue;
                };
                let kept = versions.partition_point(|(generation, _)| *generation <= applied);
                for (_, value) in versions.drain(..kept) {
                    self.bytes -= key.len() + value.as_ref().map_or(0, Vec::len);
                }
                if versions.is_empty() {
                    self.versions.remove(&key);
                }
            }
        }
        before - self.bytes
    }

    /// The bytes of keys and values held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many keys have an unapplied version.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.versions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(overlay: &mut Overlay, generation: u64, key: &str, value: &str) {
        overlay.insert(
            generation,
            key.as_bytes().to_vec(),
            Some(value.as_bytes().to_vec()),
        );
    }

    #[test]
    fn readers_see_only_durable_versions_writers_see_all() {
        let mut overlay = Overlay::default();
        put(&mut overlay, 1, "k", "one");
        put(&mut overlay, 2, "k", "two");
        overlay.insert(3, b"k".to_vec(), None);
        assert_eq!(overlay.latest(b"k"), Some(None));
        assert_eq!(overlay.durable(b"k", 2), Some(Some(&b"two"[..])));
        assert_eq!(overlay.durable(b"k", 1), Some(Some(&b"one"[..])));
        assert_eq!(overlay.durable(b"k", 0), None);
        assert_eq!(overlay.latest(b"other"), None);
    }

    #[test]
    fn pruning_drops_applied_versions_and_their_bytes() {
        let mut overlay = Overlay::default();
        put(&mut overlay, 1, "a", "xx");
        put(&mut overlay, 1, "a", "yyy");
        put(&mut overlay, 2, "a", "z");
        put(&mut overlay, 2, "b", "w");
        assert_eq!(overlay.bytes(), 1 + 3 + 1 + 1 + 1 + 1);
        assert_eq!(overlay.prune(1), 4);
        assert_eq!(overlay.latest(b"a"), Some(Some(&b"z"[..])));
        assert_eq!(
            overlay.durable(b"a", 1),
            None,
            "generation 1 is in sled now"
        );
        assert_eq!(overlay.prune(2), 4);
        assert_eq!(overlay.len(), 0);
        assert_eq!(overlay.bytes(), 0);
    }

    #[test]
    fn ranges_pick_the_version_of_the_generation_asked() {
        let mut overlay = Overlay::default();
        put(&mut overlay, 1, "a", "1");
        put(&mut overlay, 2, "b", "2");
        overlay.insert(2, b"a".to_vec(), None);
        let all = (Bound::Unbounded, Bound::Unbounded);
        let durable_1: Vec<_> = overlay.range(all.clone(), 1).collect();
        assert_eq!(durable_1, vec![(&b"a"[..], Some(&b"1"[..]))]);
        let newest: Vec<_> = overlay.range(all, u64::MAX).collect();
        assert_eq!(
            newest,
            vec![(&b"a"[..], None), (&b"b"[..], Some(&b"2"[..]))]
        );
    }
}
