//! Late readings: merging readings at or before a sensor's latest into its stored windows,
//! and replaying detection from the previous window's checkpoint until it converges.

use super::super::codec::{
    PART_MAX, Sample, WINDOW_MS, encode_part, encode_part_with_state, window_of,
};
use super::super::detect::Detector;
use super::super::detect::Limits;
use super::{
    COMPACT_SLACK, SeriesAccess, SeriesOutcome, SeriesState, WindowRecord, append, read_window,
};

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

pub(super) fn ingest_late<A: SeriesAccess>(
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
