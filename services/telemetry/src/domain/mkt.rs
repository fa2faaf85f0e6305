//! Mean kinetic temperature (MKT), time-weighted:
//!
//! T = (ΔH/R) / −ln(Σ tᵢ·e^(−ΔH/(R·Tᵢ)) / Σ tᵢ), Tᵢ in kelvin.
//!
//! The sum is accumulated in the log domain (log-sum-exp), so no exponential underflows
//! whatever the activation energy, and readings can be fed one at a time.

/// The ICH / USP activation energy, kJ/mol.
pub const DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL: f64 = 83.144;
/// The gas constant, J/(mol·K).
pub const GAS_CONSTANT: f64 = 8.314_462_618;
/// 0 °C in kelvin.
pub const KELVIN_OFFSET: f64 = 273.15;

/// An incremental MKT: feed (°C, weight) pairs, then [`Mkt::celsius`].
#[derive(Debug, Clone)]
pub struct Mkt {
    /// ΔH/R in kelvin.
    dh_over_r: f64,
    /// The largest exponent seen, and Σ wᵢ·e^(xᵢ − max).
    max_exponent: f64,
    scaled_sum: f64,
    /// Σ wᵢ·(e^xᵢ − 1): precise when every exponent is small (tiny activation energies).
    expm1_sum: f64,
    total_weight: f64,
    /// Σ wᵢ/Tᵢ, for the ΔH → 0 limit (the time-weighted harmonic mean of kelvins).
    weighted_inverse_sum: f64,
    count: u64,
}

impl Mkt {
    /// An empty accumulator for an activation energy in kJ/mol (finite, > 0).
    pub fn new(activation_energy_kj_per_mol: f64) -> Self {
        Self {
            dh_over_r: activation_energy_kj_per_mol * 1_000.0 / GAS_CONSTANT,
            max_exponent: f64::NEG_INFINITY,
            scaled_sum: 0.0,
            expm1_sum: 0.0,
            total_weight: 0.0,
            weighted_inverse_sum: 0.0,
            count: 0,
        }
    }

    /// Adds a reading of `celsius` representing `weight` (any positive unit of time).
    /// Non-positive or non-finite weights are ignored.
    pub fn add(&mut self, celsius: f64, weight: f64) {
        if !(weight > 0.0 && weight.is_finite() && celsius.is_finite()) {
            return;
        }
        let kelvin = celsius + KELVIN_OFFSET;
        if kelvin <= 0.0 {
            return;
        }
        let exponent = -self.dh_over_r / kelvin;
        if exponent > self.max_exponent {
            self.scaled_sum *= (self.max_exponent - exponent).exp();
            self.max_exponent = exponent;
        }
        self.scaled_sum += weight * (exponent - self.max_exponent).exp();
        self.expm1_sum += weight * exponent.exp_m1();
        self.total_weight += weight;
        self.weighted_inverse_sum += weight / kelvin;
        self.count += 1;
    }

    /// The number of readings added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The total weight.
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// The MKT in °C, `None` without readings.
    pub fn celsius(&self) -> Option<f64> {
        if self.count == 0 || self.total_weight <= 0.0 {
            return None;
        }
        let log_mean = if self.max_exponent > -1.0 {
            // ln(1 + Σ wᵢ (e^{xᵢ} − 1) / Σ wᵢ), without cancellation for tiny exponents.
            (self.expm1_sum / self.total_weight).ln_1p()
        } else {
            // ln(Σ wᵢ e^{xᵢ} / Σ wᵢ) = max + ln(scaled_sum) − ln(total_weight)
            self.max_exponent + self.scaled_sum.ln() - self.total_weight.ln()
        };
        let kelvin = self.dh_over_r / -log_mean;
        if kelvin.is_finite() && kelvin > 0.0 {
            Some(kelvin - KELVIN_OFFSET)
        } else {
            // A vanishing activation energy: the limit is the harmonic mean of kelvins.
            Some(self.total_weight / self.weighted_inverse_sum - KELVIN_OFFSET)
        }
    }
}

/// The MKT of (°C, weight) pairs.
pub fn mean_kinetic_temperature(
    readings: impl IntoIterator<Item = (f64, f64)>,
    activation_energy_kj_per_mol: f64,
) -> Option<f64> {
    let mut mkt = Mkt::new(activation_energy_kj_per_mol);
    for (celsius, weight) in readings {
        mkt.add(celsius, weight);
    }
    mkt.celsius()
}

/// The weights of a time-ordered series of readings, sample and hold: each reading weighs
/// the time until the next one (at most `max_gap_ms`, the sensor's offline period: a
/// silent sensor says nothing); the last repeats the previous interval, cut at the range
/// end; a lone reading weighs 1 ms. The MKT and the exposure (see `super::exposure`) weigh
/// readings with it, so their figures cover the same time.
#[derive(Debug, Clone)]
pub struct HoldWeights<T> {
    max_gap_ms: i64,
    previous: Option<(i64, T)>,
    last_interval: Option<i64>,
}

impl<T: Copy> HoldWeights<T> {
    /// An empty series.
    pub fn new(max_gap_ms: i64) -> Self {
        Self {
            max_gap_ms: max_gap_ms.max(1),
            previous: None,
            last_interval: None,
        }
    }

    /// The next reading (times strictly increasing); the previous reading with its weight,
    /// ms, once known.
    pub fn push(&mut self, ts: i64, value: T) -> Option<(T, i64)> {
        let weighed = self.previous.map(|(previous_ts, previous)| {
            let weight = ts.saturating_sub(previous_ts).clamp(1, self.max_gap_ms);
            self.last_interval = Some(weight);
            (previous, weight)
        });
        self.previous = Some((ts, value));
        weighed
    }

    /// The last reading with its weight in a range ending (exclusive) at `range_end`, and
    /// its time; `None` without readings.
    pub fn finish(&self, range_end: i64) -> Option<(T, i64, i64)> {
        let (last, value) = self.previous?;
        let weight = self
            .last_interval
            .unwrap_or(1)
            .min(range_end.saturating_sub(last))
            .max(1);
        Some((value, weight, last))
    }
}

/// Weighs a time-ordered series of readings for the MKT, by [`HoldWeights`].
#[derive(Debug, Clone)]
pub struct SampleAndHold {
    mkt: Mkt,
    weights: HoldWeights<f64>,
    first: Option<i64>,
    span_ms: i64,
}

/// The result of a weighed series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeighedMkt {
    /// The MKT, °C.
    pub celsius: f64,
    /// Readings used.
    pub count: u64,
    /// Time of the first reading, ms.
    pub first: i64,
    /// Time of the last reading, ms.
    pub last: i64,
    /// Σ weights, ms.
    pub span_ms: i64,
}

impl SampleAndHold {
    /// An empty series.
    pub fn new(activation_energy_kj_per_mol: f64, max_gap_ms: i64) -> Self {
        Self {
            mkt: Mkt::new(activation_energy_kj_per_mol),
            weights: HoldWeights::new(max_gap_ms),
            first: None,
            span_ms: 0,
        }
    }

    /// The next reading (times strictly increasing).
    pub fn push(&mut self, ts: i64, celsius: f64) {
        if let Some((previous, weight)) = self.weights.push(ts, celsius) {
            self.mkt.add(previous, weight as f64);
            self.span_ms = self.span_ms.saturating_add(weight);
        }
        self.first.get_or_insert(ts);
    }

    /// The MKT of the series in a range ending (exclusive) at `range_end`; `None` without
    /// readings.
    pub fn finish(mut self, range_end: i64) -> Option<WeighedMkt> {
        let (celsius, weight, last) = self.weights.finish(range_end)?;
        self.mkt.add(celsius, weight as f64);
        self.span_ms = self.span_ms.saturating_add(weight);
        Some(WeighedMkt {
            celsius: self.mkt.celsius()?,
            count: self.mkt.count(),
            first: self.first?,
            last,
            span_ms: self.span_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn equal(values: &[f64]) -> f64 {
        mean_kinetic_temperature(
            values.iter().map(|v| (*v, 1.0)),
            DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL,
        )
        .unwrap()
    }

    fn round3(x: f64) -> f64 {
        (x * 1_000.0).round() / 1_000.0
    }

    #[test]
    fn reference_values() {
        assert_eq!(round3(equal(&[5.0])), 5.000);
        assert_eq!(round3(equal(&[5.0, 5.0, 5.0, 5.0])), 5.000);
        assert_eq!(round3(equal(&[4.0, 4.0, 4.0, 4.0, 16.0])), 8.109);
        assert_eq!(round3(equal(&[2.0, 8.0])), 5.536);
        assert_eq!(round3(equal(&[20.0, 25.0, 30.0])), 25.858);
        let weighted = mean_kinetic_temperature(
            [(5.0, 23.0 * 3600.0), (25.0, 3600.0)],
            DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL,
        )
        .unwrap();
        assert_eq!(round3(weighted), 7.756);
    }

    #[test]
    fn hourly_series_weights_match_the_reference() {
        // 23 readings at 5 °C and one at 25 °C, hourly: sample-and-hold weights.
        let mut series =
            SampleAndHold::new(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, 7 * 24 * 3_600_000);
        for h in 0..24 {
            series.push(h * 3_600_000, if h == 23 { 25.0 } else { 5.0 });
        }
        let result = series.finish(24 * 3_600_000).unwrap();
        assert_eq!(round3(result.celsius), 7.756);
        assert_eq!(result.count, 24);
        assert_eq!(result.span_ms, 24 * 3_600_000);
        assert_eq!((result.first, result.last), (0, 23 * 3_600_000));
    }

    #[test]
    fn weights_cut_gaps_and_the_range_end() {
        let weigh = |times: &[i64], end: i64, max_gap: i64| {
            let mut series = SampleAndHold::new(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, max_gap);
            for t in times {
                series.push(*t, 5.0);
            }
            series.finish(end).map(|r| r.span_ms)
        };
        assert_eq!(weigh(&[], 10, 100), None);
        assert_eq!(weigh(&[5], 100, 100), Some(1));
        assert_eq!(weigh(&[0, 10, 20], 100, 100), Some(30));
        assert_eq!(weigh(&[0, 10, 20], 25, 100), Some(25));
        // A silence longer than the offline period counts only that period.
        assert_eq!(weigh(&[0, 1_000, 1_010], 2_000, 100), Some(120));
    }

    #[test]
    fn no_readings_no_mkt() {
        assert_eq!(mean_kinetic_temperature([], 83.144), None);
    }

    #[test]
    fn extreme_activation_energies_stay_finite() {
        let big = mean_kinetic_temperature([(2.0, 1.0), (8.0, 1.0)], 1.0e6).unwrap();
        assert!(big.is_finite() && (2.0..=8.0).contains(&big), "{big}");
        // As ΔH → 0 the MKT tends to the harmonic mean of the kelvins.
        let tiny = mean_kinetic_temperature([(2.0, 1.0), (8.0, 1.0)], 1.0e-12).unwrap();
        let harmonic = 2.0 / (1.0 / 275.15 + 1.0 / 281.15) - KELVIN_OFFSET;
        assert!((tiny - harmonic).abs() < 1e-6, "{tiny} vs {harmonic}");
    }

    proptest! {
        #[test]
        fn mkt_lies_between_the_mean_and_the_maximum(
            values in prop::collection::vec(-40.0f64..40.0, 1..50),
        ) {
            let mkt = equal(&values);
            let max = values.iter().cloned().fold(f64::MIN, f64::max);
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            prop_assert!(mkt <= max + 1e-9);
            prop_assert!(mkt >= mean - 1e-9);
        }
    }
}
