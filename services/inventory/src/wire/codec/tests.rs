use chrono::NaiveDate;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

use super::*;
use crate::domain::{
    AllocationState, EntryKind, HoldScope, MovementKind, Pick, Reference, RelocationInfo, Strategy,
    TransformationSpec,
};

fn day(days: i32) -> NaiveDate {
    crate::domain::date_from_days(days).unwrap()
}

fn kind() -> impl proptest::strategy::Strategy<Value = EntryKind> {
    prop_oneof![
        Just(EntryKind::Movement(MovementKind::Receipt)),
        Just(EntryKind::Movement(MovementKind::Issue)),
        Just(EntryKind::Movement(MovementKind::Adjustment)),
        Just(EntryKind::Movement(MovementKind::TransferOut)),
        Just(EntryKind::Movement(MovementKind::TransferIn)),
        Just(EntryKind::Movement(MovementKind::Count)),
        Just(EntryKind::Movement(MovementKind::TransformationInput)),
        Just(EntryKind::Movement(MovementKind::TransformationOutput)),
        Just(EntryKind::RelocationOut),
        Just(EntryKind::RelocationIn),
        Just(EntryKind::Allocate),
        Just(EntryKind::Deallocate),
        Just(EntryKind::HoldPlaced),
        Just(EntryKind::HoldReleased),
    ]
}

fn text() -> impl proptest::strategy::Strategy<Value = String> {
    "[a-zé0-9 -]{0,12}"
}

fn lot() -> impl proptest::strategy::Strategy<Value = LotInfo> {
    (
        text(),
        option::of(1i32..3_652_059),
        option::of(1i32..3_652_059),
        text(),
    )
        .prop_map(|(lot_id, expiry, production, origin)| LotInfo {
            lot_id,
            expiry: expiry.map(day),
            production: production.map(day),
            origin,
        })
}

fn transformation() -> impl proptest::strategy::Strategy<Value = TransformationSpec> {
    (
        text(),
        text(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                transformation_id,
                work_order,
                input_mass_g,
                output_mass_g,
                waste_mass_g,
                write_off,
            )| {
                TransformationSpec {
                    transformation_id,
                    work_order,
                    input_mass_g,
                    output_mass_g,
                    waste_mass_g,
                    write_off,
                }
            },
        )
}

fn relocation() -> impl proptest::strategy::Strategy<Value = RelocationInfo> {
    let class = proptest::sample::select(coldchain_network::TemperatureClass::ALL.to_vec());
    (text(), text(), class.clone(), class).prop_map(
        |(from_zone_id, to_zone_id, from_class, to_class)| RelocationInfo {
            from_zone_id,
            to_zone_id,
            from_class,
            to_class,
        },
    )
}

fn entry() -> impl proptest::strategy::Strategy<Value = LedgerEntry> {
    (
        (
            any::<u64>(),
            -62_135_596_800_000i64..253_402_300_799_999,
            text(),
            kind(),
        ),
        (text(), option::of(lot()), text(), text()),
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<u64>()),
        (text(), option::of((0i32..6, text()))),
        (text(), text(), text(), text(), text(), text()),
        (option::of(transformation()), option::of(relocation())),
    )
        .prop_map(
            |(
                (sequence, recorded_ms, request_id, kind),
                (sku, lot, zone_id, unit),
                (delta, balance_after, allocated_delta, version),
                (reason, reference),
                (other_site_id, transfer_id, booking_id, order_id, allocation_id, hold_id),
                (transformation, relocation),
            )| LedgerEntry {
                transformation,
                relocation,
                // Any text as principal and actor: the request's id and the zone's.
                recorded_by: coldchain_audit::Author::new(request_id.clone(), zone_id.clone()),
                sequence,
                recorded_ms,
                request_id,
                kind,
                sku,
                lot,
                zone_id,
                unit,
                delta,
                balance_after,
                allocated_delta,
                version,
                reason,
                reference: reference.map(|(kind, id)| Reference { kind, id }),
                other_site_id,
                transfer_id,
                booking_id,
                order_id,
                allocation_id,
                hold_id,
            },
        )
}

proptest! {
    /// The borrowed encoding of an entry is byte for byte what the generated
    /// `LedgerEntry` encodes (the stored format of earlier builds), and decodes back.
    #[test]
    fn entries_encode_as_the_generated_message(entry in entry()) {
        let bytes = EntryCodec.encode(&entry);
        prop_assert_eq!(&bytes, &convert::entry_pb(entry.clone()).encode_to_vec());
        prop_assert_eq!(EntryView(&entry).encoded_len(), bytes.len());
        prop_assert_eq!(EntryCodec.decode(&bytes), Ok(entry));
    }

    /// Where an entry belongs, read from its bytes without decoding them, is what decoding
    /// says; any cut of the bytes is an answer or an error, never a panic.
    #[test]
    fn an_entrys_place_is_read_from_its_bytes(entry in entry(), cut in any::<prop::sample::Index>()) {
        let bytes = EntryCodec.encode(&entry);
        let place = entry_place(&bytes).unwrap();
        prop_assert_eq!(place.kind, entry.kind);
        prop_assert_eq!(place.sku, entry.sku.as_str());
        prop_assert_eq!(place.lot_id, entry.lot.as_ref().map(|l| l.lot_id.as_str()));
        prop_assert_eq!(place.zone_id, entry.zone_id.as_str());
        let _ = entry_place(&bytes[..cut.index(bytes.len() + 1)]);
    }

    /// A RecordMovements answer is kept as its entries' sequences, whatever their order
    /// (a TRANSFER_IN already received cites an earlier entry), and decodes to them.
    #[test]
    fn recorded_answers_keep_their_sequences(
        sequences in proptest::collection::vec(1u64..u64::MAX / 2, 0..MAX_MOVEMENTS),
        runs in proptest::collection::vec((1u64..1u64 << 40, 1u64..200), 0..6),
    ) {
        let mut all = sequences;
        for (first, length) in runs {
            all.extend(first..first + length);
        }
        all.truncate(MAX_MOVEMENTS);
        let answer = RecordedAnswer::Sequences(all.clone());
        let bytes = RecordedCodec.encode(&answer);
        prop_assert_eq!(RecordedCodec.decode(&bytes), Ok(RecordedAnswer::Sequences(all)));
    }

    /// A record of an earlier build (the encoded `RecordMovementsResponse`) replays the
    /// entries it holds.
    #[test]
    fn recorded_answers_of_earlier_builds_still_decode(entries in proptest::collection::vec(entry(), 0..5)) {
        let response = pb::RecordMovementsResponse {
            entries: entries.iter().cloned().map(convert::entry_pb).collect(),
            relocation_arrivals: Vec::new(),
        };
        prop_assert_eq!(
            RecordedCodec.decode(&response.encode_to_vec()),
            Ok(RecordedAnswer::Entries(entries))
        );
    }

    /// Damaged bytes are an error, never a panic or a huge allocation.
    #[test]
    fn damaged_recorded_answers_are_errors(tail in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = vec![0x01];
        bytes.extend(tail);
        if let Ok(RecordedAnswer::Sequences(sequences)) = RecordedCodec.decode(&bytes) {
            prop_assert!(sequences.len() <= MAX_MOVEMENTS);
            prop_assert!(sequences.iter().all(|s| *s >= 1));
        }
    }
}

/// 500 movements in one call keep a few bytes, not a copy of 500 entries.
#[test]
fn a_run_of_entries_is_kept_in_a_few_bytes() {
    let entries: Vec<LedgerEntry> = (1_000_001..=1_000_500)
        .map(|sequence| LedgerEntry {
            sequence,
            ..LedgerEntry::new(EntryKind::Movement(MovementKind::Receipt), 1, "r")
        })
        .collect();
    let bytes = RecordedCodec.encode(&RecordedAnswer::Entries(entries));
    assert!(bytes.len() <= 8, "{} bytes", bytes.len());
    assert_eq!(
        RecordedCodec.decode(&bytes),
        Ok(RecordedAnswer::Sequences((1_000_001..=1_000_500).collect()))
    );
}

#[test]
fn allocation_and_hold_answers_round_trip() {
    let allocation = Allocation {
        allocation_id: "alloc-7".into(),
        order_id: "O-1".into(),
        sku: "SKU-A".into(),
        unit: "kg".into(),
        quantity: 12,
        strategy: Strategy::Fifo,
        picks: vec![Pick {
            lot_id: "L1".into(),
            expiry: Some(day(739_000)),
            zone_id: "chilled-a".into(),
            quantity: 12,
            consumed: 5,
        }],
        state: AllocationState::Consumed,
        created_ms: 1_772_330_400_000,
        closed_ms: Some(1_772_330_400_123),
    };
    let bytes = AllocationCodec.encode(&allocation);
    assert_eq!(AllocationCodec.decode(&bytes), Ok(allocation.clone()));
    let released = vec![allocation.clone(), allocation];
    assert_eq!(
        ReleasedCodec.decode(&ReleasedCodec.encode(&released)),
        Ok(released)
    );
    let hold = Hold {
        hold_id: "hold-3".into(),
        scope: HoldScope {
            zone_id: "chilled-a".into(),
            sku: String::new(),
            lot_id: String::new(),
        },
        reason: "excursion".into(),
        reference: Some(Reference {
            kind: 2,
            id: "alarm-1".into(),
        }),
        active: false,
        placed_ms: 5,
        released_ms: Some(9),
        release_reason: "qa".into(),
        placed_by: coldchain_audit::Author::new("svc-telemetry", "alarm alm-00000001"),
        released_by: Some(coldchain_audit::Author::new("ops-1", "")),
        allow_relocation: true,
    };
    assert_eq!(HoldCodec.decode(&HoldCodec.encode(&hold)), Ok(hold));
    assert!(EntryCodec.decode(&[0xff]).is_err());
}
