//! Persistence of the telemetry service on `coldchain_store`: tables, keys, and the write
//! closures that run the domain rules under the database's writer lock. It takes and
//! returns domain types and [`TelemetryError`]s; the encodings of what it keeps for
//! clients (idempotent answers, the alarm feed) are handed to it by the wire layer.
//!
//! One sled tree, one atomic batch per write (the tables are listed in `tables.rs`). The store's
//! ledger is the site's alarm feed: every alarm change appends an encoded alarm event (and
//! nothing else does, so its sequences are the feed's).
//!
//! Inside a write every read goes through the `WriteTx` (never the committed tree), so the
//! changes of earlier writes that are staged but not yet applied are always seen.

mod alarms;
#[cfg(test)]
mod earlier_build_tests;
mod ingest;
#[cfg(test)]
mod lifecycle_tests;
mod readings;
mod tables;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use coldchain_audit::Author;
use coldchain_network::SiteConfig;
use coldchain_store::{
    Idempotent, KeyCodec, RefusalCodec, ReplyCodec, RequestFingerprint, Store, StoreError,
    WriteError,
};
use tokio::sync::Notify;

use crate::domain::alarm::AlarmEvent;
use crate::domain::{
    Binding, Profile, SensorRecord, SensorRegistry, SensorState, SensorView, TelemetryRefusal,
};
use tables::{SENSOR_STATE, SENSORS};

pub use ingest::UPDATE_EVENT_INTERVAL_MS;
pub use tables::{Blob, HoldTarget, OutboxEntry};

/// Encodes an alarm event as the feed keeps it (the store keeps bytes).
pub type EncodeAlarmEvent = fn(AlarmEvent) -> Vec<u8>;

/// How the answer of an idempotent write is kept: the request's fingerprint and the codec
/// of the answer.
pub type Idempotency<T> = (
    RequestFingerprint,
    &'static dyn ReplyCodec<T>,
    &'static dyn RefusalCodec<TelemetryError>,
);

/// Why a call of the store failed.
#[derive(Debug)]
pub enum TelemetryError {
    /// The rules refused it: nothing was changed.
    Refused(TelemetryRefusal),
    /// The request_id was used before for a different request.
    RequestIdReused(String),
    /// Storage failed.
    Store(StoreError),
    /// The task running a write ended without an answer.
    WriteTask(String),
    /// The first call with this request_id was refused: the bytes its refusal was kept as.
    Remembered(Vec<u8>),
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelemetryError::Refused(refusal) => f.write_str(&refusal.message()),
            TelemetryError::RequestIdReused(id) => {
                write!(
                    f,
                    "request_id {id:?} was already used for a different request"
                )
            }
            TelemetryError::Store(error) => error.fmt(f),
            TelemetryError::WriteTask(error) => write!(f, "write task failed: {error}"),
            TelemetryError::Remembered(_) => {
                f.write_str("the first call with this request_id was refused")
            }
        }
    }
}

impl std::error::Error for TelemetryError {}

impl From<StoreError> for TelemetryError {
    fn from(error: StoreError) -> Self {
        TelemetryError::Store(error)
    }
}

impl From<TelemetryRefusal> for TelemetryError {
    fn from(refusal: TelemetryRefusal) -> Self {
        TelemetryError::Refused(refusal)
    }
}

impl From<WriteError<TelemetryError>> for TelemetryError {
    fn from(error: WriteError<TelemetryError>) -> Self {
        match error {
            WriteError::Rejected(error) => error,
            WriteError::RequestIdReused(id) => TelemetryError::RequestIdReused(id),
            WriteError::Store(error) => TelemetryError::Store(error),
            WriteError::Remembered(kept) => TelemetryError::Remembered(kept),
        }
    }
}

/// A sensor registration, validated.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The sensor.
    pub sensor_id: String,
    /// Where it measures.
    pub binding: Binding,
    /// The effective rules.
    pub profile: Profile,
    /// Free text.
    pub description: String,
    /// Who registers it.
    pub registered_by: Author,
}

/// A page of sensors with their states, and the key to continue after.
pub type SensorPage = (Vec<(SensorRecord, SensorState)>, Option<Vec<u8>>);

/// The telemetry database of one site.
#[derive(Clone)]
pub struct TelemetryStore {
    store: Store,
    site: Arc<SiteConfig>,
    /// Every registered sensor, as stored (refreshed after each registration).
    known: Arc<RwLock<SensorRegistry>>,
    outbox_signal: Arc<Notify>,
    encode_event: EncodeAlarmEvent,
}

impl TelemetryStore {
    /// Wraps an opened store; loads the registered sensors. Alarm events are kept as
    /// `encode_event` encodes them.
    pub fn new(
        store: Store,
        site: SiteConfig,
        encode_event: EncodeAlarmEvent,
    ) -> Result<Self, StoreError> {
        let mut known = HashMap::new();
        for entry in store.scan_prefix(&SENSORS, &[]) {
            let (id, record) = entry?;
            known.insert(id, Arc::new(record));
        }
        Ok(Self {
            store,
            site: Arc::new(site),
            known: Arc::new(RwLock::new(known)),
            outbox_signal: Arc::new(Notify::new()),
            encode_event,
        })
    }

    /// The underlying store (clock, close, health, and its ledger: the alarm feed).
    pub fn raw(&self) -> &Store {
        &self.store
    }

    /// The site.
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    /// The registered sensors (for validating readings before the write, and their rules
    /// during it).
    pub fn known_sensors(&self) -> RwLockReadGuard<'_, SensorRegistry> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes when a hold was queued.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox_signal.clone()
    }

    /// The store's clock, ms.
    pub fn now_millis(&self) -> i64 {
        self.store.clock().now_millis()
    }

    /// Registers or re-registers a sensor; the answer is the sensor as shown now.
    pub async fn register_sensor(
        &self,
        (request, codec, refusals): Idempotency<SensorView>,
        registration: Registration,
    ) -> Result<SensorView, TelemetryError> {
        let store = self.store.clone();
        let site = self.site.clone();
        let id = registration.sensor_id.clone();
        let written = spawned(async move {
            store
                .write(
                    Some(Idempotent::new(&request, codec, refusals)),
                    move |tx| {
                        let now = tx.now_millis();
                        let key = registration.sensor_id.clone();
                        let registered_at = tx
                            .get(&SENSORS, &key)?
                            .map_or(now, |existing| existing.registered_at);
                        let record = SensorRecord {
                            sensor_id: registration.sensor_id,
                            binding: registration.binding,
                            profile: registration.profile,
                            description: registration.description,
                            registered_at,
                            updated_at: now,
                            registered_by: registration.registered_by,
                        };
                        tx.put(&SENSORS, &key, &record)?;
                        let state = tx.get(&SENSOR_STATE, &key)?.unwrap_or_default();
                        Ok::<_, TelemetryError>(SensorView::of(&record, &state, &site.id, now))
                    },
                )
                .await
                .map_err(TelemetryError::from)
        })
        .await?;
        // Read back under the registry's lock, so concurrent registrations of one sensor
        // leave the registry with the latest stored record.
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(record) = self.store.get(&SENSORS, &id)? {
            known.insert(id, Arc::new(record));
        }
        Ok(written.value)
    }

    /// A sensor and its state.
    pub fn sensor(
        &self,
        sensor_id: &str,
    ) -> Result<Option<(SensorRecord, SensorState)>, StoreError> {
        let key = sensor_id.to_string();
        let Some(record) = self.store.get(&SENSORS, &key)? else {
            return Ok(None);
        };
        let state = self.store.get(&SENSOR_STATE, &key)?.unwrap_or_default();
        Ok(Some((record, state)))
    }

    /// Sensors in id order after `after` (a relative key), filtered, at most `limit`, and
    /// the key to continue from if there may be more.
    pub fn list_sensors(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(&SensorRecord, &SensorState) -> bool,
    ) -> Result<SensorPage, StoreError> {
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in self.store.scan_after(&SENSORS, &[], after) {
            let (id, record) = entry?;
            let state = self.store.get(&SENSOR_STATE, &id)?.unwrap_or_default();
            if !keep(&record, &state) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(KeyCodec::encode(&id));
            out.push((record, state));
        }
        Ok((out, None))
    }
}

/// Runs a write on its own task, so that a caller that goes away (a cancelled RPC) never
/// interrupts it between its commit and its durable acknowledgement.
async fn spawned<T: Send + 'static>(
    work: impl Future<Output = Result<T, TelemetryError>> + Send + 'static,
) -> Result<T, TelemetryError> {
    tokio::spawn(work)
        .await
        .map_err(|e| TelemetryError::WriteTask(e.to_string()))?
}
