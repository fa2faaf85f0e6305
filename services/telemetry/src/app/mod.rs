//! The use cases of the telemetry service: each checks what the store cannot (a zone of
//! the site, a registered sensor), runs the store's write or read, and answers with
//! domain types. The background work lives here too: the offline check, the hold outbox
//! drainer ([`holds`]), and the alarm feed ([`watch`]); and the loop over a client stream
//! of readings ([`stream`]).

pub mod holds;
pub mod metrics;
pub mod stream;
pub mod watch;

use std::time::Duration;

use coldchain_audit::Author;
use coldchain_network::SiteConfig;
use coldchain_runtime::Shutdown;
use coldchain_runtime::feed::FeedOptions;
use coldchain_runtime::idempotency::Refusals;
use coldchain_store::{RequestFingerprint, SharedClock};

use crate::domain::alarm::AlarmView;
use crate::domain::exposure::ExposureFigures;
use crate::domain::{
    self, Acknowledgement, AlarmFilter, Binding, ExposureQuery, IngestSummary, MktQuery, MktResult,
    Page, Prepared, QueryResult, ReadingsQuery, SensorFilter, SensorRecord, SensorRegistry,
    SensorRequest, SensorState, SensorView, TelemetryRefusal,
};
use crate::store::{Registration, TelemetryError, TelemetryStore};
use crate::wire::codec::{AlarmReply, IngestReply, SensorReply};
use crate::wire::convert::class_limits;

/// Turns readings of the wire into samples per sensor: (the registered sensors, the
/// site, (batch index, readings), the server clock in ms, how many rejections to detail).
pub type PrepareFn<R> = fn(&SensorRegistry, &str, &[(i64, &[R])], i64, usize) -> Prepared;

/// The shortest pause between two offline checks: sensors turning OFFLINE a few
/// milliseconds apart are raised by one check (each alarm still starts when its sensor's
/// status turned), and the check never spins.
const OFFLINE_CHECK_GAP: Duration = Duration::from_millis(250);

/// The telemetry service of one site, without its transport.
#[derive(Clone)]
pub struct TelemetryApp {
    store: TelemetryStore,
    shutdown: Shutdown,
    watch_feed: FeedOptions,
    idle_timeout: Duration,
    readings: metrics::ReadingCounters,
}

impl TelemetryApp {
    /// The use cases over `store`; streams end when `shutdown` fires; WatchAlarms streams
    /// are batched and paced by `watch_feed` (see [`watch`]); a StreamReadings client silent
    /// for `idle_timeout` is closed.
    pub fn new(
        store: TelemetryStore,
        shutdown: Shutdown,
        watch_feed: FeedOptions,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            store,
            shutdown,
            watch_feed,
            idle_timeout,
            readings: metrics::ReadingCounters::default(),
        }
    }

    /// Counts the readings it stores through `readings`.
    pub fn counting(self, readings: metrics::ReadingCounters) -> Self {
        Self { readings, ..self }
    }

    /// The store.
    pub fn store(&self) -> &TelemetryStore {
        &self.store
    }

    /// The site.
    pub fn site(&self) -> &SiteConfig {
        self.store.site()
    }

    /// Stores the readings of one call (PushReadings), idempotently under `request`.
    pub async fn push_readings<R>(
        &self,
        request: RequestFingerprint,
        readings: &[R],
        prepare: PrepareFn<R>,
    ) -> Result<IngestSummary, TelemetryError> {
        let prepared = prepare(
            &self.store.known_sensors(),
            &self.site().id,
            &[(0, readings)],
            self.store.now_millis(),
            domain::MAX_REJECTION_DETAILS,
        );
        let summary = self
            .store
            .ingest(Some((request, &IngestReply, &Refusals)), prepared)
            .await?;
        self.readings.record(&summary);
        Ok(summary)
    }

    /// Registers or re-registers a sensor: its profile's defaults come from its zone (which
    /// must be one of the site) or its reefer's temperature class.
    pub async fn register_sensor(
        &self,
        request: RequestFingerprint,
        sensor: SensorRequest,
        author: Author,
    ) -> Result<SensorView, TelemetryError> {
        let (default_min, default_max) = match &sensor.binding {
            Binding::Zone(zone_id) => {
                let zone = self.zone(zone_id)?;
                (Some(zone.min_celsius), zone.max_celsius)
            }
            Binding::Reefer(r) => class_limits(r.temperature_class).ok_or_else(|| {
                TelemetryRefusal::InvalidProfile(vec![(
                    "reefer.temperature_class".into(),
                    "is required".into(),
                )])
            })?,
        };
        let profile = domain::effective_profile(&sensor.profile, default_min, default_max)
            .map_err(TelemetryRefusal::InvalidProfile)?;
        let registration = Registration {
            sensor_id: sensor.sensor_id,
            binding: sensor.binding,
            profile,
            description: sensor.description,
            registered_by: author,
        };
        self.store
            .register_sensor((request, &SensorReply, &Refusals), registration)
            .await
    }

    /// A page of the site's sensors, as shown now.
    pub fn list_sensors(
        &self,
        filter: &SensorFilter,
        page: &Page,
    ) -> Result<(Vec<SensorView>, Option<Vec<u8>>), TelemetryError> {
        if !filter.zone_id.is_empty() {
            self.zone(&filter.zone_id)?;
        }
        let now = self.store.now_millis();
        let (sensors, last) =
            self.store
                .list_sensors(page.after.as_deref(), page.limit, |record, state| {
                    filter.matches(record, state, now)
                })?;
        let site = &self.site().id;
        let views = sensors
            .iter()
            .map(|(record, state)| SensorView::of(record, state, site, now))
            .collect();
        Ok((views, last))
    }

    /// min/max/mean/count per bucket of a range of a sensor's readings.
    pub fn query_readings(&self, query: &ReadingsQuery) -> Result<QueryResult, TelemetryError> {
        self.sensor(&query.sensor_id)?;
        Ok(self
            .store
            .query_readings(&query.sensor_id, query.start, query.end, query.bucket_ms)?)
    }

    /// The MKT of a range of a sensor's readings (a gap longer than the sensor's offline
    /// period holds its last reading only that long).
    pub fn mean_kinetic_temperature(&self, query: &MktQuery) -> Result<MktResult, TelemetryError> {
        let (record, _) = self.sensor(&query.sensor_id)?;
        self.store.mean_kinetic_temperature(
            &query.sensor_id,
            query.start,
            query.end,
            query.activation_energy,
            record.profile.offline_after_ms,
        )
    }

    /// GetExposure: what a sensor saw over a range against its profile's limits, its
    /// readings weighed as for the MKT; no figures for a range without readings.
    pub fn exposure(
        &self,
        query: &ExposureQuery,
    ) -> Result<(SensorRecord, Option<ExposureFigures>), TelemetryError> {
        let (record, _) = self.sensor(&query.sensor_id)?;
        let figures = self.store.exposure(
            &query.sensor_id,
            query.start,
            query.end,
            &record.profile.limits(),
            record.profile.offline_after_ms,
        )?;
        Ok((record, figures))
    }

    /// A page of the site's alarms, newest first.
    pub fn list_alarms(
        &self,
        filter: &AlarmFilter,
        page: &Page,
    ) -> Result<(Vec<AlarmView>, Option<Vec<u8>>), TelemetryError> {
        if !filter.zone_id.is_empty() {
            self.zone(&filter.zone_id)?;
        }
        if !filter.sensor_id.is_empty() {
            self.sensor(&filter.sensor_id)?;
        }
        let (alarms, last) = self
            .store
            .list_alarms(filter, page.after.as_deref(), page.limit)?;
        let site = &self.site().id;
        Ok((alarms.iter().map(|a| a.view(site)).collect(), last))
    }

    /// Acknowledges an alarm, idempotently under `request`.
    pub async fn acknowledge_alarm(
        &self,
        request: RequestFingerprint,
        ack: Acknowledgement,
        author: Author,
    ) -> Result<AlarmView, TelemetryError> {
        self.store
            .acknowledge(
                (request, &AlarmReply, &Refusals),
                ack.alarm_id,
                author,
                ack.note,
            )
            .await
    }

    /// Raises or refreshes SENSOR_OFFLINE alarms as of `now_ms`; how many changed.
    pub async fn check_offline(&self, now_ms: i64) -> Result<usize, TelemetryError> {
        self.store.check_offline(now_ms).await
    }

    /// Runs the offline check until shutdown: when the next sensor turns OFFLINE (or an
    /// open alarm is due for its refresh), by `clock`, but no sooner than
    /// `OFFLINE_CHECK_GAP` after the previous check, and at least every `interval` (a
    /// re-registration may shorten a sensor's offline period). The alarm is so raised when
    /// the status turns; were it raised later, it would still start at that instant.
    pub async fn run_offline_checks(self, interval: Duration, clock: SharedClock) {
        loop {
            let wait = match self.store.next_offline_check() {
                Ok(Some(due)) => {
                    let left = due.saturating_sub(clock.now_millis()).max(0);
                    interval
                        .min(Duration::from_millis(left.unsigned_abs()))
                        .max(OFFLINE_CHECK_GAP)
                }
                Ok(None) => interval,
                Err(error) => {
                    tracing::warn!(%error, "offline check could not read the sensors");
                    interval
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.wait() => return,
            }
            if let Err(error) = self.check_offline(clock.now_millis()).await {
                tracing::warn!(%error, "offline check failed");
                // A failing store is not retried in a busy loop.
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = self.shutdown.wait() => return,
                }
            }
        }
    }

    fn zone(&self, zone_id: &str) -> Result<&coldchain_network::ZoneConfig, TelemetryRefusal> {
        self.site()
            .zone(zone_id)
            .ok_or_else(|| TelemetryRefusal::UnknownZone {
                zone_id: zone_id.to_string(),
                site_id: self.site().id.clone(),
            })
    }

    fn sensor(&self, sensor_id: &str) -> Result<(SensorRecord, SensorState), TelemetryError> {
        self.store.sensor(sensor_id)?.ok_or_else(|| {
            TelemetryRefusal::UnknownSensor {
                sensor_id: sensor_id.to_string(),
                site_id: self.site().id.clone(),
            }
            .into()
        })
    }
}
