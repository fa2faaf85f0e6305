//! Zone choice: where a hold goes among the zones of a class, or why it fits nowhere.

use std::fmt;

use chrono::NaiveDate;
use coldchain_network::ZoneConfig;

use super::capacity::DayCounts;

/// Where a hold may go.
#[derive(Debug, Clone)]
pub enum Space {
    /// This zone.
    Zone(ZoneConfig),
    /// Any of these zones (of one class), the rules pick.
    Class {
        /// The class name, for messages.
        class: String,
        /// The zones of the class big enough for the pallets, in file order.
        zones: Vec<ZoneConfig>,
    },
}

/// One candidate zone for a hold, with its counters on every day of the range.
#[derive(Debug, Clone)]
pub struct ZoneDays {
    /// The zone.
    pub zone_id: String,
    /// Its capacity.
    pub capacity: u32,
    /// Its counters per day of the range, in order.
    pub days: Vec<(NaiveDate, DayCounts)>,
}

/// A day without enough room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortDay {
    /// The day.
    pub day: NaiveDate,
    /// Positions free.
    pub free: u32,
    /// How many pallets are missing.
    pub short_by: u32,
}

/// Why a hold found no room: the closest zone's short days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The zone that came closest (the only one, when a zone was asked for).
    pub zone_id: String,
    /// The pallets asked for.
    pub pallets: u32,
    /// Every short day, in order.
    pub days: Vec<ShortDay>,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not enough space in zone {} for {} pallets: ",
            self.zone_id, self.pallets
        )?;
        for (i, day) in self.days.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} short by {} ({} free)",
                day.day, day.short_by, day.free
            )?;
        }
        Ok(())
    }
}

/// The short days of one zone for `pallets`.
pub fn short_days(zone: &ZoneDays, pallets: u32) -> Vec<ShortDay> {
    zone.days
        .iter()
        .filter_map(|(day, counts)| {
            let free = counts.free(zone.capacity);
            (free < pallets).then(|| ShortDay {
                day: *day,
                free,
                short_by: pallets - free,
            })
        })
        .collect()
}

/// Picks the zone for a hold of `pallets` on every day: among the zones with room on every
/// day, the **tightest fit** (the least free positions left on its fullest day after the
/// hold; ties go to the earlier zone in the site's file order), so big free blocks in other
/// zones stay available for big holds. With no room anywhere, the shortage of the zone that
/// came closest (the fewest pallets missing in total, then the fewest short days, then file
/// order). `Err(None)` when there is no candidate at all.
pub fn choose_zone(candidates: &[ZoneDays], pallets: u32) -> Result<usize, Option<Shortage>> {
    let mut best: Option<(usize, u32)> = None;
    let mut closest: Option<(u64, usize, usize, Vec<ShortDay>)> = None;
    for (i, zone) in candidates.iter().enumerate() {
        let short = short_days(zone, pallets);
        if short.is_empty() {
            let slack = zone
                .days
                .iter()
                .map(|(_, counts)| counts.free(zone.capacity) - pallets)
                .min()
                .unwrap_or(zone.capacity.saturating_sub(pallets));
            if best.is_none_or(|(_, s)| slack < s) {
                best = Some((i, slack));
            }
        } else {
            let missing: u64 = short.iter().map(|d| u64::from(d.short_by)).sum();
            let better = closest
                .as_ref()
                .is_none_or(|(m, n, _, _)| (missing, short.len()) < (*m, *n));
            if better {
                closest = Some((missing, short.len(), i, short));
            }
        }
    }
    if let Some((i, _)) = best {
        return Ok(i);
    }
    Err(closest.and_then(|(_, _, i, days)| {
        candidates.get(i).map(|zone| Shortage {
            zone_id: zone.zone_id.clone(),
            pallets,
            days,
        })
    }))
}
