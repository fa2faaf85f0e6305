//! Durations (`"10s"`, `"1h30m"`) and byte sizes (`"8MiB"`) as people write them in
//! configuration files and variables.

use std::time::Duration;

use super::{GIB, KIB, MIB};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units of [`parse_duration`] and [`format_duration`], largest first, in nanoseconds.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration like `"10s"`, `"500ms"`, `"15m"`, `"48h"`, `"2d"` or `"1h30m"`: one or
/// more whole numbers, each followed by a unit (`d`, `h`, `m`, `s`, `ms`, `us`, `ns`), with
/// optional spaces between the parts and between a number and its unit. A bare number is
/// rejected: the unit is never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "{why}: expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got {text:?}"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty duration"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad("expected a number"));
        }
        let number: u128 = s[start..i].parse().map_err(|_| bad("number too large"))?;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(bad("missing unit"));
        }
        let Some(&(_, factor)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(&format!("unknown unit {unit:?}")));
        };
        total = number
            .checked_mul(factor)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| bad("duration too large"))?;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| bad("duration too large"))?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| bad("duration too large"))?;
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration the way [`parse_duration`] reads it: `"1h30m"`, `"500ms"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let mut rest = d.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, factor) in DURATION_UNITS {
        let n = rest / factor;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            rest %= factor;
        }
    }
    out
}

/// Parses a byte size: a whole number of bytes (`"4194304"`), or a number and a unit, with an
/// optional space: `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of
/// 1000), in any letter case.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!("{why}: expected a number of bytes or a size like \"8MiB\", got {text:?}")
    };
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad("expected a number"));
    }
    let number: u64 = s[..digits].parse().map_err(|_| bad("number too large"))?;
    let unit = s[digits..].trim_start();
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| bad("size too large"))
}
