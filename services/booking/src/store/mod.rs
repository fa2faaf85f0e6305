//! Persistence of bookings on `coldchain_store`: tables, keys and the write closures that
//! apply the domain's transitions together with their counters, index rows and ledger
//! entries, in one atomic, durable write.
//!
//! Tables (all in the service's one sled tree):
//! - `bookings`: booking_id → [`Booking`].
//! - `counters`: (zone_id, day number) → [`crate::domain::DayCounts`]; a missing row is
//!   all zeros (rows that return to zero are deleted).
//! - `by_day`: (first day number, booking_id) → (): the order of `ListBookings`.
//! - `by_customer`: (customer_id, first day number, booking_id) → (): the same order, for
//!   one customer.
//! - `due`: (due instant ms, booking_id) → (): HELD bookings by `expires_at`, and CONFIRMED
//!   ones by check-in deadline once their first day is closed (below). The sweeper lapses
//!   the due ones (EXPIRED / NO_SHOW).
//! - `closed_days`: `first_open_day` → the day number of the first day not closed yet.
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
//!
//! Takes and returns domain values and refusals ([`Refusal`]): no protobuf, no gRPC codes.
//! An idempotent answer is kept through the `ReplyCodec` the caller hands in (the bytes
//! are the protobuf response earlier builds kept, see `wire::codec`); ledger entries and
//! rows are postcard, as every build stored them.

mod reads;
mod sweep;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_audit::Author;
use coldchain_network::SiteConfig;
use coldchain_store::{Idempotent, Store, StoreError, WriteError};

use crate::domain::{
    self, Booking, BookingError, CounterError, HoldTerms, LedgerEntry, Space, Transition, ZoneDays,
};
use tables::{BOOKINGS, counts};

/// Why a read or write of the bookings did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The rules refused it.
    #[error(transparent)]
    Rule(#[from] BookingError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CounterError> for Refusal {
    fn from(error: CounterError) -> Self {
        Self::Rule(BookingError::Counter(error))
    }
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

    /// Holds space: lapses every due booking, picks the zone, checks room on every day and
    /// stores the HELD booking with its counters, index rows and ledger entry, durably.
    /// A retry with the same request returns the first outcome (see `idempotent`).
    /// `author` is recorded as the maker of the HELD change.
    pub async fn hold(
        &self,
        idempotent: Idempotent<'_, Booking, Refusal>,
        space: &Space,
        terms: &HoldTerms,
        author: &Author,
    ) -> Result<Booking, WriteError<Refusal>> {
        let written = self
            .store
            .write(Some(idempotent), |tx| {
                let now = tx.now_millis();
                let today = domain::local_day(self.tz(), now);
                if terms.first_day < today {
                    return Err(BookingError::StartsInThePast {
                        first_day: terms.first_day,
                        today,
                        time_zone: self.site.time_zone.to_string(),
                    }
                    .into());
                }
                self.sweep_in(tx, now, None)?;
                let (class, zones) = match space {
                    Space::Zone(zone) => {
                        (zone.class.as_str().to_string(), std::slice::from_ref(zone))
                    }
                    Space::Class { class, zones } => (class.clone(), zones.as_slice()),
                };
                let mut candidates = Vec::with_capacity(zones.len());
                for zone in zones {
                    let mut days = Vec::new();
                    for day in domain::days(terms.first_day, terms.last_day) {
                        days.push((day, counts(tx, &zone.id, day)?));
                    }
                    candidates.push(ZoneDays {
                        zone_id: zone.id.clone(),
                        capacity: domain::zone_capacity(zone.capacity_pallets),
                        days,
                    });
                }
                let zone = match domain::choose_zone(&candidates, terms.pallets) {
                    Ok(i) => zones.get(i),
                    Err(Some(shortage)) => return Err(BookingError::NoRoom(shortage).into()),
                    Err(None) => None,
                };
                let Some(zone) = zone else {
                    return Err(BookingError::NoZone {
                        class,
                        pallets: terms.pallets,
                    }
                    .into());
                };
                let booking_id = domain::id::booking_id(&self.site.id, tx.next_sequence());
                let latest_expiry =
                    domain::check_in_deadline_ms(self.tz(), terms.first_day, self.grace);
                let booking = domain::new_hold(
                    booking_id,
                    &zone.id,
                    zone.class.as_str(),
                    terms,
                    now,
                    latest_expiry,
                    author,
                );
                tables::insert(tx, now, &booking)?;
                Ok::<_, Refusal>(booking)
            })
            .await?;
        Ok(written.value)
    }

    /// Applies a transition to a booking, durably and idempotently. An unknown id is
    /// refused (UnknownBooking); a transition the rules refuse names the state. A booking
    /// that lapsed but was not swept yet is refused as EXPIRED / NO_SHOW (the refusal writes
    /// nothing; the sweeper stores the lapse). `author` is recorded as the maker of the
    /// change.
    pub async fn transition(
        &self,
        idempotent: Idempotent<'_, Booking, Refusal>,
        booking_id: &str,
        transition: &Transition,
        author: &Author,
    ) -> Result<Booking, WriteError<Refusal>> {
        let written = self
            .store
            .write(Some(idempotent), |tx| {
                let now = tx.now_millis();
                let before = tx.get(&BOOKINGS, &booking_id.to_string())?.ok_or_else(|| {
                    BookingError::UnknownBooking {
                        booking_id: booking_id.to_string(),
                        site_id: None,
                    }
                })?;
                let after = match transition {
                    Transition::Confirm => domain::confirm(
                        &before,
                        now,
                        domain::check_in_deadline_ms(self.tz(), before.first_day, self.grace),
                        author,
                    ),
                    Transition::Cancel { reason } => domain::cancel(&before, now, reason, author),
                    Transition::CheckIn { pallets_arrived } => {
                        domain::check_in(&before, now, *pallets_arrived, author)
                    }
                    Transition::Complete => {
                        domain::complete(&before, now, domain::local_day(self.tz(), now), author)
                    }
                }?;
                let first_open = self.first_open_day(tx, now)?;
                tables::store_change(tx, now, &before, &after, first_open)?;
                Ok::<_, Refusal>(after)
            })
            .await?;
        Ok(written.value)
    }

    /// Reads one booking as it is now (a lapsed hold reads EXPIRED, …).
    pub fn get(&self, booking_id: &str) -> Result<Option<Booking>, Refusal> {
        let now = self.now_ms();
        Ok(self
            .store
            .get(&BOOKINGS, &booking_id.to_string())?
            .map(|b| b.effective(now)))
    }

    /// Up to `limit` durable ledger entries from `from`, decoded.
    pub fn ledger(&self, from: u64, limit: usize) -> Result<Vec<LedgerEntry>, Refusal> {
        self.store
            .ledger_from(from, limit)?
            .into_iter()
            .map(|record| {
                postcard::from_bytes(&record.bytes).map_err(|e| {
                    StoreError::Corrupt(format!("ledger entry {}: {e}", record.sequence)).into()
                })
            })
            .collect()
    }
}
