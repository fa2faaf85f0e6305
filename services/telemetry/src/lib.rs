#![forbid(unsafe_code)]
//! The telemetry service of one site (`coldchain.telemetry.v1.TelemetryService`):
//! temperature readings from cold rooms and reefer containers, stored as compact
//! time-series chunks; excursion and offline alarms; mean kinetic temperature; and holds
//! on the affected stock in the site's inventory service, placed through a durable outbox.
//!
//! - [`domain`]: the rules, pure (codec, series merge, detection, alarms, MKT).
//! - [`store`]: persistence on `coldchain_store`.
//! - [`api`]: the tonic handlers; [`convert`]: records ↔ protobuf messages.
//! - [`holds`]: the background task that drains the hold outbox.
//!
//! Readings are kept per sensor in 1-hour windows of bit-packed parts (about one to two
//! bytes per reading) with a summary row per window, so long range queries read summaries.
//! Excursion detection is a pure function of a sensor's readings in time order; its state
//! is persisted with every batch (per sensor, and per window as a checkpoint) so that late
//! readings replay detection from their window and alarms are reconciled with the result.
//!
//! Background tasks (the offline check and the hold outbox) stop on the context's
//! shutdown signal.

pub mod api;
pub mod convert;
pub mod domain;
pub mod holds;
pub mod store;

use std::time::Duration;

use coldchain_proto::telemetry::v1::telemetry_service_server::TelemetryServiceServer;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::host::{
    ServiceContext, StartError, spawn_idempotency_sweeper, store_failure, store_probe,
};
use coldchain_runtime::server::ServiceSpec;

use crate::store::TelemetryStore;

/// Tuning of the background work (tests shorten it or drive it by hand).
#[derive(Debug, Clone)]
pub struct TelemetryOptions {
    /// How often the offline check runs; `None`: never by itself (tests call
    /// [`Telemetry::check_offline`]).
    pub offline_check_interval: Option<Duration>,
    /// The first retry delay of a hold that failed.
    pub hold_initial_backoff: Duration,
    /// The longest retry delay after a transient failure (UNAVAILABLE, UNIMPLEMENTED,
    /// DEADLINE_EXCEEDED, …).
    pub hold_max_backoff: Duration,
    /// The longest retry delay after a refusal (NOT_FOUND, INVALID_ARGUMENT, …).
    pub hold_max_backoff_refused: Duration,
    /// Messages a WatchAlarms stream may have queued for its consumer before it is ended
    /// with RESOURCE_EXHAUSTED (a slow consumer never blocks writers).
    pub watch_buffer: usize,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self {
            offline_check_interval: Some(Duration::from_secs(10)),
            hold_initial_backoff: Duration::from_millis(250),
            hold_max_backoff: Duration::from_secs(5),
            hold_max_backoff_refused: Duration::from_secs(60),
            watch_buffer: api::WATCH_BUFFER,
        }
    }
}

/// One site's telemetry service: its store and its background work.
#[derive(Clone)]
pub struct Telemetry {
    store: TelemetryStore,
    ctx: ServiceContext,
    options: TelemetryOptions,
}

impl Telemetry {
    /// Opens the site's telemetry database.
    pub fn open(ctx: &ServiceContext, options: TelemetryOptions) -> Result<Self, StartError> {
        let store = TelemetryStore::new(ctx.open_store()?, ctx.site.clone())?;
        Ok(Self {
            store,
            ctx: ctx.clone(),
            options,
        })
    }

    /// The store (for tests and tools).
    pub fn store(&self) -> &TelemetryStore {
        &self.store
    }

    /// Raises or refreshes SENSOR_OFFLINE alarms as of `now_ms` (the background task calls
    /// this with the context's clock). Returns how many alarms changed.
    pub async fn check_offline(&self, now_ms: i64) -> Result<usize, ServiceError> {
        self.store.check_offline(now_ms).await
    }

    /// Starts the background tasks and returns the server to run.
    pub fn spec(&self) -> ServiceSpec {
        let shutdown = self.ctx.shutdown.clone();
        spawn_idempotency_sweeper(self.store.raw().clone(), shutdown.clone());
        let placer = holds::HoldPlacer::new(
            self.store.clone(),
            self.ctx.network.clone(),
            self.ctx.client.clone(),
            self.options.clone(),
            self.ctx.config.max_message_bytes,
        );
        tokio::spawn(placer.run(shutdown.clone()));
        if let Some(interval) = self.options.offline_check_interval {
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = shutdown.wait() => return,
                    }
                    let now = this.ctx.clock.now_millis();
                    if let Err(error) = this.check_offline(now).await {
                        tracing::warn!(%error, "offline check failed");
                    }
                }
            });
        }
        let server = TelemetryServiceServer::new(api::TelemetryApi::new(
            self.store.clone(),
            shutdown,
            self.options.watch_buffer,
            self.ctx.config.stream_idle_timeout,
        ))
        .max_decoding_message_size(self.ctx.config.max_message_bytes)
        .max_encoding_message_size(self.ctx.config.max_message_bytes);
        let closing = self.store.raw().clone();
        ServiceSpec {
            label: self.ctx.label(),
            service_name: coldchain_proto::TELEMETRY_SERVICE,
            routes: tonic::service::Routes::new(server),
            probe: store_probe(self.store.raw().clone()),
            fatal: store_failure(self.store.raw().clone()),
            on_stopped: Box::new(move || closing.close()),
        }
    }
}

/// Builds the telemetry server of `ctx`'s site (the entry point of `coldchain serve`).
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    Ok(Telemetry::open(ctx, TelemetryOptions::default())?.spec())
}
