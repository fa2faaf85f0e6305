//! Capacity arithmetic: the counters of a zone-day, what a booking occupies, and how a
//! transition changes the counters.
//!
//! # Bound
//!
//! Pallet counts are at most [`MAX_ZONE_PALLETS`] (2,147,483,647, `i32::MAX`) per zone and
//! day: a zone offers at most that many positions ([`zone_capacity`]: a larger
//! `capacity_pallets` in the network file counts as that), and the counters of a zone-day
//! never exceed its capacity. So capacity, held, confirmed, checked_in, free and
//! held + confirmed + checked_in all fit the contract's `int32` fields exactly; sums are
//! taken in `u64` all the same.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::booking::Booking;

/// The most pallet positions a zone offers on one day (`i32::MAX`): every figure the
/// service reports about a zone-day fits the contract's `int32`.
pub const MAX_ZONE_PALLETS: u32 = i32::MAX as u32;

/// The capacity the service books against for a zone configured with `capacity_pallets`:
/// at most [`MAX_ZONE_PALLETS`].
pub fn zone_capacity(capacity_pallets: u32) -> u32 {
    capacity_pallets.min(MAX_ZONE_PALLETS)
}

/// Which counter of a zone-day a booking's pallets are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bucket {
    /// HELD bookings.
    Held,
    /// CONFIRMED bookings.
    Confirmed,
    /// CHECKED_IN bookings (and COMPLETED ones on their days of use).
    CheckedIn,
}

/// The pallets of one zone on one day, per bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    /// Pallets of HELD bookings.
    pub held: u32,
    /// Pallets of CONFIRMED bookings.
    pub confirmed: u32,
    /// Pallets of CHECKED_IN bookings (booked, not only arrived).
    pub checked_in: u32,
}

/// A counter would leave its range: the stored counters disagree with the bookings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "counter {bucket:?} of {day} would go from {current} by {delta}: counters disagree with bookings"
)]
pub struct CounterError {
    /// The day.
    pub day: NaiveDate,
    /// The bucket.
    pub bucket: Bucket,
    /// Its value before.
    pub current: u32,
    /// The change attempted.
    pub delta: i64,
}

impl DayCounts {
    /// Pallets of every live booking.
    pub fn used(&self) -> u64 {
        u64::from(self.held) + u64::from(self.confirmed) + u64::from(self.checked_in)
    }

    /// Positions left of `capacity` (0 when the capacity was lowered below the bookings).
    pub fn free(&self, capacity: u32) -> u32 {
        let free = u64::from(capacity).saturating_sub(self.used());
        u32::try_from(free).unwrap_or(u32::MAX)
    }

    /// True when every counter is 0.
    pub fn is_zero(&self) -> bool {
        self.used() == 0
    }

    /// The counter of `bucket`.
    pub fn get(&self, bucket: Bucket) -> u32 {
        match bucket {
            Bucket::Held => self.held,
            Bucket::Confirmed => self.confirmed,
            Bucket::CheckedIn => self.checked_in,
        }
    }

    fn slot(&mut self, bucket: Bucket) -> &mut u32 {
        match bucket {
            Bucket::Held => &mut self.held,
            Bucket::Confirmed => &mut self.confirmed,
            Bucket::CheckedIn => &mut self.checked_in,
        }
    }

    /// Adds `pallets` to `bucket`.
    pub fn add(
        &mut self,
        day: NaiveDate,
        bucket: Bucket,
        pallets: u32,
    ) -> Result<(), CounterError> {
        self.shift(day, bucket, i64::from(pallets))
    }

    /// Removes `pallets` from `bucket`.
    pub fn remove(
        &mut self,
        day: NaiveDate,
        bucket: Bucket,
        pallets: u32,
    ) -> Result<(), CounterError> {
        self.shift(day, bucket, -i64::from(pallets))
    }

    /// Moves `bucket` by `delta` pallets; a counter that would leave `0..=u32::MAX` stays
    /// as it was and the move is an error.
    fn shift(&mut self, day: NaiveDate, bucket: Bucket, delta: i64) -> Result<(), CounterError> {
        let slot = self.slot(bucket);
        // A u32 plus or minus a u32 always fits an i64.
        *slot = u32::try_from(i64::from(*slot) + delta).map_err(|_| CounterError {
            day,
            bucket,
            current: *slot,
            delta,
        })?;
        Ok(())
    }
}

/// What a booking holds against the counters: `pallets` in `bucket` on every day of
/// `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// The counter.
    pub bucket: Bucket,
    /// The first day, inclusive.
    pub first: NaiveDate,
    /// The last day, inclusive.
    pub last: NaiveDate,
    /// Pallets per day.
    pub pallets: u32,
}

impl Occupancy {
    /// True when `day` is one of its days.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.first <= day && day <= self.last
    }

    /// Its days, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        days(self.first, self.last)
    }
}

/// Every day of `first..=last`, in order (none when `last < first`).
pub fn days(first: NaiveDate, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    first.iter_days().take_while(move |d| *d <= last)
}

/// How one transition changes the counters of its zone: `before` leaves, `after` arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterChange {
    /// The occupancy before the transition.
    pub before: Option<Occupancy>,
    /// The occupancy after it.
    pub after: Option<Occupancy>,
}

impl CounterChange {
    /// The change between two versions of a booking (`None`: it did not exist).
    pub fn between(before: Option<&Booking>, after: &Booking) -> Self {
        Self {
            before: before.and_then(Booking::occupancy),
            after: after.occupancy(),
        }
    }

    /// The days whose counters change, in order, each once.
    pub fn days(&self) -> Vec<NaiveDate> {
        let mut out: Vec<NaiveDate> = self
            .before
            .iter()
            .chain(self.after.iter())
            .flat_map(Occupancy::days)
            .collect();
        out.sort_unstable();
        out.dedup();
        out.retain(|day| self.touches(*day));
        out
    }

    fn touches(&self, day: NaiveDate) -> bool {
        match (
            self.before.filter(|o| o.covers(day)),
            self.after.filter(|o| o.covers(day)),
        ) {
            (None, None) => false,
            (Some(b), Some(a)) => b.bucket != a.bucket || b.pallets != a.pallets,
            _ => true,
        }
    }

    /// Applies the change to the counters of `day`.
    pub fn apply(&self, day: NaiveDate, counts: &mut DayCounts) -> Result<(), CounterError> {
        if let Some(before) = self.before.filter(|o| o.covers(day)) {
            counts.remove(day, before.bucket, before.pallets)?;
        }
        if let Some(after) = self.after.filter(|o| o.covers(day)) {
            counts.add(day, after.bucket, after.pallets)?;
        }
        Ok(())
    }
}
