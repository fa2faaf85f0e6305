//! Site-local days: ranges, the local day of an instant, the start of a day, check-in
//! deadlines, and the order-preserving day numbers the store keys by.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::MAX_RANGE_DAYS;

/// Renders an instant in milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Why a day range is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// `last < first`.
    Reversed,
    /// More than [`MAX_RANGE_DAYS`] days.
    TooLong(i64),
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::Reversed => f.write_str("must not be before first_day"),
            RangeError::TooLong(n) => write!(
                f,
                "the range spans {n} days; at most {MAX_RANGE_DAYS} are allowed"
            ),
        }
    }
}

/// Checks an inclusive day range.
pub fn check_range(first: NaiveDate, last: NaiveDate) -> Result<(), RangeError> {
    if last < first {
        return Err(RangeError::Reversed);
    }
    let span = (last - first).num_days() + 1;
    if span > MAX_RANGE_DAYS {
        return Err(RangeError::TooLong(span));
    }
    Ok(())
}

/// The site-local calendar day at `now_ms`.
pub fn local_day(tz: Tz, now_ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The first instant (ms) of the site-local `day`: its midnight, or the first hour that
/// exists when a daylight-saving change skips midnight.
pub fn start_of_day_ms(tz: Tz, day: NaiveDate) -> i64 {
    for hour in 0..24 {
        let time = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN);
        if let Some(t) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            return t.timestamp_millis();
        }
    }
    // Unreachable for real zones; fall back to UTC midnight.
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// The check-in deadline of a booking whose first day is `first_day`: the end of that day
/// (the start of the next, site-local) plus `grace`.
pub fn check_in_deadline_ms(tz: Tz, first_day: NaiveDate, grace: Duration) -> i64 {
    let next = first_day
        .checked_add_days(Days::new(1))
        .unwrap_or(first_day);
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    start_of_day_ms(tz, next).saturating_add(grace_ms)
}

/// Days since 0001-01-01 (day 1): the order-preserving key of a date.
pub fn day_number(day: NaiveDate) -> i32 {
    use chrono::Datelike;
    day.num_days_from_ce()
}

/// The date of a [`day_number`].
pub fn from_day_number(n: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(n)
}
