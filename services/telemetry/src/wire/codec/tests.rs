//! Tests of the stored encodings: every kept answer decodes back to the same domain value
//! and re-encodes to the same bytes, and the bytes are the protobuf messages earlier
//! builds kept.

use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::proto_time::{duration_of_millis, timestamp};
use coldchain_store::ReplyCodec;
use prost::Message;

use super::*;
use crate::domain::alarm::{Ack, AlarmChange, AlarmKind, AlarmState, HoldStatus};
use crate::domain::{
    Binding, Profile, RawTime, Reefer, RejectedReading, Rejection, SensorStatus, StoredSample,
};

const T: i64 = 1_767_225_600_123;

fn profile() -> Profile {
    Profile {
        min_celsius: Some(2.0),
        max_celsius: 8.0,
        min_excursion_ms: 300_500,
        offline_after_ms: 900_000,
        hysteresis_celsius: 0.5,
    }
}

fn sensor() -> SensorView {
    SensorView {
        sensor_id: "s-1".into(),
        site_id: "cn-huaihua-park".into(),
        binding: Binding::Reefer(Reefer {
            container_id: "MSKU-1".into(),
            train_or_route: "X8083".into(),
            transfer_id: "t-1".into(),
            temperature_class: 3,
        }),
        profile: profile(),
        description: "reefer probe".into(),
        status: SensorStatus::Excursion,
        last_reading: Some(StoredSample {
            ts: T,
            centi_celsius: -1_257,
            humidity: Some(5_551),
            door: Some(true),
        }),
        registered_at: T - 1,
        updated_at: T,
        registered_by: coldchain_audit::Author::new("wh-1", "Anna"),
    }
}

fn alarm() -> AlarmView {
    AlarmView {
        alarm_id: "alm-00000001".into(),
        site_id: "cn-huaihua-park".into(),
        sensor_id: "s-1".into(),
        binding: Binding::Zone("chilled-a".into()),
        kind: AlarmKind::ExcursionHigh,
        state: AlarmState::ActiveAck,
        started_at: T - 600_000,
        last_seen_at: T,
        cleared_at: None,
        limit_celsius: 4.0,
        peak_celsius: 7.25,
        peak_deviation_celsius: 3.25,
        duration_ms: 600_000,
        degree_minutes: 12.5,
        ack: Some(Ack {
            by: "qa".into(),
            at: T,
            note: "moved".into(),
        }),
        acknowledged_author: Some(coldchain_audit::Author::new("ops-1", "qa")),
        hold_status: HoldStatus::Pending,
        hold_ids: vec!["hold-1".into()],
        hold_last_error: "unavailable: inventory of cn-huaihua-park: down".into(),
    }
}

#[test]
fn a_sensor_is_kept_as_the_sensor_message() {
    let view = sensor();
    let bytes = SensorReply.encode(&view);
    let message = pb::Sensor::decode(bytes.as_slice()).unwrap();
    let reading = message.last_reading.clone().unwrap();
    assert_eq!(reading.celsius, -12.57);
    assert_eq!(reading.humidity_percent, Some(55.51));
    assert_eq!(reading.time, Some(timestamp(T)));
    assert_eq!(
        message.profile.unwrap().min_excursion_duration,
        Some(duration_of_millis(300_500))
    );
    assert_eq!(message.status, pb::SensorStatus::Excursion as i32);
    assert_eq!(SensorReply.decode(&bytes), Ok(view.clone()));
    assert_eq!(
        SensorReply.encode(&SensorReply.decode(&bytes).unwrap()),
        bytes
    );
    let zone = SensorView {
        binding: Binding::Zone("chilled-a".into()),
        last_reading: None,
        ..view
    };
    assert_eq!(SensorReply.decode(&SensorReply.encode(&zone)), Ok(zone));
}

#[test]
fn an_alarm_is_kept_as_the_alarm_message() {
    let view = alarm();
    let bytes = AlarmReply.encode(&view);
    let message = pb::Alarm::decode(bytes.as_slice()).unwrap();
    assert_eq!(message.zone_id, "chilled-a");
    assert_eq!(message.reefer, None);
    assert_eq!(message.acknowledged_at, Some(timestamp(T)));
    assert_eq!(message.duration, Some(duration_of_millis(600_000)));
    assert_eq!(AlarmReply.decode(&bytes), Ok(view.clone()));
    let offline = AlarmView {
        kind: AlarmKind::SensorOffline,
        state: AlarmState::ClearedUnack,
        cleared_at: Some(T),
        ack: None,
        acknowledged_author: None,
        hold_status: HoldStatus::NotRequired,
        hold_last_error: String::new(),
        ..view.clone()
    };
    let bytes = AlarmReply.encode(&offline);
    assert_eq!(AlarmReply.decode(&bytes), Ok(offline));

    // An answer an earlier build kept has no author: principal "unknown", actor the
    // acknowledged_by.
    let earlier = pb::Alarm {
        acknowledged_author: None,
        ..message
    }
    .encode_to_vec();
    assert_eq!(
        AlarmReply.decode(&earlier).unwrap().acknowledged_author,
        Some(coldchain_audit::Author::new("unknown", "qa"))
    );
    // A sensor answer of an earlier build: registered by "unknown".
    let sensor = pb::Sensor {
        registered_by: None,
        ..pb::Sensor::decode(SensorReply.encode(&sensor()).as_slice()).unwrap()
    }
    .encode_to_vec();
    assert_eq!(
        SensorReply.decode(&sensor).unwrap().registered_by,
        coldchain_audit::Author::unknown()
    );
    assert!(AlarmReply.decode(&[0xff]).is_err());
}

#[test]
fn a_summary_is_kept_as_the_ingest_summary_message_with_times_as_sent() {
    let summary = IngestSummary {
        accepted: 7,
        duplicates: 2,
        rejected: 1,
        rejections: vec![RejectedReading {
            batch_index: 0,
            index: 3,
            sensor_id: "nobody".into(),
            time: Some(RawTime {
                seconds: 1,
                nanos: -5,
            }),
            reason: Rejection::UnknownSensor,
            message: "sensor_id: \"nobody\" is not a registered sensor".into(),
        }],
    };
    let bytes = IngestReply.encode(&summary);
    let message = pb::IngestSummary::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        message.rejections[0].time,
        Some(prost_types::Timestamp {
            seconds: 1,
            nanos: -5
        })
    );
    assert_eq!(
        message.rejections[0].reason,
        pb::RejectionReason::UnknownSensor as i32
    );
    assert_eq!(IngestReply.decode(&bytes), Ok(summary));
}

#[test]
fn feed_entries_are_alarm_event_messages() {
    let bytes = encode_alarm_event(AlarmEvent {
        sequence: 9,
        recorded_at: T,
        change: AlarmChange::Acknowledged,
        alarm: alarm(),
    });
    let event = decode_alarm_event(&bytes).unwrap();
    assert_eq!(event.sequence, 9);
    assert_eq!(event.recorded_at, Some(timestamp(T)));
    assert_eq!(event.kind, pb::AlarmEventKind::Acknowledged as i32);
    assert_eq!(event.alarm, Some(convert::alarm(alarm())));
}

#[test]
fn feed_events_of_earlier_builds_show_acknowledgements_by_unknown() {
    let earlier = pb::AlarmEvent {
        sequence: 3,
        recorded_at: Some(timestamp(T)),
        kind: pb::AlarmEventKind::Acknowledged as i32,
        alarm: Some(pb::Alarm {
            acknowledged_author: None,
            ..convert::alarm(alarm())
        }),
    };
    let decoded = decode_alarm_event(&earlier.encode_to_vec()).unwrap();
    assert_eq!(
        decoded.alarm.unwrap().acknowledged_author,
        Some(coldchain_proto::common::v1::Author {
            principal: "unknown".into(),
            actor: "qa".into(),
        })
    );
    // Events of this build stream as they were kept.
    let now = pb::AlarmEvent {
        alarm: Some(convert::alarm(alarm())),
        ..earlier
    };
    assert_eq!(decode_alarm_event(&now.encode_to_vec()).unwrap(), now);
}
