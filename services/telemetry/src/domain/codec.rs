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

/// The most readings one part holds. A window keeps one open part (rewritten, with the
/// window's summary, by each batch) and seals it into its own row when full. 1,024 was the
/// best measured trade-off on sled: smaller parts mean more rows (sled's per-row overhead
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

fn err(message: impl Into<String>) -> CodecError {
    CodecError(message.into())
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends bits, most significant first.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    /// Continues `bytes`, whose last byte holds `pad` zero padding bits.
    fn resume(mut bytes: Vec<u8>, pad: u8) -> Self {
        if pad == 0 || pad >= 8 {
            return Self {
                out: bytes,
                acc: 0,
                bits: 0,
            };
        }
        let last = bytes.pop().unwrap_or(0);
        let used = 8 - u32::from(pad);
        Self {
            out: bytes,
            acc: u64::from(last >> pad),
            bits: used,
        }
    }

    fn put(&mut self, value: u64, width: u32) {
        // width ≤ 64; flush whole bytes as they fill.
        let mut remaining = width;
        while remaining > 0 {
            let take = remaining.min(32);
            let chunk = (value >> (remaining - take)) & ((1u64 << take) - 1);
            self.acc = (self.acc << take) | chunk;
            self.bits += take;
            remaining -= take;
            while self.bits >= 8 {
                self.bits -= 8;
                self.out.push((self.acc >> self.bits) as u8);
            }
            self.acc &= (1u64 << self.bits) - 1;
        }
    }

    /// The bytes, padded with zero bits, and the number of padding bits.
    fn finish(mut self) -> (Vec<u8>, u8) {
        let pad = (8 - self.bits % 8) % 8;
        if pad > 0 {
            self.put(0, pad);
        }
        (self.out, pad as u8)
    }

    /// A time delta-of-delta.
    fn time_code(&mut self, dod: i64) {
        let z = zigzag(dod);
        if z == 0 {
            self.put(0, 1);
        } else if z < 1 << 7 {
            self.put(0b10, 2);
            self.put(z, 7);
        } else if z < 1 << 12 {
            self.put(0b110, 3);
            self.put(z, 12);
        } else if z < 1 << 20 {
            self.put(0b1110, 4);
            self.put(z, 20);
        } else {
            self.put(0b1111, 4);
            self.put(z, 64);
        }
    }

    /// A value change, given the previous change.
    fn value_code(&mut self, delta: i64, previous: i64) {
        if delta == previous {
            self.put(0, 1);
            return;
        }
        let z = zigzag(delta);
        if z < 1 << 7 {
            self.put(0b10, 2);
            self.put(z, 7);
        } else if z < 1 << 12 {
            self.put(0b110, 3);
            self.put(z, 12);
        } else {
            // Values lie within ±100 °C (humidity within 0..100 %): every change fits.
            self.put(0b111, 3);
            self.put(z & 0xFFFF, 16);
        }
    }
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

/// A bounds-checked reader over bytes, then bits.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    bit: u32,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| err(format!("truncated at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(err("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(err("varint longer than 10 bytes"))
    }

    fn signed(&mut self) -> Result<i64, CodecError> {
        self.varint().map(unzigzag)
    }

    fn remaining_bits(&self) -> u64 {
        (self.bytes.len().saturating_sub(self.pos) as u64) * 8 - u64::from(self.bit)
    }

    fn bits(&mut self, width: u32) -> Result<u64, CodecError> {
        if u64::from(width) > self.remaining_bits() {
            return Err(err(format!(
                "truncated: needed {width} bits at byte {}",
                self.pos
            )));
        }
        // Whole runs of the current byte at a time (width ≤ 64, so nothing overflows).
        let mut value = 0u64;
        let mut need = width;
        while need > 0 {
            let byte = self.bytes[self.pos];
            let available = 8 - self.bit;
            let take = available.min(need);
            let chunk = (u64::from(byte) >> (available - take)) & ((1u64 << take) - 1);
            value = (value << take) | chunk;
            self.bit += take;
            if self.bit == 8 {
                self.bit = 0;
                self.pos += 1;
            }
            need -= take;
        }
        Ok(value)
    }

    /// Counts leading one bits, at most `max`.
    fn ones(&mut self, max: u32) -> Result<u32, CodecError> {
        let mut n = 0;
        while n < max && self.bits(1)? == 1 {
            n += 1;
        }
        Ok(n)
    }

    fn time_code(&mut self) -> Result<i64, CodecError> {
        let z = match self.ones(4)? {
            0 => 0,
            1 => self.bits(7)?,
            2 => self.bits(12)?,
            3 => self.bits(20)?,
            _ => self.bits(64)?,
        };
        Ok(unzigzag(z))
    }

    fn value_code(&mut self, previous: i64) -> Result<i64, CodecError> {
        Ok(match self.ones(3)? {
            0 => previous,
            1 => unzigzag(self.bits(7)?),
            2 => unzigzag(self.bits(12)?),
            _ => unzigzag(self.bits(16)?),
        })
    }
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_strategy() -> impl Strategy<Value = Vec<Sample>> {
        prop::collection::vec(
            (
                1i64..5_000,
                -MAX_CENTI_CELSIUS..=MAX_CENTI_CELSIUS,
                prop::option::of(0u16..=MAX_CENTI_PERCENT),
                prop::option::of(any::<bool>()),
            ),
            0..300,
        )
        .prop_flat_map(|steps| {
            (Just(steps), -10_000_000_000_000i64..10_000_000_000_000i64).prop_map(
                |(steps, base)| {
                    let mut ts = base;
                    steps
                        .into_iter()
                        .map(|(step, c, h, d)| {
                            ts += step;
                            Sample {
                                ts,
                                centi_celsius: c,
                                humidity: h,
                                door: d,
                            }
                        })
                        .collect()
                },
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parts_round_trip(samples in sample_strategy()) {
            let bytes = encode_part(&samples);
            prop_assert_eq!(decode_part(&bytes).unwrap(), samples);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut out = vec![Sample::new(1, 1)];
            if decode_part_into(&bytes, &mut out).is_err() {
                // A failed decode leaves the output untouched.
                prop_assert_eq!(out.len(), 1);
            }
        }

        #[test]
        fn corrupted_parts_never_panic(
            samples in sample_strategy(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode_part(&samples);
            if !bytes.is_empty() {
                for (index, value) in &flips {
                    let i = index.index(bytes.len());
                    bytes[i] ^= value | 1;
                }
                let _ = decode_part(&bytes);
                let cut = cut.index(bytes.len());
                let _ = decode_part(&bytes[..cut]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Appending in pieces gives the same bytes (and state) as encoding at once, and
        /// decoding gives the state back.
        #[test]
        fn appending_equals_encoding_at_once(
            samples in sample_strategy(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let (whole, whole_state) = encode_part_with_state(&samples);
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(samples.len() + 1)).collect();
            bounds.retain(|b| *b > 0);
            bounds.push(samples.len());
            bounds.sort();
            bounds.dedup();
            // The flags of a part are fixed when it is created: start with every column the
            // series uses (as the store does when a later reading brings a new column, it
            // starts a new part instead).
            let first = bounds.first().copied().unwrap_or(0).min(samples.len());
            let (mut bytes, mut state) = encode_part_with_state(&samples[..first]);
            let mut start = first;
            for end in bounds.iter().copied().filter(|b| *b > first) {
                let piece = &samples[start..end];
                let appended = append_part(&mut bytes, &mut state, piece);
                if !appended {
                    // Only a new column may refuse an append.
                    prop_assert!(flags_of(piece) & !state.flags != 0 || state.count == 0);
                    return Ok(());
                }
                start = end;
            }
            prop_assert_eq!(&bytes, &whole);
            prop_assert_eq!(&state, &whole_state);
            let mut decoded = Vec::new();
            let decoded_state = decode_part_into(&bytes, &mut decoded).unwrap();
            prop_assert_eq!(decoded, samples);
            prop_assert_eq!(decoded_state, whole_state);
        }
    }

    #[test]
    fn appends_are_refused_when_they_would_corrupt() {
        let samples: Vec<_> = (0..5).map(|i| Sample::new(1_000 * i, 500)).collect();
        let (mut bytes, mut state) = encode_part_with_state(&samples);
        let before = (bytes.clone(), state.clone());
        // Not after the last reading.
        assert!(!append_part(
            &mut bytes,
            &mut state,
            &[Sample::new(4_000, 1)]
        ));
        // A column the part does not carry.
        let humid = Sample {
            humidity: Some(5_000),
            ..Sample::new(9_000, 1)
        };
        assert!(!append_part(&mut bytes, &mut state, &[humid]));
        // A state that does not describe these bytes.
        let mut other = bytes.clone();
        other.push(0);
        assert!(!append_part(
            &mut other,
            &mut state,
            &[Sample::new(9_000, 1)]
        ));
        assert_eq!((bytes.clone(), state.clone()), before);
        assert!(append_part(
            &mut bytes,
            &mut state,
            &[Sample::new(9_000, 1)]
        ));
        assert_eq!(decode_part(&bytes).unwrap().len(), 6);
    }

    #[test]
    fn truncation_is_an_error() {
        let samples: Vec<_> = (0..10)
            .map(|i| Sample::new(1_000 * i, 500 + i as i32))
            .collect();
        let bytes = encode_part(&samples);
        for cut in 0..bytes.len() {
            assert!(decode_part(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_part(&longer).is_err());
    }

    #[test]
    fn a_regular_one_hertz_hour_costs_at_most_four_bytes_per_reading() {
        // One hour at 1 Hz with a realistic wobble of a few hundredths of a degree, stored
        // the way the store stores a window: parts of PART_MAX readings.
        let start = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
        let samples: Vec<Sample> = (0..3_600)
            .map(|i| {
                let wobble = ((i * 7919) % 11) as i32 - 5; // -0.05..+0.05 °C
                Sample::new(start + i * 1_000, 400 + wobble + (i as i32 / 600))
            })
            .collect();
        let bytes: usize = samples
            .chunks(PART_MAX)
            .map(|part| encode_part(part).len())
            .sum();
        let per_reading = bytes as f64 / samples.len() as f64;
        assert!(per_reading <= 4.0, "{per_reading} bytes per reading");
        // In fact little more than one: a bit of time and about nine bits of value.
        assert!(per_reading < 1.4, "{per_reading} bytes per reading");
        // A steady value costs two bits per reading.
        let steady: Vec<Sample> = (0..3_600)
            .map(|i| Sample::new(start + i * 1_000, 400))
            .collect();
        let bytes: usize = steady
            .chunks(PART_MAX)
            .map(|part| encode_part(part).len())
            .sum();
        assert!(bytes * 8 < 3 * 3_600, "{bytes} bytes for a steady hour");
    }

    #[test]
    fn windows_are_aligned_hours() {
        assert_eq!(window_of(0), 0);
        assert_eq!(window_of(3_599_999), 0);
        assert_eq!(window_of(3_600_000), 3_600_000);
        assert_eq!(window_of(-1), -3_600_000);
    }
}
