//! The reads: availability (under the writer lock, without lapsed-but-unswept bookings),
//! the pages of ListBookings, and the audit of the counters.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use coldchain_network::ZoneConfig;
use coldchain_store::{KeyCodec, Prefix, StoreError, WriteTx};

use super::tables::{BOOKINGS, BY_CUSTOMER, BY_DAY, COUNTERS, counts, stored_first_open_day};
use super::{Bookings, Refusal};
use crate::domain::{self, Booking, BookingState, DayCounts, DayRow, ListPage, ListQuery};

/// How many index rows one `ListBookings` page scans at most before it answers with what it
/// found and a token to go on.
const LIST_SCAN_BUDGET: usize = 10_000;

impl Bookings {
    /// Runs `f` under the writer lock without writing anything: a consistent read of
    /// several rows (no write is half-seen) of durable state (see `Store::read_locked`).
    async fn locked_read<R>(
        &self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<R, Refusal>,
    ) -> Result<R, Refusal> {
        self.store.read_locked(f).await
    }

    /// Availability of `zones` on every day of `first..=last`, ordered by day, then zone id.
    /// Read under the writer lock, without the bookings that lapsed and were not swept yet.
    pub async fn availability(
        &self,
        zones: &[ZoneConfig],
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DayRow>, Refusal> {
        let mut zones = zones.to_vec();
        zones.sort_by(|a, b| a.id.cmp(&b.id));
        self.locked_read(|tx| {
            let now = tx.now_millis();
            let mut table: BTreeMap<(NaiveDate, String), DayCounts> = BTreeMap::new();
            for day in domain::days(first, last) {
                for zone in &zones {
                    table.insert((day, zone.id.clone()), counts(tx, &zone.id, day)?);
                }
            }
            // Lapsed but not swept: those with a due row, and confirmed ones of days that
            // ended but were not closed yet (by id: a booking can be both).
            let mut lapsed: BTreeMap<String, Booking> = BTreeMap::new();
            for booking in self.due_before(now) {
                let booking = booking?;
                lapsed.insert(booking.booking_id.clone(), booking);
            }
            let today = domain::day_number(domain::local_day(self.tz(), now));
            let first_open = stored_first_open_day(tx)?.unwrap_or(today - 2);
            for day in first_open..today {
                for ((_, booking_id), ()) in tx.scan_prefix(&BY_DAY, &day.encode())? {
                    if let Some(booking) = tx.get(&BOOKINGS, &booking_id)?
                        && booking.state == BookingState::Confirmed
                        && booking.is_lapsed(now)
                    {
                        lapsed.insert(booking_id, booking);
                    }
                }
            }
            for booking in lapsed.into_values() {
                let Some(occupancy) = booking.occupancy() else {
                    continue;
                };
                for day in occupancy.days() {
                    if let Some(counts) = table.get_mut(&(day, booking.zone_id.clone())) {
                        counts
                            .remove(day, occupancy.bucket, occupancy.pallets)
                            .map_err(Refusal::from)?;
                    }
                }
            }
            Ok(table
                .into_iter()
                .map(|((day, zone_id), counts)| {
                    let zone = zones.iter().find(|z| z.id == zone_id);
                    DayRow {
                        day,
                        class: zone
                            .map(|z| z.class.as_str().to_string())
                            .unwrap_or_default(),
                        capacity: zone.map_or(0, |z| domain::zone_capacity(z.capacity_pallets)),
                        zone_id,
                        counts,
                    }
                })
                .collect())
        })
        .await
    }

    /// Lists bookings matching `query`, ordered by first day then booking id, from after
    /// the index position `after`, up to `limit`.
    pub fn list(
        &self,
        query: &ListQuery,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage, Refusal> {
        let now = self.now_ms();
        // A booking spans at most MAX_RANGE_DAYS days, so one occupying a day ≥ first_day
        // starts no earlier than first_day - (MAX_RANGE_DAYS - 1).
        let lowest_start = query
            .first_day
            .map(|f| domain::day_number(f).saturating_sub(domain::MAX_RANGE_DAYS as i32));
        let highest_start = query.last_day.map(domain::day_number);
        let rows: Box<dyn Iterator<Item = Result<IndexRow, StoreError>>> = match &query.customer_id
        {
            Some(customer) => {
                let prefix = Prefix::new().str(customer);
                let start = match (after, lowest_start) {
                    (Some(after), _) => Some(after.to_vec()),
                    (None, Some(low)) => Some(prefix.clone().part(&low).as_bytes().to_vec()),
                    (None, None) => None,
                };
                Box::new(
                    self.store
                        .scan_after(&BY_CUSTOMER, prefix.as_bytes(), start.as_deref())
                        .map(|entry| {
                            entry.map(|((customer, day, id), ())| {
                                let key = (customer, day, id.clone()).encode();
                                (key, day, id)
                            })
                        }),
                )
            }
            None => {
                let start = match (after, lowest_start) {
                    (Some(after), _) => Some(after.to_vec()),
                    (None, Some(low)) => Some(low.encode()),
                    (None, None) => None,
                };
                Box::new(
                    self.store
                        .scan_after(&BY_DAY, &[], start.as_deref())
                        .map(|entry| {
                            entry.map(|((day, id), ())| {
                                let key = (day, id.clone()).encode();
                                (key, day, id)
                            })
                        }),
                )
            }
        };
        let mut bookings: Vec<(Vec<u8>, Booking)> = Vec::new();
        let mut last_scanned: Option<Vec<u8>> = None;
        for (scanned, row) in rows.enumerate() {
            let (key, day, id) = row?;
            if highest_start.is_some_and(|high| day > high) {
                return Ok(page(bookings, limit, None));
            }
            if scanned >= LIST_SCAN_BUDGET {
                // Answer with what was found; the client goes on from here.
                return Ok(page(bookings, limit, last_scanned));
            }
            last_scanned = Some(key.clone());
            let Some(stored) = self.store.get(&BOOKINGS, &id)? else {
                continue;
            };
            let booking = stored.effective(now);
            if query
                .zone_id
                .as_ref()
                .is_some_and(|z| *z != booking.zone_id)
                || (!query.states.is_empty() && !query.states.contains(&booking.state))
                || !booking.overlaps(query.first_day, query.last_day)
            {
                continue;
            }
            bookings.push((key, booking));
            if bookings.len() > limit {
                break;
            }
        }
        Ok(page(bookings, limit, None))
    }

    /// Checks the invariant on everything stored: for every zone and day, the counters
    /// equal the sum of the stored bookings' occupancies and never exceed the capacity.
    /// Returns every problem found (empty: all good). Read under the writer lock.
    pub async fn audit(&self) -> Result<Vec<String>, Refusal> {
        self.locked_read(|_tx| {
            let mut expected: BTreeMap<(String, NaiveDate), DayCounts> = BTreeMap::new();
            for entry in self.store.scan_prefix(&BOOKINGS, &[]) {
                let (_, booking) = entry?;
                if let Some(o) = booking.occupancy() {
                    for day in o.days() {
                        expected
                            .entry((booking.zone_id.clone(), day))
                            .or_default()
                            .add(day, o.bucket, o.pallets)
                            .map_err(Refusal::from)?;
                    }
                }
            }
            let mut problems = Vec::new();
            let mut stored: BTreeMap<(String, NaiveDate), DayCounts> = BTreeMap::new();
            for entry in self.store.scan_prefix(&COUNTERS, &[]) {
                let ((zone, n), counts) = entry?;
                let Some(day) = domain::from_day_number(n) else {
                    problems.push(format!("counter of zone {zone} has a bad day number {n}"));
                    continue;
                };
                let capacity = self
                    .site
                    .zone(&zone)
                    .map_or(0, |z| domain::zone_capacity(z.capacity_pallets));
                if counts.used() > u64::from(capacity) {
                    problems.push(format!(
                        "zone {zone} {day}: {} pallets booked, capacity {capacity}",
                        counts.used()
                    ));
                }
                stored.insert((zone, day), counts);
            }
            for key in expected.keys().chain(stored.keys()) {
                let want = expected.get(key).copied().unwrap_or_default();
                let have = stored.get(key).copied().unwrap_or_default();
                if want != have {
                    problems.push(format!(
                        "zone {} {}: counters {have:?}, bookings {want:?}",
                        key.0, key.1
                    ));
                }
            }
            problems.dedup();
            Ok(problems)
        })
        .await
    }
}

/// An index row of `ListBookings`: its key relative to the table (a page token position),
/// the booking's first day number and its id.
type IndexRow = (Vec<u8>, i32, String);

fn page(mut found: Vec<(Vec<u8>, Booking)>, limit: usize, resume: Option<Vec<u8>>) -> ListPage {
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(key, _)| key.clone())
    } else {
        resume
    };
    ListPage {
        bookings: found.into_iter().map(|(_, b)| b).collect(),
        next,
    }
}
