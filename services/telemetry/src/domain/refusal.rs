//! Why the service refuses a request or ends a stream: typed, so that the store and the
//! use cases say what happened and the `error` module alone chooses the code.

use super::alarm::AlarmState;
use super::format_ms;

/// A request the rules refuse (nothing was changed).
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryRefusal {
    /// No sensor has this id at the site.
    UnknownSensor {
        /// The id asked for.
        sensor_id: String,
        /// The site.
        site_id: String,
    },
    /// The site has no such zone.
    UnknownZone {
        /// The id asked for.
        zone_id: String,
        /// The site.
        site_id: String,
    },
    /// No alarm has this id at the site.
    UnknownAlarm {
        /// The id asked for.
        alarm_id: String,
        /// The site.
        site_id: String,
    },
    /// The alarm was acknowledged before.
    AlreadyAcknowledged {
        /// The alarm.
        alarm_id: String,
        /// Its state now.
        state: AlarmState,
    },
    /// An MKT over a range without readings.
    NoReadings {
        /// The sensor.
        sensor_id: String,
        /// The range's start, ms.
        start: i64,
        /// The range's end, ms.
        end: i64,
    },
    /// Stored readings the answer needs cannot be decoded (the message says which).
    ReadingsUnreadable(String),
    /// The profile does not hold with the binding's defaults: (field, description).
    InvalidProfile(Vec<(String, String)>),
    /// A batch of a stream carries more readings than a batch may.
    BatchTooLarge {
        /// The batch's index in the stream (also how many batches before it were stored).
        batch: i64,
        /// Its readings.
        readings: usize,
        /// The most a batch may carry.
        max: usize,
    },
}

impl TelemetryRefusal {
    /// The lowercase message, naming the field or thing and the value.
    pub fn message(&self) -> String {
        match self {
            TelemetryRefusal::UnknownSensor { sensor_id, site_id } => {
                format!("sensor_id {sensor_id:?} is not a registered sensor of site {site_id}")
            }
            TelemetryRefusal::UnknownZone { zone_id, site_id } => {
                format!("zone_id {zone_id:?} is not a zone of site {site_id}")
            }
            TelemetryRefusal::UnknownAlarm { alarm_id, site_id } => {
                format!("alarm_id {alarm_id:?} is not an alarm of site {site_id}")
            }
            TelemetryRefusal::AlreadyAcknowledged { alarm_id, state } => format!(
                "alarm {alarm_id:?} is already acknowledged (state {})",
                state.name()
            ),
            TelemetryRefusal::NoReadings {
                sensor_id,
                start,
                end,
            } => format!(
                "sensor {sensor_id:?} has no reading from {} to {}",
                format_ms(*start),
                format_ms(*end)
            ),
            TelemetryRefusal::ReadingsUnreadable(message) => message.clone(),
            TelemetryRefusal::InvalidProfile(problems) => problems
                .iter()
                .map(|(field, description)| format!("{field}: {description}"))
                .collect::<Vec<_>>()
                .join("; "),
            TelemetryRefusal::BatchTooLarge {
                batch,
                readings,
                max,
            } => format!(
                "batch {batch} has {readings} readings, at most {max} are allowed (the {batch} \
                 batches before it were stored)"
            ),
        }
    }
}

/// Why a stream ended before its consumer or client finished it, for reasons of this
/// service (a stalled consumer and a shutdown end the alarm feed by the rules of the shared
/// feed, which names where to resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// A client stream of readings sent nothing for the idle timeout.
    Idle {
        /// The idle timeout, seconds.
        seconds: u64,
    },
    /// A stored feed entry cannot be decoded.
    EntryUnreadable {
        /// Its sequence.
        sequence: u64,
        /// What is wrong with it.
        error: String,
    },
}

impl StreamEnd {
    /// The lowercase message.
    pub fn message(&self) -> String {
        match self {
            StreamEnd::Idle { seconds } => format!(
                "no batch for {seconds} s: idle stream closed (every batch before it was \
                 stored); send more often or open a new stream"
            ),
            StreamEnd::EntryUnreadable { sequence, error } => {
                format!("alarm event {sequence} cannot be decoded: {error}")
            }
        }
    }
}
