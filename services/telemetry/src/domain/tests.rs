//! Tests of reading checks, profiles and sensor status.

use super::codec::Sample;
use super::*;

const NOW: i64 = 1_767_225_600_000;

fn at(ms: i64) -> ReadingTime {
    ReadingTime::At(ms)
}

#[test]
fn readings_are_checked_one_rule_at_a_time() {
    let reason = |time, c, h| check_reading(time, c, h, None, NOW).map_err(|e| e.0);
    assert_eq!(
        reason(ReadingTime::Missing, 1.0, None),
        Err(Rejection::MissingTime)
    );
    assert_eq!(
        reason(
            ReadingTime::Invalid(RawTime {
                seconds: 1,
                nanos: -1
            }),
            1.0,
            None
        ),
        Err(Rejection::MissingTime)
    );
    assert_eq!(
        reason(
            ReadingTime::Invalid(RawTime {
                seconds: i64::MAX,
                nanos: 0
            }),
            1.0,
            None
        ),
        Err(Rejection::MissingTime)
    );
    assert_eq!(
        reason(at(NOW + MAX_FUTURE_MS + 1), 1.0, None),
        Err(Rejection::InFuture)
    );
    assert!(reason(at(NOW + MAX_FUTURE_MS), 1.0, None).is_ok());
    assert_eq!(
        reason(at(NOW - MAX_AGE_MS - 1), 1.0, None),
        Err(Rejection::TooOld)
    );
    assert!(reason(at(NOW - MAX_AGE_MS), 1.0, None).is_ok());
    assert_eq!(reason(at(NOW), f64::NAN, None), Err(Rejection::NotFinite));
    assert_eq!(
        reason(at(NOW), f64::INFINITY, None),
        Err(Rejection::NotFinite)
    );
    assert_eq!(
        reason(at(NOW), 1.0, Some(f64::NAN)),
        Err(Rejection::NotFinite)
    );
    assert_eq!(
        reason(at(NOW), 100.5, None),
        Err(Rejection::CelsiusOutOfRange)
    );
    assert_eq!(
        reason(at(NOW), -100.01, None),
        Err(Rejection::CelsiusOutOfRange)
    );
    assert_eq!(
        reason(at(NOW), 1.0, Some(100.1)),
        Err(Rejection::HumidityOutOfRange)
    );
    assert_eq!(
        reason(at(NOW), 1.0, Some(-0.1)),
        Err(Rejection::HumidityOutOfRange)
    );
    let sample = check_reading(at(NOW + 7), 4.256, Some(55.5), Some(true), NOW).unwrap();
    assert_eq!(sample.ts, NOW + 7);
    assert_eq!(sample.centi_celsius, 426);
    assert_eq!(sample.humidity, Some(5_550));
    assert_eq!(sample.door, Some(true));
}

#[test]
fn messages_name_the_field_and_value() {
    let (_, message) = check_reading(at(NOW), 150.0, None, None, NOW).unwrap_err();
    assert_eq!(message, "celsius: 150 is outside -100..100");
}

#[test]
fn profiles_take_defaults_and_are_checked() {
    let profile = effective_profile(&ProfileRequest::default(), Some(2.0), 8.0).unwrap();
    assert_eq!(profile.min_celsius, Some(2.0));
    assert_eq!(profile.max_celsius, 8.0);
    assert_eq!(profile.min_excursion_ms, DEFAULT_MIN_EXCURSION_MS);
    assert_eq!(profile.offline_after_ms, DEFAULT_OFFLINE_AFTER_MS);
    assert_eq!(profile.hysteresis_celsius, 0.5);
    let frozen = effective_profile(&ProfileRequest::default(), None, -18.0).unwrap();
    assert_eq!(frozen.min_celsius, None);
    assert_eq!(frozen.limits().max, -1_800);

    let bad = ProfileRequest {
        min_celsius: Some(9.0),
        max_celsius: None,
        min_excursion_ms: Some(-1),
        offline_after_ms: Some(59_999),
        hysteresis_celsius: Some(5.5),
    };
    let problems = effective_profile(&bad, Some(2.0), 8.0).unwrap_err();
    let fields: Vec<_> = problems.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        fields,
        [
            "profile.min_celsius",
            "profile.min_excursion_duration",
            "profile.offline_after",
            "profile.hysteresis_celsius"
        ]
    );
    let nan = ProfileRequest {
        max_celsius: Some(f64::NAN),
        ..ProfileRequest::default()
    };
    assert!(effective_profile(&nan, Some(2.0), 8.0).is_err());
}

#[test]
fn status_follows_arrivals_and_detection() {
    let profile = effective_profile(&ProfileRequest::default(), Some(2.0), 8.0).unwrap();
    let mut state = SensorState::default();
    let registered = NOW - 1_000;
    assert_eq!(
        state.status(&profile, registered, NOW),
        SensorStatus::NoData
    );
    // A sensor that never reported is offline once its period from the registration passed,
    // as its SENSOR_OFFLINE alarm says.
    let turned = state.offline_at(&profile, registered);
    assert_eq!(turned, registered + DEFAULT_OFFLINE_AFTER_MS);
    assert_eq!(
        state.status(&profile, registered, turned),
        SensorStatus::NoData
    );
    assert_eq!(
        state.status(&profile, registered, turned + 1),
        SensorStatus::Offline
    );
    state.newest = Some(Sample::new(NOW, 500).into());
    state.last_arrival = Some(NOW);
    assert_eq!(state.status(&profile, registered, NOW), SensorStatus::Ok);
    assert_eq!(
        state.status(&profile, registered, NOW + DEFAULT_OFFLINE_AFTER_MS),
        SensorStatus::Ok
    );
    assert_eq!(
        state.status(&profile, registered, NOW + DEFAULT_OFFLINE_AFTER_MS + 1),
        SensorStatus::Offline
    );
}
