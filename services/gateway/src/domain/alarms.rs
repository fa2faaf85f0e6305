//! The merged alarm list across sites: its order (newest first), the cursor a page token
//! carries (one per site), and the k-way merge of the sites' pages.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// Where an alarm sorts in the merged list: newest `started_at` first, then site_id, then
/// alarm_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmKey {
    /// started_at as (seconds, nanos); (0, 0) when unset.
    pub started_at: (i64, i32),
    /// The site.
    pub site_id: String,
    /// The alarm.
    pub alarm_id: String,
}

impl Ord for AlarmKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .started_at
            .cmp(&self.started_at)
            .then_with(|| self.site_id.cmp(&other.site_id))
            .then_with(|| self.alarm_id.cmp(&other.alarm_id))
    }
}

impl PartialOrd for AlarmKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where one site stands in a paged merge of its alarm list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCursor {
    /// The site's page token of the page being consumed ("" for its first page).
    pub token: String,
    /// How many alarms of that page were already returned.
    pub skip: u32,
    /// The site's list is exhausted.
    pub done: bool,
}

/// The merged list's position: one cursor per site (absent: not started).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeCursor {
    /// Per site id.
    pub sites: BTreeMap<String, SiteCursor>,
}

/// One site's part of a paged merge: the page being consumed and where it continues.
#[derive(Debug)]
pub struct MergeSource<A> {
    site_id: String,
    /// The token of the page `buffer` came from.
    token: String,
    /// Items of that page already returned.
    consumed: u32,
    buffer: VecDeque<A>,
    next_token: String,
    failed: bool,
}

impl<A> MergeSource<A> {
    /// A site's page read at `cursor`: the items earlier merged pages already returned are
    /// skipped.
    pub fn new(site_id: String, cursor: SiteCursor, page: Vec<A>, next_token: String) -> Self {
        let mut buffer: VecDeque<A> = page.into();
        let skip = (cursor.skip as usize).min(buffer.len());
        buffer.drain(..skip);
        Self {
            site_id,
            token: cursor.token,
            consumed: skip as u32,
            buffer,
            next_token,
            failed: false,
        }
    }

    /// The site.
    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    /// The token of the page to read before the merge goes on: the buffer ran dry and the
    /// site has more (its next item may come before everyone else's).
    pub fn wants_page(&self) -> Option<&str> {
        (self.buffer.is_empty() && !self.next_token.is_empty() && !self.failed)
            .then_some(self.next_token.as_str())
    }

    /// The next page arrived.
    pub fn next_page(&mut self, page: Vec<A>, next_token: String) {
        self.token = std::mem::take(&mut self.next_token);
        self.consumed = 0;
        self.buffer = page.into();
        self.next_token = next_token;
    }

    /// The next page could not be read: the source stops here for this merge.
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// The next item.
    pub fn front(&self) -> Option<&A> {
        self.buffer.front()
    }

    /// Takes the next item.
    pub fn pop(&mut self) -> Option<A> {
        let item = self.buffer.pop_front()?;
        self.consumed += 1;
        Some(item)
    }

    /// Where the next merged page resumes this site.
    pub fn into_cursor(self) -> (String, SiteCursor) {
        let cursor = if self.buffer.is_empty() && self.next_token.is_empty() {
            SiteCursor {
                token: String::new(),
                skip: 0,
                done: true,
            }
        } else if self.buffer.is_empty() {
            // Read to the end of its page (or its next page could not be read): resume
            // from the next page.
            SiteCursor {
                token: self.next_token,
                skip: 0,
                done: false,
            }
        } else {
            SiteCursor {
                token: self.token,
                skip: self.consumed,
                done: false,
            }
        };
        (self.site_id, cursor)
    }
}

/// The source whose next item comes first in the merged order.
pub fn first_source<A>(
    sources: &[MergeSource<A>],
    key: impl Fn(&str, &A) -> AlarmKey,
) -> Option<usize> {
    sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.front().map(|a| (i, key(&s.site_id, a))))
        .min_by(|a, b| a.1.cmp(&b.1))
        .map(|(i, _)| i)
}

/// Whether a next merged page exists: a selected site that answered is not done.
pub fn has_more<'a>(
    selected: impl IntoIterator<Item = &'a str>,
    failed: &BTreeSet<&str>,
    next: &MergeCursor,
) -> bool {
    selected
        .into_iter()
        .any(|site| !failed.contains(site) && next.sites.get(site).is_none_or(|c| !c.done))
}
