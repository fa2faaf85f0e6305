//! The one conversion between the contracts' time types and the services' own: instants
//! (`google.protobuf.Timestamp` ⇄ milliseconds since the epoch), durations
//! (`google.protobuf.Duration` ⇄ milliseconds or `std::time::Duration`) and calendar dates
//! (`coldchain.common.v1.Date` ⇄ `chrono::NaiveDate`).
//!
//! Services keep instants as UTC milliseconds: readings, ledger entries and alarms are
//! stored at millisecond precision, so nanoseconds are truncated to the millisecond.

use chrono::{Datelike, NaiveDate};
use coldchain_proto::common::v1 as common;
use prost_types::{Duration, Timestamp};

/// The first second google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// The last second google.protobuf.Timestamp allows: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// The Timestamp of `ms` milliseconds since the epoch (before it too).
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1_000),
        // In 0..1_000_000_000 by construction.
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// The milliseconds since the epoch of a valid Timestamp (nanoseconds truncated); `None`
/// outside the range the type defines (years 1 to 9999) or with nanos outside 0..10^9.
pub fn millis(ts: &Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&ts.nanos)
        || !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds)
    {
        return None;
    }
    ts.seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(ts.nanos / 1_000_000))
}

/// The Duration of `ms` milliseconds.
pub fn duration_of_millis(ms: i64) -> Duration {
    Duration {
        seconds: ms / 1_000,
        // Same sign as the seconds, |nanos| < 10^9, as the type requires.
        nanos: ((ms % 1_000) * 1_000_000) as i32,
    }
}

/// The Duration of a `std::time::Duration` (saturating at i64::MAX seconds).
pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// The milliseconds of a valid Duration (nanos in range and of the seconds' sign) that
/// fits; `None` otherwise.
pub fn duration_millis(d: &Duration) -> Option<i64> {
    if d.nanos.abs() >= 1_000_000_000
        || (d.seconds > 0 && d.nanos < 0)
        || (d.seconds < 0 && d.nanos > 0)
    {
        return None;
    }
    d.seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(d.nanos / 1_000_000))
}

/// The Date of a calendar date.
pub fn date(day: NaiveDate) -> common::Date {
    common::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

/// The calendar date of a Date (year 1 to 9999), or why it is none, naming the value.
pub fn naive_date(date: &common::Date) -> Result<NaiveDate, String> {
    let common::Date { year, month, day } = *date;
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is out of range 1 to 9999"));
    }
    let (Ok(m), Ok(d)) = (u32::try_from(month), u32::try_from(day)) else {
        return Err(format!("{year}-{month}-{day} is not a valid date"));
    };
    NaiveDate::from_ymd_opt(year, m, d)
        .ok_or_else(|| format!("{year}-{month:02}-{day:02} is not a valid date"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_edges_of_the_timestamp_range() {
        let first = Timestamp {
            seconds: MIN_TIMESTAMP_SECONDS,
            nanos: 0,
        };
        assert_eq!(millis(&first), Some(MIN_TIMESTAMP_SECONDS * 1_000));
        let before = Timestamp {
            seconds: MIN_TIMESTAMP_SECONDS - 1,
            nanos: 999_999_999,
        };
        assert_eq!(millis(&before), None);
        let after = Timestamp {
            seconds: MAX_TIMESTAMP_SECONDS + 1,
            nanos: 0,
        };
        assert_eq!(millis(&after), None);
        assert_eq!(
            millis(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }

    #[test]
    fn dates_are_checked_and_named() {
        assert_eq!(
            naive_date(&date(NaiveDate::from_ymd_opt(2026, 12, 4).unwrap())),
            Ok(NaiveDate::from_ymd_opt(2026, 12, 4).unwrap())
        );
        let bad = |year, month, day| naive_date(&common::Date { year, month, day });
        assert_eq!(
            bad(2026, 2, 29),
            Err("2026-02-29 is not a valid date".into())
        );
        assert_eq!(bad(0, 1, 1), Err("year 0 is out of range 1 to 9999".into()));
        assert_eq!(
            bad(2026, -1, 1),
            Err("2026--1-1 is not a valid date".into())
        );
        assert!(bad(2026, 0, 1).is_err());
    }

    #[test]
    fn durations_are_checked() {
        assert_eq!(duration_millis(&duration_of_millis(-1_500)), Some(-1_500));
        assert_eq!(
            duration_millis(&Duration {
                seconds: 1,
                nanos: -1
            }),
            None
        );
        assert_eq!(
            duration_millis(&duration(std::time::Duration::from_millis(2_250))),
            Some(2_250)
        );
    }

    proptest! {
        #[test]
        fn timestamps_round_trip_including_before_the_epoch(
            ms in (MIN_TIMESTAMP_SECONDS * 1_000)..=(MAX_TIMESTAMP_SECONDS * 1_000 + 999)
        ) {
            prop_assert_eq!(millis(&timestamp(ms)), Some(ms));
        }

        #[test]
        fn duration_millis_round_trip(ms in any::<i64>()) {
            prop_assert_eq!(duration_millis(&duration_of_millis(ms)), Some(ms));
        }

        #[test]
        fn any_date_parts_convert_without_panic(year: i32, month: i32, day: i32) {
            let _ = naive_date(&common::Date { year, month, day });
        }
    }
}
