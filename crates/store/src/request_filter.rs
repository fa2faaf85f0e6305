//! Which request ids a database may remember, kept in memory next to the writer lock, so
//! that a write with a new id (nearly every write) need not look for its record in sled.
//!
//! Why: that lookup was the one sled read left on a write's path once the row cache held
//! the hot rows. A sled read costs several microseconds, and it takes sled's process-wide
//! concurrency-control lock, which the apply thread holds while it applies a batch: so a
//! writer, holding the writer lock, waited for the apply thread on every new id.
//!
//! The rule that keeps it correct: **an id whose record a write could replay is always
//! "maybe here"**. A record is replayed only while younger than the retention (see
//! `Store::is_expired`, by the store's clock), so the filter must answer "maybe" for every
//! id recorded within the retention. "Maybe" then reads the record as before; only "not
//! here" skips the read. A false "maybe" costs a read; a false "not here" would apply a
//! retry twice, so there is none:
//!
//! - Every id a write records is added, under the writer lock, before the next write can
//!   look for it (`Store::write` stages and adds in the same critical section).
//! - At open, every id of the request-expiry index younger than the retention is added
//!   (`records::REQUEST_EXPIRY` lists every recorded id, with a time at least its record's).
//! - Ids are kept in generations of at most [`GENERATION_IDS`] ids. A generation is dropped
//!   only once its newest id is older than the retention; every id in it is then one that
//!   a replay would treat as new anyway.
//! - Past its memory budget, or after an index entry it could not read, the filter stops
//!   answering "not here" until every id it could not add has expired (after an unreadable
//!   key, whose time is unknown, until the process stops): every lookup then reads sled, as
//!   it did before this filter.
//!
//! Each generation is a split-block Bloom filter (as Parquet's): an id sets one bit in each
//! of the eight 32-bit words of one 32-byte block, so a lookup touches one cache line. At
//! ten bits an id, about one new id in a hundred is a false "maybe".

use std::collections::VecDeque;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use crate::records::REQUEST_EXPIRY;
use crate::table::Value;

/// Ids per generation. A generation's filter is about 80 KiB.
pub(crate) const GENERATION_IDS: usize = 1 << 16;
/// Filter bits per id.
const BITS_PER_ID: usize = 10;
/// Bytes of one block.
const BLOCK_BYTES: usize = 32;
/// One odd constant per word of a block: each picks the word's bit from the same hash.
const SALTS: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// The request ids recorded within the retention, as generations of Bloom filters.
pub(crate) struct RequestFilter {
    generations: VecDeque<Generation>,
    /// Most bytes the generations may take (0: the filter always answers "maybe").
    budget: usize,
    retention_ms: i64,
    /// The newest time of an id the filter could not add: until it has expired, every
    /// lookup answers "maybe".
    unfiltered_until: Option<i64>,
}

struct Generation {
    blocks: Vec<[u32; 8]>,
    ids: usize,
    /// The newest record time of its ids.
    newest_ms: i64,
}

impl RequestFilter {
    /// An empty filter of at most `budget` bytes, for ids kept `retention_ms`.
    pub(crate) fn new(budget: usize, retention_ms: i64) -> Self {
        Self {
            generations: VecDeque::new(),
            budget,
            retention_ms,
            unfiltered_until: None,
        }
    }

    /// The filter of the ids `data`'s request-expiry index holds, as of `now_ms`.
    pub(crate) fn from_index(
        data: &sled::Tree,
        budget: usize,
        retention_ms: i64,
        now_ms: i64,
    ) -> Self {
        let mut filter = Self::new(budget, retention_ms);
        if budget == 0 {
            return filter;
        }
        for entry in data.scan_prefix(REQUEST_EXPIRY.raw_prefix(&[])) {
            let decoded = entry
                .map_err(crate::StoreError::from)
                .and_then(|(key, value)| {
                    let (newest_ms, _) = REQUEST_EXPIRY.decode_key(&key)?;
                    Ok((newest_ms, Vec::<String>::from_bytes(&value)))
                });
            match decoded {
                Ok((newest_ms, _)) if now_ms.saturating_sub(newest_ms) >= retention_ms => {}
                Ok((newest_ms, Ok(ids))) => {
                    for id in &ids {
                        filter.insert(id, newest_ms);
                    }
                }
                Ok((newest_ms, Err(error))) => {
                    tracing::warn!(%error, "an unreadable request-expiry entry: every write reads its request id's record until it expires");
                    filter.unfiltered(newest_ms);
                }
                Err(error) => {
                    tracing::warn!(%error, "an unreadable request-expiry key: every write reads its request id's record");
                    filter.unfiltered(i64::MAX);
                }
            }
        }
        filter
    }

    /// Whether `request_id` may have a record younger than the retention at `now_ms`.
    /// `false` is certain.
    pub(crate) fn may_contain(&mut self, request_id: &str, now_ms: i64) -> bool {
        if self.budget == 0 {
            return true;
        }
        self.forget_expired(now_ms);
        if self.unfiltered_until.is_some() {
            return true;
        }
        let hash = hash(request_id);
        self.generations
            .iter()
            .any(|generation| generation.may_contain(hash))
    }

    /// Adds an id recorded at `recorded_at_ms` (or, from the index, with a time at least
    /// its record's).
    pub(crate) fn insert(&mut self, request_id: &str, recorded_at_ms: i64) {
        let room = self
            .generations
            .back()
            .is_some_and(|generation| generation.ids < GENERATION_IDS);
        if !room {
            let bytes = Generation::bytes();
            if (self.generations.len() + 1) * bytes > self.budget {
                if self.unfiltered_until.is_none() && self.budget > 0 {
                    tracing::warn!(
                        budget = self.budget,
                        "more request ids within the retention than request_filter_bytes \
                         holds: writes look every id up until the oldest expire (slower, \
                         still exact); raise request_filter_bytes for this load"
                    );
                }
                self.unfiltered(recorded_at_ms);
                return;
            }
            self.generations.push_back(Generation::new());
        }
        if let Some(generation) = self.generations.back_mut() {
            generation.insert(hash(request_id), recorded_at_ms);
        }
    }

    /// Ids the filter cannot know (an unreadable index entry) that may be as new as
    /// `newest_ms`: every lookup answers "maybe" until they have expired.
    pub(crate) fn unfiltered(&mut self, newest_ms: i64) {
        self.unfiltered_until = Some(
            self.unfiltered_until
                .map_or(newest_ms, |t| t.max(newest_ms)),
        );
    }

    /// Drops the generations (and the unfiltered mark) whose newest id has expired.
    fn forget_expired(&mut self, now_ms: i64) {
        let expired = |newest_ms: i64| now_ms.saturating_sub(newest_ms) >= self.retention_ms;
        while self
            .generations
            .front()
            .is_some_and(|generation| expired(generation.newest_ms))
        {
            self.generations.pop_front();
        }
        if self.unfiltered_until.is_some_and(expired) {
            self.unfiltered_until = None;
        }
    }

    /// The bytes its generations take now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.generations.len() * Generation::bytes()
    }
}

impl Generation {
    fn block_count() -> usize {
        (GENERATION_IDS * BITS_PER_ID).div_ceil(BLOCK_BYTES * 8)
    }

    fn bytes() -> usize {
        Self::block_count() * BLOCK_BYTES
    }

    fn new() -> Self {
        Self {
            blocks: vec![[0; 8]; Self::block_count()],
            ids: 0,
            newest_ms: i64::MIN,
        }
    }

    fn insert(&mut self, hash: u64, recorded_at_ms: i64) {
        let (block, mask) = self.locate(hash);
        for (word, bit) in self.blocks[block].iter_mut().zip(mask) {
            *word |= bit;
        }
        self.ids += 1;
        self.newest_ms = self.newest_ms.max(recorded_at_ms);
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (block, mask) = self.locate(hash);
        self.blocks[block]
            .iter()
            .zip(mask)
            .all(|(word, bit)| word & bit != 0)
    }

    /// The block an id's hash falls in (from its high half) and the bit it sets in each word
    /// (from its low half).
    fn locate(&self, hash: u64) -> (usize, [u32; 8]) {
        let block = ((hash >> 32) * self.blocks.len() as u64) >> 32;
        let low = hash as u32;
        (
            block as usize,
            SALTS.map(|salt| 1u32 << (low.wrapping_mul(salt) >> 27)),
        )
    }
}

/// A fixed hash (the same in every process, so tests are reproducible). An id chosen to
/// collide only costs a sled read.
fn hash(request_id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn filter(budget: usize) -> RequestFilter {
        RequestFilter::new(budget, HOUR)
    }

    #[test]
    fn every_id_added_is_found_and_most_new_ones_are_not() {
        let mut filter = filter(16 << 20);
        let ids = 3 * GENERATION_IDS;
        for n in 0..ids {
            filter.insert(&format!("id-{n}"), 1_000);
        }
        assert_eq!(filter.generations.len(), 3);
        for n in 0..ids {
            assert!(filter.may_contain(&format!("id-{n}"), 2_000), "id-{n}");
        }
        let false_maybes = (0..100_000)
            .filter(|n| filter.may_contain(&format!("new-{n}"), 2_000))
            .count();
        // Three full generations: about 3% of new ids read sled; far above that means the
        // filter no longer filters.
        assert!(false_maybes < 6_000, "{false_maybes} of 100000 new ids");
    }

    #[test]
    fn a_generation_is_dropped_only_once_its_newest_id_has_expired() {
        let mut filter = filter(16 << 20);
        filter.insert("old", 0);
        filter.insert("newer", HOUR / 2);
        // The older id has expired, the newer one not: the generation stays.
        assert!(filter.may_contain("newer", HOUR + 1));
        assert!(filter.may_contain("old", HOUR + 1));
        assert!(!filter.may_contain("never-added", HOUR + 1));
        assert!(!filter.may_contain("newer", HOUR / 2 + HOUR));
        assert!(filter.generations.is_empty());
    }

    #[test]
    fn past_its_budget_it_answers_maybe_until_the_ids_it_could_not_add_expire() {
        let mut filter = filter(Generation::bytes());
        for n in 0..GENERATION_IDS {
            filter.insert(&format!("id-{n}"), 0);
        }
        assert!(!filter.may_contain("new", 1));
        // The budget holds one generation: this id cannot be added.
        filter.insert("one-too-many", 10);
        assert_eq!(filter.bytes(), Generation::bytes());
        assert!(filter.may_contain("one-too-many", 11));
        assert!(filter.may_contain("anything", 11));
        // The full generation expires first, then the id it could not add.
        assert!(filter.may_contain("anything", HOUR));
        assert!(filter.generations.is_empty());
        assert!(!filter.may_contain("anything", HOUR + 10));
        filter.insert("later", HOUR + 10);
        assert!(filter.may_contain("later", HOUR + 11));
        assert!(!filter.may_contain("anything", HOUR + 11));
    }

    #[test]
    fn a_zero_budget_always_answers_maybe() {
        let mut filter = filter(0);
        filter.insert("a", 0);
        assert_eq!(filter.bytes(), 0);
        assert!(filter.may_contain("a", 1));
        assert!(filter.may_contain("b", 1));
    }

    #[test]
    fn ids_it_cannot_know_make_it_answer_maybe_until_they_expire() {
        let mut filter = filter(16 << 20);
        filter.unfiltered(100);
        assert!(filter.may_contain("x", 200));
        assert!(!filter.may_contain("x", 100 + HOUR));
    }
}
