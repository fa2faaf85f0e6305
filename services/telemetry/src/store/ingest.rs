//! Storing readings: one write per call merges each sensor's samples into its series,
//! runs detection, reconciles the sensor's alarms with what was detected, queues the holds
//! raised alarms require, and ends an offline alarm.

use coldchain_store::{Idempotent, Prefix, StoreError, WriteTx};

use super::alarms::{Feed, next_alarm_id, put_alarm};
use super::tables::{
    ALARMS, BY_SENSOR, Blob, HoldTarget, OUTBOX, OutboxEntry, PARTS, SENSOR_STATE, WINDOWS,
};
use super::{Idempotency, TelemetryError, TelemetryStore, spawned};
use crate::domain::alarm::{AlarmChange, AlarmKind, AlarmRecord, hold_actor};
use crate::domain::codec::Sample;
use crate::domain::detect::{AlarmSpan, ExcursionKind, Reconciled, reconcile};
use crate::domain::series::{self, SeriesAccess, WindowRecord, decode_row, encode_row};
use crate::domain::{Binding, IngestSummary, Prepared, SensorRecord, SensorState};

/// Figure updates of an ongoing alarm are recorded in the feed at most this often (unless
/// the peak or start moved); the stored alarm is always current.
pub const UPDATE_EVENT_INTERVAL_MS: i64 = 60_000;

impl TelemetryStore {
    /// Stores readings: one atomic, durable write for the whole call. With `request`, the
    /// call is idempotent (the summary is stored under its request_id).
    pub async fn ingest(
        &self,
        idempotency: Option<Idempotency<IngestSummary>>,
        prepared: Prepared,
    ) -> Result<IngestSummary, TelemetryError> {
        let store = self.store.clone();
        let site = self.site.clone();
        let encode = self.encode_event;
        let (summary, queued) = spawned(async move {
            let mut queued = false;
            let queued_ref = &mut queued;
            let written = store
                .write(
                    idempotency.as_ref().map(|(request, codec, refusals)| {
                        Idempotent::new(request, *codec, *refusals)
                    }),
                    move |tx| {
                        let feed = Feed {
                            site_id: &site.id,
                            encode,
                        };
                        let mut summary = IngestSummary {
                            accepted: 0,
                            duplicates: prepared.duplicates,
                            rejected: prepared.rejected,
                            rejections: prepared.rejections,
                        };
                        for (sensor, samples) in &prepared.groups {
                            let (accepted, duplicates) =
                                ingest_sensor(tx, feed, sensor, samples, queued_ref)?;
                            summary.accepted += accepted as i64;
                            summary.duplicates += duplicates as i64;
                        }
                        Ok::<_, TelemetryError>(summary)
                    },
                )
                .await
                .map_err(TelemetryError::from)?;
            Ok((written.value, queued))
        })
        .await?;
        if queued {
            self.outbox_signal.notify_one();
        }
        Ok(summary)
    }
}

/// Merges one sensor's samples of a batch: readings, detection, alarms, offline clearing.
fn ingest_sensor(
    tx: &mut WriteTx<'_>,
    feed: Feed<'_>,
    sensor: &SensorRecord,
    samples: &[Sample],
    queued: &mut bool,
) -> Result<(u64, u64), TelemetryError> {
    let sensor_id = sensor.sensor_id.as_str();
    let key = sensor.sensor_id.clone();
    if samples.is_empty() {
        return Ok((0, 0));
    }
    let mut state = tx.get(&SENSOR_STATE, &key)?.unwrap_or_default();
    let limits = sensor.profile.limits();
    let outcome = {
        let mut access = TxSeries {
            tx: &mut *tx,
            sensor: sensor_id,
            windows: None,
        };
        series::ingest(&mut access, &limits, &state.series, samples)?
    };
    let now = tx.now_millis();
    if !outcome.excursions.is_empty() || outcome.late {
        let active_before = state.series.detector.active().is_some();
        let affected = match &state.excursion_alarm {
            // In order: only the excursion in progress can be revised.
            Some(alarm_id) if !outcome.late && active_before => tx
                .get(&ALARMS, alarm_id)?
                .filter(|a| a.kind != AlarmKind::SensorOffline && !a.retracted)
                .into_iter()
                .collect(),
            None if !outcome.late && !active_before => Vec::new(),
            _ => alarms_started_in(tx, sensor_id, outcome.covered_from, outcome.covered_to)?,
        };
        let touched = reconcile_alarms(tx, feed, sensor, affected, &outcome, queued)?;
        if let Some(run) = outcome.state.detector.active()
            && let Some((_, _, alarm_id)) = touched
                .iter()
                .find(|(started_at, kind, _)| *started_at == run.started_at && *kind == run.kind)
        {
            state.excursion_alarm = Some(alarm_id.clone());
        }
    }
    if outcome.state.detector.active().is_none() {
        state.excursion_alarm = None;
    }
    end_silence(tx, feed, sensor, &mut state, now)?;
    state.last_arrival = Some(now);
    state.series = outcome.state;
    if let Some(newest) = outcome.newest {
        state.newest = Some(newest.into());
    }
    tx.put(&SENSOR_STATE, &key, &state)?;
    Ok((outcome.accepted, outcome.duplicates))
}

/// A reading arrived at `now`: the sensor's silence, if it had reached the offline period,
/// ends here. Its open SENSOR_OFFLINE alarm is cleared; a silence no offline check saw
/// (the status was OFFLINE, the check had not run yet) is raised and cleared in this write,
/// so every OFFLINE period of the status is an alarm with both lifecycle steps, starting
/// when the status turned, however often the check runs.
fn end_silence(
    tx: &mut WriteTx<'_>,
    feed: Feed<'_>,
    sensor: &SensorRecord,
    state: &mut SensorState,
    now: i64,
) -> Result<(), TelemetryError> {
    let open = match state.offline_alarm.take() {
        Some(alarm_id) => tx.get(&ALARMS, &alarm_id)?.filter(AlarmRecord::is_active),
        None => None,
    };
    if let Some(mut alarm) = open {
        if let Some(change) = alarm.clear_offline(now) {
            feed.emit(tx, change, &mut alarm);
            tx.put(&ALARMS, &alarm.alarm_id, &alarm)?;
        }
    } else if state.is_silent(&sensor.profile, sensor.registered_at, now) {
        let mut alarm = AlarmRecord::offline(
            next_alarm_id(tx)?,
            sensor.sensor_id.clone(),
            sensor.binding.clone(),
            state.offline_at(&sensor.profile, sensor.registered_at),
            now,
        );
        alarm.clear_offline(now);
        feed.emit_new(tx, &mut alarm);
        put_alarm(tx, &alarm, None)?;
    }
    Ok(())
}

/// Every live excursion alarm of a sensor that started in `[from, to)`, through the write
/// (so alarms staged by earlier writes are seen too).
fn alarms_started_in(
    tx: &WriteTx<'_>,
    sensor_id: &str,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<AlarmRecord>, StoreError> {
    let to = to.unwrap_or(i64::MAX);
    let prefix = Prefix::new().str(sensor_id);
    let mut records = Vec::new();
    for ((_, started_at, alarm_id), ()) in tx.scan_prefix(&BY_SENSOR, prefix.as_bytes())? {
        if started_at < from || started_at >= to {
            continue;
        }
        if let Some(alarm) = tx.get(&ALARMS, &alarm_id)?
            && alarm.kind != AlarmKind::SensorOffline
            && !alarm.retracted
        {
            records.push(alarm);
        }
    }
    Ok(records)
}

/// Applies detection's findings to the affected alarms; returns (started_at, side, id) of
/// every alarm updated or raised.
fn reconcile_alarms(
    tx: &mut WriteTx<'_>,
    feed: Feed<'_>,
    sensor: &SensorRecord,
    mut records: Vec<AlarmRecord>,
    outcome: &series::SeriesOutcome,
    queued: &mut bool,
) -> Result<Vec<(i64, ExcursionKind, String)>, TelemetryError> {
    let site_id = feed.site_id;
    let mut touched = Vec::new();
    records.sort_by(|a, b| (a.started_at, &a.alarm_id).cmp(&(b.started_at, &b.alarm_id)));
    let spans: Vec<AlarmSpan> = records
        .iter()
        .filter_map(|a| {
            Some(AlarmSpan {
                alarm_id: a.alarm_id.clone(),
                kind: a.kind.excursion()?,
                started_at: a.started_at,
                end: a.end(),
            })
        })
        .collect();
    let now = tx.now_millis();
    for action in reconcile(&spans, &outcome.excursions) {
        match action {
            Reconciled::Update {
                alarm_id,
                excursion,
            } => {
                let Some(alarm) = records.iter_mut().find(|a| a.alarm_id == alarm_id) else {
                    continue;
                };
                let old_start = alarm.started_at;
                let old_peak = alarm.peak;
                touched.push((excursion.started_at, excursion.kind, alarm_id.clone()));
                if let Some(change) = alarm.apply_excursion(&excursion) {
                    let significant = change != AlarmChange::Updated
                        || alarm.started_at != old_start
                        || alarm.peak != old_peak
                        || now.saturating_sub(alarm.last_event_at) >= UPDATE_EVENT_INTERVAL_MS;
                    if significant {
                        feed.emit(tx, change, alarm);
                    }
                    put_alarm(tx, alarm, Some(old_start))?;
                }
            }
            Reconciled::Raise(excursion) => {
                let alarm_id = next_alarm_id(tx)?;
                let target = match &sensor.binding {
                    Binding::Zone(zone_id) => Some(HoldTarget::Zone {
                        zone_id: zone_id.clone(),
                    }),
                    Binding::Reefer(reefer) if !reefer.transfer_id.is_empty() => {
                        Some(HoldTarget::TransferLots {
                            transfer_id: reefer.transfer_id.clone(),
                        })
                    }
                    Binding::Reefer(_) => None,
                };
                let mut alarm = AlarmRecord::excursion(
                    alarm_id.clone(),
                    sensor.sensor_id.clone(),
                    sensor.binding.clone(),
                    &excursion,
                    target.is_some(),
                    now,
                );
                feed.emit_new(tx, &mut alarm);
                put_alarm(tx, &alarm, None)?;
                touched.push((excursion.started_at, excursion.kind, alarm_id.clone()));
                if let Some(target) = target {
                    let side = match alarm.kind {
                        AlarmKind::ExcursionLow => "below",
                        _ => "above",
                    };
                    let place = match &sensor.binding {
                        Binding::Zone(zone_id) => format!("zone {zone_id}"),
                        Binding::Reefer(reefer) => format!(
                            "reefer {} on transfer {}",
                            reefer.container_id, reefer.transfer_id
                        ),
                    };
                    let entry = OutboxEntry {
                        reason: format!(
                            "temperature excursion {side} {:.2} °C in {place} (sensor {}, alarm {alarm_id})",
                            f64::from(alarm.limit) / 100.0,
                            sensor.sensor_id
                        ),
                        request_id: format!("telemetry:{site_id}:{alarm_id}:{now}"),
                        alarm_id: alarm_id.clone(),
                        target,
                        sensor_id: sensor.sensor_id.clone(),
                        created_at: now,
                        actor: hold_actor(&alarm_id),
                    };
                    tx.put(&OUTBOX, &alarm_id, &entry)?;
                    *queued = true;
                }
            }
            Reconciled::Retract { alarm_id } => {
                let Some(alarm) = records.iter_mut().find(|a| a.alarm_id == alarm_id) else {
                    continue;
                };
                if let Some(change) = alarm.retract() {
                    feed.emit(tx, change, alarm);
                    put_alarm(tx, alarm, None)?;
                }
            }
        }
    }
    Ok(touched)
}

/// A sensor's windows inside a write. Every read goes through the write, so it sees the
/// changes of earlier writes even when they are staged and not yet applied.
struct TxSeries<'t, 'a> {
    tx: &'t mut WriteTx<'a>,
    sensor: &'t str,
    /// The starts of the sensor's stored windows, listed on first need (late readings
    /// only); windows this write adds are known to the algorithm itself.
    windows: Option<Vec<i64>>,
}

fn decode_stored_row(bytes: &[u8]) -> Result<(WindowRecord, Vec<u8>), StoreError> {
    decode_row(bytes)
        .map(|(record, open)| (record, open.to_vec()))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl TxSeries<'_, '_> {
    fn stored_windows(&mut self) -> Result<&[i64], StoreError> {
        if self.windows.is_none() {
            let prefix = Prefix::new().str(self.sensor);
            let listed = self
                .tx
                .scan_prefix(&WINDOWS, prefix.as_bytes())?
                .into_iter()
                .map(|((_, window), _)| window)
                .collect();
            self.windows = Some(listed);
        }
        Ok(self.windows.as_deref().unwrap_or_default())
    }
}

impl SeriesAccess for TxSeries<'_, '_> {
    type Error = StoreError;

    fn window(&mut self, start: i64) -> Result<Option<(WindowRecord, Vec<u8>)>, StoreError> {
        match self.tx.get(&WINDOWS, &(self.sensor.to_string(), start))? {
            Some(blob) => decode_stored_row(&blob.0).map(Some),
            None => Ok(None),
        }
    }

    fn window_before(&mut self, start: i64) -> Result<Option<(i64, WindowRecord)>, StoreError> {
        let windows = self.stored_windows()?;
        let Some(&window) = windows.get(windows.partition_point(|w| *w < start).wrapping_sub(1))
        else {
            return Ok(None);
        };
        Ok(self.window(window)?.map(|(record, _)| (window, record)))
    }

    fn window_after(&mut self, start: i64) -> Result<Option<i64>, StoreError> {
        let windows = self.stored_windows()?;
        Ok(windows
            .get(windows.partition_point(|w| *w <= start))
            .copied())
    }

    fn part(&mut self, window: i64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .get(&PARTS, &(self.sensor.to_string(), window, index))?
            .map(|blob| blob.0))
    }

    fn put_part(&mut self, window: i64, index: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.tx.put(
            &PARTS,
            &(self.sensor.to_string(), window, index),
            &Blob(bytes),
        )
    }

    fn delete_part(&mut self, window: i64, index: u32) -> Result<(), StoreError> {
        self.tx
            .delete(&PARTS, &(self.sensor.to_string(), window, index));
        Ok(())
    }

    fn put_window(
        &mut self,
        start: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(), StoreError> {
        self.tx.put(
            &WINDOWS,
            &(self.sensor.to_string(), start),
            &Blob(encode_row(record, open)),
        )
    }
}
