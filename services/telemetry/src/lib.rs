#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! The telemetry service of one site (`coldchain.telemetry.v1.TelemetryService`):
//! temperature readings from cold rooms and reefer containers, stored as compact
//! time-series chunks; excursion and offline alarms; mean kinetic temperature; and holds
//! on the affected stock in the site's inventory service, placed through a durable outbox.
//!
//! One shape, as in every service:
//! - [`domain`]: the rules and the service's types, pure (codec, series merge, detection,
//!   alarms, MKT, refusals);
//! - [`store`]: persistence on `coldchain_store`, in domain types;
//! - [`app`]: the use cases, and the background work (offline check, hold outbox, alarm
//!   feed, the loop over a stream of readings);
//! - [`wire`]: protobuf ⇄ domain, validation of form, the encodings the store keeps;
//! - [`api`]: the tonic handlers; [`error`]: refusals → statuses.
//!
//! Readings are kept per sensor in 1-hour windows of bit-packed parts (about one to two
//! bytes per reading) with a summary row per window, so long range queries read summaries.
//! Excursion detection is a pure function of a sensor's readings in time order; its state
//! is persisted with every batch (per sensor, and per window as a checkpoint) so that late
//! readings replay detection from their window and alarms are reconciled with the result.
//!
//! Background tasks (the offline check and the hold outbox) stop on the context's
//! shutdown signal. The hold outbox is drained by the network's one durable drainer
//! (`coldchain_runtime::drainer`), and WatchAlarms is the network's one resumable feed
//! (`coldchain_runtime::feed`) over the store's ledger, with that feed's rules (see
//! [`app::watch`]): a message with no events and the head when the consumer is caught up
//! and every `watch_keepalive` while idle; RESOURCE_EXHAUSTED for a consumer whose queue
//! stays full for `watch_stall`, UNAVAILABLE at shutdown, both naming
//! `resume from_sequence N`. Those numbers are the network's one set for every feed, taken
//! from the configuration (`feed_buffer`, `feed_stall`, `feed_keepalive`) by [`service`].

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod store;
pub mod wire;

use std::time::Duration;

use coldchain_proto::telemetry::v1::telemetry_service_server::TelemetryServiceServer;
use coldchain_runtime::drainer::{Claims, Drainer, DrainerOptions};
use coldchain_runtime::feed::FeedOptions;
use coldchain_runtime::host::{
    ServiceContext, StartError, spawn_idempotency_sweeper, store_failure, store_probe,
};
use coldchain_runtime::observe::sampler;
use coldchain_runtime::retry::Backoff;
use coldchain_runtime::server::ServiceSpec;

use crate::app::TelemetryApp;
use crate::app::holds::HoldPlacer;
use crate::store::{TelemetryError, TelemetryStore};

/// Tuning of the background work (tests shorten it or drive it by hand).
#[derive(Debug, Clone)]
pub struct TelemetryOptions {
    /// The offline check runs when the next sensor turns OFFLINE, and at least this often
    /// (a re-registration may shorten a sensor's offline period); `None`: never by itself
    /// (tests call [`Telemetry::check_offline`]). Whenever it runs, a SENSOR_OFFLINE alarm
    /// starts at the instant the sensor's status turned.
    pub offline_check_interval: Option<Duration>,
    /// The first retry delay of a hold that failed.
    pub hold_initial_backoff: Duration,
    /// The longest retry delay after a transient failure (UNAVAILABLE, UNIMPLEMENTED,
    /// DEADLINE_EXCEEDED, …).
    pub hold_max_backoff: Duration,
    /// The longest retry delay after a refusal (NOT_FOUND, INVALID_ARGUMENT, …).
    pub hold_max_backoff_refused: Duration,
    /// Messages a WatchAlarms stream queues for its consumer (a slow consumer never blocks
    /// writers).
    pub watch_buffer: usize,
    /// How long a WatchAlarms consumer may leave its queue full before the stream ends with
    /// RESOURCE_EXHAUSTED (naming where to resume).
    pub watch_stall: Duration,
    /// An idle WatchAlarms stream sends a message with no events (and the head) this often.
    pub watch_keepalive: Duration,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self::with_feed(&FeedOptions::default())
    }
}

impl TelemetryOptions {
    /// The default tuning, with WatchAlarms limited like every feed by `feed`.
    pub fn with_feed(feed: &FeedOptions) -> Self {
        Self {
            offline_check_interval: Some(Duration::from_secs(10)),
            hold_initial_backoff: Duration::from_millis(250),
            hold_max_backoff: Duration::from_secs(5),
            hold_max_backoff_refused: Duration::from_secs(60),
            watch_buffer: feed.buffer,
            watch_stall: feed.stall,
            watch_keepalive: feed.keepalive,
        }
    }
}

/// One site's telemetry service: its use cases and its background work.
#[derive(Clone)]
pub struct Telemetry {
    app: TelemetryApp,
    ctx: ServiceContext,
    options: TelemetryOptions,
}

impl Telemetry {
    /// Opens the site's telemetry database.
    pub fn open(ctx: &ServiceContext, options: TelemetryOptions) -> Result<Self, StartError> {
        let store = TelemetryStore::new(
            ctx.open_store()?,
            ctx.site.clone(),
            wire::codec::encode_alarm_event,
        )?;
        let watch_feed = FeedOptions {
            buffer: options.watch_buffer,
            batch: app::watch::WATCH_BATCH,
            stall: options.watch_stall,
            keepalive: options.watch_keepalive,
            ..FeedOptions::default()
        };
        let app = TelemetryApp::new(
            store,
            ctx.shutdown.clone(),
            watch_feed,
            ctx.config.stream_idle_timeout,
        )
        .counting(app::metrics::ReadingCounters::new(ctx.metric_labels()));
        Ok(Self {
            app,
            ctx: ctx.clone(),
            options,
        })
    }

    /// The store (for tests and tools).
    pub fn store(&self) -> &TelemetryStore {
        self.app.store()
    }

    /// Raises or refreshes SENSOR_OFFLINE alarms as of `now_ms` (the background task calls
    /// this with the context's clock). Returns how many alarms changed.
    pub async fn check_offline(&self, now_ms: i64) -> Result<usize, TelemetryError> {
        self.app.check_offline(now_ms).await
    }

    /// Starts the background tasks and returns the server to run.
    pub fn spec(&self) -> ServiceSpec {
        let shutdown = self.ctx.shutdown.clone();
        let store = self.app.store();
        spawn_idempotency_sweeper(store.raw().clone(), shutdown.clone());
        let placer = HoldPlacer::new(
            store.clone(),
            self.ctx.network.clone(),
            self.ctx.client.clone(),
            self.ctx.config.max_message_bytes,
        );
        let holds = DrainerOptions {
            // Woken when a hold is queued, and again when a backoff passes.
            poll: None,
            backoff: Backoff::new(
                self.options.hold_initial_backoff,
                self.options.hold_max_backoff,
            ),
            refused_backoff: Backoff::new(
                self.options.hold_initial_backoff,
                self.options.hold_max_backoff_refused,
            ),
            // One hold at a time, oldest alarm first.
            concurrency: 1,
        };
        let drainer = Drainer::new(
            std::sync::Arc::new(placer),
            Claims::new(),
            store.outbox_signal(),
            holds,
        );
        tokio::spawn(drainer.run(shutdown.clone()));
        if let Some(interval) = self.options.offline_check_interval {
            tokio::spawn(
                self.app
                    .clone()
                    .run_offline_checks(interval, self.ctx.clock.clone()),
            );
        }
        let sampled = self.app.clone();
        sampler::spawn(
            self.ctx.metric_labels(),
            self.ctx.config.metrics_sample_interval,
            shutdown.clone(),
            sampler::blocking(move || sampled.sample()),
        );
        let server = TelemetryServiceServer::new(api::TelemetryApi::new(self.app.clone()))
            .max_decoding_message_size(self.ctx.config.max_message_bytes)
            .max_encoding_message_size(self.ctx.config.max_message_bytes);
        let closing = store.raw().clone();
        ServiceSpec {
            label: self.ctx.label(),
            service_name: coldchain_proto::TELEMETRY_SERVICE,
            routes: tonic::service::Routes::new(server),
            probe: store_probe(store.raw().clone()),
            fatal: store_failure(store.raw().clone()),
            on_stopped: Box::new(move || closing.close()),
        }
    }
}

/// Builds the telemetry server of `ctx`'s site (the entry point of `coldchain serve`), its
/// alarm feed limited by the configuration.
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    let options = TelemetryOptions::with_feed(&FeedOptions::from_config(&ctx.config));
    Ok(Telemetry::open(ctx, options)?.spec())
}
