//! Persistence of bookings on `coldchain_store`: tables, keys and the write closures that
//! apply the domain's transitions together with their counters, index rows and ledger
//! entries, in one atomic, durable write.
//!
//! Tables (all in the service's one sled tree):
//! - `bookings`: booking_id → [`Booking`].
//! - `counters`: (zone_id, day number) → [`DayCounts`]; a missing row is all zeros (rows
//!   that return to zero are deleted).
//! - `by_day`: (first day number, booking_id) → (): the order of `ListBookings`.
//! - `by_customer`: (customer_id, first day number, booking_id) → (): the same order, for
//!   one customer.
//! - `due`: (due instant ms, booking_id) → (): HELD bookings by `expires_at`, and CONFIRMED
//!   ones by check-in deadline once their first day is closed (below). The sweeper lapses
//!   the due ones (EXPIRED / NO_SHOW).
//! - `closed_days`: [`FIRST_OPEN_DAY`] → the day number of the first day not closed yet.
//!
//! Closed days: a CONFIRMED booking cannot lapse before its first day has ended (its
//! deadline is the end of that day plus a grace period), and most are checked in or
//! cancelled by then. So confirming writes no `due` row; once a day has ended, the next
//! write (the sweeper's or a hold's) closes it: every booking of that day still CONFIRMED
//! gets its `due` row, or lapses at once if already past its deadline. The rule that
//! keeps this exact: **every CONFIRMED booking whose first day is before the first open day
//! has its `due` row**. A confirm or check-in of such a booking writes or deletes the row
//! itself. A database without the cursor (new, or written by a build that gave every
//! confirmed booking its row at once) starts it two days before today: no booking that a
//! build without rows could have confirmed starts earlier, since a hold starts today or
//! later and lives at most 24 hours.
//!
//! Expired holds never count against capacity, whatever the sweeper's timing: a hold first
//! lapses every due booking inside its own write (so the room it checks is exact), and
//! availability is read under the writer lock with the due-but-unswept bookings taken out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_runtime::ServiceError;
use coldchain_runtime::idempotency::Protobuf;
use coldchain_runtime::network::{SiteConfig, ZoneConfig};
use coldchain_store::{
    Idempotent, KeyCodec, Prefix, RequestFingerprint, Store, StoreError, Table, WriteTx,
};
use serde::{Deserialize, Serialize};

use crate::domain::{
    self, Booking, BookingError, BookingState, CounterChange, DayCounts, HoldTerms, ZoneDays,
};

const BOOKINGS: Table<String, Booking> = Table::new("bookings");
const COUNTERS: Table<(String, i32), DayCounts> = Table::new("counters");
const BY_DAY: Table<(i32, String), ()> = Table::new("by_day");
const BY_CUSTOMER: Table<(String, i32, String), ()> = Table::new("by_customer");
const DUE: Table<(i64, String), ()> = Table::new("due");
const CLOSED_DAYS: Table<String, i32> = Table::new("closed_days");
/// The one key of `CLOSED_DAYS`.
const FIRST_OPEN_DAY: &str = "first_open_day";

/// How many due bookings one background sweep write lapses at most.
const SWEEP_BATCH: usize = 256;
/// How many index rows one `ListBookings` page scans at most before it answers with what it
/// found and a token to go on.
const LIST_SCAN_BUDGET: usize = 10_000;

/// One ledger entry: the booking as it is after the change (its state says what happened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The entry's sequence number.
    pub sequence: u64,
    /// When it was written (store clock, ms since the epoch).
    pub recorded_at_ms: i64,
    /// The booking after the change.
    pub booking: Booking,
}

/// Where a hold may go.
#[derive(Debug, Clone)]
pub enum Space {
    /// This zone.
    Zone(ZoneConfig),
    /// Any of these zones (of one class), the domain picks.
    Class {
        /// The class name, for messages.
        class: String,
        /// The zones of the class big enough for the pallets, in file order.
        zones: Vec<ZoneConfig>,
    },
}

/// A state change of an existing booking.
#[derive(Debug, Clone)]
pub enum Transition {
    /// HELD → CONFIRMED.
    Confirm,
    /// HELD/CONFIRMED → CANCELLED.
    Cancel {
        /// Why.
        reason: String,
    },
    /// CONFIRMED → CHECKED_IN.
    CheckIn {
        /// Pallets that arrived; `None` = all.
        pallets_arrived: Option<i64>,
    },
    /// CHECKED_IN → COMPLETED.
    Complete,
}

/// The filters of `ListBookings`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this customer.
    pub customer_id: Option<String>,
    /// Only this zone.
    pub zone_id: Option<String>,
    /// Only these (effective) states; empty = all.
    pub states: Vec<BookingState>,
    /// Only bookings occupying a day on or after this one.
    pub first_day: Option<NaiveDate>,
    /// Only bookings occupying a day on or before this one.
    pub last_day: Option<NaiveDate>,
}

/// One page of `ListBookings`.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The bookings (effective state at the time of the read).
    pub bookings: Vec<Booking>,
    /// The index position to resume after, when there may be more.
    pub next: Option<Vec<u8>>,
}

/// One row of availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    /// The day.
    pub day: NaiveDate,
    /// The zone.
    pub zone_id: String,
    /// Its class name.
    pub class: String,
    /// Its capacity.
    pub capacity: u32,
    /// Counters without lapsed bookings.
    pub counts: DayCounts,
}

/// The bookings of one site, on its store. Cheap to clone.
#[derive(Clone)]
pub struct Bookings {
    store: Store,
    site: Arc<SiteConfig>,
    grace: Duration,
}

impl Bookings {
    /// The bookings of `site` in `store`; CONFIRMED bookings become NO_SHOW `grace` after the
    /// end of their first day.
    pub fn new(store: Store, site: SiteConfig, grace: Duration) -> Self {
        Self {
            store,
            site: Arc::new(site),
            grace,
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The site.
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    fn tz(&self) -> Tz {
        self.site.time_zone
    }

    /// Now, from the store clock.
    pub fn now_ms(&self) -> i64 {
        self.store.clock().now_millis()
    }

    /// The site-local day now.
    pub fn today(&self) -> NaiveDate {
        domain::local_day(self.tz(), self.now_ms())
    }

    /// Runs `f` under the writer lock without writing anything: a consistent read of
    /// several rows (no write is half-seen) of durable state (see `Store::read_locked`).
    async fn locked_read<R>(
        &self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<R, ServiceError>,
    ) -> Result<R, ServiceError> {
        self.store.read_locked(f).await
    }

    /// Holds space: lapses every due booking, picks the zone, checks room on every day and
    /// stores the HELD booking with its counters, index rows and ledger entry, durably.
    /// A retry with the same request returns the stored response.
    pub async fn hold<T, F>(
        &self,
        request: &RequestFingerprint,
        space: Space,
        terms: HoldTerms,
        respond: F,
    ) -> Result<T, ServiceError>
    where
        T: prost::Message + Default,
        F: FnOnce(&Booking) -> T,
    {
        let written = self
            .store
            .write(Some(Idempotent::new(request, &Protobuf)), |tx| {
                let now = tx.now_millis();
                let today = domain::local_day(self.tz(), now);
                if terms.first_day < today {
                    return Err(ServiceError::invalid(
                        "first_day",
                        format!(
                            "{} is before the site's local today {today} ({})",
                            terms.first_day, self.site.time_zone
                        ),
                    ));
                }
                self.sweep_in(tx, now, None)?;
                let (class, zones) = match &space {
                    Space::Zone(zone) => (zone.class.as_str().to_string(), vec![zone.clone()]),
                    Space::Class { class, zones } => (class.clone(), zones.clone()),
                };
                let mut candidates = Vec::with_capacity(zones.len());
                for zone in &zones {
                    let mut days = Vec::new();
                    for day in domain::days(terms.first_day, terms.last_day) {
                        days.push((day, counts(tx, &zone.id, day)?));
                    }
                    candidates.push(ZoneDays {
                        zone_id: zone.id.clone(),
                        capacity: zone.capacity_pallets,
                        days,
                    });
                }
                let chosen = match domain::choose_zone(&candidates, terms.pallets) {
                    Ok(i) => i,
                    Err(Some(shortage)) => return Err(BookingError::NoRoom(shortage).into()),
                    Err(None) => {
                        return Err(BookingError::NoZone {
                            class,
                            pallets: terms.pallets,
                        }
                        .into());
                    }
                };
                let zone = &zones[chosen];
                let sequence = tx.next_sequence();
                let booking_id = format!("BK-{sequence:012}");
                let latest_expiry =
                    domain::check_in_deadline_ms(self.tz(), terms.first_day, self.grace);
                let booking = domain::new_hold(
                    booking_id,
                    &zone.id,
                    zone.class.as_str(),
                    &terms,
                    now,
                    latest_expiry,
                );
                let first = domain::day_number(booking.first_day);
                apply_change(tx, &zone.id, CounterChange::between(None, &booking))?;
                tx.put(&BOOKINGS, &booking.booking_id, &booking)?;
                tx.put(&BY_DAY, &(first, booking.booking_id.clone()), &())?;
                tx.put(
                    &BY_CUSTOMER,
                    &(
                        booking.customer_id.clone(),
                        first,
                        booking.booking_id.clone(),
                    ),
                    &(),
                )?;
                tx.put(
                    &DUE,
                    &(booking.expires_at_ms, booking.booking_id.clone()),
                    &(),
                )?;
                append(tx, now, &booking)?;
                Ok::<T, ServiceError>(respond(&booking))
            })
            .await?;
        Ok(written.value)
    }

    /// Applies a transition to a booking, durably and idempotently. NOT_FOUND for an unknown
    /// id; FAILED_PRECONDITION naming the state for a transition the rules refuse. A
    /// booking that lapsed but was not swept yet is refused as EXPIRED / NO_SHOW (the
    /// refusal writes nothing; the sweeper stores the lapse).
    pub async fn transition<T, F>(
        &self,
        request: &RequestFingerprint,
        booking_id: &str,
        transition: Transition,
        respond: F,
    ) -> Result<T, ServiceError>
    where
        T: prost::Message + Default,
        F: FnOnce(&Booking) -> T,
    {
        let written = self
            .store
            .write(Some(Idempotent::new(request, &Protobuf)), |tx| {
                let now = tx.now_millis();
                let before = tx
                    .get(&BOOKINGS, &booking_id.to_string())?
                    .ok_or_else(|| not_found(booking_id))?;
                let after = match &transition {
                    Transition::Confirm => domain::confirm(
                        &before,
                        now,
                        domain::check_in_deadline_ms(self.tz(), before.first_day, self.grace),
                    ),
                    Transition::Cancel { reason } => domain::cancel(&before, now, reason),
                    Transition::CheckIn { pallets_arrived } => {
                        domain::check_in(&before, now, *pallets_arrived)
                    }
                    Transition::Complete => {
                        domain::complete(&before, now, domain::local_day(self.tz(), now))
                    }
                }?;
                let first_open = self.first_open_day(tx, now)?;
                store_change(tx, now, &before, &after, first_open)?;
                Ok::<T, ServiceError>(respond(&after))
            })
            .await?;
        Ok(written.value)
    }

    /// Reads one booking as it is now (a lapsed hold reads EXPIRED, …).
    pub fn get(&self, booking_id: &str) -> Result<Option<Booking>, ServiceError> {
        let now = self.now_ms();
        Ok(self
            .store
            .get(&BOOKINGS, &booking_id.to_string())?
            .map(|b| b.effective(now)))
    }

    /// Availability of `zones` on every day of `first..=last`, ordered by day, then zone id.
    /// Read under the writer lock, without the bookings that lapsed and were not swept yet.
    pub async fn availability(
        &self,
        zones: &[ZoneConfig],
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DayRow>, ServiceError> {
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
                            .map_err(BookingError::from)?;
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
                        capacity: zone.map_or(0, |z| z.capacity_pallets),
                        zone_id,
                        counts,
                    }
                })
                .collect())
        })
        .await
    }

    /// The stored bookings that are due strictly before `now` (read from the tree: call
    /// under the writer lock for a consistent view).
    fn due_before(&self, now: i64) -> impl Iterator<Item = Result<Booking, ServiceError>> + '_ {
        self.store
            .scan_prefix(&DUE, &[])
            .take_while(move |entry| match entry {
                Ok(((due, _), ())) => *due < now,
                Err(_) => true,
            })
            .filter_map(move |entry| {
                let result = entry
                    .map_err(ServiceError::from)
                    .and_then(|((due, id), ())| {
                        Ok(self
                            .store
                            .get(&BOOKINGS, &id)?
                            .filter(|b| b.due_at() == Some(due)))
                    });
                result.transpose()
            })
    }

    /// Lapses due bookings inside the write `tx` (at most `limit` of those with a due row,
    /// after closing the days that ended): HELD past expires_at → EXPIRED, CONFIRMED past
    /// its check-in deadline → NO_SHOW, freeing their space.
    fn sweep_in(
        &self,
        tx: &mut WriteTx<'_>,
        now: i64,
        limit: Option<usize>,
    ) -> Result<usize, ServiceError> {
        let mut swept = self.close_ended_days(tx, now)?;
        for entry in self.store.scan_prefix(&DUE, &[]) {
            let ((due, booking_id), ()) = entry?;
            if due >= now || limit.is_some_and(|l| swept >= l) {
                break;
            }
            tx.delete(&DUE, &(due, booking_id.clone()));
            let Some(before) = tx.get(&BOOKINGS, &booking_id)? else {
                continue;
            };
            if before.due_at() != Some(due) {
                continue;
            }
            if lapse(tx, now, &before)? {
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// The first day not closed yet (see the module doc); a database without one gets it
    /// here, two days before today.
    fn first_open_day(&self, tx: &mut WriteTx<'_>, now: i64) -> Result<i32, ServiceError> {
        if let Some(day) = stored_first_open_day(tx)? {
            return Ok(day);
        }
        let day = domain::day_number(domain::local_day(self.tz(), now)) - 2;
        tx.put(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string(), &day)?;
        Ok(day)
    }

    /// Closes every day that has ended (see the module doc): each booking of it still
    /// CONFIRMED lapses if past its deadline, or else gets its due row. Returns how many
    /// lapsed.
    fn close_ended_days(&self, tx: &mut WriteTx<'_>, now: i64) -> Result<usize, ServiceError> {
        let today = domain::day_number(domain::local_day(self.tz(), now));
        let mut open = self.first_open_day(tx, now)?;
        if open >= today {
            return Ok(0);
        }
        let mut lapsed = 0;
        while open < today {
            for ((_, booking_id), ()) in tx.scan_prefix(&BY_DAY, &open.encode())? {
                let Some(booking) = tx.get(&BOOKINGS, &booking_id)? else {
                    continue;
                };
                if booking.state != BookingState::Confirmed {
                    continue;
                }
                if booking.is_lapsed(now) {
                    lapse(tx, now, &booking)?;
                    lapsed += 1;
                } else if let Some(due) = booking.due_at() {
                    tx.put(&DUE, &(due, booking_id), &())?;
                }
            }
            open += 1;
        }
        tx.put(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string(), &open)?;
        Ok(lapsed)
    }

    /// True when a sweep would close a day (or record the first open day).
    fn a_day_ended(&self, now: i64) -> Result<bool, ServiceError> {
        let today = domain::day_number(domain::local_day(self.tz(), now));
        Ok(self
            .store
            .get(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string())?
            .is_none_or(|open| open < today))
    }

    /// Lapses every booking due now (HELD past expires_at → EXPIRED, CONFIRMED past the
    /// check-in deadline → NO_SHOW), in durable writes of up to 256. Returns how many.
    /// The background sweeper calls this; tests call it directly.
    pub async fn sweep_due(&self) -> Result<usize, ServiceError> {
        let mut total = 0;
        loop {
            let now = self.now_ms();
            let any_due = match self.store.scan_prefix(&DUE, &[]).next() {
                Some(entry) => entry?.0.0 < now,
                None => false,
            } || self.a_day_ended(now)?;
            if !any_due {
                return Ok(total);
            }
            let swept = self
                .store
                .write::<u64, ServiceError, _>(None, |tx| {
                    let now = tx.now_millis();
                    Ok(self.sweep_in(tx, now, Some(SWEEP_BATCH))? as u64)
                })
                .await?
                .value;
            total += swept as usize;
            if (swept as usize) < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    /// Lists bookings matching `query`, ordered by first day then booking id, from after
    /// the index position `after`, up to `limit`.
    pub fn list(
        &self,
        query: &ListQuery,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage, ServiceError> {
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

    /// Up to `limit` durable ledger entries from `from`, decoded.
    pub fn ledger(&self, from: u64, limit: usize) -> Result<Vec<LedgerEntry>, ServiceError> {
        self.store
            .ledger_from(from, limit)?
            .into_iter()
            .map(|record| {
                postcard::from_bytes(&record.bytes).map_err(|e| {
                    ServiceError::internal(format!("ledger entry {}: {e}", record.sequence))
                })
            })
            .collect()
    }

    /// Checks the invariant on everything stored: for every zone and day, the counters
    /// equal the sum of the stored bookings' occupancies and never exceed the capacity.
    /// Returns every problem found (empty: all good). Read under the writer lock.
    pub async fn audit(&self) -> Result<Vec<String>, ServiceError> {
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
                            .map_err(BookingError::from)?;
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
                let capacity = self.site.zone(&zone).map_or(0, |z| z.capacity_pallets);
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

fn not_found(booking_id: &str) -> ServiceError {
    ServiceError::not_found(format!("booking_id {booking_id:?} not found at this site"))
}

fn counts(tx: &WriteTx<'_>, zone: &str, day: NaiveDate) -> Result<DayCounts, StoreError> {
    Ok(tx
        .get(&COUNTERS, &(zone.to_string(), domain::day_number(day)))?
        .unwrap_or_default())
}

fn apply_change(
    tx: &mut WriteTx<'_>,
    zone: &str,
    change: CounterChange,
) -> Result<(), ServiceError> {
    for day in change.days() {
        let key = (zone.to_string(), domain::day_number(day));
        let mut counts = tx.get(&COUNTERS, &key)?.unwrap_or_default();
        change.apply(day, &mut counts).map_err(BookingError::from)?;
        if counts.is_zero() {
            tx.delete(&COUNTERS, &key);
        } else {
            tx.put(&COUNTERS, &key, &counts)?;
        }
    }
    Ok(())
}

/// The first open day as stored (see the module doc), if any.
fn stored_first_open_day(tx: &WriteTx<'_>) -> Result<Option<i32>, StoreError> {
    tx.get(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string())
}

/// The due row a stored booking has while `first_open` is the first open day: HELD ones
/// by their expiry, CONFIRMED ones by their check-in deadline once their first day is
/// closed (see the module doc).
fn due_row(booking: &Booking, first_open: i32) -> Option<i64> {
    match booking.state {
        BookingState::Confirmed if domain::day_number(booking.first_day) >= first_open => None,
        _ => booking.due_at(),
    }
}

/// Stores a transition: counters, due index, the booking and its ledger entry.
fn store_change(
    tx: &mut WriteTx<'_>,
    now: i64,
    before: &Booking,
    after: &Booking,
    first_open: i32,
) -> Result<(), ServiceError> {
    apply_change(
        tx,
        &before.zone_id,
        CounterChange::between(Some(before), after),
    )?;
    let (had, has) = (due_row(before, first_open), due_row(after, first_open));
    if had != has {
        if let Some(due) = had {
            tx.delete(&DUE, &(due, before.booking_id.clone()));
        }
        if let Some(due) = has {
            tx.put(&DUE, &(due, after.booking_id.clone()), &())?;
        }
    }
    tx.put(&BOOKINGS, &after.booking_id, after)?;
    append(tx, now, after)
}

/// Stores the lapse of `before` (HELD → EXPIRED, CONFIRMED → NO_SHOW), freeing its space.
/// False when its state does not lapse. Its due row, if any, is the caller's to delete.
fn lapse(tx: &mut WriteTx<'_>, now: i64, before: &Booking) -> Result<bool, ServiceError> {
    let Some(after) = before.lapsed() else {
        return Ok(false);
    };
    apply_change(
        tx,
        &before.zone_id,
        CounterChange::between(Some(before), &after),
    )?;
    tx.put(&BOOKINGS, &after.booking_id, &after)?;
    append(tx, now, &after)?;
    Ok(true)
}

fn append(tx: &mut WriteTx<'_>, now: i64, booking: &Booking) -> Result<(), ServiceError> {
    let mut failure = None;
    tx.append_ledger(|sequence| {
        let entry = LedgerEntry {
            sequence,
            recorded_at_ms: now,
            booking: booking.clone(),
        };
        postcard::to_allocvec(&entry).unwrap_or_else(|e| {
            failure = Some(e.to_string());
            Vec::new()
        })
    });
    match failure {
        None => Ok(()),
        Some(e) => Err(StoreError::Encode(e).into()),
    }
}
