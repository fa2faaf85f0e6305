//! Domain gauges read from a service's store: stock per zone, pallets per zone for today,
//! active alarms, sensors offline, an outbox's backlog, transfers per state, reachability.
//!
//! A service hands [`spawn`] a function that reads its state and reports each value into a
//! [`Sample`]; the sampler runs it every `interval` while metrics are on and sets the
//! gauges. A series reported by an earlier sample and not by this one is set to 0 (an
//! alarm kind no longer active, a transfer state no longer held): a gauge never keeps a
//! value that stopped being true. Sampling reads what the state holds now (a scan of a
//! site's positions, its sensors, its outbox): its cost is paid every interval, not on the
//! request path.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::ServiceLabels;
use crate::Shutdown;

/// One series of a sample: its name and its labels besides `site` and `service`.
type SeriesKey = (&'static str, Vec<(&'static str, String)>);

/// The values one pass of a sampler reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sample {
    values: BTreeMap<SeriesKey, f64>,
}

impl Sample {
    /// Sets series `name` with `labels` to `value` (the last report of a series wins).
    pub fn set(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.values.insert((name, labels), value);
    }

    /// Adds `value` to series `name` with `labels` (from 0).
    pub fn add(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        *self.values.entry((name, labels)).or_default() += value;
    }

    /// The value reported for `name` with `labels`, if any.
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let labels: Vec<_> = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.values.get(&(name, labels)).copied()
    }
}

/// Sets the gauges of successive samples, zeroing the series a sample no longer reports.
pub struct Gauges {
    labels: ServiceLabels,
    reported: BTreeSet<SeriesKey>,
}

impl Gauges {
    /// Gauges of the instance `labels` names.
    pub fn new(labels: ServiceLabels) -> Self {
        Self {
            labels,
            reported: BTreeSet::new(),
        }
    }

    /// Sets every series of `sample`, and 0 for those an earlier one reported and it does
    /// not.
    pub fn record(&mut self, sample: Sample) {
        for ((name, labels), value) in self.settings(sample) {
            self.labels.gauge(name, &labels).set(value);
        }
    }

    /// The values to set for `sample`: its own, and 0 for the series it no longer reports.
    fn settings(&mut self, sample: Sample) -> Vec<(SeriesKey, f64)> {
        let mut settings: Vec<(SeriesKey, f64)> = self
            .reported
            .iter()
            .filter(|key| !sample.values.contains_key(*key))
            .map(|key| (key.clone(), 0.0))
            .collect();
        self.reported = sample.values.keys().cloned().collect();
        settings.extend(sample.values);
        settings
    }
}

/// A sampler's read of its service's state.
pub type SampleFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Sample, String>> + Send>> + Send + Sync>;

/// A sampler of reads that block (scans of the store), run on the blocking pool so that a
/// long scan never holds up the server's workers.
pub fn blocking(read: impl Fn() -> Result<Sample, String> + Send + Sync + 'static) -> SampleFn {
    let read = Arc::new(read);
    Arc::new(move || {
        let read = read.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read())
                .await
                .map_err(|e| format!("the sampling task failed: {e}"))?
        })
    })
}

/// Runs `sample` every `interval` until `shutdown`, when metrics are on (nothing when they
/// are off: no recorder, no reads). A failed read is logged and its series keep their
/// last values until the next pass.
pub fn spawn(
    labels: ServiceLabels,
    interval: Duration,
    shutdown: Shutdown,
    sample: SampleFn,
) -> Option<tokio::task::JoinHandle<()>> {
    if !super::enabled() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut gauges = Gauges::new(labels);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            match sample().await {
                Ok(values) => gauges.record(values),
                Err(error) => tracing::warn!(%error, "sampling domain metrics failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_adds_and_sets_per_series() {
        let mut sample = Sample::default();
        sample.add("m", &[("zone", "a")], 2.0);
        sample.add("m", &[("zone", "a")], 3.0);
        sample.set("m", &[("zone", "b")], 7.0);
        sample.set("m", &[("zone", "b")], 1.0);
        assert_eq!(sample.get("m", &[("zone", "a")]), Some(5.0));
        assert_eq!(sample.get("m", &[("zone", "b")]), Some(1.0));
        assert_eq!(sample.get("m", &[("zone", "c")]), None);
    }

    #[test]
    fn a_series_no_longer_reported_is_zeroed() {
        let mut gauges = Gauges::new(ServiceLabels::new("la-vientiane", "telemetry"));
        let mut first = Sample::default();
        first.set("alarms", &[("kind", "excursion_high")], 2.0);
        first.set("alarms", &[("kind", "sensor_offline")], 1.0);
        assert_eq!(gauges.settings(first).len(), 2);
        let mut second = Sample::default();
        second.set("alarms", &[("kind", "sensor_offline")], 3.0);
        let kind = |value: &str| ("alarms", vec![("kind", value.to_string())]);
        assert_eq!(
            gauges.settings(second),
            vec![(kind("excursion_high"), 0.0), (kind("sensor_offline"), 3.0)]
        );
        // Zeroed once: a series not reported twice is not set again.
        assert_eq!(
            gauges.settings(Sample::default()),
            vec![(kind("sensor_offline"), 0.0)]
        );
        assert!(gauges.settings(Sample::default()).is_empty());
    }
}
