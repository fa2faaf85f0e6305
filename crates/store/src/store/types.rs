//! The types of the write API: whose database, how it is tuned, what makes a write
//! idempotent, and what a write answers.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::clock::{SharedClock, system_clock};
use crate::fs::FileSystem;

/// Whose data a database holds. A database refuses to open as anyone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The site id, e.g. `la-vientiane`.
    pub site: String,
    /// The service name, e.g. `inventory`.
    pub service: String,
}

/// Tuning of one database.
#[derive(Clone)]
pub struct StoreOptions {
    /// sled's page cache in bytes (sled's default is 1 GiB per database).
    pub cache_bytes: u64,
    /// How long a request_id is remembered. At least 24 hours in production.
    pub idempotency_retention: Duration,
    /// The clock used for idempotency expiry.
    pub clock: SharedClock,
    /// Size at which a write-ahead log segment is closed; sled is flushed and the segment
    /// deleted once its writes are applied. Bounds the log replayed after a crash.
    pub wal_segment_bytes: u64,
    /// Memory for the rows writes read (see `row_cache`), on top of sled's cache.
    pub row_cache_bytes: usize,
    /// Memory for acknowledged changes not yet applied to sled (see `overlay`). While they
    /// take more, new writes wait for the apply thread: a full budget slows writers, it
    /// never drops a change.
    pub overlay_bytes: usize,
    /// Memory for the filter that lets a write with a new request id skip looking for its
    /// record (see `request_filter`): about 1.25 bytes per id recorded within the
    /// retention. Past it, writes look every id up. 0 turns the filter off.
    pub request_filter_bytes: usize,
    /// The file-system calls of checkpoints and recovery (a recorder in tests).
    pub file_system: Arc<dyn FileSystem>,
    /// Where every write-ahead log segment is copied (and the copy fsynced) before it may be
    /// deleted, for point-in-time recovery (see `crate::archive`); `None` keeps no archive.
    pub wal_archive_dir: Option<std::path::PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 8 * 1024 * 1024,
            idempotency_retention: Duration::from_secs(48 * 3600),
            clock: system_clock(),
            wal_segment_bytes: 32 << 20,
            row_cache_bytes: 2 << 20,
            overlay_bytes: 8 << 20,
            request_filter_bytes: 1 << 20,
            file_system: crate::fs::real(),
            wal_archive_dir: None,
        }
    }
}

/// A request's identity for idempotency: its id and a digest of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint {
    /// The client's request_id.
    pub request_id: String,
    /// SHA-256 of the request's canonical bytes.
    pub digest: [u8; 32],
}

/// The fingerprint of a request: `bytes` should be the request's canonical encoding
/// (its protobuf bytes, which include the request_id).
pub fn fingerprint(request_id: &str, bytes: &[u8]) -> RequestFingerprint {
    RequestFingerprint {
        request_id: request_id.to_string(),
        digest: Sha256::digest(bytes).into(),
    }
}

/// What is remembered under a request id: the request's digest, when, and its outcome.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RequestRecord {
    pub(super) digest: [u8; 32],
    pub(super) recorded_at_ms: i64,
    /// The answer's bytes (through the write's [`ReplyCodec`]), or the refusal's (through
    /// its [`RefusalCodec`]), as `outcome` says.
    pub(super) response: Vec<u8>,
    pub(super) outcome: Outcome,
}

/// Whether a request was answered or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Outcome {
    Answered,
    Refused,
}

/// A record of format 4 and before: only answers were kept, without an outcome.
#[derive(Deserialize)]
struct AnsweredRecord {
    digest: [u8; 32],
    recorded_at_ms: i64,
    response: Vec<u8>,
}

impl RequestRecord {
    /// A record from its bytes, of this format or of format 4 and before (whose records end
    /// where the outcome begins: they read as answers). Damage is `Corrupt`, never a panic.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if let Ok(record) = postcard::from_bytes::<Self>(bytes) {
            return Ok(record);
        }
        let old: AnsweredRecord =
            postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self {
            digest: old.digest,
            recorded_at_ms: old.recorded_at_ms,
            response: old.response,
            outcome: Outcome::Answered,
        })
    }
}

/// How a write's answer is kept for a replay of its `request_id`. The store keeps the
/// bytes and knows nothing of their format: each service hands the codec of its own
/// answers (the stored bytes of today's services are their protobuf responses).
pub trait ReplyCodec<T>: Send + Sync {
    /// The bytes kept for `reply`.
    fn encode(&self, reply: &T) -> Vec<u8>;
    /// The reply back from kept bytes; an error names what is wrong with them.
    fn decode(&self, bytes: &[u8]) -> Result<T, String>;
}

/// Which refusals of a write are its outcome, remembered under its `request_id` like an
/// answer, and the bytes kept for them. A replay of a remembered refusal answers
/// [`WriteError::Remembered`] with those bytes, whatever the state is by then: a request
/// that began executing has one outcome. A refusal that is not an outcome (storage failed,
/// a dry run) is `None`: nothing is kept, and a retry executes afresh.
pub trait RefusalCodec<E>: Send + Sync {
    /// The bytes kept for `refusal`, or `None` when it is not remembered.
    fn encode(&self, refusal: &E) -> Option<Vec<u8>>;
}

/// Remembers no refusal: for writes whose refusals are never outcomes (a dry run).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForgetRefusals;

impl<E> RefusalCodec<E> for ForgetRefusals {
    fn encode(&self, _refusal: &E) -> Option<Vec<u8>> {
        None
    }
}

/// What makes a write idempotent: the request's identity, how its answer is kept, and
/// which of its refusals are kept too.
pub struct Idempotent<'a, T, E> {
    /// The request's id and the digest of its content.
    pub request: &'a RequestFingerprint,
    /// Encodes the answer to keep it, decodes it to replay it.
    pub codec: &'a dyn ReplyCodec<T>,
    /// Chooses and encodes the refusals to keep.
    pub refusals: &'a dyn RefusalCodec<E>,
}

// By hand: derived impls would ask `T` and `E` to be `Clone` too, and only references are
// copied.
impl<T, E> Clone for Idempotent<'_, T, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, E> Copy for Idempotent<'_, T, E> {}

impl<'a, T, E> Idempotent<'a, T, E> {
    /// `request`, its answer kept through `codec` and its refusals through `refusals`.
    pub fn new(
        request: &'a RequestFingerprint,
        codec: &'a dyn ReplyCodec<T>,
        refusals: &'a dyn RefusalCodec<E>,
    ) -> Self {
        Self {
            request,
            codec,
            refusals,
        }
    }
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Its sequence number: 1, 2, 3, … with no gaps.
    pub sequence: u64,
    /// The service's encoding of the entry.
    pub bytes: Vec<u8>,
}

/// The result of a successful write.
#[derive(Debug)]
pub struct Written<T> {
    /// The response: fresh, or the stored response of the first call with this request_id.
    pub value: T,
    /// True when this was a replay of an earlier request.
    pub replayed: bool,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The closure refused the write (a domain error): nothing was changed.
    #[error("{0}")]
    Rejected(E),
    /// The request_id was used before for a different request.
    #[error("request_id {0:?} was already used for a different request")]
    RequestIdReused(String),
    /// The first call with this request_id was refused, and its [`RefusalCodec`] kept the
    /// refusal: these are the bytes it kept. Nothing was changed, then or now.
    #[error("the first call with this request_id was refused")]
    Remembered(Vec<u8>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Format4Record {
        digest: [u8; 32],
        recorded_at_ms: i64,
        response: Vec<u8>,
    }

    #[test]
    fn a_record_of_format_4_reads_as_an_answer() {
        let bytes = postcard::to_allocvec(&Format4Record {
            digest: [7; 32],
            recorded_at_ms: 42,
            response: b"answer".to_vec(),
        })
        .unwrap();
        let record = RequestRecord::decode(&bytes).unwrap();
        assert_eq!(record.outcome, Outcome::Answered);
        assert_eq!(
            (record.digest, record.recorded_at_ms, record.response),
            ([7; 32], 42, b"answer".to_vec())
        );
    }

    #[test]
    fn a_refused_record_round_trips_and_damage_is_corrupt() {
        let record = RequestRecord {
            digest: [1; 32],
            recorded_at_ms: -5,
            response: b"no".to_vec(),
            outcome: Outcome::Refused,
        };
        let bytes = postcard::to_allocvec(&record).unwrap();
        let back = RequestRecord::decode(&bytes).unwrap();
        assert_eq!(back.outcome, Outcome::Refused);
        assert_eq!(back.response, b"no");
        for cut in [0, 10, 33] {
            assert!(matches!(
                RequestRecord::decode(&bytes[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
