//! The transitions of a booking: a new hold, and HELD → CONFIRMED → CHECKED_IN →
//! COMPLETED, or CANCELLED.

use chrono::NaiveDate;
use coldchain_audit::Author;

use super::booking::{Booking, BookingChange, BookingState};
use super::days::rfc3339;
use super::error::BookingError;

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
pub fn confirm(
    booking: &Booking,
    now_ms: i64,
    deadline_ms: i64,
    author: &Author,
) -> Result<Booking, BookingError> {
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
    Ok(booking.with_change(
        Booking {
            state: BookingState::Confirmed,
            check_in_deadline_ms: Some(deadline_ms),
            updated_at_ms: now_ms,
            ..booking.clone()
        },
        author,
    ))
}

/// HELD or CONFIRMED → CANCELLED at `now_ms`.
pub fn cancel(
    booking: &Booking,
    now_ms: i64,
    reason: &str,
    author: &Author,
) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if !matches!(state, BookingState::Held | BookingState::Confirmed) {
        return Err(wrong_state(
            booking,
            "CancelBooking",
            "HELD or CONFIRMED",
            state,
        ));
    }
    Ok(booking.with_change(
        Booking {
            state: BookingState::Cancelled,
            cancel_reason: reason.to_string(),
            updated_at_ms: now_ms,
            ..booking.clone()
        },
        author,
    ))
}

/// CONFIRMED → CHECKED_IN at `now_ms`; `arrived` unset means every booked pallet.
///
/// The booked pallets stay counted (in `checked_in`) on every day, also when fewer arrived:
/// the customer booked the positions for the range.
pub fn check_in(
    booking: &Booking,
    now_ms: i64,
    arrived: Option<i64>,
    author: &Author,
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
    Ok(booking.with_change(
        Booking {
            state: BookingState::CheckedIn,
            pallets_arrived: arrived,
            updated_at_ms: now_ms,
            ..booking.clone()
        },
        author,
    ))
}

/// CHECKED_IN → COMPLETED at `now_ms`, on the site-local day `today`: the days after
/// `today` are freed; the days up to `today` stay counted as used.
pub fn complete(
    booking: &Booking,
    now_ms: i64,
    today: NaiveDate,
    author: &Author,
) -> Result<Booking, BookingError> {
    let state = booking.effective(now_ms).state;
    if state != BookingState::CheckedIn {
        return Err(wrong_state(booking, "CompleteBooking", "CHECKED_IN", state));
    }
    let completed_through = (today >= booking.first_day).then(|| today.min(booking.last_day));
    Ok(booking.with_change(
        Booking {
            state: BookingState::Completed,
            completed_through,
            updated_at_ms: now_ms,
            ..booking.clone()
        },
        author,
    ))
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

/// A new HELD booking in `zone_id` at `now_ms`, made by `author`. `latest_expiry_ms` caps `expires_at`: a hold
/// never outlives the check-in deadline of its first day.
pub fn new_hold(
    booking_id: String,
    zone_id: &str,
    class: &str,
    terms: &HoldTerms,
    now_ms: i64,
    latest_expiry_ms: i64,
    author: &Author,
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
        changes: vec![BookingChange {
            state: BookingState::Held,
            changed_at_ms: now_ms,
            changed_by: author.clone(),
        }],
    }
}
