use std::cmp::Ordering;

use chrono::NaiveDate;

use super::Strategy;
use super::*;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn pos(on_hand: i64, allocated: i64, version: u64) -> Position {
    Position {
        on_hand,
        allocated,
        version,
    }
}

#[test]
fn dates_are_stored_as_days() {
    // Dates from request parts are read by the shared protobuf date conversion.
    assert_eq!(
        date_from_days(date_to_days(d(2026, 7, 1))),
        Some(d(2026, 7, 1))
    );
}

#[test]
fn local_date_uses_the_site_time_zone() {
    // 2026-03-01T17:00:00Z is already March 2nd in Shanghai (UTC+8).
    let millis = chrono::DateTime::parse_from_rfc3339("2026-03-01T17:00:00Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        local_date(millis, &chrono_tz::Asia::Shanghai),
        d(2026, 3, 2)
    );
    assert_eq!(local_date(millis, &chrono::Utc), d(2026, 3, 1));
}

#[test]
fn expiry_day_itself_is_usable() {
    assert!(!is_expired(d(2026, 5, 1), d(2026, 5, 1)));
    assert!(is_expired(d(2026, 4, 30), d(2026, 5, 1)));
}

#[test]
fn buckets_have_the_documented_edges() {
    let today = d(2026, 1, 1);
    let at = |days: i64| expiry_bucket(today + chrono::Duration::days(days), today);
    assert_eq!(at(-1), ExpiryBucket::Expired);
    assert_eq!(at(0), ExpiryBucket::Within30);
    assert_eq!(at(30), ExpiryBucket::Within30);
    assert_eq!(at(31), ExpiryBucket::Within60);
    assert_eq!(at(60), ExpiryBucket::Within60);
    assert_eq!(at(61), ExpiryBucket::Within90);
    assert_eq!(at(90), ExpiryBucket::Within90);
    assert_eq!(at(91), ExpiryBucket::Later);
}

#[test]
fn units_and_text() {
    assert!(check_unit("kg").is_ok());
    assert!(check_unit("case-12").is_ok());
    assert!(check_unit("").is_err());
    assert!(check_unit("a b").is_err());
    assert!(check_unit(&"x".repeat(17)).is_err());
    assert!(check_text("", 512, false).is_ok());
    assert!(check_text(" ", 512, true).is_err());
    assert!(check_text("a\u{7}", 512, false).is_err());
    assert!(
        check_text(&"é".repeat(200), 256, false).is_err(),
        "bytes, not chars"
    );
}

#[test]
fn lot_attributes_are_checked_only_when_stated() {
    let stored = LotAttributes {
        expiry: d(2026, 6, 1),
        production: Some(d(2026, 1, 1)),
        origin: "Qianyang".into(),
    };
    let mut stated = StatedLot {
        lot_id: "L1".into(),
        ..StatedLot::default()
    };
    assert!(stated.check_against(&stored).is_ok());
    stated.expiry = Some(d(2026, 6, 1));
    stated.origin = "Qianyang".into();
    assert!(stated.check_against(&stored).is_ok());
    stated.expiry = Some(d(2026, 6, 2));
    assert_eq!(
        stated.check_against(&stored).unwrap_err().attribute,
        "expiry"
    );
    stated.expiry = None;
    stated.origin = "Hanoi".into();
    assert_eq!(
        stated.check_against(&stored).unwrap_err().attribute,
        "origin"
    );
    stated.origin.clear();
    stated.production = Some(d(2026, 1, 2));
    assert_eq!(
        stated.check_against(&stored).unwrap_err().attribute,
        "production"
    );
    assert!(StatedLot::default().new_attributes().is_none());
}

#[test]
fn holds_match_every_set_part() {
    let zone = HoldScope {
        zone_id: "z1".into(),
        ..HoldScope::default()
    };
    let lot = HoldScope {
        sku: "s".into(),
        lot_id: "l".into(),
        ..HoldScope::default()
    };
    let both = HoldScope {
        zone_id: "z1".into(),
        sku: "s".into(),
        lot_id: String::new(),
    };
    assert!(zone.covers("any", "any", "z1"));
    assert!(!zone.covers("any", "any", "z2"));
    assert!(lot.covers("s", "l", "z9"));
    assert!(!lot.covers("s", "l2", "z9"));
    assert!(!lot.covers("t", "l", "z9"));
    assert!(both.covers("s", "x", "z1"));
    assert!(!both.covers("s", "x", "z2"));
    assert!(!both.covers("t", "x", "z1"));
    assert!(HoldScope::default().is_empty());
}

#[test]
fn receipt_and_issue() {
    let e = apply_movement(pos(0, 0, 0), MovementKind::Receipt, 10, None, false, 0).unwrap();
    assert_eq!(e.after, pos(10, 0, 1));
    assert_eq!(e.delta, 10);
    let e = apply_movement(e.after, MovementKind::Issue, 4, None, false, 0).unwrap();
    assert_eq!(e.after, pos(6, 0, 2));
    assert_eq!(e.delta, -4);
    let refused = apply_movement(e.after, MovementKind::Issue, 7, None, false, 0).unwrap_err();
    assert_eq!(
        refused,
        StockRefusal::Insufficient {
            available: 6,
            requested: 7
        }
    );
}

#[test]
fn held_stock_cannot_leave_but_can_be_written_off() {
    let p = pos(10, 0, 3);
    assert_eq!(p.available(true), 0);
    assert_eq!(p.held(true), 10);
    assert!(matches!(
        apply_movement(p, MovementKind::Issue, 1, None, true, 0),
        Err(StockRefusal::Held { on_hand: 10 })
    ));
    assert!(matches!(
        apply_movement(p, MovementKind::TransferOut, 1, None, true, 0),
        Err(StockRefusal::Held { .. })
    ));
    let e = apply_movement(p, MovementKind::Adjustment, -10, None, true, 0).unwrap();
    assert_eq!(e.after, pos(0, 0, 4));
    // Receipts into held positions are fine (and stay held).
    assert!(apply_movement(p, MovementKind::Receipt, 5, None, true, 0).is_ok());
}

#[test]
fn issue_consumes_the_order_allocation_first() {
    let p = pos(10, 6, 1);
    assert_eq!(p.available(false), 4);
    let e = apply_movement(p, MovementKind::Issue, 8, None, false, 6).unwrap();
    assert_eq!(e.allocated_delta, -6);
    assert_eq!(e.after, pos(2, 0, 2));
    let refused = apply_movement(p, MovementKind::Issue, 11, None, false, 6).unwrap_err();
    assert_eq!(
        refused,
        StockRefusal::Insufficient {
            available: 10,
            requested: 11
        }
    );
    // Without the order, the allocation is not available.
    let refused = apply_movement(p, MovementKind::Issue, 5, None, false, 0).unwrap_err();
    assert_eq!(
        refused,
        StockRefusal::Insufficient {
            available: 4,
            requested: 5
        }
    );
}

#[test]
fn adjustments_and_counts_respect_allocations() {
    let p = pos(10, 6, 5);
    assert!(matches!(
        apply_movement(p, MovementKind::Adjustment, -5, None, false, 0),
        Err(StockRefusal::BelowAllocated {
            on_hand_after: 5,
            allocated: 6
        })
    ));
    assert!(matches!(
        apply_movement(pos(3, 0, 1), MovementKind::Adjustment, -4, None, false, 0),
        Err(StockRefusal::Negative { .. })
    ));
    assert!(matches!(
        apply_movement(p, MovementKind::Count, 12, Some(4), false, 0),
        Err(StockRefusal::StaleVersion {
            expected: 4,
            current: 5
        })
    ));
    assert!(matches!(
        apply_movement(p, MovementKind::Count, 5, Some(5), false, 0),
        Err(StockRefusal::BelowAllocated { .. })
    ));
    let e = apply_movement(p, MovementKind::Count, 10, Some(5), false, 0).unwrap();
    assert_eq!((e.delta, e.after), (0, pos(10, 6, 6)));
    let e = apply_movement(pos(0, 0, 0), MovementKind::Count, 7, Some(0), false, 0).unwrap();
    assert_eq!((e.delta, e.after), (7, pos(7, 0, 1)));
}

#[test]
fn overflow_is_a_refusal_not_a_panic() {
    let p = pos(i64::MAX - 1, 0, 1);
    assert!(matches!(
        apply_movement(p, MovementKind::Receipt, 5, None, false, 0),
        Err(StockRefusal::Overflow { .. })
    ));
    assert!(matches!(
        apply_movement(
            pos(-5, 0, 1),
            MovementKind::Count,
            i64::MAX,
            Some(1),
            false,
            0
        ),
        Err(StockRefusal::Overflow { .. })
    ));
}

#[test]
fn balances_are_bounded_but_may_drain() {
    let full = apply_movement(
        pos(0, 0, 0),
        MovementKind::Receipt,
        MAX_QUANTITY,
        None,
        false,
        0,
    )
    .unwrap();
    assert_eq!(full.after.on_hand, MAX_QUANTITY);
    assert_eq!(
        apply_movement(full.after, MovementKind::Receipt, 1, None, false, 0),
        Err(StockRefusal::AboveMaximum {
            on_hand: MAX_QUANTITY,
            delta: 1
        })
    );
    assert!(matches!(
        apply_movement(
            pos(5, 0, 1),
            MovementKind::Adjustment,
            MAX_QUANTITY,
            None,
            false,
            0
        ),
        Err(StockRefusal::AboveMaximum { .. })
    ));
    assert!(matches!(
        apply_movement(
            pos(0, 0, 0),
            MovementKind::Count,
            MAX_QUANTITY + 1,
            Some(0),
            false,
            0
        ),
        Err(StockRefusal::AboveMaximum { .. })
    ));
    // A position above the bound (stored by an older build) can still go down.
    let over = pos(3 * MAX_QUANTITY, 0, 1);
    assert!(apply_movement(over, MovementKind::Issue, 1, None, false, 0).is_ok());
    assert!(apply_movement(over, MovementKind::Receipt, 1, None, false, 0).is_err());
}

#[test]
fn totals_of_positions_at_the_bound_are_exact() {
    let mut sum = TotalsSum::default();
    for _ in 0..3 {
        sum.add(&pos(MAX_QUANTITY, MAX_QUANTITY / 4, 1), false);
    }
    sum.add(&pos(MAX_QUANTITY, 0, 1), true);
    assert_eq!(
        sum.totals(),
        Ok(StockTotals {
            on_hand: 4 * MAX_QUANTITY,
            allocated: 3 * (MAX_QUANTITY / 4),
            held: MAX_QUANTITY,
            available: 3 * (MAX_QUANTITY - MAX_QUANTITY / 4),
        })
    );
    // The most full positions whose total still fits is over nine million.
    const { assert!(i64::MAX / MAX_QUANTITY > 9_000_000) };
}

#[test]
fn totals_beyond_64_bits_are_refused_not_saturated() {
    // Three positions of 2^63 − 1 (possible only in data written before the bound).
    let mut sum = TotalsSum::default();
    let mut held = QuantitySum::default();
    for _ in 0..3 {
        sum.add(&pos(i64::MAX, 0, 1), false);
        held.add(i64::MAX);
    }
    assert_eq!(sum.totals(), Err(("on_hand", 3 * i128::from(i64::MAX))));
    assert_eq!(held.total(), Err(3 * i128::from(i64::MAX)));
    let mut fits = QuantitySum::default();
    fits.add(i64::MAX);
    assert_eq!(fits.total(), Ok(i64::MAX));
}

#[test]
fn an_allocation_shortfall_reports_the_exact_allocatable_quantity() {
    let today = d(2026, 3, 1);
    let full = |lot: &str| cand(lot, "z1", d(2026, 9, 1), 1, MAX_QUANTITY);
    let candidates = vec![full("a"), full("b"), full("c")];
    assert_eq!(
        pick(&candidates, i64::MAX, Strategy::Fefo, today),
        Err(3 * MAX_QUANTITY)
    );
    assert_eq!(
        pick(&candidates, 3 * MAX_QUANTITY, Strategy::Fefo, today).map(|p| p.len()),
        Ok(3)
    );
}

fn cand(lot: &str, zone: &str, expiry: NaiveDate, first: i64, available: i64) -> Candidate {
    Candidate {
        lot_id: lot.into(),
        zone_id: zone.into(),
        expiry,
        first_received_ms: first,
        available,
        held: false,
    }
}

#[test]
fn fefo_splits_and_skips_held_and_expired() {
    let today = d(2026, 3, 1);
    let mut candidates = vec![
        cand("late", "z1", d(2026, 9, 1), 1, 10),
        cand("soon", "z1", d(2026, 4, 1), 5, 3),
        cand("gone", "z1", d(2026, 2, 1), 0, 50),
        cand("held", "z2", d(2026, 3, 15), 0, 50),
        cand("soon", "z2", d(2026, 4, 1), 5, 4),
    ];
    candidates[3].held = true;
    let picks = pick(&candidates, 9, Strategy::Fefo, today).unwrap();
    assert_eq!(picks, vec![(1, 3), (4, 4), (0, 2)]);
    assert_eq!(pick(&candidates, 18, Strategy::Fefo, today), Err(17));
    let fifo = pick(&candidates, 12, Strategy::Fifo, today).unwrap();
    assert_eq!(fifo, vec![(0, 10), (1, 2)]);
}

#[test]
fn consumption_walks_picks_on_the_position() {
    let mut picks = vec![
        PickState {
            lot_id: "a".into(),
            zone_id: "z".into(),
            quantity: 5,
            consumed: 0,
        },
        PickState {
            lot_id: "b".into(),
            zone_id: "z".into(),
            quantity: 5,
            consumed: 0,
        },
    ];
    assert_eq!(reserved_on(&picks, "a", "z"), 5);
    assert_eq!(consume(&mut picks, "a", "z", 7), 5);
    assert!(!fully_consumed(&picks));
    assert_eq!(consume(&mut picks, "b", "z", 5), 5);
    assert!(fully_consumed(&picks));
}

// ---------------------------------------------------------------------------------------
// Properties

#[derive(Debug, Clone)]
enum Op {
    Move(MovementKind, i64, bool),
    Count(i64, bool),
    Allocate(i64),
    Release,
    IssueOrder(i64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        (1i64..50).prop_map(|q| Op::Move(MovementKind::Receipt, q, false)),
        (1i64..50).prop_map(|q| Op::Move(MovementKind::TransferIn, q, false)),
        (1i64..60, any::<bool>()).prop_map(|(q, h)| Op::Move(MovementKind::Issue, q, h)),
        (1i64..60, any::<bool>()).prop_map(|(q, h)| Op::Move(MovementKind::TransferOut, q, h)),
        (-60i64..60)
            .prop_filter("non-zero", |q| *q != 0)
            .prop_map(|q| Op::Move(MovementKind::Adjustment, q, false)),
        (0i64..80, any::<bool>()).prop_map(|(q, stale)| Op::Count(q, stale)),
        (1i64..40).prop_map(Op::Allocate),
        Just(Op::Release),
        (1i64..40).prop_map(Op::IssueOrder),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of movements, allocations and releases on one position: on hand
    /// always equals the sum of the accepted deltas (the ledger), never goes negative,
    /// allocated stays within 0..=on_hand and equals the sum of allocation deltas, the
    /// version counts the accepted movements, and a refusal changes nothing.
    #[test]
    fn balance_is_the_sum_of_ledger_deltas(ops in proptest::collection::vec(op(), 1..80)) {
        let mut p = Position::default();
        let mut ledger_sum: i64 = 0;
        let mut allocated_sum: i64 = 0;
        let mut movements: u64 = 0;
        let mut reserved: i64 = 0; // one order's reservation on this position
        for op in ops {
            let before = p;
            let result = match op {
                Op::Move(kind, q, held) => apply_movement(p, kind, q, None, held, 0).map(Some),
                Op::Count(q, stale) => {
                    let expected = if stale { p.version + 1 } else { p.version };
                    apply_movement(p, MovementKind::Count, q, Some(expected), false, 0).map(Some)
                }
                Op::IssueOrder(q) => apply_movement(p, MovementKind::Issue, q, None, false, reserved).map(Some),
                Op::Allocate(q) => {
                    if q <= p.available(false) {
                        p.allocated += q;
                        reserved += q;
                        allocated_sum += q;
                    }
                    Ok(None)
                }
                Op::Release => {
                    p.allocated -= reserved;
                    allocated_sum -= reserved;
                    reserved = 0;
                    Ok(None)
                }
            };
            match result {
                Ok(Some(effect)) => {
                    prop_assert_eq!(effect.after.on_hand, before.on_hand + effect.delta);
                    prop_assert_eq!(effect.after.version, before.version + 1);
                    ledger_sum += effect.delta;
                    allocated_sum += effect.allocated_delta;
                    reserved += effect.allocated_delta;
                    movements += 1;
                    p = effect.after;
                }
                Ok(None) => {}
                Err(_) => prop_assert_eq!(p, before),
            }
            prop_assert!(p.on_hand >= 0);
            prop_assert_eq!(p.on_hand, ledger_sum);
            prop_assert_eq!(p.allocated, allocated_sum);
            prop_assert!(p.allocated >= 0 && p.allocated <= p.on_hand);
            prop_assert!(reserved >= 0 && reserved <= p.allocated);
            prop_assert_eq!(p.version, movements);
            prop_assert_eq!(p.available(true), 0);
        }
    }

    /// FEFO picks come in expiry order (FIFO: first-receipt order), never from held,
    /// expired or empty positions, never beyond a position's available quantity, and
    /// sum to the request; a shortfall reports exactly the allocatable total.
    #[test]
    fn picks_follow_the_strategy(
        raw in proptest::collection::vec((0i64..40, 0i64..10, 0i64..20, any::<bool>(), 0usize..3), 0..12),
        quantity in 1i64..120,
        fifo in any::<bool>(),
    ) {
        let today = d(2026, 1, 10);
        let candidates: Vec<Candidate> = raw
            .iter()
            .enumerate()
            .map(|(i, (expiry_off, first, available, held, zone))| Candidate {
                lot_id: format!("lot-{i:02}"),
                zone_id: format!("z{zone}"),
                expiry: d(2026, 1, 1) + chrono::Duration::days(*expiry_off),
                first_received_ms: *first,
                available: *available,
                held: *held,
            })
            .collect();
        let strategy = if fifo { Strategy::Fifo } else { Strategy::Fefo };
        let eligible: i64 = candidates.iter().filter(|c| is_allocatable(c, today)).map(|c| c.available).sum();
        match pick(&candidates, quantity, strategy, today) {
            Ok(picks) => {
                prop_assert_eq!(picks.iter().map(|(_, q)| q).sum::<i64>(), quantity);
                for (i, q) in &picks {
                    let c = &candidates[*i];
                    prop_assert!(is_allocatable(c, today));
                    prop_assert!(*q > 0 && *q <= c.available);
                }
                for pair in picks.windows(2) {
                    let (a, b) = (&candidates[pair[0].0], &candidates[pair[1].0]);
                    match strategy {
                        Strategy::Fefo => prop_assert!(a.expiry <= b.expiry),
                        Strategy::Fifo => prop_assert!(a.first_received_ms <= b.first_received_ms),
                    }
                    prop_assert_ne!(picking_order(a, b, strategy), Ordering::Greater);
                }
                // Every pick but the last takes the whole position.
                for (i, q) in picks.iter().take(picks.len().saturating_sub(1)) {
                    prop_assert_eq!(*q, candidates[*i].available);
                }
            }
            Err(allocatable) => {
                prop_assert_eq!(allocatable, eligible);
                prop_assert!(allocatable < quantity);
            }
        }
    }

    /// Buckets never go backwards as expiry moves later.
    #[test]
    fn buckets_never_go_backwards(a in -200i64..200, b in -200i64..200) {
        let today = d(2026, 6, 1);
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(
            expiry_bucket(today + chrono::Duration::days(lo), today)
                <= expiry_bucket(today + chrono::Duration::days(hi), today)
        );
    }
}
