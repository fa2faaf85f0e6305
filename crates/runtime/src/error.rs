//! The one mapping from errors to gRPC statuses.
//!
//! Every service turns its domain errors into a [`ServiceError`]: a closed [`Code`], a
//! lowercase message naming the field and the value, and structured details
//! (`google.rpc.BadRequest` field violations, `google.rpc.PreconditionFailure`
//! violations). `From<ServiceError> for tonic::Status` is the only place codes are chosen.

use std::fmt;

use coldchain_store::{StoreError, WriteError};

use crate::auth::Refusal;
use tonic_types::{ErrorDetails, StatusExt};

/// The closed set of outcomes a service may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Malformed or out-of-range input.
    InvalidArgument,
    /// An unknown site, sku, lot, booking, sensor, alarm, transfer.
    NotFound,
    /// Not enough stock or space, wrong state, version mismatch.
    FailedPrecondition,
    /// A concurrent conflict the client may retry.
    Aborted,
    /// The id the client chose is already taken by something different.
    AlreadyExists,
    /// Overload, rate limit, message too large.
    ResourceExhausted,
    /// A dependency is down; retry later.
    Unavailable,
    /// The deadline passed before the work finished.
    DeadlineExceeded,
    /// Missing or bad credentials.
    Unauthenticated,
    /// Credentials valid but not allowed for this target.
    PermissionDenied,
    /// Our fault: storage failure.
    Internal,
    /// Stored data is unreadable (corrupt).
    DataLoss,
}

impl Code {
    /// Every code.
    pub const ALL: [Code; 12] = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::AlreadyExists,
        Code::ResourceExhausted,
        Code::Unavailable,
        Code::DeadlineExceeded,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::Internal,
        Code::DataLoss,
    ];

    /// The gRPC name of the code, e.g. `FAILED_PRECONDITION`.
    pub fn name(self) -> &'static str {
        crate::retry::code_name(self.grpc())
    }

    /// The code named `name` (its gRPC name).
    pub fn from_name(name: &str) -> Option<Code> {
        Self::ALL.into_iter().find(|code| code.name() == name)
    }

    /// The gRPC code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::FailedPrecondition => tonic::Code::FailedPrecondition,
            Code::Aborted => tonic::Code::Aborted,
            Code::AlreadyExists => tonic::Code::AlreadyExists,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
            Code::PermissionDenied => tonic::Code::PermissionDenied,
            Code::Internal => tonic::Code::Internal,
            Code::DataLoss => tonic::Code::DataLoss,
        }
    }
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, e.g. `movements[2].quantity`.
    pub field: String,
    /// What is wrong with it, naming the value.
    pub description: String,
}

/// One unmet precondition, e.g. `("STOCK", "sku/lot/zone", "available 3, asked 5")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// A short machine-readable kind, e.g. `STOCK`, `CAPACITY`, `STATE`, `VERSION`.
    pub kind: String,
    /// What it applies to.
    pub subject: String,
    /// What is wrong.
    pub description: String,
}

/// An error a service answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The outcome.
    pub code: Code,
    /// A lowercase message naming the field and value.
    pub message: String,
    /// For `InvalidArgument`: every bad field.
    pub field_violations: Vec<FieldViolation>,
    /// For `FailedPrecondition`: every unmet condition.
    pub precondition_violations: Vec<PreconditionViolation>,
}

impl ServiceError {
    /// An error with a code and a message, without details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field_violations: Vec::new(),
            precondition_violations: Vec::new(),
        }
    }

    /// One bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let field = field.into();
        let description = description.into();
        Self {
            message: format!("{field}: {description}"),
            field_violations: vec![FieldViolation { field, description }],
            ..Self::new(Code::InvalidArgument, "")
        }
    }

    /// Something named does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// The state does not allow the request.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }

    /// Adds a precondition violation.
    pub fn with_precondition(
        mut self,
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.precondition_violations.push(PreconditionViolation {
            kind: kind.into(),
            subject: subject.into(),
            description: description.into(),
        });
        self
    }

    /// A dependency is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// Our own failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

impl From<ServiceError> for tonic::Status {
    fn from(error: ServiceError) -> Self {
        let mut details = ErrorDetails::new();
        if !error.field_violations.is_empty() {
            details.set_bad_request(
                error
                    .field_violations
                    .iter()
                    .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                    .collect::<Vec<_>>(),
            );
        }
        if !error.precondition_violations.is_empty() {
            details.set_precondition_failure(
                error
                    .precondition_violations
                    .iter()
                    .map(|v| {
                        tonic_types::PreconditionViolation::new(&v.kind, &v.subject, &v.description)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        if details.bad_request().is_none() && details.precondition_failure().is_none() {
            tonic::Status::new(error.code.grpc(), error.message)
        } else {
            tonic::Status::with_error_details(error.code.grpc(), error.message, details)
        }
    }
}

/// A call refused before it reached a handler. Neither message reveals whether what the
/// call names exists.
impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => ServiceError::new(
                Code::Unauthenticated,
                "missing or invalid credentials: send authorization: Bearer cc1.<id>.<secret>",
            ),
            Refusal::Denied(why) => ServiceError::new(Code::PermissionDenied, why),
            Refusal::RateLimited(after) => ServiceError::new(
                Code::ResourceExhausted,
                format!(
                    "rate limit of this credential exceeded: retry in {} ms",
                    after.as_millis().max(1)
                ),
            ),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Closed => ServiceError::unavailable("the service is shutting down"),
            // The write may or may not have reached the disk, and the service stops to
            // recover (see `host::store_failure`): a retry with the same request_id, once
            // it is back, either finds the write or makes it.
            StoreError::Flush(detail) => ServiceError::unavailable(format!(
                "the database can no longer make writes durable ({detail}); the service is \
                 stopping to recover: retry with the same request_id"
            )),
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "corrupt stored data");
                ServiceError {
                    code: Code::DataLoss,
                    message: format!("stored data needed for this request is corrupt: {detail}"),
                    field_violations: Vec::new(),
                    precondition_violations: Vec::new(),
                }
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ServiceError::internal(other.to_string())
            }
        }
    }
}

impl<E: Into<ServiceError>> From<WriteError<E>> for ServiceError {
    fn from(error: WriteError<E>) -> Self {
        match error {
            WriteError::Rejected(domain) => domain.into(),
            WriteError::RequestIdReused(id) => ServiceError::invalid(
                "request_id",
                format!("request_id {id:?} was already used for a different request"),
            ),
            WriteError::Store(store) => store.into(),
            WriteError::Remembered(kept) => crate::idempotency::remembered_refusal(&kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_travel_as_bad_request() {
        let status: tonic::Status = ServiceError::invalid("sku", "must not be empty").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "sku: must not be empty");
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "sku");
    }

    #[test]
    fn preconditions_travel_as_precondition_failure() {
        let status: tonic::Status = ServiceError::failed_precondition("short")
            .with_precondition("STOCK", "sku-1", "available 3")
            .into();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let details = status.get_error_details();
        assert_eq!(
            details.precondition_failure().unwrap().violations[0].subject,
            "sku-1"
        );
    }

    #[test]
    fn a_reused_request_id_is_invalid_argument_naming_it() {
        let error: ServiceError = WriteError::<ServiceError>::RequestIdReused("r-1".into()).into();
        assert_eq!(error.code, Code::InvalidArgument);
        assert_eq!(error.field_violations[0].field, "request_id");
    }

    #[test]
    fn a_closed_store_is_unavailable_not_internal() {
        let error: ServiceError = StoreError::Closed.into();
        assert_eq!(error.code, Code::Unavailable);
    }

    #[test]
    fn a_failed_store_is_unavailable_and_says_to_retry_with_the_same_id() {
        let error: ServiceError =
            StoreError::Flush("writing the write-ahead log: disk full".into()).into();
        assert_eq!(error.code, Code::Unavailable);
        assert!(error.message.contains("disk full"), "{}", error.message);
        assert!(
            error.message.contains("same request_id"),
            "{}",
            error.message
        );
    }

    #[test]
    fn corrupt_stored_data_is_data_loss() {
        let error: ServiceError = StoreError::Corrupt("booking b-1: bad bytes".into()).into();
        assert_eq!(error.code, Code::DataLoss);
        assert!(error.message.contains("booking b-1"), "{}", error.message);
    }
}
