#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! The network gateway at the hub (`coldchain.network.v1.NetworkService`): questions
//! across the sites, a merged alarm feed, and corridor transfers between two sites'
//! inventories.
//!
//! - Fan-out queries (`ListSites`, `FindStock`, `FindSpace`, `ListAlarms`) ask every site
//!   concurrently, each with its own deadline; a site that is down or slow shows up in the
//!   answer's `failures` (or, for `ListSites`, as an UNREACHABLE endpoint) and never fails
//!   or stalls the whole answer.
//! - `WatchAlarms` keeps one upstream alarm feed per site, each resuming from its own
//!   cursor across site restarts ([`app::watch`]).
//! - Transfers are a durable, idempotent saga in the gateway's own store ([`app::saga`],
//!   [`store`]), driven by the handlers and, after a restart or an outage, by the network's
//!   durable drainer (`coldchain_runtime::drainer`); one driver per transfer at a time.
//!
//! Layers: [`api`] (handlers of a few lines) → [`wire`] (protobuf ⇄ domain, form) →
//! [`app`] (use cases, calls to the sites, background workers) → [`store`] (the gateway's
//! database) → [`domain`] (the rules, pure); [`error`] is the one place a refusal becomes
//! a status.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod store;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::network::v1::network_service_server::NetworkServiceServer;
use coldchain_runtime::feed::FeedOptions;
use coldchain_runtime::host::{
    ServiceContext, StartError, spawn_idempotency_sweeper, store_failure, store_probe,
};
use coldchain_runtime::observe::sampler;
use coldchain_runtime::server::ServiceSpec;

/// Tuning of the gateway (the defaults suit production; tests shrink them).
#[derive(Debug, Clone)]
pub struct Options {
    /// Fan-out: how long one site may take to answer (shortened to fit the client's own
    /// deadline).
    pub site_deadline: Duration,
    /// ListSites: the deadline of one health check.
    pub health_deadline: Duration,
    /// Transfers: the deadline of one call to a site.
    pub step_timeout: Duration,
    /// Transfers: attempts of one step within a call (UNAVAILABLE is retried).
    pub step_attempts: u32,
    /// Transfers: how often the drainer looks for unfinished transfers.
    pub resume_interval: Duration,
    /// Transfers: the drainer's first backoff after a failed step.
    pub resume_backoff: Duration,
    /// Transfers: the drainer's longest backoff.
    pub resume_backoff_max: Duration,
    /// WatchAlarms: merged messages queued per client (the network's one feed limit,
    /// `feed_buffer`).
    pub watch_buffer: usize,
    /// WatchAlarms: how long a client may leave its queue full before its stream ends
    /// with RESOURCE_EXHAUSTED naming the cursors to resume from (`feed_stall`).
    pub watch_stall: Duration,
    /// WatchAlarms: an idle stream sends an empty message this often (`feed_keepalive`).
    pub watch_keepalive: Duration,
    /// WatchAlarms: the first reconnect backoff of a site feed.
    pub watch_backoff_initial: Duration,
    /// WatchAlarms: the longest reconnect backoff of a site feed.
    pub watch_backoff_max: Duration,
    /// A test seam of the transfers: see [`app::saga::StepHook`].
    #[doc(hidden)]
    pub before_call: app::saga::StepHook,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            site_deadline: Duration::from_millis(1500),
            health_deadline: Duration::from_millis(1000),
            step_timeout: Duration::from_secs(2),
            step_attempts: 3,
            resume_interval: Duration::from_secs(1),
            resume_backoff: Duration::from_millis(500),
            resume_backoff_max: Duration::from_secs(30),
            watch_buffer: FeedOptions::default().buffer,
            watch_stall: FeedOptions::default().stall,
            watch_keepalive: FeedOptions::default().keepalive,
            watch_backoff_initial: Duration::from_millis(200),
            watch_backoff_max: Duration::from_secs(5),
            before_call: app::saga::StepHook::default(),
        }
    }
}

/// Builds the gateway server, its WatchAlarms limited like every feed by the
/// configuration (`feed_buffer`, `feed_stall`, `feed_keepalive`).
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    let feed = FeedOptions::from_config(&ctx.config);
    let options = Options {
        watch_buffer: feed.buffer,
        watch_stall: feed.stall,
        watch_keepalive: feed.keepalive,
        ..Options::default()
    };
    service_with(ctx, options)
}

/// [`service`] with explicit options.
pub fn service_with(ctx: &ServiceContext, options: Options) -> Result<ServiceSpec, StartError> {
    let store = ctx.open_store()?;
    spawn_idempotency_sweeper(store.clone(), ctx.shutdown.clone());
    let sites = Arc::new(app::sites::Sites::new(ctx.network.clone(), &ctx.client));
    let transfers = store::GatewayStore::new(store.clone());
    let saga_options = app::saga::SagaOptions {
        step_timeout: options.step_timeout,
        step_attempts: options.step_attempts,
        resume_interval: options.resume_interval,
        resume_backoff: options.resume_backoff,
        resume_backoff_max: options.resume_backoff_max,
        before_call: options.before_call.clone(),
    };
    let saga = Arc::new(app::saga::Saga::new(
        transfers.clone(),
        sites.clone(),
        saga_options.clone(),
        &ctx.client,
    ));
    tokio::spawn(saga.drainer().run(ctx.shutdown.clone()));
    let recalls = Arc::new(app::recalls::Recalls::new(
        transfers.clone(),
        sites.clone(),
        saga_options,
        &ctx.client,
    ));
    tokio::spawn(recalls.drainer().run(ctx.shutdown.clone()));
    let app = app::GatewayApp::new(
        transfers,
        sites,
        saga,
        recalls,
        ctx.clock.clone(),
        options,
        ctx.shutdown.clone(),
    );
    let app = Arc::new(app);
    let sampled = app.clone();
    sampler::spawn(
        ctx.metric_labels(),
        ctx.config.metrics_sample_interval,
        ctx.shutdown.clone(),
        Arc::new(move || {
            let app = sampled.clone();
            Box::pin(async move { app.sample().await })
        }),
    );
    let api = api::GatewayApi::new(app);
    let server = NetworkServiceServer::new(api)
        .max_decoding_message_size(ctx.config.max_message_bytes)
        .max_encoding_message_size(ctx.config.max_message_bytes);
    let closing = store.clone();
    Ok(ServiceSpec {
        label: ctx.label(),
        service_name: coldchain_proto::NETWORK_SERVICE,
        routes: tonic::service::Routes::new(server),
        fatal: store_failure(store.clone()),
        probe: store_probe(store),
        on_stopped: Box::new(move || closing.close()),
    })
}
