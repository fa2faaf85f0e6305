//! The rules of space booking, pure: states and transitions, capacity arithmetic per zone
//! and day, zone choice, site-local days and deadlines, booking ids. No I/O, no gRPC, no
//! database, no clock: instants come in as milliseconds.
//!
//! # Occupancy
//!
//! A booking *occupies* pallet positions of one zone on a range of site-local days, in one
//! of three buckets ([`Bucket`]): HELD bookings in `held`, CONFIRMED in `confirmed`,
//! CHECKED_IN in `checked_in` (the booked pallets, also when fewer arrived, as the proto's
//! `DayAvailability.checked_in` says). A COMPLETED booking keeps occupying, in `checked_in`,
//! the days up to and including its day of completion (the goods used those positions;
//! `CompleteBooking` frees only the later days), so availability of past days stays a true
//! record of use. CANCELLED, EXPIRED and NO_SHOW bookings occupy nothing.
//!
//! The counters of a zone-day are always the sum of the occupancies of the bookings, and
//! never exceed the capacity: every transition is a [`CounterChange`] (the old occupancy
//! leaves, the new one arrives) applied in the same write as the booking, and a hold is only
//! granted after [`choose_zone`] saw room on every day. Counts are bounded by
//! [`MAX_ZONE_PALLETS`] (see [`capacity`]).

pub mod booking;
pub mod capacity;
pub mod days;
pub mod error;
pub mod id;
pub mod query;
pub mod transitions;
pub mod zone;

use std::time::Duration;

pub use booking::{Booking, BookingChange, BookingState, LedgerEntry};
pub use capacity::{
    Bucket, CounterChange, CounterError, DayCounts, MAX_ZONE_PALLETS, Occupancy, days,
    zone_capacity,
};
pub use days::{
    RangeError, check_in_deadline_ms, check_range, day_number, from_day_number, local_day, rfc3339,
    start_of_day_ms,
};
pub use error::{AccessRefusal, BookingError, BoundCustomer};
pub use query::{
    AvailabilityQuery, DayRow, HoldCommand, ListPage, ListQuery, SpaceAsk, Transition,
};
pub use transitions::{HoldTerms, cancel, check_in, complete, confirm, new_hold};
pub use zone::{ShortDay, Shortage, Space, ZoneDays, choose_zone, short_days};

/// The most days a range may span (inclusive count).
pub const MAX_RANGE_DAYS: i64 = 366;
/// The hold TTL when the request leaves it unset.
pub const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest hold TTL a request may ask for.
pub const MAX_HOLD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long after the end of its first day (site-local) a CONFIRMED booking waits for its
/// check-in before it becomes NO_SHOW, unless the service is built with another grace.
pub const DEFAULT_NO_SHOW_GRACE: Duration = Duration::from_secs(6 * 3600);
/// The longest customer reference, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 128;
/// The longest cancel reason, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

#[cfg(test)]
mod tests;
