//! A lot's trace across the network, pure: from the lot's ledger entries at each site and
//! the transfers that carried it, the places it stayed (a zone of a site while it had stock
//! there, a reefer while a transfer carried it), the transfers' steps as the lot saw them,
//! and what is still between two sites.
//!
//! A stay is what the temperature exposure is measured over: the sensors of that zone (or
//! the reefer's sensor) for exactly that time.

use std::collections::{BTreeMap, BTreeSet};

use super::{Transfer, TransferState};

/// What a ledger entry of the lot does to its stock, as the trace needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LotEntryKind {
    /// A movement: on hand of the entry's zone becomes `balance_after`.
    Movement,
    /// An allocation, a hold, or anything else that leaves on hand as it is.
    Other,
}

/// One ledger entry of the lot at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotEntry {
    /// The site.
    pub site_id: String,
    /// Its sequence in the site's ledger.
    pub sequence: u64,
    /// When it was committed (UTC ms).
    pub recorded_ms: i64,
    /// Whether it moves stock.
    pub kind: LotEntryKind,
    /// The zone of the position.
    pub zone_id: String,
    /// On hand of the position afterwards.
    pub balance_after: i64,
    /// The transfer a TRANSFER_OUT or TRANSFER_IN belongs to; empty otherwise.
    pub transfer_id: String,
}

/// A time the lot spent in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    /// The site (for a reefer leg, the transfer's source, whose telemetry knows its sensor).
    pub site_id: String,
    /// The zone; empty for a reefer leg.
    pub zone_id: String,
    /// A reefer leg: the transfer; empty for a zone.
    pub transfer_id: String,
    /// A reefer leg: the reefer's sensor (empty: none).
    pub reefer_sensor_id: String,
    /// When the lot arrived (UTC ms).
    pub start_ms: i64,
    /// When it left; `None` while it is still there.
    pub end_ms: Option<i64>,
}

impl Stay {
    /// The end, or `now_ms` for a stay that goes on.
    pub fn end_or(&self, now_ms: i64) -> i64 {
        self.end_ms.unwrap_or(now_ms)
    }

    /// True when `[from, to)` (to `None`: still going) overlaps the stay as of `now_ms`.
    pub fn overlaps(&self, from_ms: i64, to_ms: Option<i64>, now_ms: i64) -> bool {
        from_ms < self.end_or(now_ms) && to_ms.unwrap_or(now_ms) >= self.start_ms
    }
}

/// The stays in zones: per site and zone, each run of time the lot had stock on hand
/// there, from the entry that brought the position above zero to the one that took it to
/// zero. `entries` may come in any order; each site's are read in sequence order.
pub fn zone_stays(entries: &[LotEntry]) -> Vec<Stay> {
    let mut by_site: BTreeMap<&str, Vec<&LotEntry>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.kind == LotEntryKind::Movement) {
        by_site.entry(&entry.site_id).or_default().push(entry);
    }
    let mut stays = Vec::new();
    for (site_id, mut site_entries) in by_site {
        site_entries.sort_by_key(|e| e.sequence);
        // The open stay of each zone: its index in `stays`.
        let mut open: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in site_entries {
            let zone = entry.zone_id.as_str();
            match open.get(zone) {
                None if entry.balance_after > 0 => {
                    open.insert(zone, stays.len());
                    stays.push(Stay {
                        site_id: site_id.to_string(),
                        zone_id: zone.to_string(),
                        transfer_id: String::new(),
                        reefer_sensor_id: String::new(),
                        start_ms: entry.recorded_ms,
                        end_ms: None,
                    });
                }
                Some(&index) if entry.balance_after <= 0 => {
                    stays[index].end_ms = Some(entry.recorded_ms);
                    open.remove(zone);
                }
                _ => {}
            }
        }
    }
    stays
}

/// The ids of the transfers the entries name (TRANSFER_OUT and TRANSFER_IN).
pub fn transfer_ids(entries: &[LotEntry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| !e.transfer_id.is_empty())
        .map(|e| e.transfer_id.clone())
        .collect()
}

/// The quantity of (sku, lot) a transfer carries, over its lines.
pub fn carried(transfer: &Transfer, sku: &str, lot_id: &str) -> i64 {
    transfer
        .lines
        .iter()
        .filter(|line| line.sku == sku && line.lot_id == lot_id)
        .map(|line| line.quantity)
        .fold(0_i64, i64::saturating_add)
}

/// The reefer leg of a transfer that left its source: from the TRANSFER_OUT to the
/// TRANSFER_IN at the destination (still going while the goods have not been taken in).
/// `None` for a transfer that never shipped.
pub fn reefer_stay(transfer: &Transfer) -> Option<Stay> {
    let start_ms = transfer.shipped_ms?;
    Some(Stay {
        site_id: transfer.source_site_id.clone(),
        zone_id: String::new(),
        transfer_id: transfer.transfer_id.clone(),
        reefer_sensor_id: transfer.reefer_sensor_id.clone(),
        start_ms,
        end_ms: transfer.completed_ms,
    })
}

/// A step of a transfer as the trace shows it: the state entered and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The state the transfer entered.
    pub state: TransferState,
    /// When (UTC ms).
    pub at_ms: i64,
}

/// The steps a transfer went through, oldest first (FAILED at its last change).
pub fn steps(transfer: &Transfer) -> Vec<Step> {
    let mut steps = vec![Step {
        state: TransferState::Requested,
        at_ms: transfer.created_ms,
    }];
    let mut push = |state, at: Option<i64>| {
        if let Some(at_ms) = at {
            steps.push(Step { state, at_ms });
        }
    };
    push(TransferState::InTransit, transfer.shipped_ms);
    push(TransferState::Receiving, transfer.received_ms);
    push(TransferState::Completed, transfer.completed_ms);
    if transfer.state == TransferState::Failed {
        push(TransferState::Failed, Some(transfer.updated_ms));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Line, SensorBinding};
    use coldchain_network::TemperatureClass;

    fn movement(site: &str, sequence: u64, at: i64, zone: &str, after: i64) -> LotEntry {
        LotEntry {
            site_id: site.into(),
            sequence,
            recorded_ms: at,
            kind: LotEntryKind::Movement,
            zone_id: zone.into(),
            balance_after: after,
            transfer_id: String::new(),
        }
    }

    fn transfer(shipped: Option<i64>, completed: Option<i64>, state: TransferState) -> Transfer {
        Transfer {
            transfer_id: "t-1".into(),
            source_site_id: "cn-huaihua-park".into(),
            destination_site_id: "la-vientiane".into(),
            lines: vec![
                Line {
                    sku: "orange".into(),
                    lot_id: "l-1".into(),
                    source_zone_id: "c1".into(),
                    destination_zone_id: "c2".into(),
                    quantity: 40,
                    unit: "kg".into(),
                    lot: None,
                },
                Line {
                    sku: "orange".into(),
                    lot_id: "l-2".into(),
                    source_zone_id: "c1".into(),
                    destination_zone_id: "c2".into(),
                    quantity: 7,
                    unit: "kg".into(),
                    lot: None,
                },
            ],
            state,
            reefer_sensor_id: "reefer-1".into(),
            reefer_container_id: "MSKU1".into(),
            reefer_class: TemperatureClass::Chilled,
            train_or_route: "X8011".into(),
            created_ms: 100,
            shipped_ms: shipped,
            received_ms: None,
            completed_ms: completed,
            updated_ms: 500,
            last_error: String::new(),
            refusal: None,
            sensor: SensorBinding::Bound,
            started_by: coldchain_audit::Author::new("ops-1", ""),
            arrival_reported_by: None,
        }
    }

    #[test]
    fn a_stay_runs_from_the_first_stock_to_the_last() {
        let entries = vec![
            movement("park", 1, 10, "c1", 100),
            movement("park", 2, 20, "c1", 60),
            movement("park", 3, 30, "c1", 0),
        ];
        let stays = zone_stays(&entries);
        assert_eq!(stays.len(), 1);
        assert_eq!((stays[0].start_ms, stays[0].end_ms), (10, Some(30)));
    }

    #[test]
    fn each_zone_and_each_return_is_its_own_stay_and_order_of_input_does_not_matter() {
        let mut entries = vec![
            movement("park", 1, 10, "c1", 100),
            movement("park", 2, 20, "c1", 0),
            movement("park", 3, 20, "f1", 100),
            movement("park", 4, 40, "c1", 5),
            movement("vte", 1, 50, "c2", 40),
        ];
        entries.reverse();
        let stays = zone_stays(&entries);
        let shape: Vec<_> = stays
            .iter()
            .map(|s| (s.site_id.as_str(), s.zone_id.as_str(), s.start_ms, s.end_ms))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("park", "c1", 10, Some(20)),
                ("park", "f1", 20, None),
                ("park", "c1", 40, None),
                ("vte", "c2", 50, None),
            ]
        );
    }

    #[test]
    fn a_relocation_leaves_one_zone_and_enters_the_other_at_the_same_instant() {
        // 100 kg received in the frozen room; 60 thawed into the chilled room at 50 (the
        // RELOCATION_OUT and RELOCATION_IN entries, one sequence apart), the last 40 at 80.
        let entries = vec![
            movement("park", 1, 10, "frozen-1", 100),
            movement("park", 2, 50, "frozen-1", 40),
            movement("park", 3, 50, "chilled-1", 60),
            movement("park", 4, 80, "frozen-1", 0),
            movement("park", 5, 80, "chilled-1", 100),
        ];
        let shape: Vec<_> = zone_stays(&entries)
            .iter()
            .map(|s| (s.zone_id.clone(), s.start_ms, s.end_ms))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("frozen-1".to_string(), 10, Some(80)),
                ("chilled-1".to_string(), 50, None),
            ],
            "each zone's sensors are measured for the time the lot was there"
        );
    }

    #[test]
    fn entries_that_move_nothing_make_no_stay() {
        let mut hold = movement("park", 1, 10, "c1", 0);
        hold.kind = LotEntryKind::Other;
        assert!(zone_stays(&[hold]).is_empty());
    }

    #[test]
    fn a_reefer_leg_runs_from_shipping_to_the_transfer_in() {
        assert_eq!(
            reefer_stay(&transfer(None, None, TransferState::Requested)),
            None
        );
        let leg = reefer_stay(&transfer(Some(200), None, TransferState::InTransit)).unwrap();
        assert_eq!((leg.start_ms, leg.end_ms), (200, None));
        assert_eq!(leg.site_id, "cn-huaihua-park");
        assert_eq!(leg.reefer_sensor_id, "reefer-1");
        let done = reefer_stay(&transfer(Some(200), Some(400), TransferState::Completed)).unwrap();
        assert_eq!(done.end_ms, Some(400));
    }

    #[test]
    fn a_transfer_carries_the_lines_of_the_lot_only() {
        let t = transfer(Some(200), None, TransferState::InTransit);
        assert_eq!(carried(&t, "orange", "l-1"), 40);
        assert_eq!(carried(&t, "orange", "l-2"), 7);
        assert_eq!(carried(&t, "kiwi", "l-1"), 0);
    }

    #[test]
    fn steps_are_the_states_with_a_time() {
        let t = transfer(Some(200), Some(400), TransferState::Completed);
        let states: Vec<_> = steps(&t).iter().map(|s| (s.state, s.at_ms)).collect();
        assert_eq!(
            states,
            vec![
                (TransferState::Requested, 100),
                (TransferState::InTransit, 200),
                (TransferState::Completed, 400),
            ]
        );
        let failed = transfer(None, None, TransferState::Failed);
        assert_eq!(steps(&failed).last().unwrap().state, TransferState::Failed);
    }

    #[test]
    fn overlap_counts_a_stay_that_goes_on_until_now() {
        let stay = Stay {
            site_id: "park".into(),
            zone_id: "c1".into(),
            transfer_id: String::new(),
            reefer_sensor_id: String::new(),
            start_ms: 100,
            end_ms: None,
        };
        assert!(stay.overlaps(50, None, 1_000));
        assert!(stay.overlaps(500, Some(600), 1_000));
        assert!(!stay.overlaps(10, Some(90), 1_000));
        assert!(!stay.overlaps(1_000, None, 1_000));
    }
}
