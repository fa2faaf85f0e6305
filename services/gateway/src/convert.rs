//! Domain values ↔ protobuf messages (no rules here, only shapes).

use chrono::{Datelike, NaiveDate};
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::network::TemperatureClass;

use crate::domain::{Lot, Transfer, TransferState};

/// ms since the epoch → Timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Timestamp → ms since the epoch (saturating).
pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos.clamp(0, 999_999_999)) / 1_000_000)
}

/// A Duration → google.protobuf.Duration.
pub fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// A date → Date.
pub fn date_to_proto(date: NaiveDate) -> common::Date {
    common::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// A Date → a date, `None` when it is not a valid calendar date of years 1 to 9999.
pub fn date_from_proto(date: &common::Date) -> Option<NaiveDate> {
    if !(1..=9999).contains(&date.year) {
        return None;
    }
    NaiveDate::from_ymd_opt(
        date.year,
        u32::try_from(date.month).ok()?,
        u32::try_from(date.day).ok()?,
    )
}

/// A class → its proto enum.
pub fn class_to_proto(class: TemperatureClass) -> common::TemperatureClass {
    match class {
        TemperatureClass::Frozen => common::TemperatureClass::Frozen,
        TemperatureClass::Chilled => common::TemperatureClass::Chilled,
        TemperatureClass::Pharma => common::TemperatureClass::Pharma,
        TemperatureClass::Cool => common::TemperatureClass::Cool,
        TemperatureClass::Ambient => common::TemperatureClass::Ambient,
    }
}

/// An unknown enum value in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue(pub i32);

/// A proto class value → `Ok(None)` for UNSPECIFIED, `Err` for an unknown value.
pub fn class_from_proto(value: i32) -> Result<Option<TemperatureClass>, UnknownValue> {
    match common::TemperatureClass::try_from(value).map_err(|_| UnknownValue(value))? {
        common::TemperatureClass::Unspecified => Ok(None),
        common::TemperatureClass::Frozen => Ok(Some(TemperatureClass::Frozen)),
        common::TemperatureClass::Chilled => Ok(Some(TemperatureClass::Chilled)),
        common::TemperatureClass::Pharma => Ok(Some(TemperatureClass::Pharma)),
        common::TemperatureClass::Cool => Ok(Some(TemperatureClass::Cool)),
        common::TemperatureClass::Ambient => Ok(Some(TemperatureClass::Ambient)),
    }
}

/// A state → its proto enum.
pub fn state_to_proto(state: TransferState) -> pb::TransferState {
    match state {
        TransferState::Requested => pb::TransferState::Requested,
        TransferState::InTransit => pb::TransferState::InTransit,
        TransferState::Receiving => pb::TransferState::Receiving,
        TransferState::Completed => pb::TransferState::Completed,
        TransferState::Failed => pb::TransferState::Failed,
    }
}

/// A proto state value → a state; `None` for UNSPECIFIED or an unknown value.
pub fn state_from_proto(value: i32) -> Option<TransferState> {
    match pb::TransferState::try_from(value).ok()? {
        pb::TransferState::Unspecified => None,
        pb::TransferState::Requested => Some(TransferState::Requested),
        pb::TransferState::InTransit => Some(TransferState::InTransit),
        pb::TransferState::Receiving => Some(TransferState::Receiving),
        pb::TransferState::Completed => Some(TransferState::Completed),
        pb::TransferState::Failed => Some(TransferState::Failed),
    }
}

/// A lot → LotInfo.
pub fn lot_to_proto(lot: &Lot) -> inv::LotInfo {
    inv::LotInfo {
        lot_id: lot.lot_id.clone(),
        expiry: lot.expiry.map(date_to_proto),
        production: lot.production.map(date_to_proto),
        origin: lot.origin.clone(),
    }
}

/// The lot a ledger entry reports (falling back to the bare id).
pub fn lot_from_proto(info: Option<&inv::LotInfo>, lot_id: &str) -> Lot {
    match info {
        Some(info) => Lot {
            lot_id: if info.lot_id.is_empty() {
                lot_id.to_string()
            } else {
                info.lot_id.clone()
            },
            expiry: info.expiry.as_ref().and_then(date_from_proto),
            production: info.production.as_ref().and_then(date_from_proto),
            origin: info.origin.clone(),
        },
        None => Lot {
            lot_id: lot_id.to_string(),
            expiry: None,
            production: None,
            origin: String::new(),
        },
    }
}

/// A stored transfer → Transfer.
pub fn transfer_to_proto(t: &Transfer) -> pb::Transfer {
    pb::Transfer {
        transfer_id: t.transfer_id.clone(),
        source_site_id: t.source_site_id.clone(),
        destination_site_id: t.destination_site_id.clone(),
        lines: t
            .lines
            .iter()
            .map(|l| pb::TransferLine {
                sku: l.sku.clone(),
                lot_id: l.lot_id.clone(),
                source_zone_id: l.source_zone_id.clone(),
                destination_zone_id: l.destination_zone_id.clone(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                lot: l.lot.as_ref().map(lot_to_proto),
            })
            .collect(),
        state: state_to_proto(t.state) as i32,
        reefer_sensor_id: t.reefer_sensor_id.clone(),
        reefer_container_id: t.reefer_container_id.clone(),
        reefer_temperature_class: class_to_proto(t.reefer_class) as i32,
        train_or_route: t.train_or_route.clone(),
        created_at: Some(timestamp(t.created_ms)),
        shipped_at: t.shipped_ms.map(timestamp),
        received_at: t.received_ms.map(timestamp),
        completed_at: t.completed_ms.map(timestamp),
        updated_at: Some(timestamp(t.updated_ms)),
        last_error: t.last_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for ms in [0, 1, 999, 1_772_330_400_123, -1, -1001] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
    }

    #[test]
    fn dates_are_checked() {
        let ok = common::Date {
            year: 2026,
            month: 2,
            day: 28,
        };
        assert_eq!(date_from_proto(&ok), NaiveDate::from_ymd_opt(2026, 2, 28));
        for bad in [
            common::Date {
                year: 2026,
                month: 2,
                day: 29,
            },
            common::Date {
                year: 0,
                month: 1,
                day: 1,
            },
            common::Date {
                year: 10000,
                month: 1,
                day: 1,
            },
            common::Date {
                year: 2026,
                month: 0,
                day: 1,
            },
            common::Date {
                year: 2026,
                month: -1,
                day: 1,
            },
        ] {
            assert_eq!(date_from_proto(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn enums_round_trip() {
        for class in TemperatureClass::ALL {
            assert_eq!(
                class_from_proto(class_to_proto(class) as i32),
                Ok(Some(class))
            );
        }
        assert_eq!(class_from_proto(0), Ok(None));
        assert!(class_from_proto(99).is_err());
        for state in TransferState::ALL {
            assert_eq!(state_from_proto(state_to_proto(state) as i32), Some(state));
        }
        assert_eq!(state_from_proto(0), None);
        assert_eq!(state_from_proto(42), None);
    }
}
