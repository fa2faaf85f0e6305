//! The telemetry service's domain series (`coldchain_runtime::observe::domain`): active
//! alarms, the age of the oldest unacknowledged one, sensors offline and the hold outbox,
//! sampled from the store; readings by outcome, counted as calls store them.

use coldchain_runtime::observe::ServiceLabels;
use coldchain_runtime::observe::domain::{
    ALARM_UNACKNOWLEDGED_AGE, ALARMS_ACTIVE, OUTBOX_OLDEST_AGE, OUTBOX_PENDING, READINGS,
    SENSORS_OFFLINE,
};
use coldchain_runtime::observe::sampler::Sample;

use super::TelemetryApp;
use crate::domain::alarm::AlarmKind;
use crate::domain::{IngestSummary, SensorStatus};

/// The `zone` label of a sensor or alarm bound to a reefer rather than a zone.
const REEFER: &str = "reefer";

impl TelemetryApp {
    /// The alarms, sensors and outbox of the site now. Every zone of the site (and
    /// `reefer`) reports its sensors offline and its alarm ages, as 0 when none.
    pub fn sample(&self) -> Result<Sample, String> {
        let store = self.store();
        let now = store.now_millis();
        let mut sample = Sample::default();
        let zones = store.site().zones.iter().map(|z| z.id.as_str());
        for zone in zones.chain([REEFER]) {
            sample.set(SENSORS_OFFLINE, &[("zone", zone)], 0.0);
            for kind in ["excursion", "offline"] {
                sample.set(
                    ALARM_UNACKNOWLEDGED_AGE,
                    &[("zone", zone), ("kind", kind)],
                    0.0,
                );
            }
        }
        let (sensors, _) = store
            .list_sensors(None, usize::MAX, |_, _| true)
            .map_err(|e| e.to_string())?;
        for (record, state) in sensors {
            let zone = record.binding.zone().unwrap_or(REEFER);
            if state.status(&record.profile, record.registered_at, now) == SensorStatus::Offline {
                sample.add(SENSORS_OFFLINE, &[("zone", zone)], 1.0);
            }
            for alarm_id in [&state.offline_alarm, &state.excursion_alarm]
                .into_iter()
                .flatten()
            {
                let Some(alarm) = store.alarm(alarm_id).map_err(|e| e.to_string())? else {
                    continue;
                };
                if !alarm.is_active() {
                    continue;
                }
                let acknowledged = if alarm.ack.is_some() { "true" } else { "false" };
                let kind = kind_name(alarm.kind);
                let labels = [
                    ("zone", zone),
                    ("kind", kind),
                    ("acknowledged", acknowledged),
                ];
                sample.add(ALARMS_ACTIVE, &labels, 1.0);
                if alarm.ack.is_none() {
                    let group = match alarm.kind {
                        AlarmKind::SensorOffline => "offline",
                        AlarmKind::ExcursionHigh | AlarmKind::ExcursionLow => "excursion",
                    };
                    let labels = [("zone", zone), ("kind", group)];
                    let age = seconds(now.saturating_sub(alarm.started_at));
                    let oldest = sample.get(ALARM_UNACKNOWLEDGED_AGE, &labels).unwrap_or(0.0);
                    sample.set(ALARM_UNACKNOWLEDGED_AGE, &labels, oldest.max(age));
                }
            }
        }
        let outbox = store.outbox().map_err(|e| e.to_string())?;
        let oldest = outbox.iter().map(|entry| entry.created_at).min();
        #[allow(clippy::cast_precision_loss)] // an outbox never nears 2^53 entries
        let pending = outbox.len() as f64;
        sample.set(OUTBOX_PENDING, &[("outbox", "holds")], pending);
        let age = oldest.map_or(0.0, |created| seconds(now.saturating_sub(created)));
        sample.set(OUTBOX_OLDEST_AGE, &[("outbox", "holds")], age);
        Ok(sample)
    }
}

/// An alarm kind as a label value.
fn kind_name(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::ExcursionHigh => "excursion_high",
        AlarmKind::ExcursionLow => "excursion_low",
        AlarmKind::SensorOffline => "sensor_offline",
    }
}

fn seconds(ms: i64) -> f64 {
    // Ages are far below 2^53 ms.
    #[allow(clippy::cast_precision_loss)]
    let ms = ms.max(0) as f64;
    ms / 1000.0
}

/// Counts the readings calls store, by outcome (a no-op while metrics are off).
#[derive(Clone, Default)]
pub struct ReadingCounters {
    labels: Option<ServiceLabels>,
}

impl ReadingCounters {
    /// Counters of the instance `labels` names.
    pub fn new(labels: ServiceLabels) -> Self {
        Self {
            labels: Some(labels),
        }
    }

    /// Counts one write's readings: accepted, duplicates, and rejected by the reason its
    /// details name (`unlisted` for those past the details a call keeps).
    pub fn record(&self, summary: &IngestSummary) {
        let Some(labels) = &self.labels else {
            return;
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let outcome = |name: &str| vec![("outcome", name.to_string())];
        labels
            .counter(READINGS, &outcome("accepted"))
            .increment(count(summary.accepted));
        labels
            .counter(READINGS, &outcome("duplicate"))
            .increment(count(summary.duplicates));
        let mut listed = 0;
        for rejection in &summary.rejections {
            listed += 1;
            labels
                .counter(
                    READINGS,
                    &[
                        ("outcome", "rejected".to_string()),
                        ("reason", rejection.reason.name().to_string()),
                    ],
                )
                .increment(1);
        }
        let unlisted = summary.rejected.saturating_sub(listed);
        if unlisted > 0 {
            labels
                .counter(
                    READINGS,
                    &[
                        ("outcome", "rejected".to_string()),
                        ("reason", "unlisted".to_string()),
                    ],
                )
                .increment(count(unlisted));
        }
    }
}
