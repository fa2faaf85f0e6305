//! What the use cases are asked, as values: a hold, a transition, an availability or a
//! list query, and the answers of the reads.

use chrono::NaiveDate;
use coldchain_network::TemperatureClass;

use super::booking::{Booking, BookingState};
use super::capacity::DayCounts;
use super::transitions::HoldTerms;

/// The space a request names: a temperature class (the rules pick the zone) or one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpaceAsk {
    /// Any zone of this class.
    Class(TemperatureClass),
    /// This zone.
    Zone(String),
}

/// HoldSpace, validated in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldCommand {
    /// Where.
    pub space: SpaceAsk,
    /// What.
    pub terms: HoldTerms,
}

/// GetAvailability, validated in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// Where.
    pub space: SpaceAsk,
    /// The first day, inclusive.
    pub first: NaiveDate,
    /// The last day, inclusive.
    pub last: NaiveDate,
}

/// A state change of an existing booking.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Its capacity (at most [`super::MAX_ZONE_PALLETS`]).
    pub capacity: u32,
    /// Counters without lapsed bookings.
    pub counts: DayCounts,
}
