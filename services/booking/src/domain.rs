//! The rules of space booking, pure: states and transitions, capacity arithmetic per zone
//! and day, zone choice, site-local days and deadlines. No I/O, no tonic, no sled.
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
//! granted after [`choose_zone`] saw room on every day.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

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

/// The lifecycle state of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BookingState {
    /// Space held until `expires_at`.
    Held,
    /// Confirmed, awaiting check-in.
    Confirmed,
    /// The goods arrived.
    CheckedIn,
    /// The goods left. Final.
    Completed,
    /// Cancelled. Final.
    Cancelled,
    /// A hold that lapsed. Final.
    Expired,
    /// A confirmed booking never checked in. Final.
    NoShow,
}

impl BookingState {
    /// Every state, in lifecycle order.
    pub const ALL: [BookingState; 7] = [
        BookingState::Held,
        BookingState::Confirmed,
        BookingState::CheckedIn,
        BookingState::Completed,
        BookingState::Cancelled,
        BookingState::Expired,
        BookingState::NoShow,
    ];

    /// The name used in messages: `HELD`, `CONFIRMED`, …
    pub const fn name(self) -> &'static str {
        match self {
            BookingState::Held => "HELD",
            BookingState::Confirmed => "CONFIRMED",
            BookingState::CheckedIn => "CHECKED_IN",
            BookingState::Completed => "COMPLETED",
            BookingState::Cancelled => "CANCELLED",
            BookingState::Expired => "EXPIRED",
            BookingState::NoShow => "NO_SHOW",
        }
    }

    /// HELD, CONFIRMED and CHECKED_IN count against capacity on every day of the range.
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            BookingState::Held | BookingState::Confirmed | BookingState::CheckedIn
        )
    }
}

impl fmt::Display for BookingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
        let slot = self.slot(bucket);
        *slot = slot.checked_add(pallets).ok_or(CounterError {
            day,
            bucket,
            current: *slot,
            delta: i64::from(pallets),
        })?;
        Ok(())
    }

    /// Removes `pallets` from `bucket`.
    pub fn remove(
        &mut self,
        day: NaiveDate,
        bucket: Bucket,
        pallets: u32,
    ) -> Result<(), CounterError> {
        let slot = self.slot(bucket);
        *slot = slot.checked_sub(pallets).ok_or(CounterError {
            day,
            bucket,
            current: *slot,
            delta: -i64::from(pallets),
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

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Server-assigned id.
    pub booking_id: String,
    /// Who holds it.
    pub customer_id: String,
    /// The customer's own reference (may be empty).
    pub customer_reference: String,
    /// The zone.
    pub zone_id: String,
    /// The zone's temperature class name (`FROZEN`, …).
    pub class: String,
    /// Pallets per day, > 0.
    pub pallets: u32,
    /// Pallets that arrived (0 before check-in).
    pub pallets_arrived: u32,
    /// First day, inclusive (site-local).
    pub first_day: NaiveDate,
    /// Last day, inclusive (site-local).
    pub last_day: NaiveDate,
    /// The stored state (see [`Booking::effective`] for the state at an instant).
    pub state: BookingState,
    /// When the hold lapses (kept afterwards).
    pub expires_at_ms: i64,
    /// Set at confirmation: when it becomes NO_SHOW unless checked in.
    pub check_in_deadline_ms: Option<i64>,
    /// Created (HoldSpace).
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
    /// CANCELLED: why.
    pub cancel_reason: String,
    /// COMPLETED: the last day still counted (the day of completion, at most `last_day`);
    /// `None` when completion came before `first_day`.
    pub completed_through: Option<NaiveDate>,
}

impl Booking {
    /// What it holds against the counters, by its stored state.
    pub fn occupancy(&self) -> Option<Occupancy> {
        let whole = |bucket| {
            Some(Occupancy {
                bucket,
                first: self.first_day,
                last: self.last_day,
                pallets: self.pallets,
            })
        };
        match self.state {
            BookingState::Held => whole(Bucket::Held),
            BookingState::Confirmed => whole(Bucket::Confirmed),
            BookingState::CheckedIn => whole(Bucket::CheckedIn),
            BookingState::Completed => self
                .completed_through
                .filter(|through| *through >= self.first_day)
                .map(|through| Occupancy {
                    bucket: Bucket::CheckedIn,
                    first: self.first_day,
                    last: through.min(self.last_day),
                    pallets: self.pallets,
                }),
            BookingState::Cancelled | BookingState::Expired | BookingState::NoShow => None,
        }
    }

    /// The instant after which it lapses on its own (HELD: `expires_at`; CONFIRMED: the
    /// check-in deadline). This is the key of the due index.
    pub fn due_at(&self) -> Option<i64> {
        match self.state {
            BookingState::Held => Some(self.expires_at_ms),
            BookingState::Confirmed => self.check_in_deadline_ms,
            _ => None,
        }
    }

    /// True when at `now_ms` it has lapsed (strictly past its due instant) but is still
    /// stored as HELD or CONFIRMED.
    pub fn is_lapsed(&self, now_ms: i64) -> bool {
        self.due_at().is_some_and(|due| now_ms > due)
    }

    /// The lapsed version: HELD → EXPIRED, CONFIRMED → NO_SHOW, dated at the due instant.
    /// `None` for other states.
    pub fn lapsed(&self) -> Option<Booking> {
        let due = self.due_at()?;
        let state = match self.state {
            BookingState::Held => BookingState::Expired,
            BookingState::Confirmed => BookingState::NoShow,
            _ => return None,
        };
        Some(Booking {
            state,
            updated_at_ms: due.max(self.updated_at_ms),
            ..self.clone()
        })
    }

    /// The booking as it is at `now_ms`: a lapsed hold reads as EXPIRED, a confirmed
    /// booking past its check-in deadline as NO_SHOW, whether or not the sweeper has
    /// stored that yet.
    pub fn effective(&self, now_ms: i64) -> Booking {
        if self.is_lapsed(now_ms) {
            self.lapsed().unwrap_or_else(|| self.clone())
        } else {
            self.clone()
        }
    }

    /// True when it occupies at least one day of `first..=last` (either bound open).
    pub fn overlaps(&self, first: Option<NaiveDate>, last: Option<NaiveDate>) -> bool {
        first.is_none_or(|f| self.last_day >= f) && last.is_none_or(|l| self.first_day <= l)
    }
}

/// A transition the rules refuse.
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
    /// Stored counters disagree with the bookings (never the client's fault).
    #[error(transparent)]
    Counter(#[from] CounterError),
}

/// Renders an instant in milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn wrong_state(
    booking: &Booking,
    operation: &'static str,
    allowed: &'static str,
    state: BookingState,
) -> BookingError {
    BookingError::WrongState {
        booking_id: booking.booking_id.clone(),
        state,
        operation,
        allowed,
    }
}

/// HELD → CONFIRMED at `now_ms`, with the check-in deadline `deadline_ms`.
pub fn confirm(booking: &Booking, now_ms: i64, deadline_ms: i64) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if state == BookingState::Expired {
        // Lapsed, whether or not the sweeper stored it yet.
        return Err(BookingError::HoldExpired {
            booking_id: booking.booking_id.clone(),
            expires_at: rfc3339(booking.expires_at_ms),
        });
    }
    if state != BookingState::Held {
        return Err(wrong_state(booking, "ConfirmBooking", "HELD", state));
    }
    Ok(Booking {
        state: BookingState::Confirmed,
        check_in_deadline_ms: Some(deadline_ms),
        updated_at_ms: now_ms,
        ..booking.clone()
    })
}

/// HELD or CONFIRMED → CANCELLED at `now_ms`.
pub fn cancel(booking: &Booking, now_ms: i64, reason: &str) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if !matches!(state, BookingState::Held | BookingState::Confirmed) {
        return Err(wrong_state(
            booking,
            "CancelBooking",
            "HELD or CONFIRMED",
            state,
        ));
    }
    Ok(Booking {
        state: BookingState::Cancelled,
        cancel_reason: reason.to_string(),
        updated_at_ms: now_ms,
        ..booking.clone()
    })
}

/// CONFIRMED → CHECKED_IN at `now_ms`; `arrived` unset means every booked pallet.
///
/// The booked pallets stay counted (in `checked_in`) on every day, also when fewer arrived:
/// the customer booked the positions for the range.
pub fn check_in(
    booking: &Booking,
    now_ms: i64,
    arrived: Option<i64>,
) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if state != BookingState::Confirmed {
        return Err(wrong_state(booking, "CheckIn", "CONFIRMED", state));
    }
    let arrived = match arrived {
        None => booking.pallets,
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=booking.pallets).contains(&n) => n,
            _ => {
                return Err(BookingError::ArrivedOutOfRange {
                    booking_id: booking.booking_id.clone(),
                    arrived: n,
                    booked: booking.pallets,
                });
            }
        },
    };
    Ok(Booking {
        state: BookingState::CheckedIn,
        pallets_arrived: arrived,
        updated_at_ms: now_ms,
        ..booking.clone()
    })
}

/// CHECKED_IN → COMPLETED at `now_ms`, on the site-local day `today`: the days after
/// `today` are freed; the days up to `today` stay counted as used.
pub fn complete(booking: &Booking, now_ms: i64, today: NaiveDate) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if state != BookingState::CheckedIn {
        return Err(wrong_state(booking, "CompleteBooking", "CHECKED_IN", state));
    }
    let completed_through = (today >= booking.first_day).then(|| today.min(booking.last_day));
    Ok(Booking {
        state: BookingState::Completed,
        completed_through,
        updated_at_ms: now_ms,
        ..booking.clone()
    })
}

/// What a new hold asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldTerms {
    /// The customer.
    pub customer_id: String,
    /// Their reference.
    pub customer_reference: String,
    /// Pallets per day.
    pub pallets: u32,
    /// First day, inclusive.
    pub first_day: NaiveDate,
    /// Last day, inclusive.
    pub last_day: NaiveDate,
    /// Requested TTL in milliseconds (> 0).
    pub ttl_ms: i64,
}

/// A new HELD booking in `zone_id` at `now_ms`. `latest_expiry_ms` caps `expires_at`: a hold
/// never outlives the check-in deadline of its first day.
pub fn new_hold(
    booking_id: String,
    zone_id: &str,
    class: &str,
    terms: &HoldTerms,
    now_ms: i64,
    latest_expiry_ms: i64,
) -> Booking {
    let expires_at_ms = now_ms
        .saturating_add(terms.ttl_ms)
        .min(latest_expiry_ms)
        .max(now_ms);
    Booking {
        booking_id,
        customer_id: terms.customer_id.clone(),
        customer_reference: terms.customer_reference.clone(),
        zone_id: zone_id.to_string(),
        class: class.to_string(),
        pallets: terms.pallets,
        pallets_arrived: 0,
        first_day: terms.first_day,
        last_day: terms.last_day,
        state: BookingState::Held,
        expires_at_ms,
        check_in_deadline_ms: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        cancel_reason: String::new(),
        completed_through: None,
    }
}

/// One candidate zone for a hold, with its counters on every day of the range.
#[derive(Debug, Clone)]
pub struct ZoneDays {
    /// The zone.
    pub zone_id: String,
    /// Its capacity.
    pub capacity: u32,
    /// Its counters per day of the range, in order.
    pub days: Vec<(NaiveDate, DayCounts)>,
}

/// A day without enough room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortDay {
    /// The day.
    pub day: NaiveDate,
    /// Positions free.
    pub free: u32,
    /// How many pallets are missing.
    pub short_by: u32,
}

/// Why a hold found no room: the closest zone's short days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The zone that came closest (the only one, when a zone was asked for).
    pub zone_id: String,
    /// The pallets asked for.
    pub pallets: u32,
    /// Every short day, in order.
    pub days: Vec<ShortDay>,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not enough space in zone {} for {} pallets: ",
            self.zone_id, self.pallets
        )?;
        for (i, day) in self.days.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} short by {} ({} free)",
                day.day, day.short_by, day.free
            )?;
        }
        Ok(())
    }
}

/// The short days of one zone for `pallets`.
pub fn short_days(zone: &ZoneDays, pallets: u32) -> Vec<ShortDay> {
    zone.days
        .iter()
        .filter_map(|(day, counts)| {
            let free = counts.free(zone.capacity);
            (free < pallets).then(|| ShortDay {
                day: *day,
                free,
                short_by: pallets - free,
            })
        })
        .collect()
}

/// Picks the zone for a hold of `pallets` on every day: among the zones with room on every
/// day, the **tightest fit** (the least free positions left on its fullest day after the
/// hold; ties go to the earlier zone in the site's file order), so big free blocks in other
/// zones stay available for big holds. With no room anywhere, the shortage of the zone that
/// came closest (the fewest pallets missing in total, then the fewest short days, then file
/// order). `Err(None)` when there is no candidate at all.
pub fn choose_zone(candidates: &[ZoneDays], pallets: u32) -> Result<usize, Option<Shortage>> {
    let mut best: Option<(usize, u32)> = None;
    let mut closest: Option<(u64, usize, usize, Vec<ShortDay>)> = None;
    for (i, zone) in candidates.iter().enumerate() {
        let short = short_days(zone, pallets);
        if short.is_empty() {
            let slack = zone
                .days
                .iter()
                .map(|(_, counts)| counts.free(zone.capacity) - pallets)
                .min()
                .unwrap_or(zone.capacity.saturating_sub(pallets));
            if best.is_none_or(|(_, s)| slack < s) {
                best = Some((i, slack));
            }
        } else {
            let missing: u64 = short.iter().map(|d| u64::from(d.short_by)).sum();
            let better = closest
                .as_ref()
                .is_none_or(|(m, n, _, _)| (missing, short.len()) < (*m, *n));
            if better {
                closest = Some((missing, short.len(), i, short));
            }
        }
    }
    if let Some((i, _)) = best {
        return Ok(i);
    }
    Err(closest.and_then(|(_, _, i, days)| {
        candidates.get(i).map(|zone| Shortage {
            zone_id: zone.zone_id.clone(),
            pallets,
            days,
        })
    }))
}

/// Why a day range is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// `last < first`.
    Reversed,
    /// More than [`MAX_RANGE_DAYS`] days.
    TooLong(i64),
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::Reversed => f.write_str("must not be before first_day"),
            RangeError::TooLong(n) => write!(
                f,
                "the range spans {n} days; at most {MAX_RANGE_DAYS} are allowed"
            ),
        }
    }
}

/// Checks an inclusive day range.
pub fn check_range(first: NaiveDate, last: NaiveDate) -> Result<(), RangeError> {
    if last < first {
        return Err(RangeError::Reversed);
    }
    let span = (last - first).num_days() + 1;
    if span > MAX_RANGE_DAYS {
        return Err(RangeError::TooLong(span));
    }
    Ok(())
}

/// A calendar date from its parts (year 1 to 9999), or why not.
pub fn date_from_parts(year: i32, month: i32, day: i32) -> Result<NaiveDate, String> {
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is out of range 1 to 9999"));
    }
    let (Ok(m), Ok(d)) = (u32::try_from(month), u32::try_from(day)) else {
        return Err(format!("{year}-{month}-{day} is not a valid date"));
    };
    NaiveDate::from_ymd_opt(year, m, d)
        .ok_or_else(|| format!("{year}-{month:02}-{day:02} is not a valid date"))
}

/// The site-local calendar day at `now_ms`.
pub fn local_day(tz: Tz, now_ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The first instant (ms) of the site-local `day`: its midnight, or the first hour that
/// exists when a daylight-saving change skips midnight.
pub fn start_of_day_ms(tz: Tz, day: NaiveDate) -> i64 {
    for hour in 0..24 {
        let time = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN);
        if let Some(t) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            return t.timestamp_millis();
        }
    }
    // Unreachable for real zones; fall back to UTC midnight.
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// The check-in deadline of a booking whose first day is `first_day`: the end of that day
/// (the start of the next, site-local) plus `grace`.
pub fn check_in_deadline_ms(tz: Tz, first_day: NaiveDate, grace: Duration) -> i64 {
    let next = first_day
        .checked_add_days(Days::new(1))
        .unwrap_or(first_day);
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    start_of_day_ms(tz, next).saturating_add(grace_ms)
}

/// Days since 0001-01-01 (day 1): the order-preserving key of a date.
pub fn day_number(day: NaiveDate) -> i32 {
    use chrono::Datelike;
    day.num_days_from_ce()
}

/// The date of a [`day_number`].
pub fn from_day_number(n: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn sample(state: BookingState) -> Booking {
        let mut b = new_hold(
            "BK-1".into(),
            "frozen-a",
            "FROZEN",
            &HoldTerms {
                customer_id: "c".into(),
                customer_reference: String::new(),
                pallets: 4,
                first_day: d("2026-12-01"),
                last_day: d("2026-12-03"),
                ttl_ms: 1000,
            },
            0,
            i64::MAX,
        );
        b.state = state;
        if state != BookingState::Held {
            b.check_in_deadline_ms = Some(10_000);
        }
        if state == BookingState::Completed {
            b.completed_through = Some(d("2026-12-02"));
        }
        b
    }

    #[test]
    fn every_transition_and_every_refusal() {
        use BookingState::*;
        #[derive(Debug, Clone, Copy)]
        enum Op {
            Confirm,
            Cancel,
            CheckIn,
            Complete,
        }
        let expected = |op: Op, from: BookingState| -> Option<BookingState> {
            match (op, from) {
                (Op::Confirm, Held) => Some(Confirmed),
                (Op::Cancel, Held | Confirmed) => Some(Cancelled),
                (Op::CheckIn, Confirmed) => Some(CheckedIn),
                (Op::Complete, CheckedIn) => Some(Completed),
                _ => None,
            }
        };
        for from in BookingState::ALL {
            for op in [Op::Confirm, Op::Cancel, Op::CheckIn, Op::Complete] {
                let b = sample(from);
                let result = match op {
                    Op::Confirm => confirm(&b, 10, 5000),
                    Op::Cancel => cancel(&b, 10, "changed plans"),
                    Op::CheckIn => check_in(&b, 10, None),
                    Op::Complete => complete(&b, 10, d("2026-12-02")),
                };
                match (expected(op, from), result) {
                    (Some(to), Ok(after)) => {
                        assert_eq!(after.state, to, "{op:?} from {from}");
                        assert_eq!(after.updated_at_ms, 10);
                    }
                    (None, Err(BookingError::WrongState { state, .. })) => {
                        assert_eq!(state, from, "{op:?} from {from} names the state");
                    }
                    (None, Err(BookingError::HoldExpired { .. })) => {
                        assert!(
                            matches!((op, from), (Op::Confirm, Expired)),
                            "{op:?} from {from}"
                        );
                    }
                    (want, got) => panic!("{op:?} from {from}: want {want:?}, got {got:?}"),
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_current_state() {
        let error = confirm(&sample(BookingState::Cancelled), 10, 5000).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("BK-1 is CANCELLED"), "{text}");
        assert!(text.contains("ConfirmBooking"), "{text}");
    }

    #[test]
    fn expiry_is_strictly_after_expires_at() {
        let held = sample(BookingState::Held);
        assert_eq!(held.expires_at_ms, 1000);
        assert!(
            confirm(&held, 1000, 5000).is_ok(),
            "at expires_at it is still held"
        );
        let error = confirm(&held, 1001, 5000).unwrap_err();
        assert!(matches!(error, BookingError::HoldExpired { .. }));
        assert!(error.to_string().contains("hold expired"));
        assert_eq!(held.effective(1001).state, BookingState::Expired);
        assert_eq!(held.effective(1001).updated_at_ms, 1000);
        // Any other transition of a lapsed hold names EXPIRED.
        match cancel(&held, 1001, "x").unwrap_err() {
            BookingError::WrongState { state, .. } => assert_eq!(state, BookingState::Expired),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_show_after_the_check_in_deadline() {
        let confirmed = sample(BookingState::Confirmed);
        assert!(check_in(&confirmed, 10_000, None).is_ok());
        assert_eq!(confirmed.effective(10_001).state, BookingState::NoShow);
        match check_in(&confirmed, 10_001, None).unwrap_err() {
            BookingError::WrongState { state, .. } => assert_eq!(state, BookingState::NoShow),
            other => panic!("{other:?}"),
        }
        assert_eq!(confirmed.effective(10_001).occupancy(), None);
    }

    #[test]
    fn check_in_pallets_arrived() {
        let b = sample(BookingState::Confirmed);
        assert_eq!(check_in(&b, 1, None).unwrap().pallets_arrived, 4);
        assert_eq!(check_in(&b, 1, Some(3)).unwrap().pallets_arrived, 3);
        for bad in [0, 5, -1, i64::from(u32::MAX) + 1] {
            assert!(matches!(
                check_in(&b, 1, Some(bad)),
                Err(BookingError::ArrivedOutOfRange { .. })
            ));
        }
        // Fewer arrived: the booked pallets stay counted.
        let after = check_in(&b, 1, Some(1)).unwrap();
        assert_eq!(after.occupancy().unwrap().pallets, 4);
        assert_eq!(after.occupancy().unwrap().bucket, Bucket::CheckedIn);
    }

    #[test]
    fn completion_frees_the_days_after_today() {
        let b = sample(BookingState::CheckedIn);
        let mid = complete(&b, 1, d("2026-12-02")).unwrap();
        let occ = mid.occupancy().unwrap();
        assert_eq!((occ.first, occ.last), (d("2026-12-01"), d("2026-12-02")));
        let early = complete(&b, 1, d("2026-11-20")).unwrap();
        assert_eq!(early.occupancy(), None);
        let late = complete(&b, 1, d("2027-01-01")).unwrap();
        assert_eq!(late.occupancy().unwrap().last, d("2026-12-03"));
        let change = CounterChange::between(Some(&b), &mid);
        assert_eq!(change.days(), vec![d("2026-12-03")]);
    }

    #[test]
    fn ranges() {
        assert!(check_range(d("2026-12-01"), d("2026-12-01")).is_ok());
        assert_eq!(
            check_range(d("2026-12-02"), d("2026-12-01")),
            Err(RangeError::Reversed)
        );
        assert!(check_range(d("2026-01-01"), d("2026-12-31")).is_ok());
        assert!(
            check_range(d("2024-01-01"), d("2024-12-31")).is_ok(),
            "366 days, leap year"
        );
        assert_eq!(
            check_range(d("2026-01-01"), d("2027-01-02")),
            Err(RangeError::TooLong(367))
        );
        assert!(date_from_parts(2026, 2, 29).is_err());
        assert!(date_from_parts(0, 1, 1).is_err());
        assert!(date_from_parts(2026, 0, 1).is_err());
        assert!(date_from_parts(2026, 1, -1).is_err());
        assert_eq!(date_from_parts(2024, 2, 29).unwrap(), d("2024-02-29"));
    }

    #[test]
    fn site_local_days_and_deadlines() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        // 2026-11-30T16:30Z is 2026-12-01 00:30 in Shanghai.
        let ms = DateTime::parse_from_rfc3339("2026-11-30T16:30:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(local_day(tz, ms), d("2026-12-01"));
        assert_eq!(local_day(chrono_tz::UTC, ms), d("2026-11-30"));
        let start = start_of_day_ms(tz, d("2026-12-01"));
        assert_eq!(rfc3339(start), "2026-11-30T16:00:00.000Z");
        let deadline = check_in_deadline_ms(tz, d("2026-12-01"), Duration::from_secs(6 * 3600));
        assert_eq!(rfc3339(deadline), "2026-12-01T22:00:00.000Z");
        // Havana springs forward at midnight: 2026-03-08 starts at 01:00 (CDT, UTC-4).
        let havana: Tz = "America/Havana".parse().unwrap();
        assert_eq!(
            rfc3339(start_of_day_ms(havana, d("2026-03-08"))),
            "2026-03-08T05:00:00.000Z"
        );
        assert_eq!(
            rfc3339(start_of_day_ms(havana, d("2026-03-09"))),
            "2026-03-09T04:00:00.000Z"
        );
    }

    #[test]
    fn day_numbers_round_trip_in_order() {
        let a = d("2026-12-01");
        let b = d("2026-12-02");
        assert!(day_number(a) < day_number(b));
        assert_eq!(from_day_number(day_number(a)), Some(a));
    }

    fn zone(id: &str, capacity: u32, used: &[u32]) -> ZoneDays {
        ZoneDays {
            zone_id: id.into(),
            capacity,
            days: used
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    (
                        d("2026-12-01") + chrono::Days::new(i as u64),
                        DayCounts {
                            held: *u,
                            ..DayCounts::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn tightest_fit_is_chosen() {
        let zones = [
            zone("a", 100, &[0, 0]),
            zone("b", 20, &[10, 5]),
            zone("c", 20, &[12, 0]),
        ];
        // 8 pallets: a leaves 92, b leaves 2, c leaves 0 → c.
        assert_eq!(choose_zone(&zones, 8), Ok(2));
        // 9 pallets: c is short on day 1; b leaves 1 → b.
        assert_eq!(choose_zone(&zones, 9), Ok(1));
        // 50: only a.
        assert_eq!(choose_zone(&zones, 50), Ok(0));
        let short = choose_zone(&zones, 101).unwrap_err().unwrap();
        assert_eq!(short.zone_id, "a");
        assert_eq!(short.days.len(), 2);
        assert_eq!(short.days[0].short_by, 1);
        assert!(
            short
                .to_string()
                .contains("2026-12-01 short by 1 (100 free)")
        );
        assert_eq!(choose_zone(&[], 1), Err(None));
    }

    // ----- property tests: the capacity arithmetic under random operation sequences -----

    /// An in-memory site: the same arithmetic the store applies, without sled.
    struct Model {
        capacity: Vec<u32>,
        counters: BTreeMap<(usize, NaiveDate), DayCounts>,
        bookings: Vec<(usize, Booking)>,
        now: i64,
    }

    #[derive(Debug, Clone)]
    enum Action {
        Hold {
            zone: Option<usize>,
            start: u8,
            len: u8,
            pallets: u32,
            ttl: i64,
        },
        Confirm(usize),
        Cancel(usize),
        CheckIn(usize, Option<i64>),
        Complete(usize, u8),
        Advance(i64),
        Sweep,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            4 => (proptest::option::of(0usize..3), 0u8..8, 0u8..4, 1u32..12, 1i64..50)
                .prop_map(|(zone, start, len, pallets, ttl)| Action::Hold { zone, start, len, pallets, ttl }),
            2 => any::<usize>().prop_map(Action::Confirm),
            1 => any::<usize>().prop_map(Action::Cancel),
            1 => (any::<usize>(), proptest::option::of(0i64..14)).prop_map(|(i, a)| Action::CheckIn(i, a)),
            1 => (any::<usize>(), 0u8..12).prop_map(|(i, t)| Action::Complete(i, t)),
            1 => (1i64..40).prop_map(Action::Advance),
            1 => Just(Action::Sweep),
        ]
    }

    const BASE: &str = "2026-12-01";

    impl Model {
        fn day(offset: u8) -> NaiveDate {
            d(BASE) + chrono::Days::new(u64::from(offset))
        }

        fn apply_change(&mut self, zone: usize, change: CounterChange) {
            for day in change.days() {
                let counts = self.counters.entry((zone, day)).or_default();
                change
                    .apply(day, counts)
                    .expect("counters follow the bookings");
            }
        }

        fn replace(&mut self, i: usize, after: Booking) {
            let (zone, before) = self.bookings[i].clone();
            self.apply_change(zone, CounterChange::between(Some(&before), &after));
            self.bookings[i].1 = after;
        }

        fn sweep(&mut self) {
            for i in 0..self.bookings.len() {
                let b = self.bookings[i].1.clone();
                if b.is_lapsed(self.now) {
                    self.replace(i, b.lapsed().unwrap());
                }
            }
        }

        fn step(&mut self, action: Action) {
            match action {
                Action::Hold {
                    zone,
                    start,
                    len,
                    pallets,
                    ttl,
                } => {
                    // The store sweeps due bookings before it checks room.
                    self.sweep();
                    let first = Self::day(start);
                    let last = Self::day(start + len);
                    let zones: Vec<usize> = match zone {
                        Some(z) => vec![z],
                        None => (0..self.capacity.len()).collect(),
                    };
                    let candidates: Vec<ZoneDays> = zones
                        .iter()
                        .map(|z| ZoneDays {
                            zone_id: z.to_string(),
                            capacity: self.capacity[*z],
                            days: days(first, last)
                                .map(|day| {
                                    (
                                        day,
                                        self.counters.get(&(*z, day)).copied().unwrap_or_default(),
                                    )
                                })
                                .collect(),
                        })
                        .collect();
                    match choose_zone(&candidates, pallets) {
                        Ok(i) => {
                            let z = zones[i];
                            let terms = HoldTerms {
                                customer_id: "c".into(),
                                customer_reference: String::new(),
                                pallets,
                                first_day: first,
                                last_day: last,
                                ttl_ms: ttl,
                            };
                            let b = new_hold(
                                format!("b{}", self.bookings.len()),
                                &z.to_string(),
                                "X",
                                &terms,
                                self.now,
                                i64::MAX,
                            );
                            self.apply_change(z, CounterChange::between(None, &b));
                            self.bookings.push((z, b));
                        }
                        Err(Some(shortage)) => {
                            // Refused only when really short, and the days listed are short.
                            assert!(!shortage.days.is_empty());
                            for c in &candidates {
                                assert!(!short_days(c, pallets).is_empty());
                            }
                        }
                        Err(None) => unreachable!("there is always a candidate"),
                    }
                }
                Action::Confirm(i) => {
                    if let Some(i) = self.pick(i) {
                        let b = &self.bookings[i].1;
                        if let Ok(after) = confirm(b, self.now, self.now + 30) {
                            self.replace(i, after);
                        }
                    }
                }
                Action::Cancel(i) => {
                    if let Some(i) = self.pick(i)
                        && let Ok(after) = cancel(&self.bookings[i].1, self.now, "r")
                    {
                        self.replace(i, after);
                    }
                }
                Action::CheckIn(i, arrived) => {
                    if let Some(i) = self.pick(i)
                        && let Ok(after) = check_in(&self.bookings[i].1, self.now, arrived)
                    {
                        self.replace(i, after);
                    }
                }
                Action::Complete(i, today) => {
                    if let Some(i) = self.pick(i)
                        && let Ok(after) = complete(&self.bookings[i].1, self.now, Self::day(today))
                    {
                        self.replace(i, after);
                    }
                }
                Action::Advance(ms) => self.now += ms,
                Action::Sweep => self.sweep(),
            }
        }

        fn pick(&self, i: usize) -> Option<usize> {
            (!self.bookings.is_empty()).then(|| i % self.bookings.len())
        }

        /// The invariant: counters = Σ occupancy of the stored bookings ≤ capacity, and the
        /// free positions seen at `now` = capacity − Σ effective occupancy of live bookings.
        fn check(&self) {
            let mut expected: BTreeMap<(usize, NaiveDate), DayCounts> = BTreeMap::new();
            for (z, b) in &self.bookings {
                if let Some(o) = b.occupancy() {
                    for day in o.days() {
                        expected
                            .entry((*z, day))
                            .or_default()
                            .add(day, o.bucket, o.pallets)
                            .unwrap();
                    }
                }
            }
            let stored: BTreeMap<_, _> = self
                .counters
                .iter()
                .filter(|(_, c)| !c.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect();
            assert_eq!(stored, expected);
            for ((z, day), counts) in &self.counters {
                let cap = self.capacity[*z];
                assert!(
                    counts.used() <= u64::from(cap),
                    "zone {z} {day}: {counts:?} > {cap}"
                );
                // What GetAvailability shows: counters minus lapsed-but-unswept bookings.
                let mut effective = *counts;
                for (bz, b) in &self.bookings {
                    if bz == z
                        && b.is_lapsed(self.now)
                        && let Some(o) = b.occupancy().filter(|o| o.covers(*day))
                    {
                        effective.remove(*day, o.bucket, o.pallets).unwrap();
                    }
                }
                let live: u64 = self
                    .bookings
                    .iter()
                    .filter(|(bz, _)| bz == z)
                    .filter_map(|(_, b)| b.effective(self.now).occupancy())
                    .filter(|o| o.covers(*day))
                    .map(|o| u64::from(o.pallets))
                    .sum();
                assert_eq!(u64::from(effective.free(cap)), u64::from(cap) - live);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn capacity_is_never_exceeded_and_free_is_capacity_minus_live(
            capacity in proptest::collection::vec(1u32..25, 3),
            actions in proptest::collection::vec(action(), 1..120),
        ) {
            let mut model = Model { capacity, counters: BTreeMap::new(), bookings: Vec::new(), now: 0 };
            for action in actions {
                model.step(action);
                model.check();
            }
            // Everything lapses in the end, and a final sweep leaves only non-held bookings.
            model.now += 1_000_000;
            model.sweep();
            model.check();
            prop_assert!(model.bookings.iter().all(|(_, b)| !matches!(b.state, BookingState::Held | BookingState::Confirmed)));
        }

        #[test]
        fn the_chosen_zone_has_room_on_every_day(
            zones in proptest::collection::vec((1u32..30, proptest::collection::vec(0u32..30, 3)), 1..5),
            pallets in 1u32..30,
        ) {
            let candidates: Vec<ZoneDays> = zones
                .iter()
                .enumerate()
                .map(|(i, (cap, used))| {
                    let used: Vec<u32> = used.iter().map(|u| u % (cap + 1)).collect();
                    zone(&format!("z{i}"), *cap, &used)
                })
                .collect();
            match choose_zone(&candidates, pallets) {
                Ok(i) => {
                    let chosen = &candidates[i];
                    prop_assert!(short_days(chosen, pallets).is_empty());
                    // Tightest: no other fitting zone leaves less slack.
                    let slack = |z: &ZoneDays| z.days.iter().map(|(_, c)| c.free(z.capacity) - pallets).min().unwrap();
                    for z in &candidates {
                        if short_days(z, pallets).is_empty() {
                            prop_assert!(slack(chosen) <= slack(z));
                        }
                    }
                }
                Err(Some(shortage)) => {
                    for z in &candidates {
                        prop_assert!(!short_days(z, pallets).is_empty());
                    }
                    let zone = candidates.iter().find(|z| z.zone_id == shortage.zone_id).unwrap();
                    prop_assert_eq!(&shortage.days, &short_days(zone, pallets));
                    for day in &shortage.days {
                        prop_assert_eq!(day.free + day.short_by, pallets);
                    }
                }
                Err(None) => prop_assert!(false, "candidates were given"),
            }
        }

        #[test]
        fn counter_changes_round_trip(
            pallets in 1u32..50, start in 0u8..10, len in 0u8..10, through in 0u8..25,
        ) {
            // hold → confirm → check in → complete, then undoing every change leaves zero.
            let mut counts: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
            let terms = HoldTerms {
                customer_id: "c".into(), customer_reference: String::new(), pallets,
                first_day: Model::day(start), last_day: Model::day(start + len), ttl_ms: 10,
            };
            let held = new_hold("b".into(), "z", "X", &terms, 0, i64::MAX);
            let confirmed = confirm(&held, 1, 100).unwrap();
            let checked = check_in(&confirmed, 2, None).unwrap();
            let completed = complete(&checked, 3, Model::day(through)).unwrap();
            let steps = [(None, &held), (Some(&held), &confirmed), (Some(&confirmed), &checked), (Some(&checked), &completed)];
            for (before, after) in steps {
                let change = CounterChange::between(before, after);
                for day in change.days() {
                    change.apply(day, counts.entry(day).or_default()).unwrap();
                }
            }
            for (day, c) in &counts {
                let expected = completed.occupancy().filter(|o| o.covers(*day)).map_or(0, |o| o.pallets);
                prop_assert_eq!(c.checked_in, expected);
                prop_assert_eq!(c.held + c.confirmed, 0);
            }
        }
    }
}
