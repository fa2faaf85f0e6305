//! A window's stored row (its summary record, then its open part) and how a window's
//! readings are read back from its parts.

use serde::{Deserialize, Serialize};

use super::super::codec::{AppendState, CodecError, PART_MAX, Sample, WINDOW_MS, decode_part_into};
use super::super::detect::DetectorState;

/// The summary of one window of one sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// Readings stored in the window.
    pub count: u32,
    /// Lowest centi-°C.
    pub min: i32,
    /// Highest centi-°C.
    pub max: i32,
    /// Sum of centi-°C.
    pub sum: i64,
    /// Time of the first reading.
    pub first_ts: i64,
    /// Time of the last reading.
    pub last_ts: i64,
    /// Sealed parts in the parts table (indices `0..parts`).
    pub parts: u32,
    /// The append state of the open part stored in the row after the record, if any.
    pub open: Option<AppendState>,
    /// The detector's state after the last reading of this window.
    pub checkpoint: DetectorState,
}

impl WindowRecord {
    pub(super) fn empty() -> Self {
        Self {
            count: 0,
            min: i32::MAX,
            max: i32::MIN,
            sum: 0,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            parts: 0,
            open: None,
            checkpoint: DetectorState::Normal,
        }
    }

    pub(super) fn add(&mut self, sample: &Sample) {
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(sample.centi_celsius);
        self.max = self.max.max(sample.centi_celsius);
        self.sum = self.sum.saturating_add(i64::from(sample.centi_celsius));
        self.first_ts = self.first_ts.min(sample.ts);
        self.last_ts = self.last_ts.max(sample.ts);
    }
}

/// A window's stored row: the record, then the open part's bytes.
pub fn encode_row(record: &WindowRecord, open: &[u8]) -> Vec<u8> {
    // Encoding a plain struct into a Vec cannot fail.
    let mut row = postcard::to_allocvec(record).unwrap_or_default();
    row.extend_from_slice(open);
    row
}

/// Reads a stored row: the record (only it is decoded) and the open part's bytes.
pub fn decode_row(row: &[u8]) -> Result<(WindowRecord, &[u8]), CodecError> {
    let (record, open): (WindowRecord, &[u8]) =
        postcard::take_from_bytes(row).map_err(|e| CodecError(format!("window summary: {e}")))?;
    // Timestamps are whole milliseconds and strictly increasing within a window, so a window
    // holds at most WINDOW_MS readings in at most as many parts. A larger count is corrupt,
    // and trusting it would mean billions of part lookups for one query.
    if i64::from(record.count) > WINDOW_MS || i64::from(record.parts) > WINDOW_MS {
        return Err(CodecError(format!(
            "window summary: {} readings in {} parts cannot fit one window",
            record.count, record.parts
        )));
    }
    Ok((record, open))
}

/// Reads every part of a window — sealed parts through `part` (index → bytes), then the
/// open part: the readings in time order, how many parts failed to decode (their readings
/// are missing), and the first decoding error.
pub fn read_window<E>(
    mut part: impl FnMut(u32) -> Result<Option<Vec<u8>>, E>,
    record: &WindowRecord,
    open: &[u8],
) -> Result<(Vec<Sample>, u32, Option<CodecError>), E> {
    // The count comes from stored bytes: a corrupt one must not size an allocation (four
    // billion readings would abort the process), so it is a capacity hint only up to a few
    // parts' worth; past that the vector grows as parts decode.
    let mut samples = Vec::with_capacity((record.count as usize).min(4 * PART_MAX));
    let mut failed = 0;
    let mut first_error = None;
    let mut note = |result: Result<_, CodecError>| {
        if let Err(error) = result {
            failed += 1;
            first_error.get_or_insert(error);
        }
    };
    for index in 0..record.parts {
        let decoded = match part(index)? {
            Some(bytes) => decode_part_into(&bytes, &mut samples).map(|_| ()),
            None => Err(CodecError(format!("part {index} is missing"))),
        };
        note(decoded);
    }
    if record.open.is_some() {
        note(decode_part_into(open, &mut samples).map(|_| ()));
    }
    if !samples.is_sorted_by_key(|s| s.ts) {
        samples.sort_unstable_by_key(|s| s.ts);
    }
    Ok((samples, failed, first_error))
}
