//! The one place a refusal of the telemetry service becomes a canonical error (and so a
//! `tonic::Status`): the domain's refusals, the ends of its streams, and the store's
//! failures each get their code and details here.

use coldchain_runtime::error::{Code, FieldViolation, ServiceError};
use coldchain_runtime::idempotency::{Outcome, remembered_refusal};
use tonic::Status;

use crate::domain::{StreamEnd, TelemetryRefusal};
use crate::store::TelemetryError;

impl From<TelemetryRefusal> for ServiceError {
    fn from(refusal: TelemetryRefusal) -> Self {
        let message = refusal.message();
        match refusal {
            TelemetryRefusal::UnknownSensor { .. }
            | TelemetryRefusal::UnknownZone { .. }
            | TelemetryRefusal::UnknownAlarm { .. } => ServiceError::not_found(message),
            TelemetryRefusal::AlreadyAcknowledged { alarm_id, state } => {
                ServiceError::failed_precondition(message).with_precondition(
                    "STATE",
                    alarm_id,
                    format!("state is {}", state.name()),
                )
            }
            TelemetryRefusal::NoReadings { sensor_id, .. } => ServiceError::failed_precondition(
                message,
            )
            .with_precondition("READINGS", sensor_id, "no reading in the range"),
            TelemetryRefusal::ReadingsUnreadable(_) => ServiceError::new(Code::DataLoss, message),
            TelemetryRefusal::InvalidProfile(problems) if problems.is_empty() => {
                ServiceError::invalid("profile", "is invalid")
            }
            TelemetryRefusal::InvalidProfile(problems) => ServiceError {
                code: Code::InvalidArgument,
                message,
                field_violations: problems
                    .into_iter()
                    .map(|(field, description)| FieldViolation { field, description })
                    .collect(),
                precondition_violations: Vec::new(),
            },
            TelemetryRefusal::BatchTooLarge { .. } => ServiceError::invalid("readings", message),
        }
    }
}

impl From<StreamEnd> for ServiceError {
    fn from(end: StreamEnd) -> Self {
        let code = match end {
            StreamEnd::Idle { .. } => Code::DeadlineExceeded,
            StreamEnd::EntryUnreadable { .. } => Code::DataLoss,
        };
        ServiceError::new(code, end.message())
    }
}

impl From<TelemetryError> for ServiceError {
    fn from(error: TelemetryError) -> Self {
        match error {
            TelemetryError::Refused(refusal) => refusal.into(),
            TelemetryError::RequestIdReused(id) => ServiceError::invalid(
                "request_id",
                format!("request_id {id:?} was already used for a different request"),
            ),
            TelemetryError::Store(error) => error.into(),
            TelemetryError::WriteTask(error) => {
                ServiceError::internal(format!("write task failed: {error}"))
            }
            TelemetryError::Remembered(kept) => remembered_refusal(&kept),
        }
    }
}

/// A refusal by the rules is the write's outcome (remembered under its request_id);
/// anything else is not.
impl Outcome for TelemetryError {
    fn outcome(&self) -> Option<ServiceError> {
        match self {
            TelemetryError::Refused(refusal) => Some(refusal.clone().into()),
            TelemetryError::RequestIdReused(_)
            | TelemetryError::Store(_)
            | TelemetryError::WriteTask(_)
            | TelemetryError::Remembered(_) => None,
        }
    }
}

impl From<TelemetryRefusal> for Status {
    fn from(refusal: TelemetryRefusal) -> Self {
        ServiceError::from(refusal).into()
    }
}

impl From<StreamEnd> for Status {
    fn from(end: StreamEnd) -> Self {
        ServiceError::from(end).into()
    }
}

impl From<TelemetryError> for Status {
    fn from(error: TelemetryError) -> Self {
        ServiceError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alarm::AlarmState;

    #[test]
    fn refusals_get_their_codes_and_details() {
        let error = ServiceError::from(TelemetryRefusal::AlreadyAcknowledged {
            alarm_id: "alm-00000001".into(),
            state: AlarmState::ActiveAck,
        });
        assert_eq!(error.code, Code::FailedPrecondition);
        assert_eq!(
            error.message,
            "alarm \"alm-00000001\" is already acknowledged (state ACTIVE_ACK)"
        );
        assert_eq!(error.precondition_violations[0].kind, "STATE");
        let error = ServiceError::from(TelemetryRefusal::InvalidProfile(vec![
            (
                "profile.min_celsius".into(),
                "9 must be below max_celsius 8".into(),
            ),
            (
                "profile.offline_after".into(),
                "1 ms must be between 1 minute and 7 days".into(),
            ),
        ]));
        assert_eq!(error.code, Code::InvalidArgument);
        assert_eq!(error.field_violations.len(), 2);
        assert!(error.message.starts_with("profile.min_celsius: 9 must"));
    }

    #[test]
    fn stream_ends_get_their_codes() {
        let status = Status::from(StreamEnd::EntryUnreadable {
            sequence: 7,
            error: "truncated".into(),
        });
        assert_eq!(status.code(), tonic::Code::DataLoss);
        assert_eq!(
            status.message(),
            "alarm event 7 cannot be decoded: truncated"
        );
        let status = Status::from(StreamEnd::Idle { seconds: 30 });
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }
}
