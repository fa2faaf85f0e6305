#![no_main]
#![forbid(unsafe_code)]
//! The telemetry chunk codec (`decode_part`, `decode_part_into`, `encode_part_with_state`,
//! `append_part`).
//!
//! - Arbitrary bytes, and valid parts with bytes flipped or cut off, decode to readings or a
//!   `CodecError`, never a panic; a failed `decode_part_into` leaves its output untouched.
//! - Whatever decodes is well formed (strictly increasing times, values in range, the state
//!   describing the bytes), the encoder reproduces it, and the state the decoder returns
//!   lets later readings be appended to those very bytes.
//! - Valid readings round-trip, and appending in two pieces equals encoding at once.

use arbitrary::{Arbitrary, Unstructured};
use coldchain_telemetry::domain::codec::{
    MAX_CENTI_CELSIUS, MAX_CENTI_PERCENT, PART_MAX, Sample, append_part, decode_part,
    decode_part_into, encode_part, encode_part_with_state,
};
use libfuzzer_sys::fuzz_target;

/// Readings the encoder accepts: strictly increasing times (any i64, gaps up to
/// `i64::MAX`), values within ±100 °C, humidity within 0..=100 %.
#[derive(Debug)]
struct Readings(Vec<Sample>);

impl<'a> Arbitrary<'a> for Readings {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.int_in_range(0..=2 * PART_MAX)?;
        let mut out = Vec::with_capacity(len);
        let mut ts: i64 = u.arbitrary()?;
        for i in 0..len {
            if i > 0 {
                // Mostly a regular cadence, sometimes any gap the codec must carry.
                let step: i64 = match u.int_in_range(0u8..=3)? {
                    0 | 1 => 1_000,
                    2 => u.int_in_range(1..=10_000)?,
                    _ => u.int_in_range(1..=i64::MAX)?,
                };
                match ts.checked_add(step) {
                    Some(next) => ts = next,
                    None => break,
                }
            }
            out.push(Sample {
                ts,
                centi_celsius: u.int_in_range(-MAX_CENTI_CELSIUS..=MAX_CENTI_CELSIUS)?,
                humidity: if u.arbitrary()? {
                    Some(u.int_in_range(0..=MAX_CENTI_PERCENT)?)
                } else {
                    None
                },
                door: u.arbitrary()?,
            });
            if u.is_empty() {
                break;
            }
        }
        Ok(Readings(out))
    }
}

#[derive(Debug, Arbitrary)]
enum Case {
    /// Raw bytes, as a corrupt stored part.
    Raw(Vec<u8>, Readings),
    /// A valid part with some bytes changed and maybe cut short.
    Mutated {
        readings: Readings,
        flips: Vec<(usize, u8)>,
        cut: Option<usize>,
        more: Readings,
    },
    /// A valid part, encoded at once and in two pieces.
    RoundTrip { readings: Readings, split: usize },
}

const SENTINEL: Sample = Sample {
    ts: 7,
    centi_celsius: 7,
    humidity: None,
    door: None,
};

/// Decodes `bytes`; checks what a successful decode promises, using `more` as readings to
/// append after what was decoded.
fn check_decode(bytes: &[u8], more: &[Sample]) {
    let mut out = vec![SENTINEL];
    let state = match decode_part_into(bytes, &mut out) {
        Ok(state) => state,
        Err(_) => {
            assert_eq!(
                out,
                [SENTINEL],
                "a failed decode must leave its output as it was"
            );
            return;
        }
    };
    assert_eq!(out[0], SENTINEL);
    let samples = &out[1..];
    assert_eq!(decode_part(bytes).as_deref(), Ok(samples));
    assert_eq!(state.count as usize, samples.len());
    assert_eq!(state.len as usize, bytes.len());
    assert!(samples.windows(2).all(|w| w[0].ts < w[1].ts));
    for s in samples {
        assert!(s.centi_celsius.abs() <= MAX_CENTI_CELSIUS, "{s:?}");
        assert!(s.humidity.is_none_or(|h| h <= MAX_CENTI_PERCENT), "{s:?}");
    }
    // The encoder reproduces anything the decoder accepts.
    assert_eq!(decode_part(&encode_part(samples)).as_deref(), Ok(samples));

    let Some(last) = samples.last() else { return };
    // Readings after the last one, without the columns the part does not carry (flags bit 0:
    // humidity, bit 1: door).
    let mut extra = Vec::with_capacity(more.len());
    let mut prev = last.ts;
    for s in more {
        let gap = 1 + (s.ts.unsigned_abs() % 100_000) as i64;
        let Some(ts) = prev.checked_add(gap) else {
            break;
        };
        prev = ts;
        extra.push(Sample {
            ts,
            humidity: s.humidity.filter(|_| state.flags & 1 != 0),
            door: s.door.filter(|_| state.flags & 2 != 0),
            ..*s
        });
    }
    let mut appended = bytes.to_vec();
    let mut appended_state = state.clone();
    assert!(
        append_part(&mut appended, &mut appended_state, &extra),
        "the decoded state must allow appending {} readings",
        extra.len()
    );
    let mut expected = samples.to_vec();
    expected.extend_from_slice(&extra);
    let mut decoded = Vec::new();
    let decoded_state = decode_part_into(&appended, &mut decoded).expect("appended part decodes");
    assert_eq!(decoded, expected);
    assert_eq!(decoded_state, appended_state);
}

fuzz_target!(|case: Case| {
    match case {
        Case::Raw(bytes, more) => check_decode(&bytes, &more.0),
        Case::Mutated {
            readings,
            flips,
            cut,
            more,
        } => {
            let mut bytes = encode_part(&readings.0);
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] ^= value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            check_decode(&bytes, &more.0);
        }
        Case::RoundTrip { readings, split } => {
            let samples = readings.0;
            let (whole, whole_state) = encode_part_with_state(&samples);
            let mut decoded = Vec::new();
            let decoded_state = decode_part_into(&whole, &mut decoded).expect("valid part");
            assert_eq!(decoded, samples);
            assert_eq!(decoded_state, whole_state);

            let split = split % (samples.len() + 1);
            let (head, tail) = samples.split_at(split);
            let (mut bytes, mut state) = encode_part_with_state(head);
            if append_part(&mut bytes, &mut state, tail) {
                assert_eq!(bytes, whole);
                assert_eq!(state, whole_state);
            } else {
                // Only an empty head or a column the head does not carry refuses an append.
                let head_flags = encode_part_with_state(head).1.flags;
                let tail_flags = encode_part_with_state(tail).1.flags;
                assert!(head.is_empty() || tail_flags & !head_flags != 0);
            }
        }
    }
});
