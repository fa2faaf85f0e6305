//! The values writes read, kept in memory next to the writer lock.
//!
//! Why: a sled `get` costs several microseconds under write load (it walks the tree and
//! rebuilds each node view), and the hot rows of a service (a stock position, a sku, a
//! zone-day's capacity) are read by nearly every write. On the bench these reads were the
//! largest part of a write's own time.
//!
//! Why it is always current: it lives under the writer lock, and only writers change the
//! data, through the group commit. A write that reads a row not cached fills it with the
//! latest value (staged or applied); every write that stages a change to a cached row
//! updates it. So a cached value is the value a write would read through the overlay and
//! sled. Reads outside a write never use it: they see applied values only.
//!
//! Bounded in bytes; when full, an arbitrary part of it is dropped (a dropped row is simply
//! read again).

use std::collections::HashMap;

/// Bytes counted per entry beyond its key and value (the map's own bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

/// Raw key → latest value (`None` = no such row), for writes.
pub(crate) struct RowCache {
    rows: HashMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
    capacity: usize,
}

impl RowCache {
    /// An empty cache holding up to `capacity` bytes (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            rows: HashMap::new(),
            bytes: 0,
            capacity,
        }
    }

    /// The cached value of `key`: `None` when not cached, `Some(None)` when cached as absent.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.rows.get(key)
    }

    /// Caches the current value of `key`, read through the overlay and sled.
    pub(crate) fn fill(&mut self, key: &[u8], value: &Option<Vec<u8>>) {
        let size = entry_size(key, value);
        if size > self.capacity {
            return;
        }
        if self.bytes + size > self.capacity {
            self.shrink();
        }
        if let Some(old) = self.rows.insert(key.to_vec(), value.clone()) {
            self.bytes -= entry_size(key, &old);
        }
        self.bytes += size;
    }

    /// A write staged `value` for `key`: a cached row takes it.
    pub(crate) fn update(&mut self, key: &[u8], value: &Option<Vec<u8>>) {
        if let Some(slot) = self.rows.get_mut(key) {
            let old = entry_size(key, slot);
            *slot = value.clone();
            self.bytes = self.bytes - old + entry_size(key, value);
            if self.bytes > self.capacity {
                self.shrink();
            }
        }
    }

    /// Drops an arbitrary half of the rows (by count): cheaper than tracking recency, and
    /// rows still hot come back at their next read.
    fn shrink(&mut self) {
        let drop = self.rows.len().div_ceil(2);
        let victims: Vec<Vec<u8>> = self.rows.keys().take(drop).cloned().collect();
        for key in victims {
            if let Some(value) = self.rows.remove(&key) {
                self.bytes -= entry_size(&key, &value);
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

fn entry_size(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_reach_cached_rows_only() {
        let mut cache = RowCache::new(1 << 20);
        cache.fill(b"a", &Some(b"1".to_vec()));
        cache.fill(b"b", &None);
        cache.update(b"a", &Some(b"2".to_vec()));
        cache.update(b"b", &Some(b"3".to_vec()));
        cache.update(b"c", &Some(b"4".to_vec()));
        assert_eq!(cache.get(b"a"), Some(&Some(b"2".to_vec())));
        assert_eq!(cache.get(b"b"), Some(&Some(b"3".to_vec())));
        assert_eq!(cache.get(b"c"), None, "a row no write read is not cached");
        cache.update(b"a", &None);
        assert_eq!(cache.get(b"a"), Some(&None));
    }

    #[test]
    fn it_stays_within_its_bytes_and_counts_them_exactly() {
        let capacity = 100 * (ENTRY_OVERHEAD + 16);
        let mut cache = RowCache::new(capacity);
        for i in 0..1_000u32 {
            let key = i.to_be_bytes();
            cache.fill(&key, &Some(vec![0; 12]));
            cache.update(&key, &Some(vec![0; 4]));
            cache.update(&key, &Some(vec![0; 12]));
            assert!(cache.bytes() <= capacity);
        }
        let counted: usize = cache.rows.iter().map(|(k, v)| entry_size(k, v)).sum();
        assert_eq!(cache.bytes(), counted);
        assert!(!cache.rows.is_empty());
    }

    #[test]
    fn a_zero_capacity_caches_nothing() {
        let mut cache = RowCache::new(0);
        cache.fill(b"a", &Some(b"1".to_vec()));
        assert_eq!(cache.get(b"a"), None);
    }
}
