//! The tables of the booking database and the staged changes every write shares: counters,
//! the due index, the booking row and its ledger entry.

use chrono::NaiveDate;
use coldchain_store::{StoreError, Table, WriteTx};

use super::Refusal;
use crate::domain::{self, Booking, BookingState, CounterChange, DayCounts, LedgerEntry};

pub(super) const BOOKINGS: Table<String, Booking> = Table::new("bookings");
pub(super) const COUNTERS: Table<(String, i32), DayCounts> = Table::new("counters");
pub(super) const BY_DAY: Table<(i32, String), ()> = Table::new("by_day");
pub(super) const BY_CUSTOMER: Table<(String, i32, String), ()> = Table::new("by_customer");
pub(super) const DUE: Table<(i64, String), ()> = Table::new("due");
pub(super) const CLOSED_DAYS: Table<String, i32> = Table::new("closed_days");
/// The one key of `CLOSED_DAYS`.
pub(super) const FIRST_OPEN_DAY: &str = "first_open_day";

/// The counters of `zone` on `day` (a missing row is all zeros).
pub(super) fn counts(
    tx: &WriteTx<'_>,
    zone: &str,
    day: NaiveDate,
) -> Result<DayCounts, StoreError> {
    Ok(tx
        .get(&COUNTERS, &(zone.to_string(), domain::day_number(day)))?
        .unwrap_or_default())
}

/// Applies `change` to the counters of `zone`, deleting rows that return to zero.
pub(super) fn apply_change(
    tx: &mut WriteTx<'_>,
    zone: &str,
    change: CounterChange,
) -> Result<(), Refusal> {
    for day in change.days() {
        let key = (zone.to_string(), domain::day_number(day));
        let mut counts = tx.get(&COUNTERS, &key)?.unwrap_or_default();
        change.apply(day, &mut counts)?;
        if counts.is_zero() {
            tx.delete(&COUNTERS, &key);
        } else {
            tx.put(&COUNTERS, &key, &counts)?;
        }
    }
    Ok(())
}

/// The first open day as stored (see the module doc), if any.
pub(super) fn stored_first_open_day(tx: &WriteTx<'_>) -> Result<Option<i32>, StoreError> {
    tx.get(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string())
}

/// Stages a new booking: its counters, the booking, its index rows, its due row and its
/// ledger entry.
pub(super) fn insert(tx: &mut WriteTx<'_>, now: i64, booking: &Booking) -> Result<(), Refusal> {
    let first = domain::day_number(booking.first_day);
    apply_change(tx, &booking.zone_id, CounterChange::between(None, booking))?;
    tx.put(&BOOKINGS, &booking.booking_id, booking)?;
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
    append(tx, now, booking)
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
pub(super) fn store_change(
    tx: &mut WriteTx<'_>,
    now: i64,
    before: &Booking,
    after: &Booking,
    first_open: i32,
) -> Result<(), Refusal> {
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
pub(super) fn lapse(tx: &mut WriteTx<'_>, now: i64, before: &Booking) -> Result<bool, Refusal> {
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

/// Stages the ledger entry of `booking` as it is after a change (postcard, as every build
/// stored it).
fn append(tx: &mut WriteTx<'_>, now: i64, booking: &Booking) -> Result<(), Refusal> {
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
