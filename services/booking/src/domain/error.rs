//! What the rules refuse, as values: the `error` module gives each its gRPC code.

use chrono::NaiveDate;

use super::booking::BookingState;
use super::capacity::CounterError;
use super::zone::Shortage;

/// A request the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// The booking is not in a state the operation applies to.
    #[error("booking {booking_id} is {state}: {operation} needs a booking that is {allowed}")]
    WrongState {
        /// The booking.
        booking_id: String,
        /// Its current (effective) state.
        state: BookingState,
        /// The RPC, e.g. `ConfirmBooking`.
        operation: &'static str,
        /// The states it accepts, e.g. `HELD`.
        allowed: &'static str,
    },
    /// ConfirmBooking after `expires_at`.
    #[error(
        "booking {booking_id}: hold expired at {expires_at}; the space was released, hold it again"
    )]
    HoldExpired {
        /// The booking.
        booking_id: String,
        /// When it expired (RFC 3339).
        expires_at: String,
    },
    /// CheckIn with more pallets than booked (or none).
    #[error(
        "pallets_arrived {arrived} is out of range: booking {booking_id} booked {booked} pallets"
    )]
    ArrivedOutOfRange {
        /// The booking.
        booking_id: String,
        /// The pallets that arrived.
        arrived: i64,
        /// The booked pallets.
        booked: u32,
    },
    /// No zone had room on every day.
    #[error("{0}")]
    NoRoom(Shortage),
    /// The site has no zone of the class, or none big enough.
    #[error("site has no {class} zone with {pallets} pallet positions")]
    NoZone {
        /// The class asked for.
        class: String,
        /// The pallets asked for.
        pallets: u32,
    },
    /// HoldSpace with a first day before the site-local today (checked inside the write,
    /// so an idempotent retry still gets its stored answer).
    #[error("{first_day} is before the site's local today {today} ({time_zone})")]
    StartsInThePast {
        /// The first day asked for.
        first_day: NaiveDate,
        /// The site-local today.
        today: NaiveDate,
        /// The site's time zone.
        time_zone: String,
    },
    /// A zone the site does not have.
    #[error("zone_id {zone_id:?} not found at site {site_id}")]
    UnknownZone {
        /// The zone asked for.
        zone_id: String,
        /// This site.
        site_id: String,
    },
    /// More pallets than the zone asked for holds.
    #[error("{pallets} is more than the capacity {capacity} of zone {zone_id}")]
    LargerThanZone {
        /// The pallets asked for.
        pallets: u32,
        /// The zone.
        zone_id: String,
        /// Its capacity.
        capacity: u32,
    },
    /// More pallets than any zone of the class holds.
    #[error(
        "{pallets} is more than the capacity of every {class} zone at site {site_id} (largest {largest})"
    )]
    LargerThanClass {
        /// The pallets asked for.
        pallets: u32,
        /// The class asked for.
        class: String,
        /// This site.
        site_id: String,
        /// The capacity of its largest zone of the class.
        largest: u32,
    },
    /// No booking of this site has the id (`site_id` unset: the wording of the
    /// transitions, "at this site").
    #[error("booking_id {booking_id:?} not found at {}", at_site(site_id.as_deref()))]
    UnknownBooking {
        /// The id asked for.
        booking_id: String,
        /// This site, when the message names it.
        site_id: Option<String>,
    },
    /// The id names a booking of another site (see [`super::id`]).
    #[error(
        "booking_id {booking_id:?} not found at site {site_id}: it names a booking of site {owner}"
    )]
    OtherSite {
        /// The id asked for.
        booking_id: String,
        /// This site.
        site_id: String,
        /// The site the id names.
        owner: String,
    },
    /// Stored counters disagree with the bookings (never the client's fault).
    #[error(transparent)]
    Counter(#[from] CounterError),
}

fn at_site(site_id: Option<&str>) -> String {
    match site_id {
        Some(site) => format!("site {site}"),
        None => "this site".to_string(),
    }
}

/// A booking client (an API key bound to one customer) asking for what is not its
/// customer's. Worded the same whether or not a booking exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    /// A booking of another customer (or none).
    #[error(
        "credential {credential:?} may not access booking_id {booking_id:?}: a booking client sees only its own customer's bookings"
    )]
    NotYours {
        /// The credential's id.
        credential: String,
        /// The booking asked for.
        booking_id: String,
    },
    /// HoldSpace for another customer.
    #[error("credential {credential:?} books only for customer_id {customer:?}, not {asked:?}")]
    BooksOnlyFor {
        /// The credential's id.
        credential: String,
        /// Its customer.
        customer: String,
        /// The customer asked for.
        asked: String,
    },
    /// ListBookings of another customer.
    #[error("credential {credential:?} may list only customer_id {customer:?}, not {asked:?}")]
    ListsOnly {
        /// The credential's id.
        credential: String,
        /// Its customer.
        customer: String,
        /// The customer asked for.
        asked: String,
    },
}

/// The caller when it is a booking client: its credential and the customer it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundCustomer {
    /// The credential's id.
    pub credential: String,
    /// The customer.
    pub customer: String,
}
