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

use super::codec::{
    AppendState, CodecError, PART_MAX, Sample, WINDOW_MS, append_part, decode_part_into,
    encode_part, encode_part_with_state, window_of,
};
use super::detect::{Detector, DetectorState, Excursion, Limits};

/// Extra parts a window may carry (from late readings) before it is rewritten compactly.
pub const COMPACT_SLACK: u32 = 4;

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
    fn empty() -> Self {
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

    fn add(&mut self, sample: &Sample) {
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
        Some(last) if first.ts <= last => ingest_late(access, limits, state, samples),
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
fn append<A: SeriesAccess>(
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

/// Splits sorted `new` into readings not in sorted `existing` (by time), counting the rest.
fn fresh_only(existing: &[Sample], new: &[Sample]) -> (Vec<Sample>, u64) {
    let mut fresh = Vec::with_capacity(new.len());
    let mut duplicates = 0;
    let mut i = 0;
    for sample in new {
        while i < existing.len() && existing[i].ts < sample.ts {
            i += 1;
        }
        if i < existing.len() && existing[i].ts == sample.ts {
            duplicates += 1;
        } else {
            fresh.push(*sample);
        }
    }
    (fresh, duplicates)
}

fn merge(existing: Vec<Sample>, fresh: &[Sample]) -> Vec<Sample> {
    if fresh.is_empty() {
        return existing;
    }
    let mut out = Vec::with_capacity(existing.len() + fresh.len());
    let (mut i, mut j) = (0, 0);
    while i < existing.len() || j < fresh.len() {
        if j >= fresh.len() || (i < existing.len() && existing[i].ts < fresh[j].ts) {
            out.push(existing[i]);
            i += 1;
        } else {
            out.push(fresh[j]);
            j += 1;
        }
    }
    out
}

/// Rewrites a window compactly from all its readings: full sealed parts, the rest open.
fn rewrite<A: SeriesAccess>(
    access: &mut A,
    window: i64,
    record: &mut WindowRecord,
    open: &mut Vec<u8>,
    merged: &[Sample],
) -> Result<(), A::Error> {
    let old_parts = record.parts;
    record.parts = 0;
    record.open = None;
    open.clear();
    for chunk in merged.chunks(PART_MAX) {
        if chunk.len() == PART_MAX {
            access.put_part(window, record.parts, encode_part(chunk))?;
            record.parts += 1;
        } else {
            let (bytes, state) = encode_part_with_state(chunk);
            *open = bytes;
            record.open = Some(state);
        }
    }
    for index in record.parts..old_parts {
        access.delete_part(window, index)?;
    }
    Ok(())
}

fn ingest_late<A: SeriesAccess>(
    access: &mut A,
    limits: &Limits,
    state: &SeriesState,
    samples: &[Sample],
) -> Result<SeriesOutcome, A::Error> {
    let first_window = window_of(samples[0].ts);
    let start_state = access
        .window_before(first_window)?
        .map(|(_, record)| record.checkpoint)
        .unwrap_or_default();
    let covered_from = start_state
        .run_start()
        .map_or(first_window, |start| start.min(first_window));
    let mut detector = Detector::new(start_state, *limits);
    let mut accepted = 0u64;
    let mut duplicates = 0u64;
    let mut unreadable = 0u32;
    let mut next = 0usize; // the first sample not yet merged
    let mut window = first_window;
    let mut converged_at: Option<i64> = None;
    loop {
        let end = samples[next..]
            .iter()
            .position(|s| window_of(s.ts) != window)
            .map_or(samples.len(), |p| next + p);
        let batch = &samples[next..end];
        next = end;
        let stored = access.window(window)?;
        let old_checkpoint = stored.as_ref().map(|(r, _)| r.checkpoint.clone());
        let (mut record, mut open) = stored.unwrap_or_else(|| (WindowRecord::empty(), Vec::new()));
        let (existing, failed, _) = if record.count > 0 {
            read_window(|index| access.part(window, index), &record, &open)?
        } else {
            (Vec::new(), 0, None)
        };
        unreadable += failed;
        let (fresh, dups) = fresh_only(&existing, batch);
        duplicates += dups;
        accepted += fresh.len() as u64;
        let merged = if fresh.is_empty() {
            existing
        } else if record.count == 0 || fresh[0].ts > record.last_ts {
            append(access, window, &mut record, &mut open, &fresh)?;
            merge(existing, &fresh)
        } else {
            let merged = merge(existing, &fresh);
            let compact_parts = merged.len().div_ceil(PART_MAX) as u32;
            let stored_parts = record.parts + u32::from(record.open.is_some());
            if failed == 0 && stored_parts + 1 > compact_parts + COMPACT_SLACK {
                rewrite(access, window, &mut record, &mut open, &merged)?;
            } else {
                // Late readings inside the window: sealed parts of their own.
                for chunk in fresh.chunks(PART_MAX) {
                    access.put_part(window, record.parts, encode_part(chunk))?;
                    record.parts += 1;
                }
            }
            for sample in &fresh {
                record.add(sample);
            }
            merged
        };
        detector.feed_all(&merged);
        let checkpoint = detector.state().clone();
        let unchanged = old_checkpoint.as_ref() == Some(&checkpoint);
        if !(fresh.is_empty() && unchanged) {
            record.checkpoint = checkpoint;
            if record.count > 0 {
                access.put_window(window, &record, &open)?;
            }
        }
        let next_new = samples.get(next).map(|s| window_of(s.ts));
        if next_new.is_none() && unchanged {
            // Everything after this window is as stored.
            converged_at = Some(window + WINDOW_MS);
            break;
        }
        let next_stored = access.window_after(window)?;
        window = match (next_new, next_stored) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
    }
    let (final_state, mut excursions) = detector.finish();
    let new_last = samples
        .last()
        .map(|s| s.ts)
        .into_iter()
        .chain(state.last_ts)
        .max();
    let newest = samples
        .last()
        .filter(|s| state.last_ts.is_none_or(|last| s.ts > last))
        .copied();
    let (detector_state, covered_to) = match converged_at {
        Some(end) => {
            // Converged: from here on everything is as stored, including the state after
            // the newest reading. A run in progress at the convergence point continues
            // beyond it unchanged: its alarm (if it was raised) is not revised.
            let covered_to = match final_state.run_start() {
                Some(start) => {
                    excursions.retain(|e| e.started_at < start);
                    start
                }
                None => end,
            };
            (state.detector.clone(), Some(covered_to))
        }
        None => (final_state, None),
    };
    Ok(SeriesOutcome {
        accepted,
        duplicates,
        state: SeriesState {
            last_ts: new_last,
            detector: detector_state,
        },
        excursions,
        covered_from,
        covered_to,
        newest,
        unreadable_parts: unreadable,
        late: true,
    })
}

#[cfg(test)]
pub(crate) mod sim {
    //! An in-memory series and alarm book, run through the same functions as the store.

    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;
    use crate::domain::detect::{AlarmSpan, Reconciled, reconcile};

    #[derive(Default)]
    pub struct MemSeries {
        pub windows: BTreeMap<i64, (WindowRecord, Vec<u8>)>,
        pub parts: BTreeMap<(i64, u32), Vec<u8>>,
    }

    impl SeriesAccess for MemSeries {
        type Error = Infallible;
        fn window(&mut self, start: i64) -> Result<Option<(WindowRecord, Vec<u8>)>, Infallible> {
            Ok(self.windows.get(&start).cloned())
        }
        fn window_before(&mut self, start: i64) -> Result<Option<(i64, WindowRecord)>, Infallible> {
            Ok(self
                .windows
                .range(..start)
                .next_back()
                .map(|(k, (v, _))| (*k, v.clone())))
        }
        fn window_after(&mut self, start: i64) -> Result<Option<i64>, Infallible> {
            Ok(self.windows.range(start + 1..).next().map(|(k, _)| *k))
        }
        fn part(&mut self, window: i64, index: u32) -> Result<Option<Vec<u8>>, Infallible> {
            Ok(self.parts.get(&(window, index)).cloned())
        }
        fn put_part(&mut self, window: i64, index: u32, bytes: Vec<u8>) -> Result<(), Infallible> {
            self.parts.insert((window, index), bytes);
            Ok(())
        }
        fn delete_part(&mut self, window: i64, index: u32) -> Result<(), Infallible> {
            self.parts.remove(&(window, index));
            Ok(())
        }
        fn put_window(
            &mut self,
            start: i64,
            record: &WindowRecord,
            open: &[u8],
        ) -> Result<(), Infallible> {
            self.windows.insert(start, (record.clone(), open.to_vec()));
            Ok(())
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SimAlarm {
        pub id: usize,
        pub excursion: Excursion,
        pub retracted: bool,
    }

    pub struct Sim {
        pub series: MemSeries,
        pub state: SeriesState,
        pub alarms: Vec<SimAlarm>,
        pub limits: Limits,
        pub accepted: u64,
        pub duplicates: u64,
    }

    impl Sim {
        pub fn new(limits: Limits) -> Self {
            Self {
                series: MemSeries::default(),
                state: SeriesState::default(),
                alarms: Vec::new(),
                limits,
                accepted: 0,
                duplicates: 0,
            }
        }

        /// One batch, as the store handles it: sort, drop in-batch repeats, merge,
        /// reconcile.
        pub fn ingest(&mut self, batch: &[Sample]) {
            let mut sorted = batch.to_vec();
            sorted.sort_by_key(|s| s.ts);
            let before = sorted.len();
            sorted.dedup_by_key(|s| s.ts);
            self.duplicates += (before - sorted.len()) as u64;
            let Ok(outcome) = ingest(&mut self.series, &self.limits, &self.state, &sorted);
            self.accepted += outcome.accepted;
            self.duplicates += outcome.duplicates;
            self.state = outcome.state.clone();
            let to = outcome.covered_to.unwrap_or(i64::MAX);
            let mut affected: Vec<AlarmSpan> = self
                .alarms
                .iter()
                .filter(|a| {
                    !a.retracted
                        && a.excursion.started_at >= outcome.covered_from
                        && a.excursion.started_at < to
                })
                .map(|a| AlarmSpan {
                    alarm_id: a.id.to_string(),
                    kind: a.excursion.kind,
                    started_at: a.excursion.started_at,
                    end: a.excursion.end(),
                })
                .collect();
            affected.sort_by_key(|a| a.started_at);
            for action in reconcile(&affected, &outcome.excursions) {
                match action {
                    Reconciled::Update {
                        alarm_id,
                        excursion,
                    } => {
                        let id: usize = alarm_id.parse().unwrap();
                        self.alarms[id].excursion = excursion;
                    }
                    Reconciled::Raise(excursion) => {
                        let id = self.alarms.len();
                        self.alarms.push(SimAlarm {
                            id,
                            excursion,
                            retracted: false,
                        });
                    }
                    Reconciled::Retract { alarm_id } => {
                        let id: usize = alarm_id.parse().unwrap();
                        self.alarms[id].retracted = true;
                    }
                }
            }
        }

        /// The alarms the readings show, without ids, in time order.
        pub fn live(&self) -> Vec<Excursion> {
            let mut live: Vec<Excursion> = self
                .alarms
                .iter()
                .filter(|a| !a.retracted)
                .map(|a| a.excursion.clone())
                .collect();
            live.sort_by_key(|e| e.started_at);
            live
        }

        pub fn all_readings(&mut self) -> Vec<Sample> {
            let windows: Vec<(i64, (WindowRecord, Vec<u8>))> = self
                .series
                .windows
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let mut out = Vec::new();
            for (window, (record, open)) in windows {
                let Ok((samples, failed, _)) =
                    read_window(|index| self.series.part(window, index), &record, &open);
                assert_eq!(failed, 0);
                assert_eq!(samples.len() as u32, record.count);
                out.extend(samples);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::Sim;
    use super::*;
    use crate::domain::codec::decode_part;
    use crate::domain::detect::Detector;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn limits() -> Limits {
        Limits {
            min: Some(0),
            max: 400,
            min_duration_ms: 5 * MIN,
            hysteresis: 50,
        }
    }

    /// Readings every `step` ms over a few hours crossing windows, with excursions.
    fn readings_strategy() -> impl Strategy<Value = Vec<Sample>> {
        (
            prop::collection::vec((0i64..4, -150i32..650), 1..160),
            prop::sample::select(vec![20_000i64, 60_000, 95_000, 240_000]),
        )
            .prop_map(|(points, step)| {
                let base = 1_767_225_600_000i64 - 17 * MIN; // straddles window boundaries
                let mut ts = base;
                points
                    .into_iter()
                    .map(|(skip, value)| {
                        ts += step * (1 + skip);
                        Sample::new(ts, value)
                    })
                    .collect()
            })
    }

    fn all_at_once(readings: &[Sample]) -> Vec<Excursion> {
        let mut detector = Detector::new(DetectorState::Normal, limits());
        detector.feed_all(readings);
        detector.finish().1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Feeding the same readings in any order and any batching yields the same alarms
        /// (figures included) as feeding them all at once, in order; repeats are counted as
        /// duplicates and stored once.
        #[test]
        fn any_order_yields_the_same_alarms(
            readings in readings_strategy(),
            order in any::<u64>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let expected = all_at_once(&readings);

            // A deterministic shuffle from the seed.
            let mut shuffled = readings.clone();
            let mut seed = order | 1;
            for i in (1..shuffled.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            // Re-send some readings (like a client retrying after a broken stream).
            for r in &repeats {
                let sample = readings[r.index(readings.len())];
                shuffled.push(sample);
            }
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(shuffled.len() + 1)).collect();
            bounds.push(0);
            bounds.push(shuffled.len());
            bounds.sort();
            bounds.dedup();

            let mut sim = Sim::new(limits());
            for pair in bounds.windows(2) {
                sim.ingest(&shuffled[pair[0]..pair[1]]);
            }
            prop_assert_eq!(sim.live(), expected.clone());
            prop_assert_eq!(sim.accepted, readings.len() as u64);
            prop_assert_eq!(sim.duplicates, repeats.len() as u64);
            prop_assert_eq!(sim.all_readings(), readings.clone());

            // The final detector state equals a straight run's.
            let mut straight = Detector::new(DetectorState::Normal, limits());
            straight.feed_all(&readings);
            prop_assert_eq!(&sim.state.detector, straight.state());

            // In order, one reading at a time, nothing is ever retracted.
            let mut one_by_one = Sim::new(limits());
            for r in &readings {
                one_by_one.ingest(std::slice::from_ref(r));
            }
            prop_assert_eq!(one_by_one.live(), expected);
            prop_assert!(one_by_one.alarms.iter().all(|a| !a.retracted));
        }
    }

    #[test]
    fn a_late_reading_inside_an_excursion_splits_it() {
        let mut sim = Sim::new(limits());
        let base = 1_767_225_600_000i64;
        let out: Vec<Sample> = (0..=12).map(|m| Sample::new(base + m * MIN, 500)).collect();
        sim.ingest(&out);
        assert_eq!(sim.live().len(), 1);
        // A late in-range reading at minute 6.5 breaks it into 0..6 (raised: 6 min) and
        // 7..12 (raised: 5 min).
        sim.ingest(&[Sample::new(base + 6 * MIN + 30_000, 300)]);
        let live = sim.live();
        assert_eq!(live.len(), 2);
        assert_eq!(live[0].cleared_at, Some(base + 6 * MIN + 30_000));
        assert_eq!(live[1].started_at, base + 7 * MIN);
        // The first alarm kept its identity; the second is new.
        assert_eq!(sim.alarms.len(), 2);
        assert_eq!(sim.alarms[0].excursion.started_at, base);
    }

    #[test]
    fn a_late_reading_can_retract_an_alarm_which_is_kept() {
        let mut sim = Sim::new(limits());
        let base = 1_767_225_600_000i64;
        let out: Vec<Sample> = (0..=6).map(|m| Sample::new(base + m * MIN, 500)).collect();
        sim.ingest(&out);
        assert_eq!(sim.live().len(), 1);
        sim.ingest(&[Sample::new(base + 3 * MIN + 30_000, 300)]);
        assert!(sim.live().is_empty());
        assert_eq!(sim.alarms.len(), 1);
        assert!(sim.alarms[0].retracted);
    }

    #[test]
    fn a_late_reading_can_open_an_excursion() {
        let mut sim = Sim::new(limits());
        let base = 1_767_225_600_000i64;
        // Out at 0 and 2, back in range at 3: no excursion...
        sim.ingest(&[
            Sample::new(base, 500),
            Sample::new(base + 2 * MIN, 500),
            Sample::new(base + 3 * MIN, 300),
            Sample::new(base + 10 * MIN, 300),
        ]);
        assert!(sim.live().is_empty());
        // ...and late readings cannot change that while 3:00 stays in range.
        sim.ingest(&[Sample::new(base + 3 * MIN, 500)]); // a duplicate: ignored
        assert_eq!(sim.duplicates, 1);
        sim.ingest(&[
            Sample::new(base + 5 * MIN, 500),
            Sample::new(base + 2 * MIN + 1, 500),
        ]);
        assert!(sim.live().is_empty(), "3:00 is still in range");
        let mut other = Sim::new(limits());
        other.ingest(&[Sample::new(base, 500), Sample::new(base + 10 * MIN, 300)]);
        other.ingest(&[Sample::new(base + 6 * MIN, 500)]);
        let live = other.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].started_at, base);
        assert_eq!(live[0].cleared_at, Some(base + 10 * MIN));
    }

    #[test]
    fn regular_ingest_fills_parts_and_windows() {
        let mut sim = Sim::new(limits());
        let base = 1_767_225_600_000i64;
        for batch in 0..40 {
            let samples: Vec<Sample> = (0..100)
                .map(|i| Sample::new(base + (batch * 100 + i) * 1_000, 300))
                .collect();
            sim.ingest(&samples);
        }
        // 4,000 s: one full window (3,600 readings in full parts and a rest) and 400 in
        // the next.
        let (first, _) = &sim.series.windows[&base];
        assert_eq!(first.count, 3_600);
        assert_eq!(first.parts as usize, 3_600 / PART_MAX);
        assert_eq!(
            first.open.as_ref().unwrap().count as usize,
            3_600 % PART_MAX
        );
        let (second, _) = &sim.series.windows[&(base + WINDOW_MS)];
        assert_eq!(second.count, 400);
        assert_eq!(second.parts, 0);
        assert_eq!(second.open.as_ref().unwrap().count, 400);
        // Every sealed part is full: nothing was rewritten into a smaller one.
        for ((window, _), bytes) in &sim.series.parts {
            assert_eq!(
                decode_part(bytes).unwrap().len(),
                PART_MAX,
                "window {window}"
            );
        }
        assert_eq!(sim.all_readings().len(), 4_000);
    }
}
