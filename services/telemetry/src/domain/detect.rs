//! Excursion detection: a pure state machine over a sensor's readings in time order, and
//! the reconciliation of its findings with the alarms already raised.
//!
//! Rules (all judged by reading times, never by arrival):
//! - a reading above `max` is HIGH, below `min` (when set) LOW, otherwise in range;
//! - an excursion *candidate* starts at the first out-of-limit reading and lasts while
//!   every following reading is out of limits on the same side; any other reading ends it;
//! - once an out-of-limit reading comes at least `min_duration` after the candidate's
//!   start, the excursion is *raised* (immediately, for a zero minimum duration);
//! - a raised excursion extends while readings stay out of limits or within the hysteresis
//!   band just inside the limit; it clears at the first reading back inside the limits by
//!   at least the hysteresis (or at a reading out of limits on the other side);
//! - its figures: peak (most extreme reading), degree-minutes (trapezoidal integral of the
//!   deviation beyond the limit between consecutive readings of the excursion), duration.
//!
//! All arithmetic is in integers (centi-°C, ms), so the figures of the same readings are
//! bit-for-bit the same whatever order or batches they arrived in.

use serde::{Deserialize, Serialize};

use super::codec::Sample;

/// Which limit an excursion crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExcursionKind {
    /// Above the maximum.
    High,
    /// Below the minimum.
    Low,
}

impl ExcursionKind {
    /// How far `value` lies beyond `limit` on this side, centi-°C (0 within it).
    pub fn beyond(self, limit: i32, value: i32) -> i32 {
        match self {
            ExcursionKind::High => value.saturating_sub(limit).max(0),
            ExcursionKind::Low => limit.saturating_sub(value).max(0),
        }
    }
}

/// How long a condition from `started_at` to `end` lasted, ms (never negative): the
/// figure an excursion and its alarm both show.
pub fn duration_ms(started_at: i64, end: i64) -> i64 {
    end.saturating_sub(started_at).max(0)
}

/// Twice the integral of a deviation (centi-°C·ms, as kept) in °C·min.
pub fn degree_minutes(twice_area: i128) -> f64 {
    twice_area as f64 / 2.0 / 100.0 / 60_000.0
}

/// The alarm rules of a sensor in store units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Lowest acceptable centi-°C; `None`: no lower limit.
    pub min: Option<i32>,
    /// Highest acceptable centi-°C.
    pub max: i32,
    /// How long readings must stay out of limits before an excursion is raised, ms.
    pub min_duration_ms: i64,
    /// How far back inside the limits a reading must be to clear, centi-°C.
    pub hysteresis: i32,
}

impl Limits {
    fn classify(&self, value: i32) -> Option<ExcursionKind> {
        if value > self.max {
            Some(ExcursionKind::High)
        } else if self.min.is_some_and(|min| value < min) {
            Some(ExcursionKind::Low)
        } else {
            None
        }
    }

    fn limit(&self, kind: ExcursionKind) -> i32 {
        match kind {
            ExcursionKind::High => self.max,
            // Only LOW readings exist when min is set.
            ExcursionKind::Low => self.min.unwrap_or(i32::MIN),
        }
    }

    fn deviation(&self, kind: ExcursionKind, value: i32) -> i32 {
        kind.beyond(self.limit(kind), value)
    }

    fn clears(&self, kind: ExcursionKind, value: i32) -> bool {
        match kind {
            ExcursionKind::High => value <= self.max.saturating_sub(self.hysteresis),
            ExcursionKind::Low => value >= self.limit(kind).saturating_add(self.hysteresis),
        }
    }
}

/// A run of out-of-limit readings (a candidate or a raised excursion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// HIGH or LOW.
    pub kind: ExcursionKind,
    /// The limit crossed, centi-°C.
    pub limit: i32,
    /// The first out-of-limit reading.
    pub started_at: i64,
    /// The latest out-of-limit reading.
    pub last_out_at: i64,
    /// The latest reading of the run (out of limits or in the hysteresis band).
    pub last_at: i64,
    /// The deviation of the latest reading, centi-°C.
    pub last_dev: i32,
    /// The most extreme reading, centi-°C.
    pub peak: i32,
    /// Twice the integral of the deviation, centi-°C·ms.
    pub twice_area: i128,
}

impl Run {
    fn start(kind: ExcursionKind, limits: &Limits, sample: &Sample) -> Self {
        Run {
            kind,
            limit: limits.limit(kind),
            started_at: sample.ts,
            last_out_at: sample.ts,
            last_at: sample.ts,
            last_dev: limits.deviation(kind, sample.centi_celsius),
            peak: sample.centi_celsius,
            twice_area: 0,
        }
    }

    fn extend(&mut self, limits: &Limits, sample: &Sample, out: bool) {
        let dev = if out {
            limits.deviation(self.kind, sample.centi_celsius)
        } else {
            0
        };
        let dt = i128::from(sample.ts.saturating_sub(self.last_at));
        self.twice_area = self
            .twice_area
            .saturating_add((i128::from(self.last_dev) + i128::from(dev)) * dt);
        self.last_at = sample.ts;
        self.last_dev = dev;
        if out {
            self.last_out_at = sample.ts;
            self.peak = match self.kind {
                ExcursionKind::High => self.peak.max(sample.centi_celsius),
                ExcursionKind::Low => self.peak.min(sample.centi_celsius),
            };
        }
    }

    fn excursion(&self, cleared_at: Option<i64>) -> Excursion {
        Excursion {
            kind: self.kind,
            limit: self.limit,
            started_at: self.started_at,
            last_seen_at: self.last_out_at,
            last_at: self.last_at,
            cleared_at,
            peak: self.peak,
            twice_area: self.twice_area,
        }
    }
}

/// The detector's state after some prefix of a sensor's readings. Persisted with the
/// readings (per sensor, and per chunk window as a checkpoint), so detection survives
/// restarts and late readings can be replayed from the window they fall in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DetectorState {
    /// In range (or no reading yet).
    #[default]
    Normal,
    /// Out of limits, not yet for the minimum duration.
    Pending(Run),
    /// A raised excursion.
    Active(Run),
}

impl DetectorState {
    /// The start of the current run, raised or not.
    pub fn run_start(&self) -> Option<i64> {
        match self {
            DetectorState::Normal => None,
            DetectorState::Pending(run) | DetectorState::Active(run) => Some(run.started_at),
        }
    }

    /// The raised excursion in progress.
    pub fn active(&self) -> Option<&Run> {
        match self {
            DetectorState::Active(run) => Some(run),
            _ => None,
        }
    }
}

/// A raised excursion as detected: the figures an alarm shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excursion {
    /// HIGH or LOW.
    pub kind: ExcursionKind,
    /// The limit crossed, centi-°C.
    pub limit: i32,
    /// The first out-of-limit reading.
    pub started_at: i64,
    /// The latest out-of-limit reading.
    pub last_seen_at: i64,
    /// The latest reading of the excursion before it cleared.
    pub last_at: i64,
    /// The reading that cleared it.
    pub cleared_at: Option<i64>,
    /// The most extreme reading, centi-°C.
    pub peak: i32,
    /// Twice the integral of the deviation, centi-°C·ms.
    pub twice_area: i128,
}

impl Excursion {
    /// Where the excursion ends for matching: when it cleared, or its latest reading.
    pub fn end(&self) -> i64 {
        self.cleared_at.unwrap_or(self.last_at)
    }

    /// How long it lasted (until cleared, or so far), ms.
    pub fn duration_ms(&self) -> i64 {
        duration_ms(self.started_at, self.end())
    }

    /// The integral of the deviation beyond the limit, °C·min.
    pub fn degree_minutes(&self) -> f64 {
        degree_minutes(self.twice_area)
    }

    /// How far the peak lies beyond the limit, centi-°C.
    pub fn peak_deviation(&self) -> i32 {
        self.kind.beyond(self.limit, self.peak)
    }
}

/// Runs the rules over readings fed in time order, remembering every raised excursion it
/// touched (the one in progress at the start, if fed, included).
#[derive(Debug, Clone)]
pub struct Detector {
    limits: Limits,
    state: DetectorState,
    touched: Vec<Excursion>,
    current: Option<usize>,
}

impl Detector {
    /// Continues from `state`.
    pub fn new(state: DetectorState, limits: Limits) -> Self {
        Self {
            limits,
            state,
            touched: Vec::new(),
            current: None,
        }
    }

    /// The state after everything fed so far.
    pub fn state(&self) -> &DetectorState {
        &self.state
    }

    /// Feeds readings in strictly increasing time order (a reading not after the previous
    /// one is ignored: callers de-duplicate and sort).
    pub fn feed_all(&mut self, samples: &[Sample]) {
        for sample in samples {
            self.feed(sample);
        }
    }

    /// Feeds one reading.
    pub fn feed(&mut self, sample: &Sample) {
        let limits = self.limits;
        let class = limits.classify(sample.centi_celsius);
        let state = std::mem::take(&mut self.state);
        self.state = match state {
            DetectorState::Normal => self.open(class, sample),
            DetectorState::Pending(mut run) => {
                if sample.ts <= run.last_at {
                    DetectorState::Pending(run)
                } else if class == Some(run.kind) {
                    run.extend(&limits, sample, true);
                    self.maybe_raise(run)
                } else {
                    self.open(class, sample)
                }
            }
            DetectorState::Active(mut run) => {
                if sample.ts <= run.last_at {
                    DetectorState::Active(run)
                } else if class == Some(run.kind) {
                    run.extend(&limits, sample, true);
                    self.snapshot(&run, None);
                    DetectorState::Active(run)
                } else if class.is_some() || limits.clears(run.kind, sample.centi_celsius) {
                    // Back inside by the hysteresis, or out on the other side: cleared.
                    self.snapshot(&run, Some(sample.ts));
                    self.current = None;
                    self.open(class, sample)
                } else {
                    // In the hysteresis band: still on, no deviation.
                    run.extend(&limits, sample, false);
                    self.snapshot(&run, None);
                    DetectorState::Active(run)
                }
            }
        };
    }

    fn open(&mut self, class: Option<ExcursionKind>, sample: &Sample) -> DetectorState {
        match class {
            None => DetectorState::Normal,
            Some(kind) => self.maybe_raise(Run::start(kind, &self.limits, sample)),
        }
    }

    fn maybe_raise(&mut self, run: Run) -> DetectorState {
        if run.last_out_at.saturating_sub(run.started_at) >= self.limits.min_duration_ms {
            self.snapshot(&run, None);
            DetectorState::Active(run)
        } else {
            DetectorState::Pending(run)
        }
    }

    fn snapshot(&mut self, run: &Run, cleared_at: Option<i64>) {
        let excursion = run.excursion(cleared_at);
        match self.current {
            Some(index) if index < self.touched.len() => self.touched[index] = excursion,
            _ => {
                self.touched.push(excursion);
                self.current = Some(self.touched.len() - 1);
            }
        }
    }

    /// The final state and every raised excursion touched, in time order.
    pub fn finish(self) -> (DetectorState, Vec<Excursion>) {
        (self.state, self.touched)
    }
}

/// A stored excursion alarm that detection may have to revise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpan {
    /// The alarm.
    pub alarm_id: String,
    /// HIGH or LOW.
    pub kind: ExcursionKind,
    /// Its first out-of-limit reading.
    pub started_at: i64,
    /// When it cleared, or its latest reading.
    pub end: i64,
}

/// What to do with the stored alarms after detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The alarm is this excursion: take its figures.
    Update {
        /// The alarm.
        alarm_id: String,
        /// Its recomputed figures.
        excursion: Excursion,
    },
    /// A new excursion: raise an alarm.
    Raise(Excursion),
    /// The readings no longer show this alarm's excursion (late readings broke its
    /// continuity): it is cleared and kept, never deleted.
    Retract {
        /// The alarm.
        alarm_id: String,
    },
}

/// Matches recomputed excursions (in time order) with the stored alarms whose excursions
/// were recomputed: an excursion takes the earliest unmatched alarm of the same kind whose
/// time span overlaps it; an excursion without one is new; an alarm without one is
/// retracted.
pub fn reconcile(affected: &[AlarmSpan], excursions: &[Excursion]) -> Vec<Reconciled> {
    let mut matched = vec![false; affected.len()];
    let mut out = Vec::new();
    for excursion in excursions {
        let found = affected.iter().enumerate().position(|(i, alarm)| {
            !matched[i]
                && alarm.kind == excursion.kind
                && alarm.started_at <= excursion.end()
                && excursion.started_at <= alarm.end
        });
        match found {
            Some(i) => {
                matched[i] = true;
                out.push(Reconciled::Update {
                    alarm_id: affected[i].alarm_id.clone(),
                    excursion: excursion.clone(),
                });
            }
            None => out.push(Reconciled::Raise(excursion.clone())),
        }
    }
    for (i, alarm) in affected.iter().enumerate() {
        if !matched[i] {
            out.push(Reconciled::Retract {
                alarm_id: alarm.alarm_id.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn limits() -> Limits {
        Limits {
            min: Some(0),
            max: 400,
            min_duration_ms: 5 * MIN,
            hysteresis: 50,
        }
    }

    fn detect(values: &[(i64, i32)]) -> (DetectorState, Vec<Excursion>) {
        let mut detector = Detector::new(DetectorState::Normal, limits());
        for (minute, value) in values {
            detector.feed(&Sample::new(minute * MIN, *value));
        }
        detector.finish()
    }

    #[test]
    fn short_excursions_are_not_raised() {
        let (state, excursions) = detect(&[(0, 300), (1, 500), (3, 500), (5, 300)]);
        assert!(excursions.is_empty());
        assert_eq!(state, DetectorState::Normal);
    }

    #[test]
    fn an_excursion_is_raised_after_the_minimum_duration_and_clears_with_hysteresis() {
        let (state, excursions) = detect(&[
            (0, 300),
            (1, 500),
            (3, 600),
            (6, 500), // 5 minutes after the start: raised
            (7, 380), // in range but within the hysteresis band: still on
            (8, 340), // back by 0.5 °C or more: cleared
        ]);
        assert_eq!(state, DetectorState::Normal);
        assert_eq!(excursions.len(), 1);
        let e = &excursions[0];
        assert_eq!(e.kind, ExcursionKind::High);
        assert_eq!(e.started_at, MIN);
        assert_eq!(e.last_seen_at, 6 * MIN);
        assert_eq!(e.last_at, 7 * MIN);
        assert_eq!(e.cleared_at, Some(8 * MIN));
        assert_eq!(e.peak, 600);
        assert_eq!(e.peak_deviation(), 200);
        assert_eq!(e.duration_ms(), 7 * MIN);
        // Trapezoids: (1+2)/2*2 + (2+1)/2*3 + (1+0)/2*1 = 3 + 4.5 + 0.5 = 8 °C·min.
        assert!(
            (e.degree_minutes() - 8.0).abs() < 1e-9,
            "{}",
            e.degree_minutes()
        );
    }

    #[test]
    fn low_excursions_and_side_changes() {
        let (state, excursions) = detect(&[(0, -100), (5, -200), (6, 500), (12, 500)]);
        assert_eq!(excursions.len(), 2);
        assert_eq!(excursions[0].kind, ExcursionKind::Low);
        assert_eq!(excursions[0].cleared_at, Some(6 * MIN));
        assert_eq!(excursions[0].peak, -200);
        assert_eq!(excursions[1].kind, ExcursionKind::High);
        assert_eq!(excursions[1].started_at, 6 * MIN);
        assert!(matches!(state, DetectorState::Active(_)));
    }

    #[test]
    fn zero_minimum_duration_raises_at_once() {
        let mut detector = Detector::new(
            DetectorState::Normal,
            Limits {
                min_duration_ms: 0,
                ..limits()
            },
        );
        detector.feed(&Sample::new(0, 401));
        let (state, excursions) = detector.finish();
        assert!(matches!(state, DetectorState::Active(_)));
        assert_eq!(excursions.len(), 1);
    }

    #[test]
    fn no_lower_limit_means_no_low_excursions() {
        let mut detector = Detector::new(
            DetectorState::Normal,
            Limits {
                min: None,
                max: -1_800,
                min_duration_ms: 0,
                hysteresis: 50,
            },
        );
        detector.feed_all(&[Sample::new(0, -9_000), Sample::new(1, -2_500)]);
        let (state, excursions) = detector.finish();
        assert_eq!(state, DetectorState::Normal);
        assert!(excursions.is_empty());
    }

    #[test]
    fn continuing_from_a_state_gives_the_same_result() {
        let values: Vec<Sample> = [300, 500, 520, 530, 540, 550, 560, 570, 380, 300, 500]
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new(i as i64 * MIN, *v))
            .collect();
        let mut whole = Detector::new(DetectorState::Normal, limits());
        whole.feed_all(&values);
        let (whole_state, whole_excursions) = whole.finish();
        for split in 0..values.len() {
            let mut first = Detector::new(DetectorState::Normal, limits());
            first.feed_all(&values[..split]);
            let (mid, mut excursions) = first.finish();
            let mut second = Detector::new(mid, limits());
            second.feed_all(&values[split..]);
            let (state, later) = second.finish();
            assert_eq!(state, whole_state);
            // The excursion in progress at the split is continued, not duplicated.
            for e in later {
                excursions.retain(|x| x.started_at != e.started_at);
                excursions.push(e);
            }
            assert_eq!(excursions, whole_excursions, "split at {split}");
        }
    }

    fn span(id: &str, kind: ExcursionKind, started_at: i64, end: i64) -> AlarmSpan {
        AlarmSpan {
            alarm_id: id.into(),
            kind,
            started_at,
            end,
        }
    }

    fn excursion(started_at: i64, end: i64) -> Excursion {
        Excursion {
            kind: ExcursionKind::High,
            limit: 400,
            started_at,
            last_seen_at: end,
            last_at: end,
            cleared_at: Some(end),
            peak: 500,
            twice_area: 0,
        }
    }

    #[test]
    fn reconcile_matches_splits_raises_and_retracts() {
        let affected = [
            span("a", ExcursionKind::High, 10, 50),
            span("b", ExcursionKind::High, 100, 150),
        ];
        let found = [excursion(5, 20), excursion(30, 50), excursion(200, 210)];
        let actions = reconcile(&affected, &found);
        assert_eq!(
            actions,
            vec![
                Reconciled::Update {
                    alarm_id: "a".into(),
                    excursion: excursion(5, 20)
                },
                Reconciled::Raise(excursion(30, 50)),
                Reconciled::Raise(excursion(200, 210)),
                Reconciled::Retract {
                    alarm_id: "b".into()
                },
            ]
        );
        // Another kind never matches.
        let low = [span("c", ExcursionKind::Low, 10, 50)];
        assert_eq!(reconcile(&low, &[excursion(10, 50)]).len(), 2);
    }
}
