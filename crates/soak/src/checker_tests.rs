//! The checker can fail: a consistent history passes, and each deliberately broken one is
//! caught with the ids involved.

use chrono::NaiveDate;

use super::*;
use crate::model::*;

const PARK: &str = "park";
const VTE: &str = "vte";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2030, 1, d).unwrap()
}

fn entry(sequence: u64, request_id: &str, kind: EntryKind, lot: &str, delta: i64) -> LedgerRow {
    LedgerRow {
        sequence,
        request_id: request_id.into(),
        kind,
        sku: "sku-1".into(),
        lot: lot.into(),
        delta,
        transfer_id: String::new(),
        hold_id: String::new(),
    }
}

fn transfer_leg(sequence: u64, kind: EntryKind, delta: i64) -> LedgerRow {
    LedgerRow {
        transfer_id: "t-1".into(),
        ..entry(sequence, "gw-t-1", kind, "lot-1", delta)
    }
}

fn stock(lot: &str, on_hand: i64) -> StockRow {
    StockRow {
        sku: "sku-1".into(),
        lot: lot.into(),
        zone: "frozen".into(),
        on_hand,
    }
}

fn booking(id: &str, pallets: i64, state: BookingState) -> ObservedBooking {
    ObservedBooking {
        booking_id: id.into(),
        zone: "frozen".into(),
        pallets,
        first_day: day(10),
        last_day: day(11),
        state,
    }
}

fn seen(sequence: u64, alarm: &str) -> AlarmEventSeen {
    AlarmEventSeen {
        sequence,
        alarm_id: alarm.into(),
    }
}

/// A small consistent run: 100 received at the park, 10 issued, 30 transferred to
/// Vientiane; two bookings in a zone of 100 pallets; one excursion alarm with its hold.
fn consistent() -> (History, Observed) {
    let line = |kind, delta| MovementLine {
        kind,
        sku: "sku-1".into(),
        lot: "lot-1".into(),
        zone: "frozen".into(),
        delta,
    };
    let history = History {
        movements: vec![
            MovementWrite {
                site: PARK.into(),
                request_id: "r-1".into(),
                lines: vec![line(MovementKind::Receipt, 100)],
                sequences: vec![1],
            },
            MovementWrite {
                site: PARK.into(),
                request_id: "r-2".into(),
                lines: vec![line(MovementKind::Issue, -10)],
                sequences: vec![2],
            },
        ],
        transfers: vec![TransferAck {
            transfer_id: "t-1".into(),
            request_id: "s-1".into(),
            source: PARK.into(),
            destination: VTE.into(),
            lines: vec![TransferLine {
                sku: "sku-1".into(),
                lot: "lot-1".into(),
                quantity: 30,
            }],
        }],
        bookings: vec![
            BookingAck {
                site: VTE.into(),
                booking_id: "b-1".into(),
                request_id: "h-1".into(),
                fate: BookingFate::Confirmed,
            },
            BookingAck {
                site: VTE.into(),
                booking_id: "b-2".into(),
                request_id: "h-2".into(),
                fate: BookingFate::Held,
            },
        ],
        readings: vec![ReadingsAck {
            site: PARK.into(),
            sensor: "s".into(),
            request_id: "p-1".into(),
            times_ms: vec![1, 2, 3],
        }],
        watched: [(PARK.to_owned(), vec![seen(1, "a-1"), seen(2, "a-1")])].into(),
        ..History::default()
    };
    let mut park = SiteState {
        ledger: vec![
            entry(1, "r-1", EntryKind::Movement, "lot-1", 100),
            entry(2, "r-2", EntryKind::Movement, "lot-1", -10),
            transfer_leg(3, EntryKind::TransferOut, -30),
            LedgerRow {
                hold_id: "h-9".into(),
                ..entry(4, "hold", EntryKind::HoldPlaced, "", 0)
            },
        ],
        stock: vec![stock("lot-1", 60)],
        alarms: vec![ObservedAlarm {
            alarm_id: "a-1".into(),
            excursion: true,
            hold_status: "PLACED".into(),
            hold_ids: vec!["h-9".into()],
        }],
        alarm_events: vec![seen(1, "a-1"), seen(2, "a-1")],
        ..SiteState::default()
    };
    park.readings.insert("s".into(), 3);
    let mut vte = SiteState {
        ledger: vec![transfer_leg(1, EntryKind::TransferIn, 30)],
        stock: vec![stock("lot-1", 30)],
        bookings: vec![
            booking("b-1", 60, BookingState::Confirmed),
            booking("b-2", 40, BookingState::Held),
        ],
        availability: vec![DayAvailability {
            zone: "frozen".into(),
            day: day(10),
            capacity: 100,
            occupied: 100,
            free: 0,
        }],
        ..SiteState::default()
    };
    vte.capacity.insert("frozen".into(), 100);
    let observed = Observed {
        sites: [(PARK.to_owned(), park), (VTE.to_owned(), vte)].into(),
        transfers: vec![ObservedTransfer {
            transfer_id: "t-1".into(),
            state: TransferState::Completed,
            source: PARK.into(),
            destination: VTE.into(),
            lines: vec![TransferLine {
                sku: "sku-1".into(),
                lot: "lot-1".into(),
                quantity: 30,
            }],
        }],
    };
    (history, observed)
}

fn invariants(violations: &[Violation]) -> Vec<u8> {
    let mut found: Vec<u8> = violations.iter().map(|v| v.invariant).collect();
    found.dedup();
    found
}

#[test]
fn a_consistent_run_passes() {
    let (history, observed) = consistent();
    assert_eq!(check(&history, &observed), vec![]);
}

#[test]
fn an_acknowledged_write_removed_is_caught() {
    let (history, mut observed) = consistent();
    let park = observed.sites.get_mut(PARK).unwrap();
    park.ledger.retain(|e| e.request_id != "r-2");
    // The stock agrees with the ledger that lost the issue: conservation breaks too.
    park.stock = vec![stock("lot-1", 70)];
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![1, 2], "{violations:#?}");
    assert!(violations[0].ids.contains(&"r-2".to_owned()));
    assert!(violations[1].ids.contains(&"lot-1".to_owned()));
}

#[test]
fn a_transfer_credited_twice_is_caught() {
    let (history, mut observed) = consistent();
    let vte = observed.sites.get_mut(VTE).unwrap();
    vte.ledger.push(transfer_leg(2, EntryKind::TransferIn, 30));
    vte.stock = vec![stock("lot-1", 60)];
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![2, 3], "{violations:#?}");
    let credited = &violations[1];
    assert_eq!(credited.ids, vec!["t-1", "sku-1", "lot-1"]);
    assert!(
        credited.message.contains("credited [30, 30]"),
        "{}",
        credited.message
    );
}

#[test]
fn a_transfer_left_in_transit_is_caught() {
    let (history, mut observed) = consistent();
    observed.transfers[0].state = TransferState::InTransit;
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![2, 3], "{violations:#?}");
}

#[test]
fn a_booking_over_capacity_is_caught() {
    let (history, mut observed) = consistent();
    let vte = observed.sites.get_mut(VTE).unwrap();
    vte.bookings.push(booking("b-3", 1, BookingState::Held));
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![4], "{violations:#?}");
    assert!(violations[0].ids.contains(&"b-3".to_owned()));
    assert!(violations[0].message.contains("101 pallets, capacity 100"));
    // And availability that no longer matches the bookings.
    assert!(
        violations
            .iter()
            .any(|v| v.message.contains("availability says"))
    );
}

#[test]
fn a_lost_booking_or_a_lost_cancellation_is_caught() {
    let (mut history, mut observed) = consistent();
    history.bookings[1].fate = BookingFate::Cancelled;
    observed.sites.get_mut(VTE).unwrap().bookings.remove(0);
    let violations = check(&history, &observed);
    assert!(violations.iter().any(|v| v.ids.contains(&"b-1".to_owned())));
    assert!(violations.iter().any(|v| v.ids.contains(&"b-2".to_owned())));
}

#[test]
fn a_pending_hold_and_a_watcher_missing_or_repeating_events_are_caught() {
    let (mut history, mut observed) = consistent();
    let park = observed.sites.get_mut(PARK).unwrap();
    park.alarms[0].hold_status = "PENDING".into();
    park.alarm_events.push(seen(3, "a-2"));
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![5], "{violations:#?}");
    assert!(violations.iter().any(|v| v.ids.contains(&"a-1".to_owned())));
    assert!(
        violations
            .iter()
            .any(|v| v.message.contains("never received: 3"))
    );

    history
        .watched
        .get_mut(PARK)
        .unwrap()
        .extend([seen(3, "a-2"), seen(3, "a-2")]);
    let violations = check(&history, &observed);
    assert!(
        violations
            .iter()
            .any(|v| v.message.contains("received twice"))
    );
}

#[test]
fn lost_readings_bad_answers_and_unexpected_exits_are_caught() {
    let (mut history, mut observed) = consistent();
    observed
        .sites
        .get_mut(PARK)
        .unwrap()
        .readings
        .insert("s".into(), 2);
    history.bad_answers.push(BadAnswer {
        call: "RecordMovements r-7".into(),
        code: "INTERNAL".into(),
        message: "boom".into(),
    });
    history
        .unexpected_exits
        .push("inventory@park: exit status 101".into());
    let violations = check(&history, &observed);
    assert_eq!(invariants(&violations), vec![1, 6], "{violations:#?}");
    assert_eq!(violations.len(), 3);
}

#[test]
fn an_unanswered_write_counts_when_the_ledger_has_it() {
    let (mut history, observed) = consistent();
    let issue = history.movements.remove(1);
    history.unanswered_movements.push(MovementWrite {
        sequences: vec![],
        ..issue
    });
    assert_eq!(check(&history, &observed), vec![]);
}
