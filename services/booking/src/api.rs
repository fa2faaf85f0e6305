//! The gRPC handlers of `coldchain.booking.v1.BookingService`: proto → domain values
//! (every field validated, all violations at once), call the store, domain → proto.

use std::str::FromStr;

use chrono::NaiveDate;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::booking::v1::booking_service_server::BookingService;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::ServiceError;
use coldchain_runtime::network::{TemperatureClass, ZoneConfig};
use coldchain_runtime::page_token;
use coldchain_runtime::validate::Violations;
use coldchain_store::fingerprint;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::domain::{self, Booking, BookingError, BookingState, HoldTerms};
use crate::store::{Bookings, DayRow, ListQuery, Space, Transition};

/// The default page size of `ListBookings`.
pub const DEFAULT_PAGE_SIZE: i32 = 100;
/// The largest page of `ListBookings`; larger requests are clamped.
pub const MAX_PAGE_SIZE: i32 = 1000;

impl From<BookingError> for ServiceError {
    fn from(error: BookingError) -> Self {
        let message = error.to_string();
        match error {
            BookingError::WrongState {
                booking_id, state, ..
            } => ServiceError::failed_precondition(message.clone()).with_precondition(
                "STATE",
                format!("booking {booking_id}"),
                format!("booking is {state}; {message}"),
            ),
            BookingError::HoldExpired { booking_id, .. } => ServiceError::failed_precondition(
                message.clone(),
            )
            .with_precondition("STATE", format!("booking {booking_id}"), message),
            BookingError::ArrivedOutOfRange { booked, .. } => ServiceError::invalid(
                "pallets_arrived",
                format!("{message}; allowed 1 to {booked}"),
            ),
            BookingError::NoRoom(shortage) => {
                let mut error = ServiceError::failed_precondition(message);
                for day in &shortage.days {
                    error = error.with_precondition(
                        "CAPACITY",
                        format!("zone {} on {}", shortage.zone_id, day.day),
                        format!(
                            "needs {} pallets, {} free: short by {}",
                            shortage.pallets, day.free, day.short_by
                        ),
                    );
                }
                error
            }
            BookingError::NoZone { class, .. } => ServiceError::failed_precondition(
                message.clone(),
            )
            .with_precondition("CAPACITY", format!("class {class}"), message),
            BookingError::Counter(counter) => {
                tracing::error!(error = %counter, "booking counters disagree with bookings");
                ServiceError::internal(counter.to_string())
            }
        }
    }
}

/// The handlers, on the site's bookings.
#[derive(Clone)]
pub struct Api {
    bookings: Bookings,
}

impl Api {
    /// Handlers over `bookings`.
    pub fn new(bookings: Bookings) -> Self {
        Self { bookings }
    }

    fn to_proto(&self, booking: &Booking) -> pb::Booking {
        to_proto(&self.bookings.site().id, booking)
    }

    /// Refuses a booking client access to a booking of another customer (or to one that
    /// does not exist: the answer must not tell which).
    fn check_owner<T>(&self, request: &Request<T>, booking_id: &str) -> Result<(), Status> {
        let Some((credential, customer)) = bound_customer(request) else {
            return Ok(());
        };
        if coldchain_runtime::validate::check_id(
            booking_id,
            coldchain_runtime::validate::MAX_ID_LEN,
        )
        .is_err()
        {
            // Malformed: the handler answers INVALID_ARGUMENT, naming the field.
            return Ok(());
        }
        match self.bookings.get(booking_id) {
            Ok(Some(booking)) if booking.customer_id == customer => Ok(()),
            Ok(_) => Err(not_yours(&credential, booking_id)),
            Err(error) => Err(error.into()),
        }
    }

    fn zone(&self, zone_id: &str) -> Result<ZoneConfig, ServiceError> {
        self.bookings.site().zone(zone_id).cloned().ok_or_else(|| {
            ServiceError::not_found(format!(
                "zone_id {zone_id:?} not found at site {}",
                self.bookings.site().id
            ))
        })
    }
}

/// The proto of a stored booking at `site_id`.
pub fn to_proto(site_id: &str, b: &Booking) -> pb::Booking {
    pb::Booking {
        booking_id: b.booking_id.clone(),
        site_id: site_id.to_string(),
        customer_id: b.customer_id.clone(),
        customer_reference: b.customer_reference.clone(),
        zone_id: b.zone_id.clone(),
        temperature_class: class_to_proto_name(&b.class) as i32,
        pallets: clamp_i32(b.pallets),
        pallets_arrived: clamp_i32(b.pallets_arrived),
        first_day: Some(date_to_proto(b.first_day)),
        last_day: Some(date_to_proto(b.last_day)),
        state: state_to_proto(b.state) as i32,
        expires_at: Some(timestamp(b.expires_at_ms)),
        check_in_deadline: b.check_in_deadline_ms.map(timestamp),
        created_at: Some(timestamp(b.created_at_ms)),
        updated_at: Some(timestamp(b.updated_at_ms)),
        cancel_reason: b.cancel_reason.clone(),
    }
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The proto date of a day.
pub fn date_to_proto(day: NaiveDate) -> common::Date {
    use chrono::Datelike;
    common::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

/// The proto state.
pub fn state_to_proto(state: BookingState) -> pb::BookingState {
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

fn state_from_proto(state: pb::BookingState) -> Option<BookingState> {
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

fn class_to_proto(class: TemperatureClass) -> common::TemperatureClass {
    match class {
        TemperatureClass::Frozen => common::TemperatureClass::Frozen,
        TemperatureClass::Chilled => common::TemperatureClass::Chilled,
        TemperatureClass::Pharma => common::TemperatureClass::Pharma,
        TemperatureClass::Cool => common::TemperatureClass::Cool,
        TemperatureClass::Ambient => common::TemperatureClass::Ambient,
    }
}

fn class_to_proto_name(name: &str) -> common::TemperatureClass {
    TemperatureClass::from_str(name)
        .map(class_to_proto)
        .unwrap_or(common::TemperatureClass::Unspecified)
}

/// A required class: a known value, not UNSPECIFIED.
fn class_from_proto(v: &mut Violations, field: &str, value: i32) -> Option<TemperatureClass> {
    let class = match common::TemperatureClass::try_from(value) {
        Ok(common::TemperatureClass::Frozen) => TemperatureClass::Frozen,
        Ok(common::TemperatureClass::Chilled) => TemperatureClass::Chilled,
        Ok(common::TemperatureClass::Pharma) => TemperatureClass::Pharma,
        Ok(common::TemperatureClass::Cool) => TemperatureClass::Cool,
        Ok(common::TemperatureClass::Ambient) => TemperatureClass::Ambient,
        Ok(common::TemperatureClass::Unspecified) => {
            v.add(field, "must not be TEMPERATURE_CLASS_UNSPECIFIED");
            return None;
        }
        Err(_) => {
            v.add(field, format!("{value} is not a temperature class"));
            return None;
        }
    };
    Some(class)
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
        Some(d) => match domain::date_from_parts(d.year, d.month, d.day) {
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
    if required && value.trim().is_empty() {
        v.add(field, "is required");
    } else if value.len() > max {
        v.add(
            field,
            format!("must be at most {max} bytes, got {}", value.len()),
        );
    } else if value.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
}

/// The TTL in ms: unset → the default; otherwise a valid duration in (0, 24 h].
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

/// The customer a booking client is bound to; `None` for every other caller (and when the
/// server runs without authentication).
fn bound_customer<T>(request: &Request<T>) -> Option<(String, String)> {
    let principal = coldchain_runtime::auth::principal(request)?;
    Some((principal.id.clone(), principal.customer()?.to_owned()))
}

/// The refusal a booking client gets for a booking that is not its own, worded the same
/// whether or not the booking exists.
fn not_yours(credential: &str, booking_id: &str) -> Status {
    Status::permission_denied(format!(
        "credential {credential:?} may not access booking_id {booking_id:?}: a booking client \
         sees only its own customer's bookings"
    ))
}

fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

fn availability_row(row: DayRow) -> pb::DayAvailability {
    pb::DayAvailability {
        date: Some(date_to_proto(row.day)),
        zone_id: row.zone_id,
        temperature_class: class_to_proto_name(&row.class) as i32,
        capacity: clamp_i32(row.capacity),
        held: clamp_i32(row.counts.held),
        confirmed: clamp_i32(row.counts.confirmed),
        checked_in: clamp_i32(row.counts.checked_in),
        free: clamp_i32(row.counts.free(row.capacity)),
    }
}

fn list_query_bytes(q: &ListQuery) -> Vec<u8> {
    format!(
        "customer={:?};zone={:?};states={:?};first={:?};last={:?}",
        q.customer_id, q.zone_id, q.states, q.first_day, q.last_day
    )
    .into_bytes()
}

#[tonic::async_trait]
impl BookingService for Api {
    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        let mut class = None;
        let mut zone_id = None;
        match &r.space {
            None => v.add("space", "one of temperature_class or zone_id is required"),
            Some(pb::get_availability_request::Space::TemperatureClass(c)) => {
                class = class_from_proto(&mut v, "temperature_class", *c);
            }
            Some(pb::get_availability_request::Space::ZoneId(z)) => {
                v.id("zone_id", z);
                zone_id = Some(z.clone());
            }
        }
        let range = range(&mut v, r.first_day.as_ref(), r.last_day.as_ref());
        if let Some((_, last)) = range {
            let today = self.bookings.today();
            v.check(last >= today, "last_day", || {
                format!("{last} is before the site's local today {today}: the range is entirely in the past")
            });
        }
        v.finish()?;
        let (first, last) = range.ok_or_else(|| ServiceError::internal("range validated"))?;
        let zones: Vec<ZoneConfig> = match (class, zone_id) {
            (Some(class), _) => self
                .bookings
                .site()
                .zones_of_class(class)
                .cloned()
                .collect(),
            (None, Some(zone_id)) => vec![self.zone(&zone_id)?],
            (None, None) => Vec::new(),
        };
        let rows = self.bookings.availability(&zones, first, last).await?;
        Ok(Response::new(pb::GetAvailabilityResponse {
            days: rows.into_iter().map(availability_row).collect(),
        }))
    }

    async fn hold_space(
        &self,
        request: Request<pb::HoldSpaceRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        if let Some((credential, customer)) = bound_customer(&request)
            && request.get_ref().customer_id != customer
        {
            return Err(Status::permission_denied(format!(
                "credential {credential:?} books only for customer_id {customer:?}, not {:?}",
                request.get_ref().customer_id
            )));
        }
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        let mut class = None;
        let mut zone_id = None;
        match &r.space {
            None => v.add("space", "one of temperature_class or zone_id is required"),
            Some(pb::hold_space_request::Space::TemperatureClass(c)) => {
                class = class_from_proto(&mut v, "temperature_class", *c);
            }
            Some(pb::hold_space_request::Space::ZoneId(z)) => {
                v.id("zone_id", z);
                zone_id = Some(z.clone());
            }
        }
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
        v.finish()?;
        let (first_day, last_day) =
            range.ok_or_else(|| ServiceError::internal("range validated"))?;
        let pallets =
            u32::try_from(r.pallets).map_err(|_| ServiceError::internal("pallets validated"))?;
        let space = match (class, zone_id) {
            (Some(class), _) => {
                let all: Vec<ZoneConfig> = self
                    .bookings
                    .site()
                    .zones_of_class(class)
                    .cloned()
                    .collect();
                let largest = all.iter().map(|z| z.capacity_pallets).max();
                match largest {
                    None => {
                        return Err(ServiceError::from(BookingError::NoZone {
                            class: class.as_str().to_string(),
                            pallets,
                        })
                        .into());
                    }
                    Some(largest) if pallets > largest => {
                        return Err(ServiceError::invalid(
                            "pallets",
                            format!(
                                "{pallets} is more than the capacity of every {class} zone at site {} (largest {largest})",
                                self.bookings.site().id
                            ),
                        )
                        .into());
                    }
                    Some(_) => Space::Class {
                        class: class.as_str().to_string(),
                        zones: all
                            .into_iter()
                            .filter(|z| z.capacity_pallets >= pallets)
                            .collect(),
                    },
                }
            }
            (None, Some(zone_id)) => {
                let zone = self.zone(&zone_id)?;
                if pallets > zone.capacity_pallets {
                    return Err(ServiceError::invalid(
                        "pallets",
                        format!(
                            "{pallets} is more than the capacity {} of zone {zone_id}",
                            zone.capacity_pallets
                        ),
                    )
                    .into());
                }
                Space::Zone(zone)
            }
            (None, None) => return Err(ServiceError::internal("space validated").into()),
        };
        let terms = HoldTerms {
            customer_id: r.customer_id.clone(),
            customer_reference: r.customer_reference.clone(),
            pallets,
            first_day,
            last_day,
            ttl_ms,
        };
        let fp = fingerprint(&r.request_id, &r.encode_to_vec());
        let booking = self
            .bookings
            .hold(&fp, space, terms, |b| self.to_proto(b))
            .await?;
        Ok(Response::new(booking))
    }

    async fn confirm_booking(
        &self,
        request: Request<pb::ConfirmBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        self.check_owner(&request, &request.get_ref().booking_id)?;
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("booking_id", &r.booking_id);
        v.finish()?;
        let fp = fingerprint(&r.request_id, &r.encode_to_vec());
        let booking = self
            .bookings
            .transition(&fp, &r.booking_id, Transition::Confirm, |b| {
                self.to_proto(b)
            })
            .await?;
        Ok(Response::new(booking))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        self.check_owner(&request, &request.get_ref().booking_id)?;
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("booking_id", &r.booking_id);
        bytes_text(&mut v, "reason", &r.reason, true, domain::MAX_REASON_BYTES);
        v.finish()?;
        let fp = fingerprint(&r.request_id, &r.encode_to_vec());
        let transition = Transition::Cancel {
            reason: r.reason.clone(),
        };
        let booking = self
            .bookings
            .transition(&fp, &r.booking_id, transition, |b| self.to_proto(b))
            .await?;
        Ok(Response::new(booking))
    }

    async fn check_in(
        &self,
        request: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("booking_id", &r.booking_id);
        if let Some(n) = r.pallets_arrived {
            v.check(n >= 1, "pallets_arrived", || {
                format!("must be at least 1 when set, got {n}")
            });
        }
        v.finish()?;
        let fp = fingerprint(&r.request_id, &r.encode_to_vec());
        let transition = Transition::CheckIn {
            pallets_arrived: r.pallets_arrived.map(i64::from),
        };
        let booking = self
            .bookings
            .transition(&fp, &r.booking_id, transition, |b| self.to_proto(b))
            .await?;
        Ok(Response::new(booking))
    }

    async fn complete_booking(
        &self,
        request: Request<pb::CompleteBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("booking_id", &r.booking_id);
        v.finish()?;
        let fp = fingerprint(&r.request_id, &r.encode_to_vec());
        let booking = self
            .bookings
            .transition(&fp, &r.booking_id, Transition::Complete, |b| {
                self.to_proto(b)
            })
            .await?;
        Ok(Response::new(booking))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        self.check_owner(&request, &request.get_ref().booking_id)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        v.id("booking_id", &r.booking_id);
        v.finish()?;
        match self.bookings.get(&r.booking_id)? {
            Some(booking) => Ok(Response::new(self.to_proto(&booking))),
            None => Err(ServiceError::not_found(format!(
                "booking_id {:?} not found at site {}",
                r.booking_id,
                self.bookings.site().id
            ))
            .into()),
        }
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let bound = bound_customer(&request);
        let mut r = request.into_inner();
        // A booking client lists its own customer's bookings, whatever filter it sends.
        if let Some((credential, customer)) = bound {
            if r.customer_id.is_empty() {
                r.customer_id = customer;
            } else if r.customer_id != customer {
                return Err(Status::permission_denied(format!(
                    "credential {credential:?} may list only customer_id {customer:?}, not {:?}",
                    r.customer_id
                )));
            }
        }
        let mut v = Violations::new();
        v.optional_id("customer_id", &r.customer_id);
        v.optional_id("zone_id", &r.zone_id);
        let mut states = Vec::new();
        for (i, raw) in r.states.iter().enumerate() {
            match pb::BookingState::try_from(*raw)
                .ok()
                .and_then(state_from_proto)
            {
                Some(state) => states.push(state),
                None => v.add(
                    format!("states[{i}]"),
                    format!(
                        "{raw} is not a booking state (BOOKING_STATE_UNSPECIFIED is not allowed)"
                    ),
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
        v.check(r.page_size >= 0, "page_size", || {
            format!("must not be negative, got {}", r.page_size)
        });
        let query = ListQuery {
            customer_id: (!r.customer_id.is_empty()).then(|| r.customer_id.clone()),
            zone_id: (!r.zone_id.is_empty()).then(|| r.zone_id.clone()),
            states,
            first_day,
            last_day,
        };
        let query_bytes = list_query_bytes(&query);
        let after = match page_token::decode(&query_bytes, &r.page_token) {
            Ok(after) => after,
            Err(error) => {
                for violation in error.field_violations {
                    v.add(violation.field, violation.description);
                }
                None
            }
        };
        v.finish()?;
        let limit = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let page = self.bookings.list(
            &query,
            after.as_deref(),
            usize::try_from(limit).unwrap_or(100),
        )?;
        Ok(Response::new(pb::ListBookingsResponse {
            bookings: page.bookings.iter().map(|b| self.to_proto(b)).collect(),
            next_page_token: page
                .next
                .map(|key| page_token::encode(&query_bytes, &key))
                .unwrap_or_default(),
        }))
    }
}
