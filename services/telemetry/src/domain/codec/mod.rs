//! The compact time-series codec: readings of one sensor in one time window, bit-packed
//! Gorilla-style, in an append-only layout.
//!
//! A *part* holds up to [`PART_MAX`] readings in strictly increasing time order:
//!
//! ```text
//! bytes: version u8 = 1 | flags u8 (bit 0: humidity, bit 1: door) | count u32 (big-endian)
//!        first time (ms, zigzag varint) | first value (centi-°C, zigzag varint)
//! bits, per reading (the first has no time or value code):
//!        time code: the delta-of-delta of the times
//!          0 → 0 (a regular cadence: one bit per reading)
//!          10 + 7 bits | 110 + 12 bits | 1110 + 20 bits | 1111 + 64 bits (zigzag)
//!        value code: the change of centi-°C from the previous reading
//!          0 → the same change as the previous reading (one bit for a steady value or a
//!              steady ramp)
//!          10 + 7 bits | 110 + 12 bits | 111 + 16 bits (zigzag)
//!        [humidity: a presence bit; if present, 16 bits for the first one of the part,
//!         then value codes]
//!        [door: two bits: none, closed, open]
//!        zero bits up to the next byte
//! ```
//!
//! A regular 1 Hz series costs one bit of time per reading, and its values one bit (steady)
//! to nine bits (noisy within ±0.63 °C). Because the codes of each reading follow the
//! previous ones, readings are appended to a part without decoding it, given its
//! [`AppendState`] (kept next to the part by the store). Decoding never panics: every
//! malformed input (truncated, impossible counts, times not increasing, values out of
//! range, non-zero padding, trailing bytes) is a [`CodecError`].

use std::fmt;

use serde::{Deserialize, Serialize};

mod bits;

use bits::{BitWriter, Reader, put_varint, zigzag};

/// The most readings one part holds. A window keeps one open part (rewritten, with the
/// window's summary, by each batch) and seals it into its own row when full. 1,024 was the
/// best measured trade-off on the database: smaller parts mean more rows (its per-row overhead
/// dominated at 256), larger ones more rewriting of the open part.
pub const PART_MAX: usize = 1024;

/// The highest |centi-°C| a stored value may have (±100 °C).
pub const MAX_CENTI_CELSIUS: i32 = 10_000;
/// The highest stored humidity in centi-percent (100 %).
pub const MAX_CENTI_PERCENT: u16 = 10_000;

const VERSION: u8 = 1;
const FLAG_HUMIDITY: u8 = 1;
const FLAG_DOOR: u8 = 2;

/// One stored reading: time in ms since the epoch, temperature in centi-°C, optional
/// humidity in centi-percent, optional door state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sample {
    /// Milliseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// Temperature, hundredths of a degree Celsius.
    pub centi_celsius: i32,
    /// Relative humidity, hundredths of a percent.
    pub humidity: Option<u16>,
    /// Door open, if reported.
    pub door: Option<bool>,
}

impl Sample {
    /// A temperature-only sample.
    pub fn new(ts: i64, centi_celsius: i32) -> Self {
        Self {
            ts,
            centi_celsius,
            humidity: None,
            door: None,
        }
    }

    /// The temperature in °C.
    pub fn celsius(&self) -> f64 {
        f64::from(self.centi_celsius) / 100.0
    }
}

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt chunk: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

pub(super) fn err(message: impl Into<String>) -> CodecError {
    CodecError(message.into())
}

/// What appending to a part needs to know about it (the state of its encoder after its
/// last reading). The store keeps it next to the part it is appending to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendState {
    /// Readings in the part.
    pub count: u32,
    /// Which optional columns the part carries.
    pub flags: u8,
    /// The last reading's time.
    pub prev_ts: i64,
    /// The last time delta.
    pub prev_delta: i64,
    /// The last value, centi-°C.
    pub prev_value: i64,
    /// The last value change.
    pub prev_change: i64,
    /// The last humidity and its change.
    pub prev_humidity: Option<(i64, i64)>,
    /// Zero padding bits at the end of the part.
    pub pad: u8,
    /// The part's length in bytes (a guard: appending to other bytes is refused).
    pub len: u32,
}

fn flags_of(samples: &[Sample]) -> u8 {
    let humidity = samples.iter().any(|s| s.humidity.is_some());
    let door = samples.iter().any(|s| s.door.is_some());
    (if humidity { FLAG_HUMIDITY } else { 0 }) | (if door { FLAG_DOOR } else { 0 })
}

fn write_optional(w: &mut BitWriter, state: &mut AppendState, s: &Sample) {
    if state.flags & FLAG_HUMIDITY != 0 {
        w.put(u64::from(s.humidity.is_some()), 1);
        if let Some(h) = s.humidity {
            let h = i64::from(h);
            state.prev_humidity = Some(match state.prev_humidity {
                None => {
                    w.put(h as u64, 16);
                    (h, 0)
                }
                Some((value, change)) => {
                    w.value_code(h - value, change);
                    (h, h - value)
                }
            });
        }
    }
    if state.flags & FLAG_DOOR != 0 {
        let code = match s.door {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        w.put(code, 2);
    }
}

/// Encodes readings (strictly increasing times, values within ±100 °C, at most `u32::MAX`)
/// as one part, with the state to append to it later.
///
/// The caller guarantees the order; the store only ever passes sorted, de-duplicated
/// readings. An empty slice encodes to a part that decodes to no readings.
pub fn encode_part_with_state(samples: &[Sample]) -> (Vec<u8>, AppendState) {
    let flags = flags_of(samples);
    let mut out = Vec::with_capacity(16 + samples.len() / 2);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&(samples.len() as u32).to_be_bytes());
    let Some(first) = samples.first() else {
        let len = out.len() as u32;
        return (
            out,
            AppendState {
                flags,
                len,
                ..AppendState::default()
            },
        );
    };
    put_varint(&mut out, zigzag(first.ts));
    put_varint(&mut out, zigzag(i64::from(first.centi_celsius)));
    let mut state = AppendState {
        count: 1,
        flags,
        prev_ts: first.ts,
        prev_delta: 0,
        prev_value: i64::from(first.centi_celsius),
        prev_change: 0,
        prev_humidity: None,
        pad: 0,
        len: 0,
    };
    let mut w = BitWriter {
        out,
        acc: 0,
        bits: 0,
    };
    write_optional(&mut w, &mut state, first);
    let (bytes, pad) = write_readings(w, &mut state, &samples[1..]);
    state.count = samples.len() as u32;
    state.pad = pad;
    state.len = bytes.len() as u32;
    (bytes, state)
}

fn write_readings(mut w: BitWriter, state: &mut AppendState, samples: &[Sample]) -> (Vec<u8>, u8) {
    for s in samples {
        let delta = s.ts.wrapping_sub(state.prev_ts);
        w.time_code(delta.wrapping_sub(state.prev_delta));
        state.prev_delta = delta;
        state.prev_ts = s.ts;
        let change = i64::from(s.centi_celsius) - state.prev_value;
        w.value_code(change, state.prev_change);
        state.prev_change = change;
        state.prev_value = i64::from(s.centi_celsius);
        write_optional(&mut w, state, s);
    }
    w.finish()
}

/// Encodes readings as one part (see [`encode_part_with_state`]).
pub fn encode_part(samples: &[Sample]) -> Vec<u8> {
    encode_part_with_state(samples).0
}

/// Appends readings to a part without decoding it. Refused (returning false, changing
/// nothing) when the part's state does not match its bytes, when a reading is not after
/// the part's last one, or when a reading has a column the part does not carry.
pub fn append_part(bytes: &mut Vec<u8>, state: &mut AppendState, samples: &[Sample]) -> bool {
    let fits = state.count > 0
        && state.len as usize == bytes.len()
        && bytes.len() >= 6
        && samples.first().is_none_or(|s| s.ts > state.prev_ts)
        && samples.windows(2).all(|w| w[0].ts < w[1].ts)
        && flags_of(samples) & !state.flags == 0
        && state.count.checked_add(samples.len() as u32).is_some();
    if !fits {
        return false;
    }
    if samples.is_empty() {
        return true;
    }
    let count = state.count + samples.len() as u32;
    let w = BitWriter::resume(std::mem::take(bytes), state.pad);
    let (mut out, pad) = write_readings(w, state, samples);
    out[2..6].copy_from_slice(&count.to_be_bytes());
    state.count = count;
    state.pad = pad;
    state.len = out.len() as u32;
    *bytes = out;
    true
}

/// Decodes a part, appending its readings to `out`; returns the part's append state. On
/// error `out` is left as it was.
pub fn decode_part_into(bytes: &[u8], out: &mut Vec<Sample>) -> Result<AppendState, CodecError> {
    let start = out.len();
    let result = decode_inner(bytes, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes a part.
pub fn decode_part(bytes: &[u8]) -> Result<Vec<Sample>, CodecError> {
    let mut out = Vec::new();
    decode_part_into(bytes, &mut out)?;
    Ok(out)
}

fn check_value(value: i64) -> Result<i32, CodecError> {
    // Not `value.abs()`: a corrupt first value can be i64::MIN, whose absolute value
    // overflows (a panic with overflow checks, a negative number passing the check without).
    if !(-i64::from(MAX_CENTI_CELSIUS)..=i64::from(MAX_CENTI_CELSIUS)).contains(&value) {
        return Err(err(format!("value {value} centi-°C out of range")));
    }
    Ok(value as i32)
}

fn check_humidity(value: i64) -> Result<u16, CodecError> {
    if !(0..=i64::from(MAX_CENTI_PERCENT)).contains(&value) {
        return Err(err(format!("humidity {value} centi-% out of range")));
    }
    Ok(value as u16)
}

fn decode_inner(bytes: &[u8], out: &mut Vec<Sample>) -> Result<AppendState, CodecError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        bit: 0,
    };
    let version = r.byte()?;
    if version != VERSION {
        return Err(err(format!("unknown chunk version {version}")));
    }
    let flags = r.byte()?;
    if flags & !(FLAG_HUMIDITY | FLAG_DOOR) != 0 {
        return Err(err(format!("unknown flags 0x{flags:02x}")));
    }
    let count = u32::from_be_bytes([r.byte()?, r.byte()?, r.byte()?, r.byte()?]);
    if count == 0 {
        if r.remaining_bits() != 0 {
            return Err(err("trailing bytes after an empty part"));
        }
        return Ok(AppendState {
            flags,
            len: bytes.len() as u32,
            ..AppendState::default()
        });
    }
    let first_ts = r.signed()?;
    let first_value = check_value(r.signed()?)?;
    // Every reading after the first takes at least two bits: a larger count is a lie (and
    // must not make us allocate).
    if u64::from(count - 1) > r.remaining_bits() / 2 {
        return Err(err(format!("count {count} exceeds the encoded bits")));
    }
    let mut state = AppendState {
        count,
        flags,
        prev_ts: first_ts,
        prev_delta: 0,
        prev_value: i64::from(first_value),
        prev_change: 0,
        prev_humidity: None,
        pad: 0,
        len: bytes.len() as u32,
    };
    out.reserve(count as usize);
    for i in 0..count {
        let mut sample = Sample::new(first_ts, first_value);
        if i > 0 {
            let delta = state
                .prev_delta
                .checked_add(r.time_code()?)
                .ok_or_else(|| err("time delta overflows"))?;
            if delta <= 0 {
                return Err(err("times are not strictly increasing"));
            }
            sample.ts = state
                .prev_ts
                .checked_add(delta)
                .ok_or_else(|| err("time overflows"))?;
            let change = r.value_code(state.prev_change)?;
            sample.centi_celsius = check_value(state.prev_value + change)?;
            state.prev_delta = delta;
            state.prev_ts = sample.ts;
            state.prev_change = change;
            state.prev_value += change;
        }
        if flags & FLAG_HUMIDITY != 0 && r.bits(1)? == 1 {
            let (value, change) = match state.prev_humidity {
                None => (r.bits(16)? as i64, 0),
                Some((value, change)) => {
                    let change = r.value_code(change)?;
                    (value + change, change)
                }
            };
            sample.humidity = Some(check_humidity(value)?);
            state.prev_humidity = Some((value, change));
        }
        if flags & FLAG_DOOR != 0 {
            sample.door = match r.bits(2)? {
                0 => None,
                1 => Some(false),
                2 => Some(true),
                _ => return Err(err("invalid door code")),
            };
        }
        out.push(sample);
    }
    // Padding to the byte boundary must be zero, and nothing may follow.
    let pad = (8 - r.bit) % 8;
    if r.bits(pad)? != 0 {
        return Err(err("non-zero padding"));
    }
    if r.remaining_bits() != 0 {
        return Err(err(format!("{} trailing bytes", r.remaining_bits() / 8)));
    }
    state.pad = pad as u8;
    Ok(state)
}

/// The start of the 1-hour window holding `ts`.
pub fn window_of(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The length of a chunk window: one hour.
pub const WINDOW_MS: i64 = 3_600_000;

#[cfg(test)]
mod tests;
