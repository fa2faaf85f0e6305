//! A database as the build before authors (16ef299) wrote it opens, and its records show
//! who made them as far as they can: sensors registered by "unknown", acknowledgements by
//! principal "unknown" with their acknowledged_by as the actor, holds queued without an
//! actor (so that their retries send the request they first sent).

use coldchain_audit::Author;
use coldchain_store::{Identity, ManualClock, Store, StoreOptions, Table};
use serde::Serialize;

use super::TelemetryStore;
use super::tables::{ALARMS, HoldTarget, OutboxEntry};
use crate::domain::alarm::{Ack, AlarmEvent, AlarmKind, AlarmState, HoldInfo, HoldStatus};
use crate::domain::{Binding, Profile};

const T0: i64 = 1_767_225_600_000;

/// `SensorRecord` as 16ef299 stored it: the same fields in the same order.
#[derive(Serialize)]
struct SensorAsOf16ef299 {
    sensor_id: String,
    binding: Binding,
    profile: Profile,
    description: String,
    registered_at: i64,
    updated_at: i64,
}

/// `AlarmRecord` as 16ef299 stored it.
#[derive(Serialize)]
struct AlarmAsOf16ef299 {
    alarm_id: String,
    sensor_id: String,
    binding: Binding,
    kind: AlarmKind,
    started_at: i64,
    last_seen_at: i64,
    last_at: i64,
    cleared_at: Option<i64>,
    limit: i32,
    peak: i32,
    twice_area: i128,
    ack: Option<Ack>,
    hold: HoldInfo,
    retracted: bool,
    raised_at: i64,
    last_event_at: i64,
}

/// `OutboxEntry` as 16ef299 stored it.
#[derive(Serialize)]
struct OutboxAsOf16ef299 {
    alarm_id: String,
    request_id: String,
    target: HoldTarget,
    sensor_id: String,
    reason: String,
    created_at: i64,
}

const OLD_SENSORS: Table<String, SensorAsOf16ef299Stored> = Table::new("sensors");
const OLD_ALARMS: Table<String, AlarmAsOf16ef299Stored> = Table::new("alarms");
const OLD_OUTBOX: Table<String, OutboxAsOf16ef299Stored> = Table::new("outbox");

// The tables need values that also deserialize; these are only ever written here.
type SensorAsOf16ef299Stored = Written<SensorAsOf16ef299>;
type AlarmAsOf16ef299Stored = Written<AlarmAsOf16ef299>;
type OutboxAsOf16ef299Stored = Written<OutboxAsOf16ef299>;

/// A value written with postcard as the earlier build did; never read back.
struct Written<T>(T);

impl<T: Serialize> coldchain_store::Value for Written<T> {
    fn to_bytes(&self) -> Result<Vec<u8>, coldchain_store::StoreError> {
        postcard::to_allocvec(&self.0)
            .map_err(|e| coldchain_store::StoreError::Encode(e.to_string()))
    }
    fn from_bytes(_: &[u8]) -> Result<Self, coldchain_store::StoreError> {
        Err(coldchain_store::StoreError::Corrupt("written only".into()))
    }
}

fn no_feed(_: AlarmEvent) -> Vec<u8> {
    Vec::new()
}

fn alarm(alarm_id: &str, ack: Option<Ack>) -> AlarmAsOf16ef299 {
    AlarmAsOf16ef299 {
        alarm_id: alarm_id.into(),
        sensor_id: "probe-1".into(),
        binding: Binding::Zone("chilled-a".into()),
        kind: AlarmKind::ExcursionHigh,
        started_at: T0 - 600_000,
        last_seen_at: T0 - 300_000,
        last_at: T0 - 300_000,
        cleared_at: None,
        limit: 800,
        peak: 950,
        twice_area: 0,
        ack,
        hold: HoldInfo {
            status: HoldStatus::Pending,
            hold_ids: Vec::new(),
            last_error: String::new(),
        },
        retracted: false,
        raised_at: T0 - 600_000,
        last_event_at: T0 - 300_000,
    }
}

#[test]
fn records_of_the_build_before_authors_open_and_show_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        site: "cn-huaihua-park".into(),
        service: "telemetry".into(),
    };
    let options = StoreOptions {
        clock: ManualClock::at(T0),
        ..StoreOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let raw = Store::open(dir.path(), &identity, options.clone()).unwrap();
        runtime
            .block_on(raw.write::<(), coldchain_store::StoreError, _>(None, |tx| {
                let sensor = SensorAsOf16ef299 {
                    sensor_id: "probe-1".into(),
                    binding: Binding::Zone("chilled-a".into()),
                    profile: Profile {
                        min_celsius: Some(2.0),
                        max_celsius: 8.0,
                        min_excursion_ms: 300_000,
                        offline_after_ms: 900_000,
                        hysteresis_celsius: 0.5,
                    },
                    description: "door side".into(),
                    registered_at: T0 - 86_400_000,
                    updated_at: T0 - 3_600_000,
                };
                tx.put(&OLD_SENSORS, &"probe-1".to_string(), &Written(sensor))?;
                let acked = Ack {
                    by: "qa.duty".into(),
                    at: T0 - 60_000,
                    note: "door closed".into(),
                };
                tx.put(
                    &OLD_ALARMS,
                    &"alm-1".to_string(),
                    &Written(alarm("alm-1", Some(acked))),
                )?;
                tx.put(
                    &OLD_ALARMS,
                    &"alm-2".to_string(),
                    &Written(alarm("alm-2", None)),
                )?;
                let entry = OutboxAsOf16ef299 {
                    alarm_id: "alm-2".into(),
                    request_id: "telemetry:cn-huaihua-park:alm-2:1".into(),
                    target: HoldTarget::Zone {
                        zone_id: "chilled-a".into(),
                    },
                    sensor_id: "probe-1".into(),
                    reason: "temperature excursion".into(),
                    created_at: T0 - 600_000,
                };
                tx.put(&OLD_OUTBOX, &"alm-2".to_string(), &Written(entry))?;
                Ok(())
            }))
            .unwrap();
    }

    let raw = Store::open(dir.path(), &identity, options).unwrap();
    let site = coldchain_testkit::server::shipped_network()
        .site("cn-huaihua-park")
        .unwrap()
        .clone();
    let store = TelemetryStore::new(raw, site, no_feed).unwrap();

    let (sensor, _) = store.sensor("probe-1").unwrap().unwrap();
    assert_eq!(sensor.description, "door side");
    assert_eq!(sensor.updated_at, T0 - 3_600_000);
    assert_eq!(sensor.registered_by, Author::unknown());
    assert_eq!(
        store.known_sensors()["probe-1"].registered_by,
        Author::unknown()
    );

    let views: Vec<_> = ["alm-1", "alm-2"]
        .iter()
        .map(|id| {
            let record = store.raw().get(&ALARMS, &id.to_string()).unwrap().unwrap();
            record.view("cn-huaihua-park")
        })
        .collect();
    assert_eq!(views[0].state, AlarmState::ActiveAck);
    assert_eq!(views[0].ack.as_ref().unwrap().note, "door closed");
    assert_eq!(
        views[0].acknowledged_author,
        Some(Author::new("unknown", "qa.duty"))
    );
    assert_eq!(views[1].acknowledged_author, None);

    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    let entry: &OutboxEntry = &outbox[0];
    assert_eq!(entry.reason, "temperature excursion");
    assert_eq!(entry.actor, "", "a retry sends the request it first sent");
}
