//! The telemetry rules, pure: reading validation, sensor profiles, the chunk codec, the
//! per-sensor series algorithm, excursion detection, alarms and their states, MKT, and the
//! refusals of the service. No I/O, no clock, no gRPC, no database.

pub mod alarm;
pub mod codec;
pub mod detect;
pub mod exposure;
pub mod mkt;
mod query;
mod reading;
mod refusal;
mod sensor;
pub mod series;
pub(crate) mod stored;

pub use query::*;
pub use reading::*;
pub use refusal::{StreamEnd, TelemetryRefusal};
pub use sensor::*;

#[cfg(test)]
mod tests;
