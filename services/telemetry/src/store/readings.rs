//! Reading back: range queries answered from window summaries where they suffice, and
//! the time-weighted MKT and the exposure over a range.

use coldchain_store::{KeyCodec, Prefix, StoreError};

use super::tables::{Blob, PARTS, WINDOWS};
use super::{TelemetryError, TelemetryStore};
use crate::domain::codec::{CodecError, Sample, WINDOW_MS, window_of};
use crate::domain::detect::Limits;
use crate::domain::exposure::{Exposure, ExposureFigures};
use crate::domain::mkt::{DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, SampleAndHold};
use crate::domain::series::{WindowRecord, decode_row, read_window};
use crate::domain::{Bucket, MktResult, QueryResult, TelemetryRefusal, Unreadable, format_ms};

impl TelemetryStore {
    /// min/max/sum/count per bucket over `[start, end)`: whole windows inside one bucket are
    /// answered from their summary; others are decoded.
    pub fn query_readings(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        bucket_ms: i64,
    ) -> Result<QueryResult, StoreError> {
        let mut result = QueryResult::default();
        let mut buckets: std::collections::BTreeMap<i64, Bucket> =
            std::collections::BTreeMap::new();
        let bucket_of = |ts: i64| ts.div_euclid(bucket_ms) * bucket_ms;
        let mut add = |start: i64, count: u64, min: i32, max: i32, sum: i64| {
            buckets
                .entry(start)
                .or_insert(Bucket {
                    start,
                    count: 0,
                    min: i32::MAX,
                    max: i32::MIN,
                    sum: 0,
                })
                .add(count, min, max, sum);
        };
        for window in self.windows_in(sensor_id, start, end) {
            let (window, blob) = window?;
            let clip = |message: String| Unreadable {
                start: window.max(start),
                end: (window + WINDOW_MS).min(end),
                message,
            };
            let (record, open) = match decode_row(&blob.0) {
                Ok(row) => row,
                Err(error) => {
                    result.unreadable.push(clip(error.to_string()));
                    continue;
                }
            };
            if record.count == 0 || record.last_ts < start || record.first_ts >= end {
                continue;
            }
            if record.first_ts >= start
                && record.last_ts < end
                && bucket_of(record.first_ts) == bucket_of(record.last_ts)
            {
                add(
                    bucket_of(record.first_ts),
                    u64::from(record.count),
                    record.min,
                    record.max,
                    record.sum,
                );
                result.summaries_used += 1;
                continue;
            }
            let (samples, failed, error) = self.read_window(sensor_id, window, &record, open)?;
            result.windows_decoded += 1;
            if failed > 0 {
                let message = error.map_or_else(|| "corrupt chunk".to_string(), |e| e.to_string());
                result.unreadable.push(clip(format!(
                    "{failed} of {} parts: {message}",
                    record.parts
                )));
            }
            for s in samples.iter().filter(|s| s.ts >= start && s.ts < end) {
                add(
                    bucket_of(s.ts),
                    1,
                    s.centi_celsius,
                    s.centi_celsius,
                    i64::from(s.centi_celsius),
                );
            }
        }
        result.buckets = buckets.into_values().collect();
        Ok(result)
    }

    /// The time-weighted MKT over `[start, end)`.
    pub fn mean_kinetic_temperature(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        activation_energy: f64,
        max_gap_ms: i64,
    ) -> Result<MktResult, TelemetryError> {
        let mut series = SampleAndHold::new(activation_energy, max_gap_ms);
        self.each_reading(sensor_id, start, end, |s| series.push(s.ts, s.celsius()))?;
        let result = series
            .finish(end)
            .ok_or_else(|| TelemetryRefusal::NoReadings {
                sensor_id: sensor_id.to_string(),
                start,
                end,
            })?;
        Ok(MktResult {
            celsius: result.celsius,
            count: result.count,
            first: result.first,
            last: result.last,
            span_ms: result.span_ms,
        })
    }

    /// What a sensor saw over `[start, end)` against `limits` (see `domain::exposure`), its
    /// readings weighed as for the MKT; `None` without readings in the range.
    pub fn exposure(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        limits: &Limits,
        max_gap_ms: i64,
    ) -> Result<Option<ExposureFigures>, TelemetryError> {
        let mut exposure = Exposure::new(limits, DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, max_gap_ms);
        self.each_reading(sensor_id, start, end, |s| {
            exposure.push(s.ts, s.centi_celsius)
        })?;
        Ok(exposure.finish(end))
    }

    /// Every reading of a sensor in `[start, end)`, in time order, decoded from its windows;
    /// a window that cannot be decoded fails the whole read (a figure over a range must not
    /// silently miss part of it).
    fn each_reading(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        mut each: impl FnMut(&Sample),
    ) -> Result<(), TelemetryError> {
        for window in self.windows_in(sensor_id, start, end) {
            let (window, blob) = window?;
            let data_loss = |message: String| {
                TelemetryRefusal::ReadingsUnreadable(format!(
                    "stored readings of sensor {sensor_id:?} from {} to {} cannot be decoded: {message}",
                    format_ms(window),
                    format_ms(window + WINDOW_MS)
                ))
            };
            let (record, open) = decode_row(&blob.0).map_err(|e| data_loss(e.to_string()))?;
            if record.count == 0 || record.last_ts < start || record.first_ts >= end {
                continue;
            }
            let (samples, failed, error) = self.read_window(sensor_id, window, &record, open)?;
            if failed > 0 {
                return Err(data_loss(
                    error.map_or_else(|| "corrupt chunk".to_string(), |e| e.to_string()),
                )
                .into());
            }
            for s in samples.iter().filter(|s| s.ts >= start && s.ts < end) {
                each(s);
            }
        }
        Ok(())
    }

    fn windows_in(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = Result<(i64, Blob), StoreError>> + use<> {
        let prefix = Prefix::new().str(sensor_id);
        let after = KeyCodec::encode(&(sensor_id.to_string(), window_of(start).saturating_sub(1)));
        self.store
            .scan_after(&WINDOWS, prefix.as_bytes(), Some(&after))
            .map(|entry| entry.map(|((_, window), blob)| (window, blob)))
            .take_while(move |entry| entry.as_ref().map_or(true, |(window, _)| *window < end))
    }

    fn read_window(
        &self,
        sensor_id: &str,
        window: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(Vec<Sample>, u32, Option<CodecError>), StoreError> {
        let sensor = sensor_id.to_string();
        read_window(
            |index| {
                Ok(self
                    .store
                    .get(&PARTS, &(sensor.clone(), window, index))?
                    .map(|blob| blob.0))
            },
            record,
            open,
        )
    }

    /// Test support: overwrites one stored chunk part, to check how corrupt data is
    /// reported. Never used by the service.
    #[doc(hidden)]
    pub async fn corrupt_part_for_tests(
        &self,
        sensor_id: &str,
        window: i64,
        part: u32,
        bytes: Vec<u8>,
    ) -> Result<(), TelemetryError> {
        let key = (sensor_id.to_string(), window, part);
        self.store
            .write(None, move |tx| {
                tx.put(&PARTS, &key, &Blob(bytes))?;
                Ok::<_, TelemetryError>(())
            })
            .await
            .map(|_| ())
            .map_err(TelemetryError::from)
    }
}
