//! The bit-level layer of the chunk codec: zigzag and varint integers, and the time and
//! value codes written and read most significant bit first.

use super::{CodecError, err};

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends bits, most significant first.
pub(super) struct BitWriter {
    pub(super) out: Vec<u8>,
    pub(super) acc: u64,
    pub(super) bits: u32,
}

impl BitWriter {
    /// Continues `bytes`, whose last byte holds `pad` zero padding bits.
    pub(super) fn resume(mut bytes: Vec<u8>, pad: u8) -> Self {
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

    pub(super) fn put(&mut self, value: u64, width: u32) {
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
    pub(super) fn finish(mut self) -> (Vec<u8>, u8) {
        let pad = (8 - self.bits % 8) % 8;
        if pad > 0 {
            self.put(0, pad);
        }
        (self.out, pad as u8)
    }

    /// A time delta-of-delta.
    pub(super) fn time_code(&mut self, dod: i64) {
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
    pub(super) fn value_code(&mut self, delta: i64, previous: i64) {
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

/// A bounds-checked reader over bytes, then bits.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) bit: u32,
}

impl Reader<'_> {
    pub(super) fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| err(format!("truncated at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(byte)
    }

    pub(super) fn varint(&mut self) -> Result<u64, CodecError> {
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

    pub(super) fn signed(&mut self) -> Result<i64, CodecError> {
        self.varint().map(unzigzag)
    }

    pub(super) fn remaining_bits(&self) -> u64 {
        (self.bytes.len().saturating_sub(self.pos) as u64) * 8 - u64::from(self.bit)
    }

    pub(super) fn bits(&mut self, width: u32) -> Result<u64, CodecError> {
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
    pub(super) fn ones(&mut self, max: u32) -> Result<u32, CodecError> {
        let mut n = 0;
        while n < max && self.bits(1)? == 1 {
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn time_code(&mut self) -> Result<i64, CodecError> {
        let z = match self.ones(4)? {
            0 => 0,
            1 => self.bits(7)?,
            2 => self.bits(12)?,
            3 => self.bits(20)?,
            _ => self.bits(64)?,
        };
        Ok(unzigzag(z))
    }

    pub(super) fn value_code(&mut self, previous: i64) -> Result<i64, CodecError> {
        Ok(match self.ones(3)? {
            0 => previous,
            1 => unzigzag(self.bits(7)?),
            2 => unzigzag(self.bits(12)?),
            _ => unzigzag(self.bits(16)?),
        })
    }
}
