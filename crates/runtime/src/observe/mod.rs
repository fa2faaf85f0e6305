//! What a process shows of itself: Prometheus metrics on `metrics_listen` (`GET /metrics`)
//! and, when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces over
//! OTLP with the W3C `traceparent` carried on every call between services.
//!
//! Metrics are recorded through the `metrics` facade: with no recorder installed (metrics
//! off, every in-process test) each record is a no-op, and the server bootstrap and the
//! client connector skip their bookkeeping altogether. [`exporter::start`] installs
//! `metrics-exporter-prometheus`' recorder once per process and serves its rendering; in
//! `coldchain dev` the one endpoint holds the series of all 25 servers, told apart by the
//! `site` and `service` labels every series carries (the gateway's site is `hub`, as in
//! its store's identity).
//!
//! | metric | type | labels (besides `site`, `service`) | recorded by |
//! |---|---|---|---|
//! | [`RPC_SERVER_DURATION`] | histogram, s | `rpc_system`, `rpc_service`, `rpc_method`, `rpc_response_status_code` | the server bootstrap, per call |
//! | [`RPC_CLIENT_DURATION`] | histogram, s | the same, of the service called | `client::Channel`, per call |
//! | [`HEALTH_SERVING`] | gauge 1/0 | `rpc_service` | the health probe, as grpc.health reports it |
//! | `coldchain_store_*` | | | `coldchain_store` (see its `observe` module) |
//!
//! Label values come from bounded sets only: service and method names from the contracts'
//! descriptors (an unknown path is `other`), the gRPC code's name
//! ([`crate::retry::code_name`]), the sites of the network file. Never an id.
//!
//! ## The hook for a service's own series
//!
//! A service registers its series through [`ServiceLabels`] (from
//! `ServiceContext::metric_labels`), which adds `site` and `service`:
//!
//! ```ignore
//! let labels = ctx.metric_labels();
//! let stock = labels.gauge(domain::ZONE_STOCK_UNITS, &[("zone", zone.id.clone())]);
//! stock.set(units as f64); // whenever the zone's total changes
//! ```
//!
//! Registering returns a handle to keep (registering again on every change costs a map
//! lookup). The domain series (names in [`domain`]) are read from each service's state by
//! its [`sampler`], every `metrics_sample_interval` (15 s).

pub mod exporter;
pub mod rpc;
pub mod sampler;
pub mod traces;

use metrics::{Counter, Gauge, Histogram, Label, SharedString};

pub use coldchain_store::observe as store;
pub use exporter::{MetricsEndpoint, enabled};

/// Duration of a call as the server saw it.
pub const RPC_SERVER_DURATION: &str = "rpc_server_call_duration_seconds";
/// Duration of a call as the calling service saw it.
pub const RPC_CLIENT_DURATION: &str = "rpc_client_call_duration_seconds";
/// 1 while a served service reports SERVING over grpc.health, 0 otherwise.
pub const HEALTH_SERVING: &str = "coldchain_health_serving";

/// The domain series: each service samples its state into them (see [`sampler`]); the alert
/// rules of `deploy/prometheus/alerts.yml` are written against these names. Label values
/// are bounded sets (zones, states, kinds, the sites of the network file), never an id.
pub mod domain {
    /// Inventory: stock per zone (gauge, in the skus' base units summed; labels `zone`,
    /// `state` = `on_hand`, `allocated`, `held`).
    pub const ZONE_STOCK_UNITS: &str = "coldchain_inventory_zone_stock_units";
    /// Booking: pallet positions per zone for the site's today (gauge; labels `zone`,
    /// `state` = `held`, `confirmed`, `checked_in`, `capacity`).
    pub const ZONE_PALLETS: &str = "coldchain_booking_zone_pallets";
    /// Telemetry: active alarms (gauge; labels `zone`, `kind` = the alarm kind in lowercase,
    /// `acknowledged` = `true`, `false`).
    pub const ALARMS_ACTIVE: &str = "coldchain_telemetry_alarms_active";
    /// Telemetry: age of the oldest active, unacknowledged alarm (gauge, s; labels `zone`,
    /// `kind` = `excursion` for temperature excursions, `offline`).
    pub const ALARM_UNACKNOWLEDGED_AGE: &str =
        "coldchain_telemetry_alarm_unacknowledged_age_seconds";
    /// Telemetry: sensors silent past their offline threshold (gauge; label `zone`, the
    /// reefer's container for none: `zone="reefer"`).
    pub const SENSORS_OFFLINE: &str = "coldchain_telemetry_sensors_offline";
    /// Telemetry: readings by outcome (counter; `outcome` = `accepted`, `duplicate`,
    /// `rejected`, and `reason` for rejected ones, from the call's rejection details).
    pub const READINGS: &str = "coldchain_telemetry_readings_total";
    /// Any outbox: entries waiting to be delivered (gauge; label `outbox`, e.g. `holds`).
    pub const OUTBOX_PENDING: &str = "coldchain_outbox_pending";
    /// Any outbox: age of its oldest waiting entry, 0 when empty (gauge, s; label `outbox`).
    pub const OUTBOX_OLDEST_AGE: &str = "coldchain_outbox_oldest_age_seconds";
    /// Gateway: transfers not finished, per state (gauge; label `state` = `requested`,
    /// `in_transit`, `receiving`).
    pub const TRANSFERS: &str = "coldchain_gateway_transfers";
    /// Gateway: 1 when a site service answered its last health probe SERVING, else 0
    /// (gauge; labels `target_site`, `target_service`).
    pub const SITE_REACHABLE: &str = "coldchain_gateway_site_reachable";
}

/// The `site` and `service` labels of one service instance, and the hook through which it
/// registers its own series with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLabels {
    /// The site id (`hub` for the gateway).
    pub site: SharedString,
    /// `inventory`, `telemetry`, `booking` or `gateway`.
    pub service: SharedString,
}

impl ServiceLabels {
    /// The labels of `service` at `site`.
    pub fn new(site: impl Into<SharedString>, service: impl Into<SharedString>) -> Self {
        Self {
            site: site.into(),
            service: service.into(),
        }
    }

    /// `site`, `service`, then `extra`.
    pub fn with(&self, extra: &[(&'static str, String)]) -> Vec<Label> {
        let mut labels = Vec::with_capacity(2 + extra.len());
        labels.push(Label::new("site", self.site.clone()));
        labels.push(Label::new("service", self.service.clone()));
        labels.extend(
            extra
                .iter()
                .map(|(key, value)| Label::new(*key, value.clone())),
        );
        labels
    }

    /// A gauge of this instance (a no-op handle while metrics are off).
    pub fn gauge(&self, name: &'static str, extra: &[(&'static str, String)]) -> Gauge {
        metrics::gauge!(name, self.with(extra))
    }

    /// A counter of this instance (name it `…_total`).
    pub fn counter(&self, name: &'static str, extra: &[(&'static str, String)]) -> Counter {
        metrics::counter!(name, self.with(extra))
    }

    /// A histogram of this instance; its buckets are those of [`exporter`] for its name.
    pub fn histogram(&self, name: &'static str, extra: &[(&'static str, String)]) -> Histogram {
        metrics::histogram!(name, self.with(extra))
    }
}

/// The help text of every series this crate and `coldchain_store` record, shown as
/// `# HELP` lines.
fn describe() {
    use metrics::Unit;
    metrics::describe_histogram!(
        RPC_SERVER_DURATION,
        Unit::Seconds,
        "Duration of RPCs served, by method and gRPC status code (OpenTelemetry rpc.server.call.duration)"
    );
    metrics::describe_histogram!(
        RPC_CLIENT_DURATION,
        Unit::Seconds,
        "Duration of RPCs this service made to another, by method and gRPC status code (OpenTelemetry rpc.client.call.duration)"
    );
    metrics::describe_gauge!(
        HEALTH_SERVING,
        "1 while the service reports SERVING over grpc.health.v1, 0 otherwise"
    );
    describe_domain();
    coldchain_store::observe::describe();
}

/// The help text of the domain series each service samples ([`domain`]).
fn describe_domain() {
    use metrics::Unit;
    metrics::describe_gauge!(
        domain::ZONE_STOCK_UNITS,
        "Stock per zone in the skus' base units, summed: on hand, allocated, held"
    );
    metrics::describe_gauge!(
        domain::ZONE_PALLETS,
        "Pallet positions per zone for the site's today: held, confirmed, checked in, and the capacity"
    );
    metrics::describe_gauge!(
        domain::ALARMS_ACTIVE,
        "Active alarms by zone, kind and acknowledgement"
    );
    metrics::describe_gauge!(
        domain::ALARM_UNACKNOWLEDGED_AGE,
        Unit::Seconds,
        "Age of the oldest active unacknowledged alarm by zone and kind, 0 when none"
    );
    metrics::describe_gauge!(
        domain::SENSORS_OFFLINE,
        "Sensors silent past their offline period, by zone"
    );
    metrics::describe_counter!(
        domain::READINGS,
        "Readings by outcome (accepted, duplicate, rejected) and rejection reason"
    );
    metrics::describe_gauge!(
        domain::OUTBOX_PENDING,
        "Entries waiting in an outbox to be delivered to another service"
    );
    metrics::describe_gauge!(
        domain::OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest entry waiting in an outbox, 0 when empty"
    );
    metrics::describe_gauge!(domain::TRANSFERS, "Transfers not finished, by state");
    metrics::describe_gauge!(
        domain::SITE_REACHABLE,
        "1 when a site service answered the gateway's last health probe SERVING, else 0"
    );
}
