//! Requests validated in form into domain values: every bad field at once, as
//! `google.rpc.BadRequest` field violations.

use chrono::NaiveDate;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::ServiceError;
use coldchain_runtime::class;
use coldchain_runtime::idempotency::fingerprint_of;
use coldchain_runtime::proto_time;
use coldchain_runtime::validate::Violations;
use coldchain_store::RequestFingerprint;

use super::convert::state_from_pb;
use crate::domain::{
    self, AvailabilityQuery, HoldCommand, HoldTerms, ListQuery, SpaceAsk, Transition,
};
use coldchain_network::TemperatureClass;

/// A mutating call: the request's fingerprint (its id and protobuf bytes, no method tag, as
/// every build fingerprinted it) and what it asks. The bytes include the `actor`: a retry
/// that names another actor is another request (refused as a reuse of the request id), so a
/// remembered answer never shows a change as made by someone who did not ask for it.
#[derive(Debug)]
pub struct Call<C> {
    /// For idempotency.
    pub request: RequestFingerprint,
    /// What it asks.
    pub command: C,
}

/// A transition of one booking.
#[derive(Debug)]
pub struct TransitionCall {
    /// The booking.
    pub booking_id: String,
    /// The change.
    pub transition: Transition,
}

/// ListBookings, validated.
#[derive(Debug)]
pub struct ListCall {
    /// The filters.
    pub query: ListQuery,
    /// The index position of the page token, if any.
    pub after: Option<Vec<u8>>,
    /// The page size.
    pub limit: usize,
    /// What the page tokens are bound to (the filters, as every build wrote them).
    pub query_bytes: Vec<u8>,
}

/// GetAvailability; `today` is the site-local today (a range entirely before it is
/// refused).
pub fn get_availability(
    r: &pb::GetAvailabilityRequest,
    today: NaiveDate,
) -> Result<AvailabilityQuery, ServiceError> {
    let mut v = Violations::new();
    let space = space(
        &mut v,
        r.space.as_ref().map(|s| match s {
            pb::get_availability_request::Space::TemperatureClass(c) => SpaceField::Class(*c),
            pb::get_availability_request::Space::ZoneId(z) => SpaceField::Zone(z),
        }),
    );
    let range = range(&mut v, r.first_day.as_ref(), r.last_day.as_ref());
    if let Some((_, last)) = range {
        v.check(last >= today, "last_day", || {
            format!(
                "{last} is before the site's local today {today}: the range is entirely in the past"
            )
        });
    }
    v.finish()?;
    let ((first, last), space) = range
        .zip(space)
        .ok_or_else(|| ServiceError::internal("space and range validated"))?;
    Ok(AvailabilityQuery { space, first, last })
}

/// HoldSpace.
pub fn hold_space(r: &pb::HoldSpaceRequest) -> Result<Call<HoldCommand>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&r.request_id);
    v.id("customer_id", &r.customer_id);
    let space = space(
        &mut v,
        r.space.as_ref().map(|s| match s {
            pb::hold_space_request::Space::TemperatureClass(c) => SpaceField::Class(*c),
            pb::hold_space_request::Space::ZoneId(z) => SpaceField::Zone(z),
        }),
    );
    v.check(r.pallets >= 1, "pallets", || {
        format!("must be at least 1, got {}", r.pallets)
    });
    let range = range(&mut v, r.first_day.as_ref(), r.last_day.as_ref());
    let ttl_ms = hold_ttl_ms(&mut v, r.hold_ttl.as_ref());
    bytes_text(
        &mut v,
        "customer_reference",
        &r.customer_reference,
        false,
        domain::MAX_REFERENCE_BYTES,
    );
    v.actor(&r.actor);
    v.finish()?;
    let ((first_day, last_day), space) = range
        .zip(space)
        .ok_or_else(|| ServiceError::internal("space and range validated"))?;
    let pallets =
        u32::try_from(r.pallets).map_err(|_| ServiceError::internal("pallets validated"))?;
    Ok(Call {
        request: fingerprint_of(&r.request_id, r),
        command: HoldCommand {
            space,
            terms: HoldTerms {
                customer_id: r.customer_id.clone(),
                customer_reference: r.customer_reference.clone(),
                pallets,
                first_day,
                last_day,
                ttl_ms,
            },
        },
    })
}

/// ConfirmBooking.
pub fn confirm_booking(
    r: &pb::ConfirmBookingRequest,
) -> Result<Call<TransitionCall>, ServiceError> {
    let actor = |v: &mut Violations| v.actor(&r.actor);
    transition(&r.request_id, r, &r.booking_id, actor, Transition::Confirm)
}

/// CancelBooking.
pub fn cancel_booking(r: &pb::CancelBookingRequest) -> Result<Call<TransitionCall>, ServiceError> {
    let reason = |v: &mut Violations| {
        bytes_text(v, "reason", &r.reason, true, domain::MAX_REASON_BYTES);
        v.actor(&r.actor);
    };
    let cancel = Transition::Cancel {
        reason: r.reason.clone(),
    };
    transition(&r.request_id, r, &r.booking_id, reason, cancel)
}

/// CheckIn.
pub fn check_in(r: &pb::CheckInRequest) -> Result<Call<TransitionCall>, ServiceError> {
    let pallets_arrived = |v: &mut Violations| {
        if let Some(n) = r.pallets_arrived {
            v.check(n >= 1, "pallets_arrived", || {
                format!("must be at least 1 when set, got {n}")
            });
        }
        v.actor(&r.actor);
    };
    let check_in = Transition::CheckIn {
        pallets_arrived: r.pallets_arrived.map(i64::from),
    };
    transition(&r.request_id, r, &r.booking_id, pallets_arrived, check_in)
}

/// CompleteBooking.
pub fn complete_booking(
    r: &pb::CompleteBookingRequest,
) -> Result<Call<TransitionCall>, ServiceError> {
    let actor = |v: &mut Violations| v.actor(&r.actor);
    transition(&r.request_id, r, &r.booking_id, actor, Transition::Complete)
}

/// A transition of `booking_id`: the request's id and the booking id checked, then what
/// `check` checks of the request's other fields, every bad field reported at once.
fn transition<M: prost::Message>(
    request_id: &str,
    message: &M,
    booking_id: &str,
    check: impl FnOnce(&mut Violations),
    transition: Transition,
) -> Result<Call<TransitionCall>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(request_id);
    v.id("booking_id", booking_id);
    check(&mut v);
    v.finish()?;
    Ok(Call {
        request: fingerprint_of(request_id, message),
        command: TransitionCall {
            booking_id: booking_id.to_string(),
            transition,
        },
    })
}

/// GetBooking: the booking id.
pub fn get_booking(r: &pb::GetBookingRequest) -> Result<&str, ServiceError> {
    let mut v = Violations::new();
    v.id("booking_id", &r.booking_id);
    v.finish()?;
    Ok(&r.booking_id)
}

/// ListBookings, filtered on `customer_id` (the request's, or the caller's own customer
/// for a booking client).
pub fn list_bookings(
    r: &pb::ListBookingsRequest,
    customer_id: &str,
) -> Result<ListCall, ServiceError> {
    let mut v = Violations::new();
    v.optional_id("customer_id", customer_id);
    v.optional_id("zone_id", &r.zone_id);
    let mut states = Vec::new();
    for (i, raw) in r.states.iter().enumerate() {
        match pb::BookingState::try_from(*raw)
            .ok()
            .and_then(state_from_pb)
        {
            Some(state) => states.push(state),
            None => v.add(
                format!("states[{i}]"),
                format!("{raw} is not a booking state (BOOKING_STATE_UNSPECIFIED is not allowed)"),
            ),
        }
    }
    states.sort_unstable();
    states.dedup();
    let first_day = date(&mut v, "first_day", r.first_day.as_ref(), false);
    let last_day = date(&mut v, "last_day", r.last_day.as_ref(), false);
    if let (Some(first), Some(last)) = (first_day, last_day) {
        v.check(last >= first, "last_day", || {
            format!("{last} must not be before first_day {first}")
        });
    }
    let limit = v.page_size(r.page_size);
    let query = ListQuery {
        customer_id: (!customer_id.is_empty()).then(|| customer_id.to_string()),
        zone_id: (!r.zone_id.is_empty()).then(|| r.zone_id.clone()),
        states,
        first_day,
        last_day,
    };
    let query_bytes = list_query_bytes(&query);
    let after = v.page_token(&query_bytes, &r.page_token);
    v.finish()?;
    Ok(ListCall {
        query,
        after,
        limit,
        query_bytes,
    })
}

/// The filters a page token is bound to, as every build wrote them (tokens handed out
/// before an upgrade stay valid).
fn list_query_bytes(q: &ListQuery) -> Vec<u8> {
    format!(
        "customer={:?};zone={:?};states={:?};first={:?};last={:?}",
        q.customer_id, q.zone_id, q.states, q.first_day, q.last_day
    )
    .into_bytes()
}

/// The `space` oneof of GetAvailability and HoldSpace: the same two choices in each.
enum SpaceField<'a> {
    /// `temperature_class`.
    Class(i32),
    /// `zone_id`.
    Zone(&'a str),
}

/// The space asked for: required, a valid class or zone id.
fn space(v: &mut Violations, space: Option<SpaceField<'_>>) -> Option<SpaceAsk> {
    match space {
        None => {
            v.add("space", "one of temperature_class or zone_id is required");
            None
        }
        Some(SpaceField::Class(c)) => class(v, "temperature_class", c).map(SpaceAsk::Class),
        Some(SpaceField::Zone(z)) => {
            v.id("zone_id", z);
            Some(SpaceAsk::Zone(z.to_string()))
        }
    }
}

/// A required class: a known value, not UNSPECIFIED.
fn class(v: &mut Violations, field: &str, value: i32) -> Option<TemperatureClass> {
    match common::TemperatureClass::try_from(value) {
        Ok(common::TemperatureClass::Unspecified) => {
            v.add(field, "must not be TEMPERATURE_CLASS_UNSPECIFIED");
            None
        }
        Ok(class) => class::from_proto(class),
        Err(_) => {
            v.add(field, format!("{value} is not a temperature class"));
            None
        }
    }
}

/// A date field: required or optional, valid when present.
fn date(
    v: &mut Violations,
    field: &str,
    value: Option<&common::Date>,
    required: bool,
) -> Option<NaiveDate> {
    match value {
        None => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Some(d) => match proto_time::naive_date(d) {
            Ok(day) => Some(day),
            Err(problem) => {
                v.add(field, problem);
                None
            }
        },
    }
}

/// A required inclusive range of first_day..=last_day.
fn range(
    v: &mut Violations,
    first: Option<&common::Date>,
    last: Option<&common::Date>,
) -> Option<(NaiveDate, NaiveDate)> {
    let first = date(v, "first_day", first, true);
    let last = date(v, "last_day", last, true);
    let (first, last) = (first?, last?);
    match domain::check_range(first, last) {
        Ok(()) => Some((first, last)),
        Err(problem) => {
            let text = match problem {
                domain::RangeError::Reversed => format!("{last} {problem} {first}"),
                domain::RangeError::TooLong(_) => format!("{first} to {last}: {problem}"),
            };
            v.add("last_day", text);
            None
        }
    }
}

/// Free text of `1..=max` bytes (or empty when optional), without control characters.
fn bytes_text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    v.text_within(field, value, required, max, &[]);
}

/// The TTL in ms: unset → the default; otherwise a valid duration in (0, 24 h], whole
/// milliseconds rounded up (so a positive TTL never becomes 0).
fn hold_ttl_ms(v: &mut Violations, ttl: Option<&prost_types::Duration>) -> i64 {
    let default = domain::DEFAULT_HOLD_TTL.as_millis() as i64;
    let Some(ttl) = ttl else { return default };
    let max = domain::MAX_HOLD_TTL.as_millis() as i64;
    let valid_form = (-999_999_999..=999_999_999).contains(&ttl.nanos)
        && !(ttl.seconds > 0 && ttl.nanos < 0)
        && !(ttl.seconds < 0 && ttl.nanos > 0);
    if !valid_form {
        v.add(
            "hold_ttl",
            format!("{}s {}ns is not a valid duration", ttl.seconds, ttl.nanos),
        );
        return default;
    }
    if ttl.seconds < 0 || ttl.nanos < 0 || (ttl.seconds == 0 && ttl.nanos == 0) {
        v.add("hold_ttl", "must be more than 0");
        return default;
    }
    // Whole milliseconds, rounded up so a positive TTL never becomes 0.
    let ms = ttl
        .seconds
        .checked_mul(1000)
        .and_then(|s| s.checked_add((i64::from(ttl.nanos) + 999_999) / 1_000_000));
    match ms {
        Some(ms) if ms <= max => ms,
        _ => {
            v.add(
                "hold_ttl",
                format!("{}s is more than the maximum of 24 hours", ttl.seconds),
            );
            default
        }
    }
}
