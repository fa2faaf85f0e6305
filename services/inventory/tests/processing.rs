//! Processing at the park and moves inside a site, against a real server: transformations
//! (inputs consumed and outputs produced atomically, the link kept and read back by
//! GetTransformation) and relocations (the lot keeps its identity and expiry, held stock
//! moves only where its holds allow and follow it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;

use coldchain_proto::common::v1 as cpb;
use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::Code;

const ORANGES: &str = "NAVEL-ORANGE";
const SEGMENTS: &str = "CITRUS-SEGMENTS-FROZEN";
const JUICE: &str = "ORANGE-JUICE";
const ORCHARD_LOT: &str = "QIANYANG-2026-11";

fn oranges_expiry() -> cpb::Date {
    date(2026, 4, 15)
}

fn spec(id: &str) -> pb::Transformation {
    pb::Transformation {
        transformation_id: id.into(),
        work_order: "WO-2026-0042".into(),
        input_mass_g: 1_000_000,
        output_mass_g: 820_000,
        waste_mass_g: 180_000,
        write_off: false,
    }
}

fn input(id: &str, sku: &str, lot_id: &str, zone: &str, quantity: i64) -> pb::Movement {
    pb::Movement {
        transformation: Some(spec(id)),
        ..movement(
            pb::MovementKind::TransformationInput,
            sku,
            lot_id,
            zone,
            quantity,
        )
    }
}

fn output(
    id: &str,
    sku: &str,
    lot_id: &str,
    zone: &str,
    quantity: i64,
    unit: &str,
    expiry: Option<cpb::Date>,
) -> pb::Movement {
    pb::Movement {
        transformation: Some(spec(id)),
        lot: lot(lot_id, expiry),
        unit: unit.into(),
        ..movement(
            pb::MovementKind::TransformationOutput,
            sku,
            lot_id,
            zone,
            quantity,
        )
    }
}

fn relocation(sku: &str, lot_id: &str, from: &str, to: &str, quantity: i64) -> pb::Movement {
    pb::Movement {
        to_zone_id: to.into(),
        ..movement(pb::MovementKind::Relocation, sku, lot_id, from, quantity)
    }
}

/// A site with 1,000 kg of oranges in the chilled room.
async fn with_oranges() -> (Harness, Client) {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "receive-oranges",
        vec![receipt(
            ORANGES,
            ORCHARD_LOT,
            CHILLED,
            1000,
            oranges_expiry(),
        )],
    )
    .await
    .expect("receipt");
    (h, c)
}

async fn ledger_len(c: &mut Client) -> usize {
    ledger(c, 1).await.len()
}

async fn on_hand(c: &mut Client, sku: &str, lot_id: &str, zone: &str) -> i64 {
    match stock(c, sku, lot_id, zone).await {
        Ok(response) => response.levels.iter().map(|l| l.on_hand).sum(),
        Err(status) if status.code() == Code::NotFound => 0,
        Err(status) => panic!("stock: {status:?}"),
    }
}

#[tokio::test]
async fn a_transformation_consumes_inputs_produces_outputs_and_keeps_the_link() {
    let (h, mut c) = with_oranges().await;
    let answer = c
        .record_movements(pb::RecordMovementsRequest {
            actor: "line lead Li".into(),
            ..batch(
                "freeze-1",
                vec![
                    input("FZ-1", ORANGES, ORCHARD_LOT, CHILLED, 400),
                    output(
                        "FZ-1",
                        SEGMENTS,
                        "SEG-2026-001",
                        FROZEN,
                        30,
                        "case-12",
                        Some(date(2027, 3, 1)),
                    ),
                    output(
                        "FZ-1",
                        JUICE,
                        "JUICE-2026-001",
                        CHILLED,
                        80,
                        "l",
                        Some(date(2026, 3, 20)),
                    ),
                ],
            )
        })
        .await
        .expect("transformation")
        .into_inner();
    let kinds: Vec<i32> = answer.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            pb::LedgerEntryKind::TransformationInput as i32,
            pb::LedgerEntryKind::TransformationOutput as i32,
            pb::LedgerEntryKind::TransformationOutput as i32,
        ]
    );
    assert!(answer.relocation_arrivals.is_empty());
    assert_eq!(answer.entries[0].delta, -400);
    assert_eq!(answer.entries[1].delta, 30);
    for entry in &answer.entries {
        assert_eq!(entry.transformation.as_ref(), Some(&spec("FZ-1")));
        let by = entry.recorded_by.as_ref().expect("author");
        assert_eq!(by.actor, "line lead Li");
    }
    // The output is a lot of its own: its own expiry, its own unit.
    let segments = level(&mut c, SEGMENTS, "SEG-2026-001", FROZEN).await;
    assert_eq!(segments.on_hand, 30);
    assert_eq!(segments.unit, "case-12");
    assert_eq!(
        segments.lot.as_ref().and_then(|l| l.expiry),
        Some(date(2027, 3, 1))
    );
    assert_eq!(on_hand(&mut c, ORANGES, ORCHARD_LOT, CHILLED).await, 600);

    // The link, read back (and after a restart: it is stored, not derived).
    let read = |mut c: Client| async move {
        c.get_transformation(pb::GetTransformationRequest {
            transformation_id: "FZ-1".into(),
        })
        .await
        .expect("get transformation")
        .into_inner()
    };
    let recorded = read(c.clone()).await;
    assert_eq!(recorded.transformation, Some(spec("FZ-1")));
    assert_eq!(recorded.inputs, answer.entries[..1].to_vec());
    assert_eq!(recorded.outputs, answer.entries[1..].to_vec());
    let mut h = h;
    h.restart().await;
    let c = h.client().await;
    assert_eq!(read(c.clone()).await, recorded);

    // The input lot's history shows the transformation; WatchLedger streams it.
    let mut c = c;
    let lot_entries = c
        .list_lot_entries(pb::ListLotEntriesRequest {
            sku: ORANGES.into(),
            lot_id: ORCHARD_LOT.into(),
            ..Default::default()
        })
        .await
        .expect("lot entries")
        .into_inner()
        .entries;
    assert_eq!(lot_entries.last(), Some(&answer.entries[0]));
    let streamed = ledger(&mut c, answer.entries[0].sequence).await;
    assert_eq!(streamed[..3].to_vec(), answer.entries);

    // Unknown ids are NOT_FOUND, malformed ones INVALID_ARGUMENT.
    let unknown = c
        .get_transformation(pb::GetTransformationRequest {
            transformation_id: "FZ-404".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let bad = c
        .get_transformation(pb::GetTransformationRequest {
            transformation_id: " padded".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), vec!["transformation_id"]);
}

#[tokio::test]
async fn a_transformation_that_cannot_take_its_inputs_is_refused_whole_and_changes_nothing() {
    let (h, mut c) = with_oranges().await;
    record(
        &mut c,
        "old-oranges",
        vec![receipt(ORANGES, "OLD-LOT", CHILLED, 50, date(2026, 3, 5))],
    )
    .await
    .expect("receipt");
    let held = c
        .place_hold(pb::PlaceHoldRequest {
            request_id: "hold-old".into(),
            sku: ORANGES.into(),
            lot_id: "HELD-LOT".into(),
            reason: "lab sample".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(held.unwrap_err().code(), Code::NotFound, "lot unknown yet");
    record(
        &mut c,
        "held-oranges",
        vec![receipt(ORANGES, "HELD-LOT", CHILLED, 50, oranges_expiry())],
    )
    .await
    .expect("receipt");
    c.place_hold(pb::PlaceHoldRequest {
        request_id: "hold-lot".into(),
        sku: ORANGES.into(),
        lot_id: "HELD-LOT".into(),
        reason: "lab sample".into(),
        ..Default::default()
    })
    .await
    .expect("hold");
    h.advance_days(10); // OLD-LOT expired on 2026-03-05
    let before = ledger_len(&mut c).await;

    let attempt = |id: &str, input_line: pb::Movement| {
        let mut output_line = output(
            id,
            SEGMENTS,
            &format!("SEG-{id}"),
            FROZEN,
            5,
            "case-12",
            Some(date(2027, 3, 1)),
        );
        output_line.transformation = input_line.transformation.clone();
        // The output comes first: it must be undone with the rest when an input fails.
        vec![output_line, input_line]
    };
    let short = record(
        &mut c,
        "t-short",
        attempt(
            "T-SHORT",
            input("T-SHORT", ORANGES, ORCHARD_LOT, CHILLED, 1001),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition, "{short:?}");
    assert!(short.message().starts_with("movements[1]"), "{short:?}");

    let on_hold = record(
        &mut c,
        "t-held",
        attempt("T-HELD", input("T-HELD", ORANGES, "HELD-LOT", CHILLED, 10)),
    )
    .await
    .unwrap_err();
    assert_eq!(on_hold.code(), Code::FailedPrecondition, "{on_hold:?}");
    assert_eq!(preconditions(&on_hold)[0].0, "HOLD");

    let expired = record(
        &mut c,
        "t-expired",
        attempt("T-EXP", input("T-EXP", ORANGES, "OLD-LOT", CHILLED, 10)),
    )
    .await
    .unwrap_err();
    assert_eq!(expired.code(), Code::FailedPrecondition, "{expired:?}");
    assert_eq!(preconditions(&expired)[0].0, "EXPIRY");
    assert!(expired.message().contains("write_off"), "{expired:?}");

    // Nothing moved, nothing was recorded, no output lot exists.
    assert_eq!(ledger_len(&mut c).await, before);
    assert_eq!(on_hand(&mut c, ORANGES, ORCHARD_LOT, CHILLED).await, 1000);
    for id in ["T-SHORT", "T-HELD", "T-EXP"] {
        let status = c
            .get_transformation(pb::GetTransformationRequest {
                transformation_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            stock(&mut c, SEGMENTS, &format!("SEG-{id}"), "")
                .await
                .map(|s| s.levels.len())
                .unwrap_or(0),
            0
        );
    }

    // A write-off takes the expired lot.
    let mut write_off = spec("T-WRITE-OFF");
    write_off.write_off = true;
    let mut lines = attempt(
        "T-WRITE-OFF",
        input("T-WRITE-OFF", ORANGES, "OLD-LOT", CHILLED, 50),
    );
    for line in &mut lines {
        line.transformation = Some(write_off.clone());
    }
    record(&mut c, "t-write-off", lines)
        .await
        .expect("write-off");
    assert_eq!(on_hand(&mut c, ORANGES, "OLD-LOT", CHILLED).await, 0);
}

#[tokio::test]
async fn the_form_of_a_transformation_is_checked_before_anything_is_read() {
    let (_h, mut c) = with_oranges().await;
    let before = ledger_len(&mut c).await;
    let segments = |id: &str| {
        output(
            id,
            SEGMENTS,
            "SEG-1",
            FROZEN,
            5,
            "case-12",
            Some(date(2027, 3, 1)),
        )
    };
    let cases: Vec<(&str, Vec<pb::Movement>, Vec<&str>)> = vec![
        (
            "no output",
            vec![input("A", ORANGES, ORCHARD_LOT, CHILLED, 1)],
            vec!["movements[0].transformation"],
        ),
        (
            "no input",
            vec![segments("A")],
            vec!["movements[0].transformation"],
        ),
        (
            "lines that disagree",
            vec![
                input("A", ORANGES, ORCHARD_LOT, CHILLED, 1),
                pb::Movement {
                    transformation: Some(pb::Transformation {
                        waste_mass_g: 1,
                        ..spec("A")
                    }),
                    ..segments("A")
                },
            ],
            vec!["movements[1].transformation"],
        ),
        (
            "an output that is an input",
            vec![
                input("A", ORANGES, ORCHARD_LOT, CHILLED, 1),
                output("A", ORANGES, ORCHARD_LOT, CHILLED, 1, "kg", None),
            ],
            vec!["movements[1].lot.lot_id"],
        ),
        (
            "no transformation on a line",
            vec![pb::Movement {
                transformation: None,
                ..input("A", ORANGES, ORCHARD_LOT, CHILLED, 1)
            }],
            vec!["movements[0].transformation"],
        ),
        (
            "a transformation on a receipt",
            vec![pb::Movement {
                transformation: Some(spec("A")),
                ..receipt(ORANGES, ORCHARD_LOT, CHILLED, 1, oranges_expiry())
            }],
            vec!["movements[0].transformation"],
        ),
        (
            "bad masses and id",
            vec![pb::Movement {
                transformation: Some(pb::Transformation {
                    transformation_id: " padded".into(),
                    input_mass_g: 0,
                    output_mass_g: -1,
                    waste_mass_g: 2_000_000_000_000,
                    work_order: "two\nlines".into(),
                    write_off: false,
                }),
                ..input("A", ORANGES, ORCHARD_LOT, CHILLED, 1)
            }],
            vec![
                "movements[0].transformation.input_mass_g",
                "movements[0].transformation.output_mass_g",
                "movements[0].transformation.transformation_id",
                "movements[0].transformation.waste_mass_g",
                "movements[0].transformation.work_order",
            ],
        ),
        (
            "a relocation to its own zone, and without a destination",
            vec![
                relocation(ORANGES, ORCHARD_LOT, CHILLED, CHILLED, 1),
                relocation(ORANGES, ORCHARD_LOT, CHILLED, "", 1),
            ],
            vec!["movements[0].to_zone_id", "movements[1].to_zone_id"],
        ),
        (
            "a destination on another kind",
            vec![pb::Movement {
                to_zone_id: FROZEN.into(),
                ..issue(ORANGES, ORCHARD_LOT, CHILLED, 1)
            }],
            vec!["movements[0].to_zone_id"],
        ),
    ];
    for (case, movements, expected) in cases {
        let status = record(&mut c, "form", movements).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        let got: BTreeSet<String> = fields(&status).into_iter().collect();
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert!(want.is_subset(&got), "{case}: want {want:?}, got {got:?}");
    }
    let unknown_zone = record(
        &mut c,
        "unknown-zone",
        vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, "attic", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(unknown_zone.code(), Code::NotFound, "{unknown_zone:?}");
    assert_eq!(ledger_len(&mut c).await, before);
}

#[tokio::test]
async fn a_transformation_id_is_recorded_once_and_a_replay_answers_the_first_call() {
    let (_h, mut c) = with_oranges().await;
    let lines = vec![
        input("FZ-9", ORANGES, ORCHARD_LOT, CHILLED, 100),
        output(
            "FZ-9",
            SEGMENTS,
            "SEG-9",
            FROZEN,
            8,
            "case-12",
            Some(date(2027, 3, 1)),
        ),
        relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 50),
    ];
    let first = c
        .record_movements(batch("fz-9", lines.clone()))
        .await
        .expect("first")
        .into_inner();
    let replay = c
        .record_movements(batch("fz-9", lines.clone()))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(
        replay, first,
        "a replay answers the first call, arrivals included"
    );
    assert_eq!(first.relocation_arrivals.len(), 1);
    let again = record(&mut c, "fz-9-again", lines).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains("fz-9"), "{again:?}");
    assert_eq!(on_hand(&mut c, ORANGES, ORCHARD_LOT, CHILLED).await, 850);
    assert_eq!(on_hand(&mut c, ORANGES, ORCHARD_LOT, FROZEN).await, 50);
}

/// Four clients race transformations for the same 1,000 kg: exactly what was there is
/// consumed, each acknowledged transformation produced its output, and the ledger adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_transformations_consume_exactly_the_available_input() {
    let (_h, c) = with_oranges().await;
    let mut tasks = Vec::new();
    for client_index in 0..4 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for attempt in 0..20 {
                let id = format!("RACE-{client_index}-{attempt}");
                let lines = vec![
                    input(&id, ORANGES, ORCHARD_LOT, CHILLED, 70),
                    output(
                        &id,
                        SEGMENTS,
                        &format!("SEG-{id}"),
                        FROZEN,
                        5,
                        "case-12",
                        Some(date(2027, 3, 1)),
                    ),
                ];
                match record(&mut c, &id.to_lowercase(), lines).await {
                    Ok(entries) => done.push((id, entries)),
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    }
                }
            }
            done
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.extend(task.await.expect("client"));
    }
    // 1000 / 70: fourteen fit, the fifteenth would need 1050.
    assert_eq!(done.len(), 14, "exactly the transformations that fit");
    let mut c = c;
    assert_eq!(
        on_hand(&mut c, ORANGES, ORCHARD_LOT, CHILLED).await,
        1000 - 14 * 70
    );
    let ledger = ledger(&mut c, 1).await;
    let consumed: i64 = ledger
        .iter()
        .filter(|e| e.kind == pb::LedgerEntryKind::TransformationInput as i32)
        .map(|e| -e.delta)
        .sum();
    assert_eq!(consumed, 14 * 70);
    for (id, entries) in done {
        let output = &entries[1];
        assert_eq!(
            on_hand(&mut c, SEGMENTS, &format!("SEG-{id}"), FROZEN).await,
            5
        );
        assert_eq!(
            output.transformation.as_ref().unwrap().transformation_id,
            id
        );
    }
    // Every position's balance is the sum of its entries.
    let mut sums = std::collections::BTreeMap::<(String, String, String), i64>::new();
    for e in &ledger {
        let lot_id = e.lot.as_ref().map(|l| l.lot_id.clone()).unwrap_or_default();
        *sums
            .entry((e.sku.clone(), lot_id, e.zone_id.clone()))
            .or_default() += e.delta;
    }
    for ((sku, lot_id, zone), sum) in sums {
        assert_eq!(
            on_hand(&mut c, &sku, &lot_id, &zone).await,
            sum,
            "{sku} {lot_id} {zone}"
        );
    }
}

#[tokio::test]
async fn a_relocation_keeps_the_lot_and_records_the_class_change() {
    let (_h, mut c) = with_oranges().await;
    let answer = c
        .record_movements(batch(
            "thaw",
            vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 300)],
        ))
        .await
        .expect("relocation")
        .into_inner();
    let out = &answer.entries[0];
    let arrival = &answer.relocation_arrivals[0];
    assert_eq!(out.kind, pb::LedgerEntryKind::RelocationOut as i32);
    assert_eq!(arrival.kind, pb::LedgerEntryKind::RelocationIn as i32);
    assert_eq!(arrival.sequence, out.sequence + 1);
    assert_eq!((out.zone_id.as_str(), out.delta), (CHILLED, -300));
    assert_eq!((arrival.zone_id.as_str(), arrival.delta), (FROZEN, 300));
    let expected = pb::Relocation {
        from_zone_id: CHILLED.into(),
        to_zone_id: FROZEN.into(),
        from_class: cpb::TemperatureClass::Chilled as i32,
        to_class: cpb::TemperatureClass::Frozen as i32,
    };
    assert_eq!(out.relocation.as_ref(), Some(&expected));
    assert_eq!(arrival.relocation.as_ref(), Some(&expected));
    assert_eq!(
        out.lot, arrival.lot,
        "the lot and its expiry travel unchanged"
    );
    let moved = level(&mut c, ORANGES, ORCHARD_LOT, FROZEN).await;
    assert_eq!(moved.on_hand, 300);
    assert_eq!(
        moved.lot.as_ref().and_then(|l| l.expiry),
        Some(oranges_expiry())
    );
    assert_eq!(on_hand(&mut c, ORANGES, ORCHARD_LOT, CHILLED).await, 700);

    // More than is available is refused.
    let too_much = record(
        &mut c,
        "too-much",
        vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 701)],
    )
    .await
    .unwrap_err();
    assert_eq!(too_much.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn held_stock_moves_only_where_its_holds_allow_and_follow_it() {
    let (_h, mut c) = with_oranges().await;
    let hold = |request_id: &str, zone: &str, lot_id: &str, allow: bool| pb::PlaceHoldRequest {
        request_id: request_id.into(),
        zone_id: zone.into(),
        sku: if lot_id.is_empty() {
            String::new()
        } else {
            ORANGES.into()
        },
        lot_id: lot_id.into(),
        reason: "recall".into(),
        allow_relocation: allow,
        ..Default::default()
    };
    let strict = c
        .place_hold(hold("h-strict", "", ORCHARD_LOT, false))
        .await
        .expect("hold")
        .into_inner();
    assert!(!strict.allow_relocation);
    let refused = record(
        &mut c,
        "move-1",
        vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 10)],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(preconditions(&refused)[0].0, "HOLD");
    assert!(refused.message().contains(&strict.hold_id), "{refused:?}");
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: "r-strict".into(),
        hold_id: strict.hold_id,
        reason: "re-placed".into(),
        ..Default::default()
    })
    .await
    .expect("release");

    // A zone hold that allows relocation does not follow the stock: refused.
    let zone_hold = c
        .place_hold(hold("h-zone", CHILLED, "", true))
        .await
        .expect("hold")
        .into_inner();
    let escape = record(
        &mut c,
        "move-2",
        vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 10)],
    )
    .await
    .unwrap_err();
    assert_eq!(escape.code(), Code::FailedPrecondition);
    assert!(escape.message().contains("would not cover"), "{escape:?}");
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: "r-zone".into(),
        hold_id: zone_hold.hold_id,
        reason: "done".into(),
        ..Default::default()
    })
    .await
    .expect("release");

    // A lot hold that allows relocation: the held stock moves to quarantine, still held.
    let lot_hold = c
        .place_hold(hold("h-lot", "", ORCHARD_LOT, true))
        .await
        .expect("hold")
        .into_inner();
    assert!(lot_hold.allow_relocation);
    record(
        &mut c,
        "to-quarantine",
        vec![relocation(ORANGES, ORCHARD_LOT, CHILLED, FROZEN, 1000)],
    )
    .await
    .expect("held stock moves under a hold that allows it");
    let quarantined = level(&mut c, ORANGES, ORCHARD_LOT, FROZEN).await;
    assert_eq!((quarantined.on_hand, quarantined.held), (1000, 1000));
    // Still not issuable.
    let issue = record(
        &mut c,
        "issue",
        vec![issue(ORANGES, ORCHARD_LOT, FROZEN, 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(issue.code(), Code::FailedPrecondition);
}
