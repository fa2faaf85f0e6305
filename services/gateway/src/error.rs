//! The one place the gateway chooses a code: its refusals (transfer rules, store failures,
//! unknown sites, totals that do not fit) become a `ServiceError`, and the statuses it
//! answers or records on behalf of a site (a site's refusal passed on with its details, a
//! site that cannot be reached, a watch stream that ends) are made here.

use std::time::Duration;

use coldchain_network::ServiceKind;
use coldchain_runtime::idempotency::{Outcome, remembered_refusal};
use coldchain_runtime::retry::code_name;
use coldchain_runtime::{Code, ServiceError};
use coldchain_store::WriteError;
use tonic::Status;

use crate::domain::{
    RecallError, SiteFailure, TotalTooLarge, Transfer, TransferError, UnknownSites,
};
use crate::store::Refused;

impl From<TransferError> for ServiceError {
    fn from(error: TransferError) -> Self {
        let message = error.to_string();
        match error {
            TransferError::NotFound(_) => ServiceError::not_found(message),
            TransferError::AlreadyExists(_) => ServiceError::new(Code::AlreadyExists, message),
            TransferError::WrongState { transfer_id, .. } => ServiceError::failed_precondition(
                message.clone(),
            )
            .with_precondition("STATE", format!("transfer {transfer_id}"), message),
        }
    }
}

/// A failed write to the gateway's store.
pub fn write_error(error: WriteError<Refused>) -> ServiceError {
    match error {
        WriteError::Rejected(Refused::Transfer(error)) => error.into(),
        WriteError::Rejected(Refused::Recall(error)) => error.into(),
        WriteError::Rejected(Refused::Store(error)) | WriteError::Store(error) => error.into(),
        WriteError::RequestIdReused(id) => ServiceError::invalid(
            "request_id",
            format!("request_id {id:?} was already used for a different request"),
        ),
        WriteError::Remembered(kept) => remembered_refusal(&kept),
    }
}

/// A transfer rule's refusal is the write's outcome (remembered under its request_id); a
/// storage failure is not.
impl Outcome for Refused {
    fn outcome(&self) -> Option<ServiceError> {
        match self {
            Refused::Transfer(error) => Some(error.clone().into()),
            Refused::Recall(error) => Some(error.clone().into()),
            Refused::Store(_) => None,
        }
    }
}

impl From<RecallError> for ServiceError {
    fn from(error: RecallError) -> Self {
        let message = error.to_string();
        match error {
            RecallError::NotFound(_) => ServiceError::not_found(message),
            RecallError::AlreadyExists(_) => ServiceError::new(Code::AlreadyExists, message),
            // A driver asked about a hold the recall does not have: our bug.
            RecallError::NoSuchHold { .. } => ServiceError::internal(message),
        }
    }
}

impl From<UnknownSites> for ServiceError {
    fn from(error: UnknownSites) -> Self {
        ServiceError::not_found(format!(
            "site {} not in the network; known sites: {}",
            error
                .unknown
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            error.known.join(", ")
        ))
    }
}

/// Sites or zones of a StartTransfer the network file does not have.
pub fn not_in_network(missing: &[String]) -> ServiceError {
    ServiceError::not_found(missing.join("; "))
}

/// A field validation guarantees was missing anyway: our bug, not the client's.
pub fn validated_field_missing() -> ServiceError {
    ServiceError::internal("validated fields are missing")
}

/// A value of ours that could not be encoded (a page token's cursor).
pub fn unencodable(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(error.to_string())
}

/// The task driving a transfer step ended abnormally.
pub fn step_task_failed(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("transfer step failed: {error}"))
}

/// A site's answer whose totals do not fit the contract's 64-bit fields: refused for that
/// site (as the inventory refuses such totals itself), never saturated.
pub fn total_failure(site_id: &str, error: &TotalTooLarge) -> SiteFailure {
    SiteFailure {
        site_id: site_id.to_string(),
        code: code_name(tonic::Code::FailedPrecondition).to_string(),
        message: error.to_string(),
    }
}

/// The failure of a call to a site service: the site's own message when it answered, the
/// gateway's (naming the endpoint) when it could not be reached.
pub fn site_failure(
    site_id: &str,
    kind: ServiceKind,
    endpoint: &str,
    status: &Status,
) -> SiteFailure {
    let code = coldchain_runtime::retry::reported_code(status);
    let answered = !matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
    );
    let message = if answered {
        status.message().to_string()
    } else {
        format!("{kind} at {endpoint} unreachable: {}", status.message()).to_lowercase()
    };
    SiteFailure {
        site_id: site_id.to_string(),
        code: code_name(code).to_string(),
        message,
    }
}

/// A site service the gateway has no channel to.
pub fn site_unreachable(problem: impl Into<String>) -> Status {
    Status::unavailable(problem)
}

/// A call to a site that did not answer within its deadline.
pub fn no_answer_within(deadline: Duration) -> Status {
    Status::deadline_exceeded(format!("no answer within {} ms", deadline.as_millis()))
}

/// A site's alarm feed that did not open in time.
pub fn feed_not_opened(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "alarm feed did not open within {} ms",
        timeout.as_millis()
    ))
}

/// A site that ended its alarm feed.
pub fn feed_ended() -> Status {
    Status::unavailable("the site ended its alarm feed")
}

/// The end of a WatchAlarms stream at shutdown, naming the cursors to resume from.
pub fn watch_shutting_down(cursors: &str) -> Status {
    Status::unavailable(format!(
        "server shutting down; resume with from_sequences {cursors}"
    ))
}

/// The end of a WatchAlarms stream whose client stopped reading.
pub fn watch_too_slow(stall: Duration, cursors: &str) -> Status {
    Status::resource_exhausted(format!(
        "watch client too slow: the stream stalled for {} ms; resume with from_sequences {cursors}",
        stall.as_millis()
    ))
}

/// StartTransfer's answer when the source refused the TRANSFER_OUT (the transfer is
/// FAILED): the source's code, message and details.
pub fn source_refused(transfer: &Transfer, refusal: Option<&Status>) -> Status {
    let (code, message) = transfer
        .refusal
        .as_ref()
        .map(|r| (tonic::Code::from(r.code), r.message.clone()))
        .unwrap_or((tonic::Code::FailedPrecondition, transfer.last_error.clone()));
    let message = format!(
        "source {} refused the transfer out of transfer {}: {message}",
        transfer.source_site_id, transfer.transfer_id
    );
    match refusal {
        Some(status) => Status::with_details(
            code,
            message,
            tonic::codegen::Bytes::copy_from_slice(status.details()),
        ),
        None => Status::new(code, message),
    }
}

/// ReceiveTransfer's answer when the destination refused the TRANSFER_IN (the transfer
/// stays RECEIVING): the destination's code and details.
pub fn destination_refused(transfer: &Transfer, status: &Status) -> Status {
    let message = format!(
        "destination {} refused the transfer in of transfer {} (it stays RECEIVING and is retried): {}",
        transfer.destination_site_id,
        transfer.transfer_id,
        status.message()
    );
    Status::with_details(
        status.code(),
        message,
        tonic::codegen::Bytes::copy_from_slice(status.details()),
    )
}
