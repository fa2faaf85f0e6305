//! The request side of idempotency, written once for every service: the fingerprint of a
//! request (its id and a digest of its protobuf bytes), the codec that keeps a protobuf
//! answer for replays (`coldchain_store` keeps bytes and knows no protobuf), the rule of
//! which refusals are remembered, and the `request_id` field of the call's log span.
//!
//! **The rule.** A request that began executing has one outcome, remembered under its
//! `request_id` for the retention (48 hours): its answer, or a refusal of the request as
//! it stood against the state it found — `INVALID_ARGUMENT` found only against stored data
//! (a unit that differs from the sku's), `NOT_FOUND`, `FAILED_PRECONDITION` (not enough
//! stock or space, a wrong state), `ALREADY_EXISTS`. A retry with the same id answers that
//! outcome again, even once the state would allow the request: retrying a refused
//! transfer step cannot debit stock later. A request refused before it executed
//! (malformed, unauthenticated, denied, rate-limited) or that could not execute
//! (`UNAVAILABLE`, `ABORTED`, `DEADLINE_EXCEEDED`, `INTERNAL`, `DATA_LOSS`) is not
//! remembered: it can be corrected or retried under the same id.

pub use coldchain_store::Idempotent;
use coldchain_store::{RefusalCodec, ReplyCodec, RequestFingerprint, fingerprint};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Code, FieldViolation, PreconditionViolation, ServiceError};

/// Keeps an answer as its protobuf bytes: what every service's stores hold today.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

impl<T: Message + Default> ReplyCodec<T> for Protobuf {
    fn encode(&self, reply: &T) -> Vec<u8> {
        reply.encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, String> {
        T::decode(bytes).map_err(|e| e.to_string())
    }
}

/// A refusal a write's closure can end with: its canonical error when the refusal is an
/// outcome of executing the request, `None` when it is not (storage failed, a dry run's
/// verdict). Implemented by each service's closure error, in its `error` module.
pub trait Outcome {
    /// The error answered, when this refusal is an outcome.
    fn outcome(&self) -> Option<ServiceError>;
}

/// Keeps the refusals the rule of this module remembers, as their canonical error: a
/// replay answers the same code, message and details as the first call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusals;

impl<E: Outcome> RefusalCodec<E> for Refusals {
    fn encode(&self, refusal: &E) -> Option<Vec<u8>> {
        let error = refusal.outcome()?;
        if !is_remembered(error.code) {
            return None;
        }
        serde_json::to_vec(&KeptRefusal::from(&error)).ok()
    }
}

/// Whether a refusal with `code`, answered by a request that executed, is its outcome.
pub fn is_remembered(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::AlreadyExists
    )
}

/// Whether a service that answered `code` to a request that executed remembers it under
/// the request's id: a caller that wants to try again needs a new id.
pub fn is_remembered_status(code: tonic::Code) -> bool {
    Code::ALL
        .into_iter()
        .any(|known| known.grpc() == code && is_remembered(known))
}

/// The error a remembered refusal answers again, from the bytes [`Refusals`] kept;
/// `DATA_LOSS` when they are unreadable.
pub fn remembered_refusal(bytes: &[u8]) -> ServiceError {
    decode_refusal(bytes).unwrap_or_else(|problem| {
        ServiceError::new(
            Code::DataLoss,
            format!("the refusal remembered for this request_id is unreadable: {problem}"),
        )
    })
}

fn decode_refusal(bytes: &[u8]) -> Result<ServiceError, String> {
    let kept: KeptRefusal = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let code =
        Code::from_name(&kept.code).ok_or_else(|| format!("unknown code {:?}", kept.code))?;
    Ok(ServiceError {
        code,
        message: kept.message,
        field_violations: kept
            .field_violations
            .into_iter()
            .map(|[field, description]| FieldViolation { field, description })
            .collect(),
        precondition_violations: kept
            .precondition_violations
            .into_iter()
            .map(|[kind, subject, description]| PreconditionViolation {
                kind,
                subject,
                description,
            })
            .collect(),
    })
}

/// A kept refusal: the code by its gRPC name (stable whatever the enum's order), the
/// message and the details, in JSON so that a field added later reads as absent.
#[derive(Serialize, Deserialize)]
struct KeptRefusal {
    code: String,
    message: String,
    #[serde(default)]
    field_violations: Vec<[String; 2]>,
    #[serde(default)]
    precondition_violations: Vec<[String; 3]>,
}

impl From<&ServiceError> for KeptRefusal {
    fn from(error: &ServiceError) -> Self {
        Self {
            code: error.code.name().to_string(),
            message: error.message.clone(),
            field_violations: error
                .field_violations
                .iter()
                .map(|v| [v.field.clone(), v.description.clone()])
                .collect(),
            precondition_violations: error
                .precondition_violations
                .iter()
                .map(|v| [v.kind.clone(), v.subject.clone(), v.description.clone()])
                .collect(),
        }
    }
}

/// The fingerprint of `message`, a request carrying `request_id`: its protobuf bytes.
pub fn fingerprint_of<M: Message>(request_id: &str, message: &M) -> RequestFingerprint {
    fingerprint(request_id, &message.encode_to_vec())
}

/// The fingerprint of `message` tagged with its method, so that one id used for two
/// methods whose requests happen to encode alike still counts as reused.
pub fn tagged_fingerprint<M: Message>(
    method: &str,
    request_id: &str,
    message: &M,
) -> RequestFingerprint {
    let mut bytes = Vec::with_capacity(method.len() + 1 + message.encoded_len());
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(0);
    // Encoding into a Vec only fails for lack of capacity, which a Vec grows.
    message.encode(&mut bytes).unwrap_or_default();
    fingerprint(request_id, &bytes)
}

/// Records the call's `request_id` on its log span (declared empty by the server
/// bootstrap, filled here once the request is decoded).
pub fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_garbage_is_an_error() {
        let answer = prost_types::Timestamp {
            seconds: 5,
            nanos: 7,
        };
        let bytes = ReplyCodec::<prost_types::Timestamp>::encode(&Protobuf, &answer);
        assert_eq!(Protobuf.decode(&bytes), Ok(answer));
        assert!(ReplyCodec::<prost_types::Timestamp>::decode(&Protobuf, &[0xff]).is_err());
    }

    struct Refused(ServiceError);

    impl Outcome for Refused {
        fn outcome(&self) -> Option<ServiceError> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn a_remembered_refusal_answers_the_same_status_again() {
        let error = ServiceError::failed_precondition("movements[0]: available 3, requested 5")
            .with_precondition(
                "STOCK",
                "sku \"kiwi\" lot \"l1\"",
                "available 3, requested 5",
            );
        let invalid = ServiceError::invalid("movements[1].unit", "kg, the sku's unit is case");
        for error in [error, invalid] {
            let kept = Refusals.encode(&Refused(error.clone())).expect("kept");
            let again = remembered_refusal(&kept);
            assert_eq!(again, error);
            let (first, second) = (tonic::Status::from(error), tonic::Status::from(again));
            assert_eq!(first.code(), second.code());
            assert_eq!(first.message(), second.message());
            assert_eq!(first.details(), second.details());
        }
    }

    #[test]
    fn only_outcomes_of_execution_are_remembered() {
        for code in Code::ALL {
            let kept = Refusals.encode(&Refused(ServiceError::new(code, "x")));
            assert_eq!(kept.is_some(), is_remembered(code), "{code:?}");
            assert_eq!(Code::from_name(code.name()), Some(code));
        }
        for code in [
            Code::Unavailable,
            Code::Aborted,
            Code::ResourceExhausted,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Internal,
            Code::DataLoss,
            Code::DeadlineExceeded,
        ] {
            assert!(!is_remembered(code), "{code:?}");
        }
    }

    #[test]
    fn unreadable_kept_bytes_are_data_loss() {
        assert_eq!(remembered_refusal(b"\xff").code, Code::DataLoss);
        let unknown = br#"{"code":"TEAPOT","message":"m"}"#;
        assert_eq!(remembered_refusal(unknown).code, Code::DataLoss);
    }

    #[test]
    fn the_method_tag_tells_requests_apart() {
        let message = prost_types::Timestamp::default();
        assert_ne!(
            tagged_fingerprint("A", "r", &message),
            tagged_fingerprint("B", "r", &message)
        );
        assert_eq!(
            fingerprint_of("r", &message),
            fingerprint("r", &message.encode_to_vec())
        );
    }
}
