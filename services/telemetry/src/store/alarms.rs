//! Alarms: the offline check, reads and filters, acknowledgement, the hold outbox, and how
//! a write records an alarm and its event in the feed.

use coldchain_audit::Author;
use coldchain_store::{Idempotent, KeyCodec, Store, StoreError, WriteTx};

use super::tables::{
    ALARMS, BY_SENSOR, BY_TIME, META, NEXT_ALARM, OUTBOX, OutboxEntry, SENSOR_STATE, SENSORS,
};
use super::{EncodeAlarmEvent, Idempotency, TelemetryError, TelemetryStore, spawned};
use crate::domain::alarm::{AlarmChange, AlarmEvent, AlarmRecord, AlarmView, HoldStatus};
use crate::domain::{AlarmFilter, SensorRecord, SensorState, TelemetryRefusal};

impl TelemetryStore {
    /// Raises SENSOR_OFFLINE alarms for sensors silent (by `now_ms`) for longer than their
    /// offline period, and refreshes the ones already raised (at most once per period).
    /// Returns how many alarms were raised or refreshed.
    pub async fn check_offline(&self, now_ms: i64) -> Result<usize, TelemetryError> {
        let mut candidates = Vec::new();
        for entry in self.store.scan_prefix(&SENSORS, &[]) {
            let (id, record) = entry?;
            let state = self.store.get(&SENSOR_STATE, &id)?.unwrap_or_default();
            if offline_due(&self.store, &record, &state, now_ms)? {
                candidates.push(id);
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        self.write_alarms(None, move |tx, feed| {
            let mut changed = 0usize;
            for id in &candidates {
                let Some(record) = tx.get(&SENSORS, id)? else {
                    continue;
                };
                let mut state = tx.get(&SENSOR_STATE, id)?.unwrap_or_default();
                if !state.is_silent(&record.profile, record.registered_at, now_ms) {
                    continue;
                }
                let open = match &state.offline_alarm {
                    Some(alarm_id) => tx.get(&ALARMS, alarm_id)?.filter(|a| a.is_active()),
                    None => None,
                };
                match open {
                    Some(mut alarm) => {
                        if now_ms.saturating_sub(alarm.last_seen_at)
                            < record.profile.offline_after_ms
                        {
                            continue;
                        }
                        alarm.last_seen_at = now_ms;
                        alarm.last_at = now_ms;
                        feed.emit(tx, AlarmChange::Updated, &mut alarm);
                        tx.put(&ALARMS, &alarm.alarm_id, &alarm)?;
                    }
                    None => {
                        let alarm_id = next_alarm_id(tx)?;
                        let since = state.offline_at(&record.profile, record.registered_at);
                        let mut alarm = AlarmRecord::offline(
                            alarm_id.clone(),
                            id.clone(),
                            record.binding.clone(),
                            since,
                            now_ms,
                        );
                        feed.emit_new(tx, &mut alarm);
                        put_alarm(tx, &alarm, None)?;
                        state.offline_alarm = Some(alarm_id);
                        tx.put(&SENSOR_STATE, id, &state)?;
                    }
                }
                changed += 1;
            }
            Ok(changed)
        })
        .await
    }

    /// When the offline check next has something to do: the earliest instant a sensor
    /// without an open SENSOR_OFFLINE alarm turns OFFLINE, or an open one is due for its
    /// refresh. `None` without sensors.
    pub fn next_offline_check(&self) -> Result<Option<i64>, StoreError> {
        let mut next: Option<i64> = None;
        for entry in self.store.scan_prefix(&SENSORS, &[]) {
            let (id, record) = entry?;
            let state = self.store.get(&SENSOR_STATE, &id)?.unwrap_or_default();
            let open = match &state.offline_alarm {
                Some(alarm_id) => self.store.get(&ALARMS, alarm_id)?.filter(|a| a.is_active()),
                None => None,
            };
            let due = match open {
                Some(alarm) => alarm
                    .last_seen_at
                    .saturating_add(record.profile.offline_after_ms),
                None => state
                    .offline_at(&record.profile, record.registered_at)
                    .saturating_add(1),
            };
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        Ok(next)
    }

    /// One alarm.
    pub fn alarm(&self, alarm_id: &str) -> Result<Option<AlarmRecord>, StoreError> {
        self.store.get(&ALARMS, &alarm_id.to_string())
    }

    /// Alarms newest first (then by id) after `after` (a relative key of the time index),
    /// filtered, at most `limit`, and the key to continue from if there may be more.
    pub fn list_alarms(
        &self,
        filter: &AlarmFilter,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<AlarmRecord>, Option<Vec<u8>>), StoreError> {
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in self.store.scan_after(&BY_TIME, &[], after) {
            let (key, ()) = entry?;
            let Some(alarm) = self.store.get(&ALARMS, &key.1)? else {
                continue;
            };
            if !filter.matches(&alarm) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(KeyCodec::encode(&key));
            out.push(alarm);
        }
        Ok((out, None))
    }

    /// Acknowledges an alarm; the answer is the alarm as shown after it.
    pub async fn acknowledge(
        &self,
        idempotency: Idempotency<AlarmView>,
        alarm_id: String,
        by: Author,
        note: String,
    ) -> Result<AlarmView, TelemetryError> {
        self.write_alarms(Some(idempotency), move |tx, feed| {
            let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)? else {
                return Err(TelemetryRefusal::UnknownAlarm {
                    alarm_id,
                    site_id: feed.site_id.to_string(),
                }
                .into());
            };
            let now = tx.now_millis();
            if let Err(state) = alarm.acknowledge(&by, &note, now) {
                return Err(TelemetryRefusal::AlreadyAcknowledged { alarm_id, state }.into());
            }
            feed.emit(tx, AlarmChange::Acknowledged, &mut alarm);
            tx.put(&ALARMS, &alarm_id, &alarm)?;
            Ok(alarm.view(feed.site_id))
        })
        .await
    }

    /// Holds waiting to be placed, oldest alarm first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for entry in self.store.scan_prefix(&OUTBOX, &[]) {
            out.push(entry?.1);
        }
        Ok(out)
    }

    /// The hold of an alarm was placed: PLACED with its ids, the outbox entry removed.
    pub async fn hold_placed(
        &self,
        alarm_id: String,
        hold_ids: Vec<String>,
    ) -> Result<(), TelemetryError> {
        self.finish_hold(alarm_id, HoldStatus::Placed, hold_ids, String::new())
            .await
    }

    /// No hold is needed after all (e.g. the transfer failed and nothing moved).
    pub async fn hold_not_required(
        &self,
        alarm_id: String,
        why: String,
    ) -> Result<(), TelemetryError> {
        self.finish_hold(alarm_id, HoldStatus::NotRequired, Vec::new(), why)
            .await
    }

    async fn finish_hold(
        &self,
        alarm_id: String,
        status: HoldStatus,
        hold_ids: Vec<String>,
        note: String,
    ) -> Result<(), TelemetryError> {
        self.write_alarms(None, move |tx, feed| {
            if tx.get(&OUTBOX, &alarm_id)?.is_none() {
                return Ok(());
            }
            tx.delete(&OUTBOX, &alarm_id);
            if let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)? {
                alarm.hold.status = status;
                alarm.hold.hold_ids = hold_ids;
                alarm.hold.last_error = note;
                feed.emit(tx, AlarmChange::HoldChanged, &mut alarm);
                tx.put(&ALARMS, &alarm_id, &alarm)?;
            }
            Ok(())
        })
        .await
    }

    /// Records the latest error of a pending hold (an event only when it changed).
    pub async fn hold_failed(&self, alarm_id: String, error: String) -> Result<(), TelemetryError> {
        match self.alarm(&alarm_id)? {
            Some(alarm)
                if alarm.hold.status == HoldStatus::Pending && alarm.hold.last_error != error => {}
            _ => return Ok(()),
        }
        self.write_alarms(None, move |tx, feed| {
            if let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)?
                && alarm.hold.status == HoldStatus::Pending
                && alarm.hold.last_error != error
            {
                alarm.hold.last_error = error;
                feed.emit(tx, AlarmChange::HoldChanged, &mut alarm);
                tx.put(&ALARMS, &alarm_id, &alarm)?;
            }
            Ok(())
        })
        .await
    }

    /// Runs `work` as one write of the store, on a task of its own (see `spawned`), with
    /// the site's feed to record alarm changes in; with `idempotency`, a request seen
    /// before gets its first answer back instead.
    async fn write_alarms<T: Send + 'static>(
        &self,
        idempotency: Option<Idempotency<T>>,
        work: impl FnOnce(&mut WriteTx<'_>, Feed<'_>) -> Result<T, TelemetryError> + Send + 'static,
    ) -> Result<T, TelemetryError> {
        let store = self.store.clone();
        let site = self.site.clone();
        let encode = self.encode_event;
        spawned(async move {
            let idempotent = idempotency
                .as_ref()
                .map(|(request, codec, refusals)| Idempotent::new(request, *codec, *refusals));
            store
                .write(idempotent, move |tx| {
                    work(
                        tx,
                        Feed {
                            site_id: &site.id,
                            encode,
                        },
                    )
                })
                .await
                .map(|written| written.value)
                .map_err(TelemetryError::from)
        })
        .await
    }
}

fn offline_due(
    store: &Store,
    record: &SensorRecord,
    state: &SensorState,
    now_ms: i64,
) -> Result<bool, StoreError> {
    if !state.is_silent(&record.profile, record.registered_at, now_ms) {
        return Ok(false);
    }
    let open = match &state.offline_alarm {
        Some(alarm_id) => store.get(&ALARMS, alarm_id)?.filter(|a| a.is_active()),
        None => None,
    };
    Ok(match open {
        None => true,
        Some(alarm) => now_ms.saturating_sub(alarm.last_seen_at) >= record.profile.offline_after_ms,
    })
}

/// Allocates the next alarm id: `alm-00000001`, …
pub(super) fn next_alarm_id(tx: &mut WriteTx<'_>) -> Result<String, StoreError> {
    let key = NEXT_ALARM.to_string();
    let next = tx.get(&META, &key)?.unwrap_or(1);
    tx.put(&META, &key, &(next + 1))?;
    Ok(format!("alm-{next:08}"))
}

/// Where a write records alarm changes: the site's feed, encoded as handed to the store.
#[derive(Clone, Copy)]
pub(super) struct Feed<'a> {
    /// The site the alarms are shown at.
    pub(super) site_id: &'a str,
    /// The feed's encoding.
    pub(super) encode: EncodeAlarmEvent,
}

impl Feed<'_> {
    /// Appends the events of a new alarm (RAISED, then CLEARED if it already ended: see
    /// `AlarmRecord::raise_steps`).
    pub(super) fn emit_new(self, tx: &mut WriteTx<'_>, alarm: &mut AlarmRecord) {
        for (change, mut shown) in alarm.raise_steps() {
            self.emit(tx, change, &mut shown);
            alarm.last_event_at = shown.last_event_at;
        }
    }

    /// Appends the alarm's event to the feed.
    pub(super) fn emit(self, tx: &mut WriteTx<'_>, change: AlarmChange, alarm: &mut AlarmRecord) {
        let now = tx.now_millis();
        alarm.last_event_at = now;
        let view = alarm.view(self.site_id);
        let encode = self.encode;
        tx.append_ledger(|sequence| {
            encode(AlarmEvent {
                sequence,
                recorded_at: now,
                change,
                alarm: view,
            })
        });
    }
}

/// Stores an alarm and its index entries (moving them if its start changed).
pub(super) fn put_alarm(
    tx: &mut WriteTx<'_>,
    alarm: &AlarmRecord,
    old_start: Option<i64>,
) -> Result<(), StoreError> {
    if let Some(old) = old_start
        && old != alarm.started_at
    {
        tx.delete(&BY_TIME, &(old.saturating_neg(), alarm.alarm_id.clone()));
        tx.delete(
            &BY_SENSOR,
            &(alarm.sensor_id.clone(), old, alarm.alarm_id.clone()),
        );
    }
    tx.put(&ALARMS, &alarm.alarm_id, alarm)?;
    tx.put(
        &BY_TIME,
        &(alarm.started_at.saturating_neg(), alarm.alarm_id.clone()),
        &(),
    )?;
    tx.put(
        &BY_SENSOR,
        &(
            alarm.sensor_id.clone(),
            alarm.started_at,
            alarm.alarm_id.clone(),
        ),
        &(),
    )?;
    Ok(())
}
