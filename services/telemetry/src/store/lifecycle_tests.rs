//! Property tests of the alarm lifecycle through the store's writes (the rules of
//! detection, reconciliation and the offline check, as one write applies them): the same
//! readings give the same lifecycle events per alarm however they are batched, and every
//! alarm goes through each step of its life in the feed (RAISED showing it active, then
//! CLEARED); only figure updates (UPDATED) may be coalesced.

use std::collections::BTreeMap;
use std::sync::Arc;

use coldchain_store::{Clock, Identity, ManualClock, Store, StoreOptions};
use proptest::prelude::*;

use super::TelemetryStore;
use super::tables::{ALARMS, SENSORS};
use crate::domain::alarm::{AlarmEvent, AlarmKind, AlarmRecord};
use crate::domain::codec::Sample;
use crate::domain::{Binding, Prepared, Profile, SensorRecord, SensorStatus};

const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

/// One feed event as the test reads it back: (alarm, change, shown state, started_at,
/// cleared_at).
type Shown = (String, String, String, i64, Option<i64>);

fn encode(event: AlarmEvent) -> Vec<u8> {
    let alarm = event.alarm;
    format!(
        "{}|{:?}|{:?}|{}|{}",
        alarm.alarm_id,
        event.change,
        alarm.state,
        alarm.started_at,
        alarm.cleared_at.map_or("-".to_string(), |c| c.to_string()),
    )
    .into_bytes()
}

fn decode(bytes: &[u8]) -> Shown {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let parts: Vec<&str> = text.split('|').collect();
    (
        parts[0].to_string(),
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].parse().unwrap(),
        parts[4].parse().ok(),
    )
}

struct Harness {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: TelemetryStore,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let identity = Identity {
            site: "cn-huaihua-park".into(),
            service: "telemetry".into(),
        };
        let options = StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        };
        let raw = Store::open(dir.path(), &identity, options).unwrap();
        let site = coldchain_testkit::server::shipped_network()
            .site("cn-huaihua-park")
            .unwrap()
            .clone();
        let store = TelemetryStore::new(raw, site, encode).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            _dir: dir,
            clock,
            store,
            runtime,
        }
    }

    /// Registers a loose reefer sensor (no hold) with these limits, now.
    fn register(
        &self,
        sensor_id: &str,
        min_excursion_ms: i64,
        offline_after_ms: i64,
    ) -> Arc<SensorRecord> {
        let record = SensorRecord {
            sensor_id: sensor_id.into(),
            binding: Binding::Reefer(crate::domain::Reefer {
                container_id: "C1".into(),
                train_or_route: String::new(),
                transfer_id: String::new(),
                temperature_class: 2,
            }),
            profile: Profile {
                min_celsius: Some(0.0),
                max_celsius: 4.0,
                min_excursion_ms,
                offline_after_ms,
                hysteresis_celsius: 0.5,
            },
            description: String::new(),
            registered_at: self.clock.now_millis(),
            updated_at: self.clock.now_millis(),
            registered_by: coldchain_audit::Author::unknown(),
        };
        let stored = record.clone();
        self.runtime
            .block_on(
                self.store
                    .raw()
                    .write::<(), super::TelemetryError, _>(None, move |tx| {
                        tx.put(&SENSORS, &stored.sensor_id.clone(), &stored)?;
                        Ok(())
                    }),
            )
            .unwrap();
        Arc::new(record)
    }

    /// One write of `samples` (any order, as a call would bring them).
    fn push(&self, sensor: &Arc<SensorRecord>, samples: &[Sample]) {
        let mut prepared = Prepared {
            groups: vec![(sensor.clone(), samples.to_vec())],
            rejections: Vec::new(),
            rejected: 0,
            duplicates: 0,
        };
        prepared.sort_and_dedup();
        self.runtime
            .block_on(self.store.ingest(None, prepared))
            .unwrap();
    }

    fn check_offline(&self) {
        self.runtime
            .block_on(self.store.check_offline(self.clock.now_millis()))
            .unwrap();
    }

    /// Every feed event of the sensor's alarms, in feed order.
    fn events(&self, sensor_id: &str) -> Vec<Shown> {
        let ids: Vec<String> = self
            .alarms(sensor_id)
            .into_iter()
            .map(|a| a.alarm_id)
            .collect();
        self.store
            .raw()
            .ledger_from(1, usize::MAX)
            .unwrap()
            .iter()
            .map(|record| decode(&record.bytes))
            .filter(|event| ids.contains(&event.0))
            .collect()
    }

    fn alarms(&self, sensor_id: &str) -> Vec<AlarmRecord> {
        self.store
            .raw()
            .scan_prefix(&ALARMS, &[])
            .map(|entry| entry.unwrap().1)
            .filter(|a| a.sensor_id == sensor_id)
            .collect()
    }
}

/// Per alarm, its lifecycle steps with the state each shows, UPDATED left out (figure
/// updates may be coalesced); keyed by the alarm's id.
fn lifecycles(events: &[Shown]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (alarm_id, change, state, _, _) in events {
        let steps = out.entry(alarm_id.clone()).or_default();
        if change != "Updated" {
            steps.push((change.clone(), state.clone()));
        }
    }
    out
}

/// The alarms of a sensor as the rules define them: (kind, started_at, cleared_at,
/// last_seen_at, peak, twice_area), retracted ones aside, with their lifecycles.
type Outcome = Vec<(
    (AlarmKind, i64, Option<i64>, i64, i32, i128),
    Vec<(String, String)>,
)>;

fn outcome(harness: &Harness, sensor_id: &str) -> Outcome {
    let steps = lifecycles(&harness.events(sensor_id));
    let mut out: Outcome = harness
        .alarms(sensor_id)
        .into_iter()
        .filter(|a| !a.retracted)
        .map(|a| {
            (
                (
                    a.kind,
                    a.started_at,
                    a.cleared_at,
                    a.last_seen_at,
                    a.peak,
                    a.twice_area,
                ),
                steps.get(&a.alarm_id).cloned().unwrap_or_default(),
            )
        })
        .collect();
    out.sort_by_key(|(key, _)| key.1);
    out
}

/// Every alarm of the sensor went through its lifecycle in the feed: RAISED first,
/// showing it active; CLEARED at most once, last, showing it cleared, and present
/// exactly when the alarm is cleared.
fn assert_lifecycle_complete(harness: &Harness, sensor_id: &str) {
    let steps = lifecycles(&harness.events(sensor_id));
    for alarm in harness.alarms(sensor_id) {
        let shown = &steps[&alarm.alarm_id];
        assert_eq!(
            shown.first(),
            Some(&("Raised".to_string(), "ActiveUnack".to_string())),
            "{} begins with RAISED, active: {shown:?}",
            alarm.alarm_id
        );
        let expected_end = if alarm.is_active() { 1 } else { 2 };
        assert_eq!(shown.len(), expected_end, "{}: {shown:?}", alarm.alarm_id);
        if !alarm.is_active() {
            assert_eq!(
                shown[1],
                ("Cleared".to_string(), "ClearedUnack".to_string())
            );
        }
    }
}

/// Readings one minute apart (with a few seconds of jitter) around a CHILLED reefer's
/// limits, oldest first.
fn readings() -> impl Strategy<Value = Vec<Sample>> {
    prop::collection::vec(
        (
            0i64..20_000,
            prop::sample::select(vec![-150, 20, 200, 380, 420, 800]),
        ),
        1..40,
    )
    .prop_map(|points| {
        points
            .into_iter()
            .enumerate()
            .map(|(i, (jitter, value))| {
                Sample::new(T0 - 3 * 3_600_000 + i as i64 * MINUTE + jitter, value)
            })
            .collect()
    })
}

/// Cuts `samples` into consecutive batches at the given (sorted, deduplicated) points.
fn split(samples: &[Sample], cuts: &[usize]) -> Vec<Vec<Sample>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (samples.len() + 1)).collect();
    points.push(samples.len());
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for to in points {
        if to > from {
            out.push(samples[from..to].to_vec());
            from = to;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// In time order, any batching gives the same alarms with the same lifecycle steps as
    /// one write of everything (an excursion raised and cleared within one write included).
    #[test]
    fn the_same_readings_give_the_same_lifecycle_however_batched(
        samples in readings(),
        cuts in prop::collection::vec(0usize..64, 0..10),
        min_minutes in 0i64..4,
    ) {
        let harness = Harness::new();
        let whole = harness.register("whole", min_minutes * MINUTE, 7 * 24 * 3_600_000);
        let parts = harness.register("parts", min_minutes * MINUTE, 7 * 24 * 3_600_000);
        harness.push(&whole, &samples);
        for batch in split(&samples, &cuts) {
            harness.push(&parts, &batch);
        }
        assert_lifecycle_complete(&harness, "whole");
        assert_lifecycle_complete(&harness, "parts");
        prop_assert_eq!(outcome(&harness, "whole"), outcome(&harness, "parts"));
    }

    /// In any order and batching (late readings replay detection), every alarm still goes
    /// through each lifecycle step, and the alarms that stand (not retracted by late
    /// readings) are those of the readings in order.
    #[test]
    fn out_of_order_batches_skip_no_lifecycle_step(
        samples in readings(),
        order in any::<u64>(),
        cuts in prop::collection::vec(0usize..64, 0..10),
        min_minutes in 0i64..4,
    ) {
        let harness = Harness::new();
        let whole = harness.register("whole", min_minutes * MINUTE, 7 * 24 * 3_600_000);
        let shuffled_sensor = harness.register("shuffled", min_minutes * MINUTE, 7 * 24 * 3_600_000);
        harness.push(&whole, &samples);
        let mut shuffled = samples.clone();
        // A deterministic shuffle from the drawn seed (a Fisher–Yates with an LCG).
        let mut state = order;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from(state >> 33).unwrap() % (i + 1);
            shuffled.swap(i, j);
        }
        for batch in split(&shuffled, &cuts) {
            harness.push(&shuffled_sensor, &batch);
        }
        assert_lifecycle_complete(&harness, "shuffled");
        let standing = |o: Outcome| o.into_iter().map(|(key, _)| key).collect::<Vec<_>>();
        prop_assert_eq!(
            standing(outcome(&harness, "whole")),
            standing(outcome(&harness, "shuffled"))
        );
    }

    /// Offline: every period the status shows OFFLINE is one SENSOR_OFFLINE alarm that
    /// starts when the status turned and clears when the next reading arrived, RAISED then
    /// CLEARED, whether the offline check ran during it (once, often) or never.
    #[test]
    fn offline_periods_give_the_same_lifecycle_however_often_checked(
        steps in prop::collection::vec((0i64..4 * MINUTE, any::<bool>()), 1..30),
    ) {
        let harness = Harness::new();
        let offline_after = MINUTE;
        let sensor = harness.register("s1", 0, offline_after);
        let mut since = harness.clock.now_millis();
        let mut expected: Vec<(i64, Option<i64>)> = Vec::new();
        let mut checked_open = false;
        for (advance, write) in steps {
            harness.clock.set(harness.clock.now_millis() + advance);
            let now = harness.clock.now_millis();
            if write {
                harness.push(&sensor, &[Sample::new(now, 200)]);
                if now > since + offline_after {
                    expected.push((since + offline_after, Some(now)));
                }
                since = now;
                checked_open = false;
            } else {
                harness.check_offline();
                checked_open |= now > since + offline_after;
            }
        }
        if checked_open {
            expected.push((since + offline_after, None));
        }
        let alarms = harness.alarms("s1");
        let mut got: Vec<(i64, Option<i64>)> = alarms
            .iter()
            .map(|a| {
                assert_eq!(a.kind, AlarmKind::SensorOffline);
                (a.started_at, a.cleared_at)
            })
            .collect();
        got.sort_unstable();
        prop_assert_eq!(got, expected);
        assert_lifecycle_complete(&harness, "s1");
        // The alarm starts exactly when the status turned.
        let (record, state) = harness.store.sensor("s1").unwrap().unwrap();
        let turned = state.offline_at(&record.profile, record.registered_at);
        let status = |at: i64| state.status(&record.profile, record.registered_at, at);
        prop_assert_ne!(status(turned), SensorStatus::Offline);
        prop_assert_eq!(status(turned + 1), SensorStatus::Offline);
        // The check is next due when the status turns, or when the open alarm is refreshed.
        let open = alarms.iter().find(|a| a.is_active());
        if let Some(open) = open {
            prop_assert_eq!(open.started_at, turned);
        }
        let due = open.map_or(turned + 1, |a| a.last_seen_at + offline_after);
        prop_assert_eq!(harness.store.next_offline_check().unwrap(), Some(due));
    }
}
