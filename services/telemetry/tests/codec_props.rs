//! Property tests of the stored-bytes decoders of the telemetry service, through its public
//! API: chunk parts (`codec`) and window rows (`series::decode_row`, `read_window`).
//!
//! The codec's own unit tests cover round trips of encoded parts and arbitrary bytes; these
//! add what a corrupt database needs on top: whatever the decoder accepts is well formed and
//! can be appended to, window rows round-trip, and a corrupt row or part is an error for
//! that window, never a panic or an allocation sized by corrupt data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use coldchain_telemetry::domain::codec::{
    MAX_CENTI_CELSIUS, MAX_CENTI_PERCENT, PART_MAX, Sample, append_part, decode_part,
    decode_part_into, encode_part, encode_part_with_state,
};
use coldchain_telemetry::domain::detect::DetectorState;
use coldchain_telemetry::domain::series::{WindowRecord, decode_row, encode_row, read_window};
use proptest::prelude::*;

/// Strictly increasing readings, with any gap up to `i64::MAX` between two of them.
fn readings(max: usize) -> impl Strategy<Value = Vec<Sample>> {
    (
        any::<i64>(),
        prop::collection::vec(
            (
                prop_oneof![Just(1_000i64), 1i64..10_000, 1i64..=i64::MAX],
                -MAX_CENTI_CELSIUS..=MAX_CENTI_CELSIUS,
                prop::option::of(0u16..=MAX_CENTI_PERCENT),
                prop::option::of(any::<bool>()),
            ),
            0..max,
        ),
    )
        .prop_map(|(start, steps)| {
            let mut ts = start;
            let mut out = Vec::with_capacity(steps.len());
            for (i, (step, centi_celsius, humidity, door)) in steps.into_iter().enumerate() {
                if i > 0 {
                    match ts.checked_add(step) {
                        Some(next) => ts = next,
                        None => break,
                    }
                }
                out.push(Sample {
                    ts,
                    centi_celsius,
                    humidity,
                    door,
                });
            }
            out
        })
}

fn record(count: u32, parts: u32, open: bool) -> WindowRecord {
    WindowRecord {
        count,
        min: 0,
        max: 0,
        sum: 0,
        first_ts: 0,
        last_ts: 0,
        parts,
        open: open.then(|| encode_part_with_state(&[]).1),
        checkpoint: DetectorState::Normal,
    }
}

/// What every successful decode promises: ordered times, values in range, a state that
/// describes the bytes and lets later readings be appended to them.
fn check_accepted(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(samples) = decode_part(bytes) else {
        return Ok(());
    };
    let mut out = Vec::new();
    let state = decode_part_into(bytes, &mut out).expect("decodes twice alike");
    prop_assert_eq!(&out, &samples);
    prop_assert_eq!(state.count as usize, samples.len());
    prop_assert_eq!(state.len as usize, bytes.len());
    prop_assert!(samples.windows(2).all(|w| w[0].ts < w[1].ts));
    prop_assert!(
        samples
            .iter()
            .all(|s| s.centi_celsius.abs() <= MAX_CENTI_CELSIUS)
    );
    prop_assert!(
        samples
            .iter()
            .all(|s| s.humidity.is_none_or(|h| h <= MAX_CENTI_PERCENT))
    );
    prop_assert_eq!(decode_part(&encode_part(&samples)), Ok(samples.clone()));
    if let Some(last) = samples.last().filter(|last| last.ts < i64::MAX) {
        let next = Sample::new(last.ts + 1, -MAX_CENTI_CELSIUS);
        let mut appended = bytes.to_vec();
        let mut appended_state = state;
        prop_assert!(append_part(&mut appended, &mut appended_state, &[next]));
        let mut expected = samples;
        expected.push(next);
        prop_assert_eq!(decode_part(&appended), Ok(expected));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parts_with_any_gaps_round_trip(samples in readings(300)) {
        let (bytes, state) = encode_part_with_state(&samples);
        let mut decoded = Vec::new();
        prop_assert_eq!(decode_part_into(&bytes, &mut decoded), Ok(state));
        prop_assert_eq!(decoded, samples);
    }

    #[test]
    fn whatever_decodes_is_well_formed_and_appendable(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check_accepted(&bytes)?;
    }

    #[test]
    fn corrupted_parts_decode_well_formed_or_not_at_all(
        samples in readings(200),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_part(&samples);
        for (at, value) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= value;
        }
        check_accepted(&bytes)?;
        let cut = cut.index(bytes.len() + 1);
        check_accepted(&bytes[..cut])?;
    }

    #[test]
    fn rows_round_trip(
        samples in readings(100),
        count in 0u32..=3_600_000,
        parts in 0u32..1_000,
        sum: i64,
    ) {
        let (open, state) = encode_part_with_state(&samples);
        let record = WindowRecord {
            count,
            sum,
            parts,
            open: Some(state),
            ..record(0, 0, false)
        };
        let row = encode_row(&record, &open);
        let (decoded, decoded_open) = decode_row(&row).expect("a row decodes");
        prop_assert_eq!(decoded, record);
        prop_assert_eq!(decoded_open, open.as_slice());
    }

    #[test]
    fn arbitrary_rows_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((record, open)) = decode_row(&bytes) {
            let again = encode_row(&record, open);
            let (record_again, open_again) = decode_row(&again).expect("re-encoded row decodes");
            prop_assert_eq!(&record_again, &record);
            prop_assert_eq!(open_again, open);
            // Reading the window a corrupt record describes: bounded parts, garbage open part.
            let bounded = WindowRecord { parts: record.parts.min(8), ..record };
            let (samples, failed, error) =
                read_window(|_| Ok::<_, ()>(Some(bytes.clone())), &bounded, open).unwrap();
            prop_assert_eq!(failed > 0, error.is_some());
            prop_assert!(samples.windows(2).all(|w| w[0].ts <= w[1].ts));
        }
    }
}

/// A corrupt record's count once sized the vector `read_window` collects into: a count of
/// four billion asked for about 100 GB and aborted the process (found by the
/// `telemetry_row` fuzz target). The count is only a hint now.
#[test]
fn a_corrupt_count_does_not_size_an_allocation() {
    for count in [50_000_000, u32::MAX] {
        let (samples, failed, error) =
            read_window(|_| Ok::<_, ()>(None), &record(count, 0, false), &[]).unwrap();
        assert!(samples.is_empty());
        assert_eq!((failed, error), (0, None));
        assert!(
            samples.capacity() <= 16 * PART_MAX,
            "count {count} reserved room for {} readings",
            samples.capacity()
        );
    }
}

/// The row the `telemetry_row` fuzz target found, kept as found: its record claims
/// 805,306,367 readings (a varint `ff ff ff ff 02`), and reading its window once asked for
/// 19 GB. Decoding now refuses a count no window can hold.
#[test]
fn the_row_the_fuzzer_found_is_refused_as_corrupt() {
    const ROW: [u8; 21] = [
        255, 255, 255, 255, 2, 238, 254, 0, 255, 255, 101, 2, 238, 254, 0, 255, 10, 10, 0, 0, 101,
    ];
    // 805,306,367 readings cannot fit a window of 3,600,000 ms: the row is corrupt.
    let error = decode_row(&ROW).unwrap_err();
    assert!(error.0.contains("805306367 readings"), "{error:?}");
}

/// A row whose record says parts exist that are missing, or garbage, reports them as
/// failures of that window and still returns the readings that decode.
#[test]
fn missing_and_corrupt_parts_are_failures_of_their_window() {
    let good: Vec<Sample> = (0..10).map(|i| Sample::new(1_000 * i, 400)).collect();
    let later: Vec<Sample> = (10..15).map(|i| Sample::new(1_000 * i, 410)).collect();
    let (open, state) = encode_part_with_state(&later);
    let record = WindowRecord {
        parts: 3,
        open: Some(state),
        ..record(15, 0, false)
    };
    let parts = [Some(encode_part(&good)), Some(vec![1, 0, 0, 0, 0, 9]), None];
    let (samples, failed, error) =
        read_window(|i| Ok::<_, ()>(parts[i as usize].clone()), &record, &open).unwrap();
    assert_eq!(failed, 2);
    assert!(error.is_some());
    let mut expected = good;
    expected.extend(later);
    assert_eq!(samples, expected);
}

/// A part whose first value is i64::MIN (the varint `ff ×9 01`, zigzag-decoded) once
/// overflowed the range check (`value.abs()`): a panic with overflow checks, and 0 °C
/// accepted without them. Found by the `telemetry_row` fuzz target.
#[test]
fn a_first_value_of_i64_min_is_out_of_range() {
    let mut part = vec![1, 0, 0, 0, 0, 1, 0];
    part.extend([0xFF; 9]);
    part.push(0x01);
    let error = decode_part(&part).unwrap_err();
    assert!(error.0.contains("out of range"), "{error}");
    // The largest magnitudes either side of the limit.
    for (value, ok) in [
        (-i64::from(MAX_CENTI_CELSIUS), true),
        (i64::from(MAX_CENTI_CELSIUS), true),
        (-i64::from(MAX_CENTI_CELSIUS) - 1, false),
        (i64::from(MAX_CENTI_CELSIUS) + 1, false),
        (i64::MAX, false),
    ] {
        let zigzag = ((value << 1) ^ (value >> 63)) as u64;
        let mut part = vec![1, 0, 0, 0, 0, 1, 0];
        let mut rest = zigzag;
        while rest >= 0x80 {
            part.push((rest as u8) | 0x80);
            rest >>= 7;
        }
        part.push(rest as u8);
        assert_eq!(decode_part(&part).is_ok(), ok, "first value {value}");
    }
}
