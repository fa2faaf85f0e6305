//! The inventory rules, pure: movement arithmetic on a position, lot attributes, expiry,
//! holds, FEFO/FIFO picking, allocation consumption, expiry buckets and exact totals. No
//! I/O, no clock, no gRPC, no database, no protobuf: every function here is a computation on
//! values, tested by unit and property tests in `tests.rs`.
//!
//! Quantities are `i64` in the sku's base unit, bounded by [`MAX_QUANTITY`] per movement
//! and per position. Arithmetic on a position is checked (an overflow is a refusal, never a
//! panic) and totals over positions are summed exactly ([`TotalsSum`]).

mod allocation;
mod dates;
mod error;
mod hold;
mod ledger;
mod lot;
mod movement;
mod process;
mod requests;
mod stock;

pub use allocation::*;
pub use dates::*;
pub use error::*;
pub use hold::*;
pub use ledger::*;
pub use lot::*;
pub use movement::*;
pub use process::*;
pub use requests::*;
pub use stock::*;

/// Most movements in one `RecordMovements` batch.
pub const MAX_MOVEMENTS: usize = 1000;
/// Longest sku base unit, in bytes.
pub const MAX_UNIT_LEN: usize = 16;
/// Longest lot origin, in bytes.
pub const MAX_ORIGIN_LEN: usize = 256;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 512;

/// Checks a sku base unit: 1 to 16 bytes, no whitespace or control characters.
pub fn check_unit(unit: &str) -> Result<(), String> {
    if unit.is_empty() {
        return Err("is required".into());
    }
    if unit.len() > MAX_UNIT_LEN {
        return Err(format!(
            "{unit:?} is {} bytes; at most {MAX_UNIT_LEN} allowed",
            unit.len()
        ));
    }
    if let Some(bad) = unit.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{unit:?} contains {bad:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// Checks free text of at most `max` bytes without control characters (newline and tab
/// allowed); `required` refuses empty or blank text.
pub fn check_text(value: &str, max: usize, required: bool) -> Result<(), String> {
    if required && value.trim().is_empty() {
        return Err("is required".into());
    }
    if value.len() > max {
        return Err(format!("is {} bytes; at most {max} allowed", value.len()));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// What a reference points at (the protobuf `ReferenceKind` value, 1..=5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `ReferenceKind` value.
    pub kind: i32,
    /// The referenced id.
    pub id: String,
}

#[cfg(test)]
mod tests;
