//! The one place a refusal of the booking service becomes a canonical error: the rules'
//! refusals ([`BookingError`]), the store's ([`Refusal`]) and a booking client's access
//! ([`AccessRefusal`]) each get their code and details here.

use coldchain_runtime::idempotency::Outcome;
use coldchain_runtime::{Code, ServiceError};

use crate::domain::{AccessRefusal, BookingError};
use crate::store::Refusal;

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
            BookingError::StartsInThePast { .. } => ServiceError::invalid("first_day", message),
            BookingError::LargerThanZone { .. } | BookingError::LargerThanClass { .. } => {
                ServiceError::invalid("pallets", message)
            }
            BookingError::UnknownZone { .. }
            | BookingError::UnknownBooking { .. }
            | BookingError::OtherSite { .. } => ServiceError::not_found(message),
            BookingError::Counter(counter) => {
                tracing::error!(error = %counter, "booking counters disagree with bookings");
                ServiceError::internal(counter.to_string())
            }
        }
    }
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Rule(error) => error.into(),
            Refusal::Store(error) => error.into(),
        }
    }
}

/// A refusal by the rules is the write's outcome (remembered under its request_id); a
/// storage failure is not.
impl Outcome for Refusal {
    fn outcome(&self) -> Option<ServiceError> {
        match self {
            Refusal::Rule(error) => Some(error.clone().into()),
            Refusal::Store(_) => None,
        }
    }
}

impl From<AccessRefusal> for ServiceError {
    fn from(refusal: AccessRefusal) -> Self {
        ServiceError::new(Code::PermissionDenied, refusal.to_string())
    }
}
