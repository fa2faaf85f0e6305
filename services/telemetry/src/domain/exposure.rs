//! What a sensor saw over a range, against its limits: the readings' count, min, max,
//! time-weighted mean, mean kinetic temperature, and the time they put outside the limits.
//!
//! Every reading weighs the time it represents exactly as for the MKT ([`HoldWeights`]:
//! sample and hold up to the sensor's offline period), so `covered` is the MKT's span, and
//! the time outside the limits is the sum of the weights of the readings outside them (a
//! reading outside as the excursion detector classifies it: above the max, or below the
//! min when there is one).

use super::detect::Limits;
use super::mkt::{HoldWeights, Mkt};

/// The figures of a range with at least one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExposureFigures {
    /// Readings in the range.
    pub reading_count: u64,
    /// The lowest reading, °C.
    pub min_celsius: f64,
    /// The highest reading, °C.
    pub max_celsius: f64,
    /// The time-weighted mean, °C.
    pub mean_celsius: f64,
    /// The mean kinetic temperature, °C.
    pub mkt_celsius: f64,
    /// Σ weights of the readings outside the limits, ms.
    pub outside_ms: i64,
    /// Σ weights, ms.
    pub covered_ms: i64,
}

/// An incremental exposure: push readings in time order, then [`Exposure::finish`].
#[derive(Debug, Clone)]
pub struct Exposure {
    weights: HoldWeights<i32>,
    mkt: Mkt,
    min_limit: Option<i32>,
    max_limit: i32,
    count: u64,
    lowest: i32,
    highest: i32,
    weighted_sum: f64,
    outside_ms: i64,
    covered_ms: i64,
}

impl Exposure {
    /// An empty exposure against `limits` (centi-°C), weighing readings for the MKT at
    /// `activation_energy_kj_per_mol` with gaps cut at `max_gap_ms`.
    pub fn new(limits: &Limits, activation_energy_kj_per_mol: f64, max_gap_ms: i64) -> Self {
        Self {
            weights: HoldWeights::new(max_gap_ms),
            mkt: Mkt::new(activation_energy_kj_per_mol),
            min_limit: limits.min,
            max_limit: limits.max,
            count: 0,
            lowest: i32::MAX,
            highest: i32::MIN,
            weighted_sum: 0.0,
            outside_ms: 0,
            covered_ms: 0,
        }
    }

    /// The next reading, centi-°C (times strictly increasing).
    pub fn push(&mut self, ts: i64, centi_celsius: i32) {
        self.count += 1;
        self.lowest = self.lowest.min(centi_celsius);
        self.highest = self.highest.max(centi_celsius);
        if let Some((previous, weight)) = self.weights.push(ts, centi_celsius) {
            self.weigh(previous, weight);
        }
    }

    fn weigh(&mut self, centi_celsius: i32, weight_ms: i64) {
        let celsius = celsius(centi_celsius);
        self.mkt.add(celsius, weight_ms as f64);
        self.weighted_sum += celsius * weight_ms as f64;
        self.covered_ms = self.covered_ms.saturating_add(weight_ms);
        let outside =
            centi_celsius > self.max_limit || self.min_limit.is_some_and(|min| centi_celsius < min);
        if outside {
            self.outside_ms = self.outside_ms.saturating_add(weight_ms);
        }
    }

    /// The figures of the range ending (exclusive) at `range_end`; `None` without readings.
    pub fn finish(mut self, range_end: i64) -> Option<ExposureFigures> {
        let (last, weight, _) = self.weights.finish(range_end)?;
        self.weigh(last, weight);
        let covered = self.covered_ms as f64;
        // The mean stays within the readings whatever the rounding of the sum.
        let mean = (self.weighted_sum / covered).clamp(celsius(self.lowest), celsius(self.highest));
        Some(ExposureFigures {
            reading_count: self.count,
            min_celsius: celsius(self.lowest),
            max_celsius: celsius(self.highest),
            mean_celsius: mean,
            mkt_celsius: self.mkt.celsius()?,
            outside_ms: self.outside_ms,
            covered_ms: self.covered_ms,
        })
    }
}

/// The exposure of (time ms, centi-°C) readings in time order, in a range ending at
/// `range_end`.
pub fn exposure(
    readings: impl IntoIterator<Item = (i64, i32)>,
    limits: &Limits,
    activation_energy_kj_per_mol: f64,
    max_gap_ms: i64,
    range_end: i64,
) -> Option<ExposureFigures> {
    let mut exposure = Exposure::new(limits, activation_energy_kj_per_mol, max_gap_ms);
    for (ts, centi) in readings {
        exposure.push(ts, centi);
    }
    exposure.finish(range_end)
}

fn celsius(centi: i32) -> f64 {
    f64::from(centi) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mkt::{DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, SampleAndHold};
    use proptest::prelude::*;

    const MINUTE: i64 = 60_000;
    const OFFLINE: i64 = 15 * MINUTE;

    fn limits(min: Option<i32>, max: i32) -> Limits {
        Limits {
            min,
            max,
            min_duration_ms: 0,
            hysteresis: 0,
        }
    }

    fn of(readings: &[(i64, i32)], limits: &Limits, end: i64) -> Option<ExposureFigures> {
        exposure(
            readings.iter().copied(),
            limits,
            DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL,
            OFFLINE,
            end,
        )
    }

    #[test]
    fn a_known_excursion_is_timed_by_the_readings_weights() {
        // 2..8 °C; one reading a minute for 10 minutes, 9.5 °C for minutes 3, 4 and 5.
        let readings: Vec<_> = (0..10)
            .map(|i| (i * MINUTE, if (3..6).contains(&i) { 950 } else { 500 }))
            .collect();
        let figures = of(&readings, &limits(Some(200), 800), 10 * MINUTE).unwrap();
        assert_eq!(figures.reading_count, 10);
        assert_eq!(figures.min_celsius, 5.0);
        assert_eq!(figures.max_celsius, 9.5);
        assert_eq!(figures.outside_ms, 3 * MINUTE);
        assert_eq!(figures.covered_ms, 10 * MINUTE);
        assert!((figures.mean_celsius - 6.35).abs() < 1e-9);
        // The limit itself is inside, as for the detector.
        let at_limit = of(
            &[(0, 800), (MINUTE, 200)],
            &limits(Some(200), 800),
            2 * MINUTE,
        );
        assert_eq!(at_limit.unwrap().outside_ms, 0);
        // Below the min counts; without a min nothing is too cold.
        let cold = [(0, -100), (MINUTE, 500)];
        assert_eq!(
            of(&cold, &limits(Some(200), 800), 2 * MINUTE)
                .unwrap()
                .outside_ms,
            MINUTE
        );
        assert_eq!(
            of(&cold, &limits(None, 800), 2 * MINUTE)
                .unwrap()
                .outside_ms,
            0
        );
    }

    #[test]
    fn a_gap_longer_than_the_offline_period_counts_only_that_period() {
        // A warm reading, then silence for an hour: it stands for 15 minutes only.
        let readings = [(0, 1_200), (60 * MINUTE, 500)];
        let figures = of(&readings, &limits(Some(200), 800), 61 * MINUTE).unwrap();
        assert_eq!(figures.outside_ms, OFFLINE);
        assert_eq!(figures.covered_ms, OFFLINE + MINUTE);
    }

    #[test]
    fn no_reading_no_figures() {
        assert_eq!(of(&[], &limits(None, 800), MINUTE), None);
    }

    fn series() -> impl Strategy<Value = Vec<(i64, i32)>> {
        proptest::collection::vec((1..30 * MINUTE, -3_000..4_000i32), 1..60).prop_map(|steps| {
            let mut ts = 0;
            steps
                .into_iter()
                .map(|(step, centi)| {
                    ts += step;
                    (ts, centi)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_figures_hold_together(
            readings in series(),
            min in proptest::option::of(-2_000..1_000i32),
            width in 0..3_000i32,
            tail in 1..60 * MINUTE,
        ) {
            let max = min.unwrap_or(0) + width;
            let end = readings.last().unwrap().0 + tail;
            let limits = limits(min, max);
            let f = of(&readings, &limits, end).unwrap();
            prop_assert_eq!(f.reading_count, readings.len() as u64);
            prop_assert!(0 <= f.outside_ms && f.outside_ms <= f.covered_ms);
            prop_assert!(f.min_celsius <= f.mean_celsius && f.mean_celsius <= f.max_celsius);
            // MKT ≥ the time-weighted mean (Jensen), = for a constant temperature.
            prop_assert!(f.mkt_celsius >= f.mean_celsius - 1e-9);
            // The same weights as the MKT's: the same span, the same MKT.
            let mut mkt = SampleAndHold::new(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, OFFLINE);
            for (ts, centi) in &readings {
                mkt.push(*ts, f64::from(*centi) / 100.0);
            }
            let weighed = mkt.finish(end).unwrap();
            prop_assert_eq!(f.covered_ms, weighed.span_ms);
            prop_assert!((f.mkt_celsius - weighed.celsius).abs() < 1e-9);

            // All inside: no time outside; all outside: all of it.
            let wide = Limits { min: Some(-3_001), max: 4_000, ..limits };
            prop_assert_eq!(of(&readings, &wide, end).unwrap().outside_ms, 0);
            let none = Limits { min: None, max: -3_001, ..limits };
            let all_out = of(&readings, &none, end).unwrap();
            prop_assert_eq!(all_out.outside_ms, all_out.covered_ms);
        }

        #[test]
        fn the_mkt_exceeds_the_mean_when_temperatures_vary(
            readings in series().prop_filter("varying", |r| {
                r.iter().any(|(_, c)| *c != r[0].1)
            }),
        ) {
            let end = readings.last().unwrap().0 + MINUTE;
            let f = of(&readings, &limits(None, 0), end).unwrap();
            prop_assert!(f.mkt_celsius >= f.mean_celsius - 1e-9);
        }
    }
}
