//! How one sensor's readings are kept: 1-hour windows, each a row (a summary record —
//! count, min, max, sum, first and last time, the detector's state after the window as a
//! checkpoint — followed by the window's *open* part) plus sealed parts of [`PART_MAX`]
//! readings, and how a batch of new readings is merged in.
//!
//! The storage itself is behind [`SeriesAccess`] (the store implements it over a write
//! transaction; tests over maps), so the whole ingest algorithm is pure and testable:
//!
//! - *in order* (every new reading after the sensor's latest): append to the open part
//!   without decoding it (its [`AppendState`] is in the record), sealing it into the parts
//!   table when full; continue detection from the sensor's state. A batch costs one row
//!   read and one row write per sensor and window (plus a part write per full part), and
//!   work proportional to the batch.
//! - *late* (some reading at or before the sensor's latest): from the first affected
//!   window on, merge the new readings into each window (exact duplicates are counted,
//!   not stored), and replay detection from the previous window's checkpoint, window by
//!   window, until the state converges with the stored checkpoint after the last window
//!   that received readings (or the end). Alarms starting in the replayed span are then
//!   reconciled with what was detected ([`super::detect::reconcile`]).

use serde::{Deserialize, Serialize};

use super::codec::{PART_MAX, Sample, append_part, encode_part_with_state, window_of};
use super::detect::{Detector, DetectorState, Excursion, Limits};

mod late;
mod window;

pub use window::{WindowRecord, decode_row, encode_row, read_window};

/// Extra parts a window may carry (from late readings) before it is rewritten compactly.
pub const COMPACT_SLACK: u32 = 4;

/// Where a sensor's windows live.
pub trait SeriesAccess {
    /// A storage failure.
    type Error;
    /// The record and open part of the window starting at `start`, including this batch's
    /// changes.
    fn window(&mut self, start: i64) -> Result<Option<(WindowRecord, Vec<u8>)>, Self::Error>;
    /// The latest stored window before `start`.
    fn window_before(&mut self, start: i64) -> Result<Option<(i64, WindowRecord)>, Self::Error>;
    /// The start of the first stored window after `start`.
    fn window_after(&mut self, start: i64) -> Result<Option<i64>, Self::Error>;
    /// The bytes of sealed part `index` of a window.
    fn part(&mut self, window: i64, index: u32) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Stores a sealed part.
    fn put_part(&mut self, window: i64, index: u32, bytes: Vec<u8>) -> Result<(), Self::Error>;
    /// Removes a sealed part.
    fn delete_part(&mut self, window: i64, index: u32) -> Result<(), Self::Error>;
    /// Stores a window's record and open part.
    fn put_window(
        &mut self,
        start: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(), Self::Error>;
}

/// What the series knew before the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The time of the latest stored reading.
    pub last_ts: Option<i64>,
    /// The detector's state after the latest stored reading.
    pub detector: DetectorState,
}

/// What merging a batch did.
#[derive(Debug, Clone)]
pub struct SeriesOutcome {
    /// Readings stored.
    pub accepted: u64,
    /// Readings already stored (same time), not stored again.
    pub duplicates: u64,
    /// The series state after the batch.
    pub state: SeriesState,
    /// Every raised excursion detection touched, in time order.
    pub excursions: Vec<Excursion>,
    /// Stored excursion alarms that started in `[covered_from, covered_to)` were
    /// recomputed and must be reconciled with `excursions`.
    pub covered_from: i64,
    /// See `covered_from`; `None` is unbounded.
    pub covered_to: Option<i64>,
    /// The newest reading of the batch if it is the sensor's newest.
    pub newest: Option<Sample>,
    /// Parts that could not be decoded (their readings were skipped by detection and
    /// de-duplication).
    pub unreadable_parts: u32,
    /// True when readings at or before the latest stored one were merged (detection was
    /// replayed from a checkpoint).
    pub late: bool,
}

/// Merges `samples` (strictly increasing times; the caller sorts and removes duplicates
/// within the batch) into the series.
pub fn ingest<A: SeriesAccess>(
    access: &mut A,
    limits: &Limits,
    state: &SeriesState,
    samples: &[Sample],
) -> Result<SeriesOutcome, A::Error> {
    let Some(first) = samples.first() else {
        return Ok(SeriesOutcome {
            accepted: 0,
            duplicates: 0,
            state: state.clone(),
            excursions: Vec::new(),
            covered_from: i64::MAX,
            covered_to: Some(i64::MAX),
            newest: None,
            unreadable_parts: 0,
            late: false,
        });
    };
    match state.last_ts {
        Some(last) if first.ts <= last => late::ingest_late(access, limits, state, samples),
        _ => ingest_in_order(access, limits, state, samples),
    }
}

fn ingest_in_order<A: SeriesAccess>(
    access: &mut A,
    limits: &Limits,
    state: &SeriesState,
    samples: &[Sample],
) -> Result<SeriesOutcome, A::Error> {
    let mut detector = Detector::new(state.detector.clone(), *limits);
    for group in samples.chunk_by(|a, b| window_of(a.ts) == window_of(b.ts)) {
        let window = window_of(group[0].ts);
        let (mut record, mut open) = access
            .window(window)?
            .unwrap_or_else(|| (WindowRecord::empty(), Vec::new()));
        append(access, window, &mut record, &mut open, group)?;
        detector.feed_all(group);
        record.checkpoint = detector.state().clone();
        access.put_window(window, &record, &open)?;
    }
    let (detector_state, excursions) = detector.finish();
    let newest = samples.last().copied();
    let first_ts = samples[0].ts;
    Ok(SeriesOutcome {
        accepted: samples.len() as u64,
        duplicates: 0,
        state: SeriesState {
            last_ts: newest.map(|s| s.ts),
            detector: detector_state,
        },
        excursions,
        covered_from: state
            .detector
            .run_start()
            .map_or(first_ts, |start| start.min(first_ts)),
        covered_to: None,
        newest,
        unreadable_parts: 0,
        late: false,
    })
}

/// Moves the open part into the parts table.
fn seal<A: SeriesAccess>(
    access: &mut A,
    window: i64,
    record: &mut WindowRecord,
    open: &mut Vec<u8>,
) -> Result<(), A::Error> {
    if record.open.take().is_some() {
        access.put_part(window, record.parts, std::mem::take(open))?;
        record.parts += 1;
    }
    open.clear();
    Ok(())
}

/// Appends readings that all lie after the window's last reading (or start a new window)
/// to its open part, sealing full parts.
pub(super) fn append<A: SeriesAccess>(
    access: &mut A,
    window: i64,
    record: &mut WindowRecord,
    open: &mut Vec<u8>,
    fresh: &[Sample],
) -> Result<(), A::Error> {
    let mut rest = fresh;
    while !rest.is_empty() {
        match record.open.as_mut() {
            Some(state) if (state.count as usize) < PART_MAX => {
                let take = (PART_MAX - state.count as usize).min(rest.len());
                if append_part(open, state, &rest[..take]) {
                    rest = &rest[take..];
                } else {
                    // A new column, or a part that does not match its state: keep it as
                    // it is and open a new one.
                    seal(access, window, record, open)?;
                }
            }
            Some(_) => seal(access, window, record, open)?,
            None => {
                let take = PART_MAX.min(rest.len());
                let (bytes, state) = encode_part_with_state(&rest[..take]);
                *open = bytes;
                record.open = Some(state);
                rest = &rest[take..];
            }
        }
        if record
            .open
            .as_ref()
            .is_some_and(|s| s.count as usize >= PART_MAX)
        {
            seal(access, window, record, open)?;
        }
    }
    for sample in fresh {
        record.add(sample);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod sim;

#[cfg(test)]
mod tests;
