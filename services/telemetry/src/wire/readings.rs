//! Readings from the wire: each checked (`domain::check_reading`) and grouped per
//! registered sensor, in one pass with one registry lookup per distinct sensor id.

use std::collections::HashMap;

use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::proto_time;

use super::convert::raw_time;
use crate::domain::{self, Prepared, ReadingTime, RejectedReading, Rejection, SensorRegistry};

/// A fast, non-cryptographic hasher (FxHash) for the per-reading sensor lookup: the keys
/// are the caller's own sensor ids, and a collision only costs time.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(K);
        }
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// At most 128 bytes of a client's text, for messages.
fn shorten(text: &str) -> &str {
    let mut end = text.len().min(128);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A reading's time: the instant, or why there is none (an instant outside what
/// google.protobuf.Timestamp allows is MISSING_TIME, as the contract says).
fn reading_time(time: Option<&prost_types::Timestamp>) -> ReadingTime {
    match time {
        None => ReadingTime::Missing,
        Some(t) => match proto_time::millis(t) {
            Some(ms) => ReadingTime::At(ms),
            None => ReadingTime::Invalid(raw_time(t)),
        },
    }
}

/// Turns readings into per-sensor samples (sorted, repeats within the call dropped) and
/// rejections (at most `detail_budget` detailed). `batches`: (batch index, readings).
pub fn prepare(
    known: &SensorRegistry,
    site_id: &str,
    batches: &[(i64, &[pb::Reading])],
    now_ms: i64,
    detail_budget: usize,
) -> Prepared {
    let mut prepared = Prepared::default();
    // sensor id → its group, or None for an unknown sensor: one lookup per reading.
    let mut index: HashMap<&str, Option<usize>, FxBuild> = HashMap::default();
    for (batch_index, readings) in batches {
        for (i, reading) in readings.iter().enumerate() {
            let group = *index.entry(reading.sensor_id.as_str()).or_insert_with(|| {
                known.get(&reading.sensor_id).map(|sensor| {
                    prepared
                        .groups
                        .push((sensor.clone(), Vec::with_capacity(64)));
                    prepared.groups.len() - 1
                })
            });
            let outcome = if group.is_none() {
                Err((
                    Rejection::UnknownSensor,
                    if reading.sensor_id.is_empty() {
                        "sensor_id: is required".to_string()
                    } else {
                        format!(
                            "sensor_id: {:?} is not a registered sensor of site {site_id}",
                            shorten(&reading.sensor_id)
                        )
                    },
                ))
            } else {
                domain::check_reading(
                    reading_time(reading.time.as_ref()),
                    reading.celsius,
                    reading.humidity_percent,
                    reading.door_open,
                    now_ms,
                )
            };
            match (outcome, group) {
                (Ok(sample), Some(group)) => prepared.groups[group].1.push(sample),
                (Ok(_), None) => {}
                (Err((reason, message)), _) => {
                    prepared.rejected += 1;
                    if prepared.rejections.len() < detail_budget {
                        prepared.rejections.push(RejectedReading {
                            batch_index: *batch_index,
                            index: i as i64,
                            sensor_id: reading.sensor_id.clone(),
                            time: reading.time.as_ref().map(raw_time),
                            reason,
                            message,
                        });
                    }
                }
            }
        }
    }
    prepared.sort_and_dedup();
    prepared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RawTime;

    #[test]
    fn times_are_read_as_the_contract_says() {
        for ms in [0i64, 1, 999, 1_000, -1, -1_001, 1_767_225_600_123] {
            let t = proto_time::timestamp(ms);
            assert_eq!(reading_time(Some(&t)), ReadingTime::At(ms));
        }
        assert_eq!(reading_time(None), ReadingTime::Missing);
        let out_of_range = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            reading_time(Some(&out_of_range)),
            ReadingTime::Invalid(RawTime {
                seconds: i64::MAX,
                nanos: 0
            })
        );
    }
}
