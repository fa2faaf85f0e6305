//! Tests of the chunk codec.

use super::*;
use proptest::prelude::*;

fn sample_strategy() -> impl Strategy<Value = Vec<Sample>> {
    prop::collection::vec(
        (
            1i64..5_000,
            -MAX_CENTI_CELSIUS..=MAX_CENTI_CELSIUS,
            prop::option::of(0u16..=MAX_CENTI_PERCENT),
            prop::option::of(any::<bool>()),
        ),
        0..300,
    )
    .prop_flat_map(|steps| {
        (Just(steps), -10_000_000_000_000i64..10_000_000_000_000i64).prop_map(|(steps, base)| {
            let mut ts = base;
            steps
                .into_iter()
                .map(|(step, c, h, d)| {
                    ts += step;
                    Sample {
                        ts,
                        centi_celsius: c,
                        humidity: h,
                        door: d,
                    }
                })
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parts_round_trip(samples in sample_strategy()) {
        let bytes = encode_part(&samples);
        prop_assert_eq!(decode_part(&bytes).unwrap(), samples);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut out = vec![Sample::new(1, 1)];
        if decode_part_into(&bytes, &mut out).is_err() {
            // A failed decode leaves the output untouched.
            prop_assert_eq!(out.len(), 1);
        }
    }

    #[test]
    fn corrupted_parts_never_panic(
        samples in sample_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_part(&samples);
        if !bytes.is_empty() {
            for (index, value) in &flips {
                let i = index.index(bytes.len());
                bytes[i] ^= value | 1;
            }
            let _ = decode_part(&bytes);
            let cut = cut.index(bytes.len());
            let _ = decode_part(&bytes[..cut]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Appending in pieces gives the same bytes (and state) as encoding at once, and
    /// decoding gives the state back.
    #[test]
    fn appending_equals_encoding_at_once(
        samples in sample_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let (whole, whole_state) = encode_part_with_state(&samples);
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(samples.len() + 1)).collect();
        bounds.retain(|b| *b > 0);
        bounds.push(samples.len());
        bounds.sort();
        bounds.dedup();
        // The flags of a part are fixed when it is created: start with every column the
        // series uses (as the store does when a later reading brings a new column, it
        // starts a new part instead).
        let first = bounds.first().copied().unwrap_or(0).min(samples.len());
        let (mut bytes, mut state) = encode_part_with_state(&samples[..first]);
        let mut start = first;
        for end in bounds.iter().copied().filter(|b| *b > first) {
            let piece = &samples[start..end];
            let appended = append_part(&mut bytes, &mut state, piece);
            if !appended {
                // Only a new column may refuse an append.
                prop_assert!(flags_of(piece) & !state.flags != 0 || state.count == 0);
                return Ok(());
            }
            start = end;
        }
        prop_assert_eq!(&bytes, &whole);
        prop_assert_eq!(&state, &whole_state);
        let mut decoded = Vec::new();
        let decoded_state = decode_part_into(&bytes, &mut decoded).unwrap();
        prop_assert_eq!(decoded, samples);
        prop_assert_eq!(decoded_state, whole_state);
    }
}

#[test]
fn appends_are_refused_when_they_would_corrupt() {
    let samples: Vec<_> = (0..5).map(|i| Sample::new(1_000 * i, 500)).collect();
    let (mut bytes, mut state) = encode_part_with_state(&samples);
    let before = (bytes.clone(), state.clone());
    // Not after the last reading.
    assert!(!append_part(
        &mut bytes,
        &mut state,
        &[Sample::new(4_000, 1)]
    ));
    // A column the part does not carry.
    let humid = Sample {
        humidity: Some(5_000),
        ..Sample::new(9_000, 1)
    };
    assert!(!append_part(&mut bytes, &mut state, &[humid]));
    // A state that does not describe these bytes.
    let mut other = bytes.clone();
    other.push(0);
    assert!(!append_part(
        &mut other,
        &mut state,
        &[Sample::new(9_000, 1)]
    ));
    assert_eq!((bytes.clone(), state.clone()), before);
    assert!(append_part(
        &mut bytes,
        &mut state,
        &[Sample::new(9_000, 1)]
    ));
    assert_eq!(decode_part(&bytes).unwrap().len(), 6);
}

#[test]
fn truncation_is_an_error() {
    let samples: Vec<_> = (0..10)
        .map(|i| Sample::new(1_000 * i, 500 + i as i32))
        .collect();
    let bytes = encode_part(&samples);
    for cut in 0..bytes.len() {
        assert!(decode_part(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_part(&longer).is_err());
}

#[test]
fn a_regular_one_hertz_hour_costs_at_most_four_bytes_per_reading() {
    // One hour at 1 Hz with a realistic wobble of a few hundredths of a degree, stored
    // the way the store stores a window: parts of PART_MAX readings.
    let start = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let samples: Vec<Sample> = (0..3_600)
        .map(|i| {
            let wobble = ((i * 7919) % 11) as i32 - 5; // -0.05..+0.05 °C
            Sample::new(start + i * 1_000, 400 + wobble + (i as i32 / 600))
        })
        .collect();
    let bytes: usize = samples
        .chunks(PART_MAX)
        .map(|part| encode_part(part).len())
        .sum();
    let per_reading = bytes as f64 / samples.len() as f64;
    assert!(per_reading <= 4.0, "{per_reading} bytes per reading");
    // In fact little more than one: a bit of time and about nine bits of value.
    assert!(per_reading < 1.4, "{per_reading} bytes per reading");
    // A steady value costs two bits per reading.
    let steady: Vec<Sample> = (0..3_600)
        .map(|i| Sample::new(start + i * 1_000, 400))
        .collect();
    let bytes: usize = steady
        .chunks(PART_MAX)
        .map(|part| encode_part(part).len())
        .sum();
    assert!(bytes * 8 < 3 * 3_600, "{bytes} bytes for a steady hour");
}

#[test]
fn windows_are_aligned_hours() {
    assert_eq!(window_of(0), 0);
    assert_eq!(window_of(3_599_999), 0);
    assert_eq!(window_of(3_600_000), 3_600_000);
    assert_eq!(window_of(-1), -3_600_000);
}
