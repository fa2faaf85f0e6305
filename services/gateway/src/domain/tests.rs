//! The rules' unit and property tests.

use std::cmp::Ordering;

use chrono::NaiveDate;
use coldchain_network::{NetworkConfig, TemperatureClass};
use proptest::prelude::*;

use super::*;

fn network() -> NetworkConfig {
    NetworkConfig::parse(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/network.toml"
    )))
    .expect("shipped network parses")
}

fn starter() -> coldchain_audit::Author {
    coldchain_audit::Author::new("ops-1", "Anna")
}

fn receiver() -> coldchain_audit::Author {
    coldchain_audit::Author::new("ops-2", "")
}

fn line(sku: &str, lot: &str, from: &str, to: &str, quantity: i64) -> Line {
    Line {
        sku: sku.into(),
        lot_id: lot.into(),
        source_zone_id: from.into(),
        destination_zone_id: to.into(),
        quantity,
        unit: "kg".into(),
        lot: None,
    }
}

fn spec(lines: Vec<Line>) -> TransferSpec {
    TransferSpec {
        transfer_id: Some("t-1".into()),
        source_site_id: "cn-huaihua-park".into(),
        destination_site_id: "la-vientiane".into(),
        lines,
        reefer_sensor_id: "reefer-7".into(),
        reefer_container_id: "MSKU1234565".into(),
        reefer_class: TemperatureClass::Chilled,
        train_or_route: "X8011".into(),
    }
}

fn lot(id: &str) -> Lot {
    Lot {
        lot_id: id.into(),
        expiry: NaiveDate::from_ymd_opt(2030, 1, 1),
        production: None,
        origin: String::new(),
    }
}

#[test]
fn the_happy_path_walks_every_state() {
    let mut t = Transfer::new(
        "t-1".into(),
        spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
        starter(),
        10,
    );
    assert_eq!(t.state, TransferState::Requested);
    assert!(t.needs_work());
    assert!(t.step_failed(TransferState::Requested, "UNAVAILABLE: down".into(), 11));
    assert_eq!(t.last_error, "UNAVAILABLE: down");
    assert!(t.shipped(vec![lot("l1")], 12, 13).unwrap());
    assert_eq!(t.state, TransferState::InTransit);
    assert_eq!(t.last_error, "");
    assert_eq!(t.lines[0].lot, Some(lot("l1")));
    assert!(t.needs_work(), "the reefer sensor is still to bind");
    assert!(t.sensor_bound(14));
    assert!(!t.needs_work());
    assert!(t.arrived(receiver(), 15).unwrap());
    assert_eq!(t.received_ms, Some(15));
    assert!(!t.arrived(receiver(), 16).unwrap(), "a repeat resumes");
    assert!(t.needs_work());
    assert!(t.completed(17, 18).unwrap());
    assert_eq!(t.state, TransferState::Completed);
    assert!(!t.needs_work());
    assert!(!t.completed(19, 20).unwrap());
    assert!(matches!(
        t.arrived(receiver(), 21),
        Err(TransferError::WrongState { .. })
    ));
}

#[test]
fn shipping_twice_changes_nothing_and_a_refusal_after_shipping_is_ignored() {
    let mut t = Transfer::new(
        "t-1".into(),
        spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
        starter(),
        10,
    );
    assert!(t.shipped(vec![lot("l1")], 12, 13).unwrap());
    let before = t.clone();
    assert!(!t.shipped(vec![lot("other")], 99, 99).unwrap());
    assert!(!t.refused(
        Refusal {
            code: 9,
            message: "no".into()
        },
        "x".into(),
        99
    ));
    assert!(!t.step_failed(TransferState::Requested, "late error".into(), 99));
    assert_eq!(t, before);
}

#[test]
fn a_refusal_fails_a_requested_transfer_for_good() {
    let mut t = Transfer::new(
        "t-1".into(),
        spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
        starter(),
        10,
    );
    assert!(t.refused(
        Refusal {
            code: 9,
            message: "short".into()
        },
        "FAILED_PRECONDITION: short".into(),
        11
    ));
    assert_eq!(t.state, TransferState::Failed);
    assert!(!t.needs_work());
    assert!(t.shipped(vec![], 1, 1).is_err());
    assert!(t.arrived(receiver(), 12).is_err());
}

#[test]
fn receipt_lines_merge_lines_of_one_lot() {
    let t = Transfer::new(
        "t-1".into(),
        spec(vec![
            line("kiwi", "l1", "chilled-a", "chilled-a", 5),
            line("citrus", "c1", "chilled-a", "chilled-a", 2),
            line("kiwi", "l1", "frozen-a", "chilled-a", 7),
        ]),
        starter(),
        0,
    );
    let receipts = t.receipt_lines().expect("the sums fit");
    assert_eq!(receipts.len(), 2);
    assert_eq!(
        (receipts[0].sku.as_str(), receipts[0].quantity),
        ("kiwi", 12)
    );
    assert_eq!(
        (receipts[1].sku.as_str(), receipts[1].quantity),
        ("citrus", 2)
    );
}

#[test]
fn lines_are_checked_against_the_network() {
    let net = network();
    assert!(
        check_lines(
            &net,
            &spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)])
        )
        .is_empty()
    );
    let problems = check_lines(
        &net,
        &spec(vec![
            line("kiwi", "l1", "nope", "chilled-a", 5),
            line("kiwi", "l2", "chilled-a", "nowhere", 5),
            line("kiwi", "l3", "chilled-a", "frozen-a", 5),
            line("kiwi", "l4", "chilled-a", "chilled-a", i64::MAX),
            line("kiwi", "l4", "frozen-a", "frozen-a", 1),
        ]),
    );
    assert!(problems.contains(&LineProblem::UnknownZone(
        "lines[0].source_zone_id".into(),
        "cn-huaihua-park".into(),
        "nope".into()
    )));
    assert!(problems.contains(&LineProblem::UnknownZone(
        "lines[1].destination_zone_id".into(),
        "la-vientiane".into(),
        "nowhere".into()
    )));
    let fields: Vec<_> = problems
        .iter()
        .filter_map(|p| match p {
            LineProblem::Invalid(field, _) => Some(field.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        fields,
        [
            "lines[2].destination_zone_id",
            "lines[4].destination_zone_id",
            "lines[4].quantity"
        ]
    );
    let mut unknown = spec(vec![]);
    unknown.destination_site_id = "xx-nowhere".into();
    assert_eq!(
        check_lines(&net, &unknown),
        vec![LineProblem::UnknownSite(
            "destination_site_id",
            "xx-nowhere".into()
        )]
    );
}

#[test]
fn same_definition_ignores_the_id_and_the_lots() {
    let s = spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]);
    let mut t = Transfer::new("t-1".into(), s.clone(), starter(), 0);
    t.shipped(vec![lot("l1")], 1, 1).unwrap();
    assert!(t.same_definition(&s));
    let mut other = s.clone();
    other.lines[0].quantity = 6;
    assert!(!t.same_definition(&other));
    let mut other = s;
    other.train_or_route = "X8012".into();
    assert!(!t.same_definition(&other));
}

#[test]
fn the_saga_acts_on_behalf_of_the_starter_and_the_reporter_but_never_of_unknown() {
    let s = spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]);
    let mut t = Transfer::new("t-1".into(), s.clone(), starter(), 0);
    assert_eq!(t.start_actor(), "ops-1/Anna");
    assert_eq!(t.arrival_actor(), "ops-1/Anna");
    t.shipped(vec![lot("l1")], 1, 1).unwrap();
    t.arrived(receiver(), 2).unwrap();
    assert_eq!(t.arrival_reported_by, Some(receiver()));
    assert_eq!(t.arrival_actor(), "ops-2");
    assert!(!t.arrived(starter(), 3).unwrap());
    assert_eq!(
        t.arrival_reported_by,
        Some(receiver()),
        "the first report stays"
    );

    // Earlier builds sent their steps with no actor; a retry must send the same bytes.
    let mut old = Transfer::new("t-2".into(), s, coldchain_audit::Author::unknown(), 0);
    assert_eq!(old.start_actor(), "");
    old.arrival_reported_by = Some(coldchain_audit::Author::unknown());
    assert_eq!(old.arrival_actor(), "");
}

#[test]
fn zone_totals_sum_lots_and_filter() {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
    let levels = vec![
        Level {
            lot_id: "a".into(),
            zone_id: "chilled-a".into(),
            expiry: d(2030, 5, 1),
            on_hand: 10,
            allocated: 2,
            held: 0,
            available: 8,
        },
        Level {
            lot_id: "b".into(),
            zone_id: "chilled-a".into(),
            expiry: d(2030, 3, 1),
            on_hand: 5,
            allocated: 0,
            held: 5,
            available: 0,
        },
        Level {
            lot_id: "c".into(),
            zone_id: "chilled-a".into(),
            expiry: d(2029, 1, 1),
            on_hand: 0,
            allocated: 0,
            held: 0,
            available: 0,
        },
        Level {
            lot_id: "a".into(),
            zone_id: "frozen-a".into(),
            expiry: d(2030, 5, 1),
            on_hand: 3,
            allocated: 0,
            held: 0,
            available: 3,
        },
        Level {
            lot_id: "z".into(),
            zone_id: "ambient-a".into(),
            expiry: d(2030, 5, 1),
            on_hand: 0,
            allocated: 0,
            held: 0,
            available: 0,
        },
    ];
    let class = |zone: &str| match zone {
        "chilled-a" => Some(TemperatureClass::Chilled),
        "frozen-a" => Some(TemperatureClass::Frozen),
        "ambient-a" => Some(TemperatureClass::Ambient),
        _ => None,
    };
    let rows = zone_totals(&levels, class, None, 0).expect("the sums fit");
    assert_eq!(rows.len(), 2, "the empty ambient zone is skipped");
    assert_eq!(rows[0].zone_id, "chilled-a");
    assert_eq!(
        (
            rows[0].on_hand,
            rows[0].allocated,
            rows[0].held,
            rows[0].available
        ),
        (15, 2, 5, 8)
    );
    assert_eq!(
        rows[0].earliest_expiry,
        d(2030, 3, 1),
        "the empty lot's expiry does not count"
    );
    assert_eq!(rows[0].lot_count, 2);
    let frozen =
        zone_totals(&levels, class, Some(TemperatureClass::Frozen), 0).expect("the sums fit");
    assert_eq!(frozen.len(), 1);
    assert_eq!(frozen[0].zone_id, "frozen-a");
    let at_least_5 = zone_totals(&levels, class, None, 5).expect("the sums fit");
    assert_eq!(
        at_least_5
            .iter()
            .map(|r| r.zone_id.as_str())
            .collect::<Vec<_>>(),
        ["chilled-a"]
    );
}

#[test]
fn offers_sort_by_fit() {
    let offer = |site_index: usize, zone: &str, min_free: i32, fits: bool| Offer {
        site_index,
        site_id: format!("s{site_index}"),
        zone_id: zone.into(),
        capacity: 100,
        min_free,
        fits,
    };
    let mut offers = [
        offer(0, "a", 5, false),
        offer(1, "a", 50, true),
        offer(0, "b", 12, true),
        offer(2, "a", 8, false),
        offer(0, "c", 12, true),
        offer(0, "a", 12, true),
    ];
    offers.sort_by(compare_offers);
    let order: Vec<_> = offers
        .iter()
        .map(|o| (o.site_index, o.zone_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (2, "a"), (0, "a")]
    );
}

#[test]
fn site_offers_take_the_least_free_day() {
    let days = vec![
        DayFree {
            zone_id: "z1".into(),
            capacity: 10,
            free: 7,
        },
        DayFree {
            zone_id: "z2".into(),
            capacity: 20,
            free: 20,
        },
        DayFree {
            zone_id: "z1".into(),
            capacity: 10,
            free: 3,
        },
        DayFree {
            zone_id: "z2".into(),
            capacity: 20,
            free: 4,
        },
    ];
    let offers = site_offers(1, "s", &days, 4);
    assert_eq!(offers.len(), 2);
    assert_eq!(
        (
            offers[0].zone_id.as_str(),
            offers[0].min_free,
            offers[0].fits
        ),
        ("z1", 3, false)
    );
    assert_eq!(
        (
            offers[1].zone_id.as_str(),
            offers[1].min_free,
            offers[1].fits
        ),
        ("z2", 4, true)
    );
}

#[test]
fn alarm_keys_put_the_newest_first() {
    let key = |secs: i64, site: &str, id: &str| AlarmKey {
        started_at: (secs, 0),
        site_id: site.into(),
        alarm_id: id.into(),
    };
    let mut keys = [
        key(1, "a", "x"),
        key(5, "b", "y"),
        key(5, "a", "z"),
        key(5, "a", "y"),
    ];
    keys.sort();
    let order: Vec<_> = keys
        .iter()
        .map(|k| (k.started_at.0, k.site_id.as_str(), k.alarm_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [(5, "a", "y"), (5, "a", "z"), (5, "b", "y"), (1, "a", "x")]
    );
}

#[test]
fn the_step_request_ids_stay_within_the_limit_and_fall_back_to_a_digest() {
    for id in [
        "T-1".to_string(),
        "x".repeat(100),
        "y".repeat(128),
        "é".repeat(64),
    ] {
        for request_id in [
            transfer_out_request_id(&id),
            transfer_in_request_id(&id),
            sensor_request_id(&id),
        ] {
            assert!(
                request_id.len() <= MAX_STEP_REQUEST_ID_BYTES,
                "{request_id}"
            );
        }
    }
    assert!(transfer_in_request_id(&"x".repeat(128)).starts_with("gateway:sha256-"));
}

fn level(lot: &str, zone: &str, on_hand: i64) -> Level {
    Level {
        lot_id: lot.into(),
        zone_id: zone.into(),
        expiry: None,
        on_hand,
        allocated: 0,
        held: 0,
        available: on_hand,
    }
}

/// Three lots of i64::MAX in one zone sum to 3 × (2^63 − 1): not a 64-bit quantity. The
/// answer is refused, never saturated into i64::MAX (which would look like a real total).
#[test]
fn zone_totals_that_do_not_fit_are_refused_not_saturated() {
    let levels = [
        level("a", "chilled-a", i64::MAX),
        level("b", "chilled-a", i64::MAX),
        level("c", "chilled-a", i64::MAX),
    ];
    let refused = zone_totals(&levels, |_| Some(TemperatureClass::Chilled), None, 0)
        .expect_err("3 × i64::MAX does not fit");
    assert_eq!(refused.quantity, "on_hand");
    assert_eq!(refused.total, 3 * i128::from(i64::MAX));
    assert!(refused.to_string().contains("chilled-a"), "{refused}");

    // Sums that come back within range after a negative row are exact, not clipped.
    let levels = [
        level("a", "chilled-a", i64::MAX),
        level("b", "chilled-a", i64::MAX),
        level("c", "chilled-a", -i64::MAX),
    ];
    let rows = zone_totals(&levels, |_| None, None, 0).expect("fits once summed");
    assert_eq!(rows[0].on_hand, i64::MAX);

    // A zone the filters leave out cannot refuse the answer.
    let levels = [
        level("a", "frozen-a", i64::MAX),
        level("b", "frozen-a", i64::MAX),
        level("c", "chilled-a", 4),
    ];
    let class = |zone: &str| {
        Some(if zone == "frozen-a" {
            TemperatureClass::Frozen
        } else {
            TemperatureClass::Chilled
        })
    };
    let rows = zone_totals(&levels, class, Some(TemperatureClass::Chilled), 0).expect("fits");
    assert_eq!(rows.len(), 1);
}

#[test]
fn inbound_totals_are_exact_per_destination() {
    let travelling = |id: &str, to: &str, quantity: i64| InTransit {
        transfer_id: id.into(),
        state: TransferState::InTransit,
        source_site_id: "cn-huaihua-park".into(),
        destination_site_id: to.into(),
        lot_id: "l1".into(),
        lot: None,
        quantity,
        unit: "kg".into(),
        train_or_route: String::new(),
        shipped_ms: Some(1),
    };
    let lines = [
        travelling("t1", "la-vientiane", i64::MAX),
        travelling("t2", "la-vientiane", i64::MAX),
        travelling("t3", "la-vientiane", i64::MAX),
        travelling("t4", "th-bangkok", 5),
        travelling("t5", "th-bangkok", 7),
    ];
    let totals = inbound_totals(&lines, "kiwi");
    let refused = totals["la-vientiane"].clone().expect_err("does not fit");
    assert_eq!(refused.total, 3 * i128::from(i64::MAX));
    assert_eq!(refused.quantity, "inbound_in_transit");
    assert_eq!(totals["th-bangkok"], Ok(12));
}

#[test]
fn receipt_lines_that_do_not_fit_are_refused() {
    let mut t = Transfer::new(
        "t-1".into(),
        spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
        starter(),
        0,
    );
    t.lines = vec![
        line("kiwi", "l1", "chilled-a", "chilled-a", i64::MAX),
        line("kiwi", "l1", "frozen-a", "chilled-a", i64::MAX),
        line("kiwi", "l1", "cool-a", "chilled-a", i64::MAX),
    ];
    let refused = t.receipt_lines().expect_err("3 × i64::MAX does not fit");
    assert_eq!(refused.total, 3 * i128::from(i64::MAX));
}

fn arb_offer() -> impl Strategy<Value = Offer> {
    (0usize..4, "[a-c]", 0i32..50, any::<bool>()).prop_map(|(site_index, zone, min_free, fits)| {
        Offer {
            site_index,
            site_id: format!("s{site_index}"),
            zone_id: zone,
            capacity: 50,
            min_free,
            fits,
        }
    })
}

fn arb_state() -> impl Strategy<Value = u8> {
    0u8..7
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn offer_order_is_total_and_fitting_zones_come_first(mut offers in proptest::collection::vec(arb_offer(), 0..20)) {
        offers.sort_by(compare_offers);
        for pair in offers.windows(2) {
            prop_assert_ne!(compare_offers(&pair[0], &pair[1]), Ordering::Greater);
            prop_assert!(pair[0].fits || !pair[1].fits);
            if pair[0].fits && pair[1].fits {
                prop_assert!(pair[0].min_free <= pair[1].min_free);
            }
            if !pair[0].fits && !pair[1].fits {
                prop_assert!(pair[0].min_free >= pair[1].min_free);
            }
        }
    }

    #[test]
    fn zone_totals_conserve_on_hand(
        rows in proptest::collection::vec((0usize..3, 0i64..1_000, 0i64..1_000), 0..30)
    ) {
        let zones = ["chilled-a", "frozen-a", "cool-a"];
        let levels: Vec<Level> = rows.iter().enumerate().map(|(i, (zone, on_hand, allocated))| Level {
            lot_id: format!("l{i}"),
            zone_id: zones[*zone].to_string(),
            expiry: NaiveDate::from_ymd_opt(2030, 1, 1 + (i % 28) as u32),
            on_hand: *on_hand,
            allocated: (*allocated).min(*on_hand),
            held: 0,
            available: on_hand - (*allocated).min(*on_hand),
        }).collect();
        let totals = zone_totals(&levels, |_| Some(TemperatureClass::Chilled), None, 0).expect("the sums fit");
        let total: i64 = totals.iter().map(|t| t.on_hand).sum();
        let expected: i64 = levels.iter().map(|l| l.on_hand).sum();
        prop_assert_eq!(total, expected);
        for t in &totals {
            prop_assert!(t.on_hand > 0);
            prop_assert!(t.lot_count > 0);
            prop_assert!(t.earliest_expiry.is_some());
        }
    }

    /// Whatever order steps and stale retries arrive in, a transfer never leaves a final
    /// state, never goes back, and stays IN_TRANSIT/RECEIVING only after shipping.
    #[test]
    fn the_state_machine_only_moves_forward(steps in proptest::collection::vec(arb_state(), 0..40)) {
        let mut t = Transfer::new("t".into(), spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]), starter(), 0);
        let rank = |s: TransferState| match s {
            TransferState::Requested => 0,
            TransferState::InTransit => 1,
            TransferState::Receiving => 2,
            TransferState::Completed | TransferState::Failed => 3,
        };
        for (now, step) in steps.into_iter().enumerate() {
            let now = now as i64 + 1;
            let before = t.state;
            match step {
                0 => { let _ = t.shipped(vec![lot("l1")], now, now); }
                1 => { t.refused(Refusal { code: 9, message: "no".into() }, "no".into(), now); }
                2 => { t.step_failed(before, format!("e{now}"), now); }
                3 => { t.sensor_bound(now); }
                4 => { let _ = t.arrived(receiver(), now); }
                5 => { let _ = t.completed(now, now); }
                _ => { t.sensor_refused("no".into(), now); }
            }
            prop_assert!(rank(t.state) >= rank(before));
            if before.is_final() {
                prop_assert_eq!(t.state, before);
            }
            if t.state.is_travelling() || t.state == TransferState::Completed {
                prop_assert!(t.shipped_ms.is_some());
                prop_assert!(t.lines[0].lot.is_some());
            }
            if t.state == TransferState::Failed {
                prop_assert!(t.shipped_ms.is_none());
            }
        }
    }
}
