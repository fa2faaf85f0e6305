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
    /// Memory for the filter that lets a write with a new request id skip looking for its
    /// record (see `request_filter`): about 1.25 bytes per id recorded within the
    /// retention. Past it, writes look every id up. 0 turns the filter off.
    pub request_filter_bytes: usize,
    /// The file-system calls of checkpoints and recovery (a recorder in tests).
    pub file_system: Arc<dyn FileSystem>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 8 * 1024 * 1024,
            idempotency_retention: Duration::from_secs(48 * 3600),
            clock: system_clock(),
            wal_segment_bytes: 32 << 20,
            row_cache_bytes: 2 << 20,
            request_filter_bytes: 1 << 20,
            file_system: crate::fs::real(),
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

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RequestRecord {
    pub(super) digest: [u8; 32],
    pub(super) recorded_at_ms: i64,
    pub(super) response: Vec<u8>,
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

/// What makes a write idempotent: the request's identity, and how its answer is kept.
pub struct Idempotent<'a, T> {
    /// The request's id and the digest of its content.
    pub request: &'a RequestFingerprint,
    /// Encodes the answer to keep it, decodes it to replay it.
    pub codec: &'a dyn ReplyCodec<T>,
}

impl<'a, T> Idempotent<'a, T> {
    /// `request`, its answer kept through `codec`.
    pub fn new(request: &'a RequestFingerprint, codec: &'a dyn ReplyCodec<T>) -> Self {
        Self { request, codec }
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
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
