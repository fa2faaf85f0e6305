//! Calendar dates of a site: the local date of an instant, compact storage of dates, expiry
//! and expiry buckets.

use chrono::{Datelike, NaiveDate, TimeZone};

/// The local calendar date at `millis` (UTC ms since the epoch) in time zone `tz`.
pub fn local_date<Z: TimeZone>(millis: i64, tz: &Z) -> NaiveDate {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(utc) => utc.with_timezone(tz).date_naive(),
        None => NaiveDate::MIN,
    }
}

/// A date as days from the common era (compact storage).
pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

/// A date back from [`date_to_days`]; `None` for garbage.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days)
}

/// True when a lot with this expiry is expired on `today`: the expiry day itself is still
/// usable, the lot is expired from the following day on.
pub fn is_expired(expiry: NaiveDate, today: NaiveDate) -> bool {
    expiry < today
}

/// The expiry bucket of a lot, relative to `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpiryBucket {
    /// Expiry before today.
    Expired,
    /// Today through today + 30 days.
    Within30,
    /// Today + 31 through today + 60 days.
    Within60,
    /// Today + 61 through today + 90 days.
    Within90,
    /// After today + 90 days.
    Later,
}

/// The bucket of `expiry` on `today`.
pub fn expiry_bucket(expiry: NaiveDate, today: NaiveDate) -> ExpiryBucket {
    let days = expiry.signed_duration_since(today).num_days();
    match days {
        d if d < 0 => ExpiryBucket::Expired,
        0..=30 => ExpiryBucket::Within30,
        31..=60 => ExpiryBucket::Within60,
        61..=90 => ExpiryBucket::Within90,
        _ => ExpiryBucket::Later,
    }
}
