//! Protobuf ⇄ domain values: bookings, states, classes, availability rows.

use std::str::FromStr;

use coldchain_network::TemperatureClass;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::{class, proto_time};

use coldchain_audit::Author;

use crate::domain::{Booking, BookingChange, BookingState, DayRow};

/// The proto of a stored booking at `site_id`.
pub fn booking_pb(site_id: &str, b: &Booking) -> pb::Booking {
    into_booking_pb(site_id, b.clone())
}

/// [`booking_pb`], taking the booking (an answer is rendered once, without copies).
pub fn into_booking_pb(site_id: &str, b: Booking) -> pb::Booking {
    let changes = b.history().into_iter().map(change_pb).collect();
    pb::Booking {
        site_id: site_id.to_string(),
        temperature_class: class_pb_of_name(&b.class) as i32,
        pallets: clamp_i32(b.pallets),
        pallets_arrived: clamp_i32(b.pallets_arrived),
        first_day: Some(proto_time::date(b.first_day)),
        last_day: Some(proto_time::date(b.last_day)),
        state: state_pb(b.state) as i32,
        expires_at: Some(proto_time::timestamp(b.expires_at_ms)),
        check_in_deadline: b.check_in_deadline_ms.map(proto_time::timestamp),
        created_at: Some(proto_time::timestamp(b.created_at_ms)),
        updated_at: Some(proto_time::timestamp(b.updated_at_ms)),
        booking_id: b.booking_id,
        customer_id: b.customer_id,
        customer_reference: b.customer_reference,
        zone_id: b.zone_id,
        cancel_reason: b.cancel_reason,
        changes,
    }
}

/// The booking a [`booking_pb`] answer shows, back: everything the answer carries.
/// `completed_through` is not part of the answer and comes back unset (an answer is only
/// rendered again, never applied).
pub fn booking_from_pb(b: pb::Booking) -> Result<Booking, String> {
    let state = pb::BookingState::try_from(b.state)
        .ok()
        .and_then(state_from_pb)
        .ok_or_else(|| format!("state {} is not a booking state", b.state))?;
    let day = |field: &str, date: Option<&common::Date>| {
        date.ok_or_else(|| format!("{field} is missing"))
            .and_then(proto_time::naive_date)
            .map_err(|e| format!("{field}: {e}"))
    };
    let instant = |field: &str, ts: Option<&prost_types::Timestamp>| {
        ts.and_then(proto_time::millis)
            .ok_or_else(|| format!("{field} is missing or out of range"))
    };
    let count =
        |field: &str, n: i32| u32::try_from(n).map_err(|_| format!("{field} {n} is negative"));
    let class = common::TemperatureClass::try_from(b.temperature_class)
        .ok()
        .and_then(class::from_proto)
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    Ok(Booking {
        pallets: count("pallets", b.pallets)?,
        pallets_arrived: count("pallets_arrived", b.pallets_arrived)?,
        first_day: day("first_day", b.first_day.as_ref())?,
        last_day: day("last_day", b.last_day.as_ref())?,
        state,
        expires_at_ms: instant("expires_at", b.expires_at.as_ref())?,
        check_in_deadline_ms: match b.check_in_deadline.as_ref() {
            None => None,
            Some(ts) => Some(instant("check_in_deadline", Some(ts))?),
        },
        created_at_ms: instant("created_at", b.created_at.as_ref())?,
        updated_at_ms: instant("updated_at", b.updated_at.as_ref())?,
        booking_id: b.booking_id,
        customer_id: b.customer_id,
        customer_reference: b.customer_reference,
        zone_id: b.zone_id,
        class,
        cancel_reason: b.cancel_reason,
        completed_through: None,
        changes: b
            .changes
            .into_iter()
            .map(change_from_pb)
            .collect::<Result<_, _>>()?,
    })
}

/// The proto of one change of state.
pub fn change_pb(change: BookingChange) -> pb::BookingChange {
    pb::BookingChange {
        state: state_pb(change.state) as i32,
        changed_at: Some(proto_time::timestamp(change.changed_at_ms)),
        changed_by: Some(author_pb(change.changed_by)),
    }
}

fn change_from_pb(change: pb::BookingChange) -> Result<BookingChange, String> {
    let state = pb::BookingState::try_from(change.state)
        .ok()
        .and_then(state_from_pb)
        .ok_or_else(|| format!("changes: state {} is not a booking state", change.state))?;
    let changed_at_ms = change
        .changed_at
        .as_ref()
        .and_then(proto_time::millis)
        .ok_or_else(|| "changes: changed_at is missing or out of range".to_string())?;
    let changed_by = change
        .changed_by
        .map_or_else(Author::unknown, |a| Author::new(a.principal, a.actor));
    Ok(BookingChange {
        state,
        changed_at_ms,
        changed_by,
    })
}

/// The proto of an author.
pub fn author_pb(author: Author) -> common::Author {
    common::Author {
        principal: author.principal,
        actor: author.actor,
    }
}

/// A count the domain bounds by `i32::MAX` (see `domain::capacity`), as the contract's
/// `int32`.
pub fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The proto state.
pub fn state_pb(state: BookingState) -> pb::BookingState {
    match state {
        BookingState::Held => pb::BookingState::Held,
        BookingState::Confirmed => pb::BookingState::Confirmed,
        BookingState::CheckedIn => pb::BookingState::CheckedIn,
        BookingState::Completed => pb::BookingState::Completed,
        BookingState::Cancelled => pb::BookingState::Cancelled,
        BookingState::Expired => pb::BookingState::Expired,
        BookingState::NoShow => pb::BookingState::NoShow,
    }
}

/// The domain state of a proto state; `None` for UNSPECIFIED.
pub fn state_from_pb(state: pb::BookingState) -> Option<BookingState> {
    Some(match state {
        pb::BookingState::Unspecified => return None,
        pb::BookingState::Held => BookingState::Held,
        pb::BookingState::Confirmed => BookingState::Confirmed,
        pb::BookingState::CheckedIn => BookingState::CheckedIn,
        pb::BookingState::Completed => BookingState::Completed,
        pb::BookingState::Cancelled => BookingState::Cancelled,
        pb::BookingState::Expired => BookingState::Expired,
        pb::BookingState::NoShow => BookingState::NoShow,
    })
}

fn class_pb_of_name(name: &str) -> common::TemperatureClass {
    TemperatureClass::from_str(name)
        .map(class::to_proto)
        .unwrap_or(common::TemperatureClass::Unspecified)
}

/// One row of GetAvailability.
pub fn availability_pb(row: DayRow) -> pb::DayAvailability {
    pb::DayAvailability {
        date: Some(proto_time::date(row.day)),
        zone_id: row.zone_id,
        temperature_class: class_pb_of_name(&row.class) as i32,
        capacity: clamp_i32(row.capacity),
        held: clamp_i32(row.counts.held),
        confirmed: clamp_i32(row.counts.confirmed),
        checked_in: clamp_i32(row.counts.checked_in),
        free: clamp_i32(row.counts.free(row.capacity)),
    }
}
