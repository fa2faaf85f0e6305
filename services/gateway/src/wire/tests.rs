//! Conversions, the stored-answer codec, and the domain's derived ids against the
//! runtime's limits.

use chrono::NaiveDate;
use coldchain_network::TemperatureClass;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::proto_time::{millis, naive_date, timestamp};
use coldchain_runtime::validate::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_REQUEST_ID_LEN};
use coldchain_store::ReplyCodec;

use super::*;
use crate::domain::{
    MAX_STEP_REQUEST_ID_BYTES, assigned_transfer_id, sensor_request_id, transfer_in_request_id,
    transfer_out_request_id,
};

fn date_from_proto(date: &common::Date) -> Option<NaiveDate> {
    naive_date(date).ok()
}

fn page_size(asked: i32) -> usize {
    coldchain_runtime::validate::Violations::new().page_size(asked)
}

#[test]
fn timestamps_round_trip_including_before_the_epoch() {
    for ms in [0, 1, 999, 1_772_330_400_123, -1, -1001] {
        assert_eq!(millis(&timestamp(ms)), Some(ms));
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

#[test]
fn page_sizes_default_and_clamp() {
    assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
    assert_eq!(page_size(7), 7);
    assert_eq!(page_size(5000), MAX_PAGE_SIZE);
}

#[test]
fn the_domains_request_id_limit_is_the_runtimes() {
    assert_eq!(MAX_STEP_REQUEST_ID_BYTES, MAX_REQUEST_ID_LEN);
}

#[test]
fn request_ids_are_valid_identifiers_and_distinct() {
    let max = MAX_REQUEST_ID_LEN;
    for id in [
        "T-1".to_string(),
        "x".repeat(100),
        "y".repeat(128),
        "é".repeat(64),
    ] {
        let ids = [
            transfer_out_request_id(&id),
            transfer_in_request_id(&id),
            sensor_request_id(&id),
        ];
        for request_id in &ids {
            coldchain_runtime::validate::check_id(request_id, max).expect("a valid request id");
        }
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
    }
    assert_eq!(transfer_out_request_id("T-1"), "gateway:T-1:transfer-out");
    assert_ne!(
        transfer_out_request_id(&"x".repeat(128)),
        transfer_out_request_id(&"z".repeat(128))
    );
    let assigned = assigned_transfer_id(&[0xab; 32], 1_700_000_000_000);
    coldchain_runtime::validate::check_id(&assigned, 64).expect("a valid transfer id");
}

/// The bytes earlier builds kept for a StartTransfer/ReceiveTransfer answer: the protobuf
/// message `{ string transfer_id = 1; }`. They must still decode, and new answers must be
/// kept the same way.
#[test]
fn the_stored_answer_keeps_the_bytes_of_earlier_builds() {
    let earlier: &[u8] = b"\x0a\x04T-42";
    let decoded = TransferRefCodec.decode(earlier).expect("decodes");
    assert_eq!(decoded.transfer_id, "T-42");
    assert_eq!(TransferRefCodec.encode(&decoded), earlier);
    assert!(TransferRefCodec.decode(&[0xff]).is_err());
}

#[test]
fn the_saga_requests_name_on_whose_behalf_the_gateway_acts() {
    use crate::domain::{Line, TransferSpec};
    use coldchain_audit::Author;
    let spec = TransferSpec {
        transfer_id: Some("t-1".into()),
        source_site_id: "cn-huaihua-park".into(),
        destination_site_id: "la-vientiane".into(),
        lines: vec![Line {
            sku: "kiwi".into(),
            lot_id: "l1".into(),
            source_zone_id: "chilled-a".into(),
            destination_zone_id: "chilled-a".into(),
            quantity: 5,
            unit: "kg".into(),
            lot: None,
        }],
        reefer_sensor_id: "reefer-1".into(),
        reefer_container_id: "MSCU 123".into(),
        reefer_class: TemperatureClass::Chilled,
        train_or_route: String::new(),
    };
    let mut t = Transfer::new("t-1".into(), spec, Author::new("ops-1", "Anna"), 0);
    assert_eq!(sites::transfer_out_request(&t).actor, "ops-1/Anna");
    assert_eq!(sites::sensor_request(&t).actor, "ops-1/Anna");
    t.arrival_reported_by = Some(Author::new("ops-2", ""));
    assert_eq!(sites::transfer_in_request(&t).unwrap().actor, "ops-2");

    let proto = transfer_to_proto(&t);
    assert_eq!(
        proto.started_by,
        Some(common::Author {
            principal: "ops-1".into(),
            actor: "Anna".into()
        })
    );
    assert_eq!(
        proto.arrival_reported_by.map(|a| a.principal),
        Some("ops-2".into())
    );

    // A transfer an earlier build started: its steps keep sending no actor.
    t.started_by = Author::unknown();
    t.arrival_reported_by = Some(Author::unknown());
    assert_eq!(sites::transfer_out_request(&t).actor, "");
    assert_eq!(sites::transfer_in_request(&t).unwrap().actor, "");
}

mod genealogy {
    use coldchain_proto::inventory::v1 as inv;
    use coldchain_runtime::proto_time::timestamp;

    use crate::domain::genealogy::{Side, TransformationEntry};
    use crate::domain::trace::LotEntryKind;
    use crate::wire::trace::{lot_entry, transformation_entry, transformation_facts};

    fn entry(kind: inv::LedgerEntryKind, sku: &str, lot: &str, delta: i64) -> inv::LedgerEntry {
        inv::LedgerEntry {
            sequence: 7,
            recorded_at: Some(timestamp(1_000)),
            kind: kind as i32,
            sku: sku.into(),
            lot: Some(inv::LotInfo {
                lot_id: lot.into(),
                ..Default::default()
            }),
            zone_id: "chilled-a".into(),
            unit: "kg".into(),
            delta,
            transformation: Some(inv::Transformation {
                transformation_id: "PR-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_transformation_side_names_its_transformation_and_moves_stock() {
        use inv::LedgerEntryKind as K;
        let input = entry(K::TransformationInput, "orange", "O1", -60);
        assert_eq!(
            transformation_entry("park", &input),
            Some(TransformationEntry {
                site_id: "park".into(),
                side: Side::Input,
                transformation_id: "PR-1".into(),
            })
        );
        let output = entry(K::TransformationOutput, "segment", "S1", 30);
        assert_eq!(
            transformation_entry("park", &output).unwrap().side,
            Side::Output
        );
        // Any other entry, or a side without its transformation, names none.
        assert_eq!(
            transformation_entry("park", &entry(K::Issue, "orange", "O1", -1)),
            None
        );
        let mut bare = input.clone();
        bare.transformation = None;
        assert_eq!(transformation_entry("park", &bare), None);
        for kind in [
            K::TransformationInput,
            K::TransformationOutput,
            K::RelocationOut,
            K::RelocationIn,
        ] {
            assert_eq!(
                lot_entry("park", &entry(kind, "orange", "O1", 1)).kind,
                LotEntryKind::Movement,
                "{kind:?} moves the stock of its zone"
            );
        }
    }

    #[test]
    fn a_record_sums_each_lot_per_side() {
        use inv::LedgerEntryKind as K;
        let record = inv::TransformationRecord {
            transformation: None,
            inputs: vec![
                entry(K::TransformationInput, "orange", "O1", -40),
                entry(K::TransformationInput, "orange", "O1", -20),
                entry(K::TransformationInput, "orange", "O2", -5),
            ],
            outputs: vec![entry(K::TransformationOutput, "segment", "S1", 30)],
        };
        let facts = transformation_facts("park", "PR-1", &record);
        let inputs: Vec<_> = facts
            .inputs
            .iter()
            .map(|l| (l.lot_id.as_str(), l.quantity))
            .collect();
        assert_eq!(inputs, vec![("O1", 60), ("O2", 5)]);
        assert_eq!(facts.outputs.len(), 1);
        assert_eq!(facts.at_ms, 1_000);
    }
}
