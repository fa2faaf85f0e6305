#![forbid(unsafe_code)]
//! The storage layer every service shares: sled with order-preserving keys, typed tables, a
//! single serialized writer per database with atomic batches, group commit, the idempotency
//! table and the append-only ledger.
//!
//! A write goes through [`Store::write`]: under the database's writer lock the closure reads
//! current state (sled, plus everything staged and not yet applied) and stages changes in a
//! [`WriteTx`]; the store appends the ledger entries it staged (assigning gap-free sequence
//! numbers), records the idempotent response, adds it all to the group commit's current
//! generation, releases the lock and waits. The generation is appended to the write-ahead
//! log and synced, then applied to sled; a crash keeps all of a write or none of it. Only
//! then does the caller get its answer: acknowledged means durable.

mod archive;
pub mod clock;
pub mod fs;
mod group_commit;
pub mod keys;
pub mod observe;
mod overlay;
mod records;
mod request_filter;
mod row_cache;
pub mod snapshot;
pub mod table;
mod wal;

mod store;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system_clock};
pub use keys::{KeyCodec, KeyPart, Prefix};
pub use store::{
    FORMAT_VERSION, ForgetRefusals, Idempotent, Identity, LedgerRecord, RefusalCodec, ReplyCodec,
    RequestFingerprint, SWEEP_BATCH, Store, StoreOptions, WriteError, WriteTx, Written,
    fingerprint,
};
pub use table::{Table, Value, absent_as_default};

/// A storage failure. None of these is the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or internal error.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// Logging or applying failed: this write may or may not be durable, and the store
    /// makes no more writes durable until it is opened again (see `Store::failed`).
    #[error("flush failed: {0}")]
    Flush(String),
    /// Stored bytes failed to decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A value failed to encode.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// The database belongs to another site or service, or has a newer format.
    #[error("{0}")]
    Incompatible(String),
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// Anything else at the I/O layer.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
