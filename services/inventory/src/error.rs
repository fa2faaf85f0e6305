//! The one place a refusal of the inventory service becomes a canonical error: domain
//! refusals, store failures, the site's checks and the booking service's answers each get
//! their code and details here.

use coldchain_runtime::idempotency::Outcome;
use coldchain_runtime::{Code, ServiceError};

use crate::domain::{DomainError, StockRefusal};
use crate::store::TxError;
use crate::store::lot_index::LotIndexError;

/// The canonical error of a domain refusal; `at` is the movement index of a batch.
pub fn service_error(error: DomainError, at: Option<usize>) -> ServiceError {
    let prefix = at.map(|i| format!("movements[{i}]")).unwrap_or_default();
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let message = if prefix.is_empty() {
        error.to_string()
    } else {
        format!("{prefix}: {error}")
    };
    match &error {
        DomainError::UnitMismatch { .. } => ServiceError::invalid(field("unit"), error.to_string()),
        DomainError::MissingExpiry { .. } => {
            ServiceError::invalid(field("lot.expiry"), error.to_string())
        }
        DomainError::UnknownSku { .. }
        | DomainError::UnknownLot { .. }
        | DomainError::UnknownPosition { .. }
        | DomainError::UnknownZone { .. }
        | DomainError::UnknownOrder { .. }
        | DomainError::UnknownAllocation { .. }
        | DomainError::UnknownHold { .. } => ServiceError::not_found(message),
        DomainError::LotConflict {
            sku,
            lot_id,
            conflict,
        } => ServiceError::failed_precondition(message).with_precondition(
            "LOT",
            format!("sku {sku:?} lot {lot_id:?}"),
            format!(
                "{} is {}, stated {}",
                conflict.attribute, conflict.stored, conflict.given
            ),
        ),
        DomainError::ExpiredLot {
            sku,
            lot_id,
            expiry,
            today,
        } => ServiceError::failed_precondition(message).with_precondition(
            "EXPIRY",
            format!("sku {sku:?} lot {lot_id:?}"),
            format!("expired on {expiry}, site date {today}"),
        ),
        DomainError::Stock {
            sku,
            lot_id,
            zone_id,
            refusal,
            ..
        } => {
            let kind = match refusal {
                StockRefusal::Held { .. } => "HOLD",
                StockRefusal::StaleVersion { .. } => "VERSION",
                _ => "STOCK",
            };
            ServiceError::failed_precondition(message).with_precondition(
                kind,
                DomainError::position_subject(sku, lot_id, zone_id),
                refusal.to_string(),
            )
        }
        DomainError::NotAllocatable {
            sku,
            requested,
            allocatable,
        } => ServiceError::failed_precondition(message).with_precondition(
            "STOCK",
            format!("sku {sku:?}"),
            format!("allocatable {allocatable}, requested {requested}"),
        ),
        DomainError::AllocationNotActive {
            allocation_id,
            state,
        } => ServiceError::failed_precondition(message).with_precondition(
            "STATE",
            format!("allocation {allocation_id:?}"),
            format!("is {state}"),
        ),
        DomainError::HoldReleased { hold_id } => ServiceError::failed_precondition(message)
            .with_precondition("STATE", format!("hold {hold_id:?}"), "is released"),
        DomainError::TransformationExists { .. } => ServiceError::new(Code::AlreadyExists, message),
        DomainError::UnknownTransformation { .. } => ServiceError::not_found(message),
        DomainError::ExpiredInput {
            sku,
            lot_id,
            expiry,
            today,
        } => ServiceError::failed_precondition(message).with_precondition(
            "EXPIRY",
            format!("sku {sku:?} lot {lot_id:?}"),
            format!("expired on {expiry}, site date {today}; not a write_off"),
        ),
        DomainError::HeldNotRelocatable {
            sku,
            lot_id,
            zone_id,
            why,
        } => ServiceError::failed_precondition(message).with_precondition(
            "HOLD",
            DomainError::position_subject(sku, lot_id, zone_id),
            why.to_string(),
        ),
        DomainError::TotalTooLarge { subject, total } => ServiceError::failed_precondition(message)
            .with_precondition(
                "TOTAL",
                subject.clone(),
                format!("{total} does not fit in a 64-bit quantity"),
            ),
    }
}

/// A check of the site's configuration that failed (the codes are chosen below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteRefusal {
    /// `field` names a zone the site does not have.
    UnknownZone {
        /// The request field.
        field: String,
        /// The zone.
        zone_id: String,
        /// This site.
        site_id: String,
    },
    /// `field` names a site the network does not have.
    UnknownSite {
        /// The request field.
        field: String,
        /// The site.
        site_id: String,
    },
}

/// Why a booking was not checked in (the codes are chosen below).
#[derive(Debug)]
pub enum CheckInFailure {
    /// The site's booking service cannot be reached at all (no endpoint, bad endpoint).
    Unreachable {
        /// The movement citing the booking.
        index: usize,
        /// The booking.
        booking_id: String,
        /// Why.
        problem: String,
    },
    /// The booking service answered with an error.
    Answered {
        /// The movement citing the booking.
        index: usize,
        /// The booking.
        booking_id: String,
        /// Where the booking service is.
        endpoint: String,
        /// Its answer.
        status: tonic::Status,
    },
}

impl From<LotIndexError> for ServiceError {
    fn from(error: LotIndexError) -> Self {
        match error {
            LotIndexError::NotReady => ServiceError::unavailable(
                "this site's lot index is being built from its ledger (after an upgrade); retry shortly",
            ),
            LotIndexError::Store(error) => error.into(),
        }
    }
}

impl From<TxError> for ServiceError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Domain(error) => service_error(error, None),
            TxError::Movement { index, error } => service_error(error, Some(index)),
            TxError::Store(error) => error.into(),
            TxError::DryRunPassed => ServiceError::internal("a dry run escaped its write"),
        }
    }
}

/// A refusal of a write is its outcome (remembered under its request_id) unless storage
/// failed or it is a dry run's verdict.
impl Outcome for TxError {
    fn outcome(&self) -> Option<ServiceError> {
        match self {
            TxError::Domain(error) => Some(service_error(error.clone(), None)),
            TxError::Movement { index, error } => Some(service_error(error.clone(), Some(*index))),
            TxError::Store(_) | TxError::DryRunPassed => None,
        }
    }
}

impl From<SiteRefusal> for ServiceError {
    fn from(refusal: SiteRefusal) -> Self {
        match refusal {
            SiteRefusal::UnknownZone {
                field,
                zone_id,
                site_id,
            } => ServiceError::not_found(format!(
                "{field}: zone {zone_id:?} does not exist at site {site_id}"
            )),
            SiteRefusal::UnknownSite { field, site_id } => {
                ServiceError::not_found(format!("{field}: site {site_id:?} is not in the network"))
            }
        }
    }
}

/// The booking service's answer to a failed CheckIn, as our error: a dependency that is
/// down or failing is UNAVAILABLE; a refusal keeps its code.
impl From<CheckInFailure> for ServiceError {
    fn from(failure: CheckInFailure) -> Self {
        let (index, booking_id, endpoint, status) = match failure {
            CheckInFailure::Unreachable {
                index,
                booking_id,
                problem,
            } => {
                return ServiceError::unavailable(format!(
                    "movements[{index}].booking_id {booking_id:?}: cannot check in: {problem}; nothing was recorded"
                ));
            }
            CheckInFailure::Answered {
                index,
                booking_id,
                endpoint,
                status,
            } => (index, booking_id, endpoint, status),
        };
        let field = format!("movements[{index}].booking_id");
        let refused = |code: Code| {
            ServiceError::new(
                code,
                format!(
                    "{field}: the booking service refused to check in booking {booking_id:?}: {}; nothing was recorded",
                    status.message()
                ),
            )
        };
        match status.code() {
            tonic::Code::NotFound => refused(Code::NotFound),
            tonic::Code::FailedPrecondition | tonic::Code::OutOfRange => {
                refused(Code::FailedPrecondition)
            }
            tonic::Code::AlreadyExists => refused(Code::FailedPrecondition),
            tonic::Code::Aborted => refused(Code::Aborted),
            tonic::Code::PermissionDenied => refused(Code::PermissionDenied),
            tonic::Code::Unauthenticated => refused(Code::Unauthenticated),
            tonic::Code::InvalidArgument => ServiceError::invalid(
                field.clone(),
                format!(
                    "the booking service refused to check in booking {booking_id:?}: {}",
                    status.message()
                ),
            ),
            _ => ServiceError::unavailable(format!(
                "{field}: cannot check in booking {booking_id:?}: the booking service at {endpoint} answered {:?}: {}; nothing was recorded, retry later",
                status.code(),
                status.message()
            )),
        }
    }
}
