#![no_main]
#![forbid(unsafe_code)]
//! A telemetry window row (`decode_row`: a postcard `WindowRecord`, then the open part) and
//! how a window is read back from it (`read_window`).
//!
//! - Arbitrary bytes give a record and the open part's bytes, or a `CodecError`; never a
//!   panic. What decodes re-encodes (`encode_row`) to a row that decodes the same.
//! - Reading a window whose record is corrupt (any count, any parts, any open state) and
//!   whose parts are arbitrary bytes never panics or reserves memory by the record's say-so:
//!   it returns the readings that decode, sorted, and counts the parts that did not.
//! - A row built from valid parts reads back every reading, in order, with no failures.

use arbitrary::{Arbitrary, Unstructured};
use coldchain_telemetry::domain::codec::{
    MAX_CENTI_CELSIUS, PART_MAX, Sample, decode_part, encode_part, encode_part_with_state,
};
use coldchain_telemetry::domain::detect::{DetectorState, ExcursionKind, Run};
use coldchain_telemetry::domain::series::{WindowRecord, decode_row, encode_row, read_window};
use libfuzzer_sys::fuzz_target;

/// A cap on the sealed parts a fuzzed record may name when its window is read: every
/// missing part costs `read_window` one lookup, so a record naming four billion parts would
/// only measure the fuzzer's patience (see the report on issue 9).
const MAX_PARTS_READ: u32 = 64;

#[derive(Debug, Arbitrary)]
enum Case {
    /// Raw bytes as a stored row, with arbitrary bytes as its sealed parts.
    Raw { row: Vec<u8>, parts: Vec<Vec<u8>> },
    /// A row built from valid parts.
    Built(Box<Built>),
}

#[derive(Debug)]
struct Built {
    record: WindowRecord,
    open: Vec<u8>,
    parts: Vec<Vec<u8>>,
    readings: Vec<Sample>,
}

impl<'a> Arbitrary<'a> for Built {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // Readings spread over sealed parts of PART_MAX and an open part, like a window.
        let count = u.int_in_range(0..=3 * PART_MAX)?;
        let mut ts: i64 = u.int_in_range(-(1 << 50)..=(1 << 50))?;
        let mut readings = Vec::with_capacity(count);
        for _ in 0..count {
            ts += u.int_in_range(1..=5_000)?;
            readings.push(Sample::new(
                ts,
                u.int_in_range(-MAX_CENTI_CELSIUS..=MAX_CENTI_CELSIUS)?,
            ));
            if u.is_empty() {
                break;
            }
        }
        let sealed = readings.len() / PART_MAX;
        let parts: Vec<Vec<u8>> = readings
            .chunks(PART_MAX)
            .take(sealed)
            .map(encode_part)
            .collect();
        let (open, state) = encode_part_with_state(&readings[sealed * PART_MAX..]);
        let has_open = sealed * PART_MAX < readings.len() || u.arbitrary()?;
        let run = Run {
            kind: if u.arbitrary()? {
                ExcursionKind::High
            } else {
                ExcursionKind::Low
            },
            limit: u.arbitrary()?,
            started_at: u.arbitrary()?,
            last_out_at: u.arbitrary()?,
            last_at: u.arbitrary()?,
            last_dev: u.arbitrary()?,
            peak: u.arbitrary()?,
            twice_area: u.arbitrary()?,
        };
        let checkpoint = match u.int_in_range(0u8..=2)? {
            0 => DetectorState::Normal,
            1 => DetectorState::Pending(run),
            _ => DetectorState::Active(run),
        };
        let record = WindowRecord {
            count: readings.len() as u32,
            min: readings
                .iter()
                .map(|s| s.centi_celsius)
                .min()
                .unwrap_or(i32::MAX),
            max: readings
                .iter()
                .map(|s| s.centi_celsius)
                .max()
                .unwrap_or(i32::MIN),
            sum: readings.iter().map(|s| i64::from(s.centi_celsius)).sum(),
            first_ts: readings.first().map_or(i64::MAX, |s| s.ts),
            last_ts: readings.last().map_or(i64::MIN, |s| s.ts),
            parts: parts.len() as u32,
            open: has_open.then_some(state),
            checkpoint,
        };
        Ok(Built {
            record,
            open: if has_open { open } else { Vec::new() },
            parts,
            readings,
        })
    }
}

fuzz_target!(|case: Case| {
    match case {
        Case::Raw { row, parts } => {
            let Ok((mut record, open)) = decode_row(&row) else {
                return;
            };
            let again = encode_row(&record, open);
            let (record_again, open_again) = decode_row(&again).expect("re-encoded row decodes");
            assert_eq!(record_again, record);
            assert_eq!(open_again, open);

            record.parts = record.parts.min(MAX_PARTS_READ);
            let part = |index: u32| Ok::<_, ()>(parts.get(index as usize).cloned());
            let (samples, failed, error) = read_window(part, &record, open).expect("no i/o");
            assert!(samples.windows(2).all(|w| w[0].ts <= w[1].ts));
            assert!(failed <= record.parts + 1);
            assert_eq!(failed > 0, error.is_some());
            // Every part that decodes contributes all of its readings.
            let expected: usize = (0..record.parts as usize)
                .filter_map(|i| parts.get(i))
                .filter_map(|bytes| decode_part(bytes).ok())
                .map(|s| s.len())
                .sum::<usize>()
                + record
                    .open
                    .as_ref()
                    .and_then(|_| decode_part(open).ok())
                    .map_or(0, |s| s.len());
            assert_eq!(samples.len(), expected);
        }
        Case::Built(built) => {
            let row = encode_row(&built.record, &built.open);
            let (record, open) = decode_row(&row).expect("a built row decodes");
            assert_eq!(record, built.record);
            assert_eq!(open, built.open.as_slice());
            let part = |index: u32| Ok::<_, ()>(built.parts.get(index as usize).cloned());
            let (samples, failed, error) = read_window(part, &record, open).expect("no i/o");
            assert_eq!((failed, error), (0, None));
            assert_eq!(samples, built.readings);
        }
    }
});
