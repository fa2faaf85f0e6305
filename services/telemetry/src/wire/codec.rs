//! How the store keeps what it answers with: the idempotent answers of RegisterSensor,
//! PushReadings and AcknowledgeAlarm, and the entries of the alarm feed. Each is kept as
//! the bytes of its protobuf message, exactly as the builds before this one kept them, so
//! stored answers replay and stored events stream across an upgrade.

use coldchain_audit::Author;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::ReplyCodec;
use prost::Message;

use super::convert;
use crate::domain::alarm::{AlarmEvent, AlarmView};
use crate::domain::{IngestSummary, SensorView};

/// A registered sensor, kept as its `Sensor` message.
#[derive(Debug, Clone, Copy, Default)]
pub struct SensorReply;

impl ReplyCodec<SensorView> for SensorReply {
    fn encode(&self, reply: &SensorView) -> Vec<u8> {
        convert::sensor(reply.clone()).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<SensorView, String> {
        convert::sensor_of(pb::Sensor::decode(bytes).map_err(|e| e.to_string())?)
    }
}

/// An acknowledged alarm, kept as its `Alarm` message.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlarmReply;

impl ReplyCodec<AlarmView> for AlarmReply {
    fn encode(&self, reply: &AlarmView) -> Vec<u8> {
        convert::alarm(reply.clone()).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<AlarmView, String> {
        convert::alarm_of(pb::Alarm::decode(bytes).map_err(|e| e.to_string())?)
    }
}

/// The summary of a PushReadings call, kept as its `IngestSummary` message.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestReply;

impl ReplyCodec<IngestSummary> for IngestReply {
    fn encode(&self, reply: &IngestSummary) -> Vec<u8> {
        convert::ingest_summary(reply.clone()).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<IngestSummary, String> {
        convert::ingest_summary_of(pb::IngestSummary::decode(bytes).map_err(|e| e.to_string())?)
    }
}

/// The feed's entry of an alarm change: its `AlarmEvent` message.
pub fn encode_alarm_event(event: AlarmEvent) -> Vec<u8> {
    convert::alarm_event(event).encode_to_vec()
}

/// A feed entry back, as the message it is kept as (streamed as it is), except that an
/// acknowledgement an earlier build recorded, without its author, shows principal
/// "unknown" and its acknowledged_by as the actor (as the alarm itself now reads).
pub fn decode_alarm_event(bytes: &[u8]) -> Result<pb::AlarmEvent, String> {
    let mut event = pb::AlarmEvent::decode(bytes).map_err(|e| e.to_string())?;
    if let Some(alarm) = event.alarm.as_mut()
        && alarm.acknowledged_at.is_some()
        && alarm.acknowledged_author.is_none()
    {
        alarm.acknowledged_author = Some(convert::author(Author::new(
            coldchain_audit::UNKNOWN,
            alarm.acknowledged_by.clone(),
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests;
