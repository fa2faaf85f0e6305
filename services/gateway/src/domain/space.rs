//! FindSpace's arithmetic: per zone, the least free positions over the days of the range
//! (a minimum, never a sum: nothing here can overflow), and the order of the offers.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use coldchain_network::TemperatureClass;

use super::SiteFailure;

/// The most days in a FindSpace range.
pub const MAX_RANGE_DAYS: i64 = 366;

/// What FindSpace asks, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceQuery {
    /// The class.
    pub class: TemperatureClass,
    /// Pallet positions needed on each day, > 0.
    pub pallets: i32,
    /// The first day.
    pub first_day: NaiveDate,
    /// The last day, inclusive.
    pub last_day: NaiveDate,
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
}

/// FindSpace's answer: the offers sorted by fit, and the sites that did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceAnswer {
    /// The class asked for.
    pub class: TemperatureClass,
    /// The offers, in [`compare_offers`] order.
    pub offers: Vec<Offer>,
    /// The sites that did not answer.
    pub failures: Vec<SiteFailure>,
}

/// Free space of one zone over a whole day range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The site's position in the network file (the tie-break).
    pub site_index: usize,
    /// The site.
    pub site_id: String,
    /// The zone.
    pub zone_id: String,
    /// The zone's positions.
    pub capacity: i32,
    /// The least free positions on any day of the range.
    pub min_free: i32,
    /// min_free ≥ the pallets asked for.
    pub fits: bool,
}

/// One day of one zone's availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFree {
    /// The zone.
    pub zone_id: String,
    /// Its capacity.
    pub capacity: i32,
    /// Free positions on the day.
    pub free: i32,
}

/// The offers of one site: per zone, the least free over the days.
pub fn site_offers(site_index: usize, site_id: &str, days: &[DayFree], pallets: i32) -> Vec<Offer> {
    let mut zones: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    for day in days {
        let free = day.free.max(0);
        zones
            .entry(&day.zone_id)
            .and_modify(|(capacity, min_free)| {
                *capacity = (*capacity).max(day.capacity);
                *min_free = (*min_free).min(free);
            })
            .or_insert((day.capacity, free));
    }
    zones
        .into_iter()
        .map(|(zone_id, (capacity, min_free))| Offer {
            site_index,
            site_id: site_id.to_string(),
            zone_id: zone_id.to_string(),
            capacity,
            min_free,
            fits: min_free >= pallets,
        })
        .collect()
}

/// The order of offers: first the zones that fit, least spare room (min_free − pallets)
/// first; then those that do not, most min_free first; ties by site order, then zone_id.
pub fn compare_offers(a: &Offer, b: &Offer) -> Ordering {
    b.fits
        .cmp(&a.fits)
        .then_with(|| {
            if a.fits {
                a.min_free.cmp(&b.min_free)
            } else {
                b.min_free.cmp(&a.min_free)
            }
        })
        .then_with(|| a.site_index.cmp(&b.site_index))
        .then_with(|| a.zone_id.cmp(&b.zone_id))
}

/// The number of days from `first` to `last`, both included (≤ 0 when `last` < `first`).
pub fn days_inclusive(first: NaiveDate, last: NaiveDate) -> i64 {
    (last - first).num_days() + 1
}
