//! Tests of the series algorithm.

use super::sim::Sim;
use super::*;
use crate::domain::codec::{WINDOW_MS, decode_part};
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
