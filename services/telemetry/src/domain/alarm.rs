//! Alarms: one excursion or one offline period of one sensor, their four states
//! (ThingsBoard's: active or cleared, acknowledged or not), and the hold they require.

use coldchain_audit::Author;
use serde::{Deserialize, Serialize};

use super::Binding;
use super::detect::{self, Excursion, ExcursionKind};

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmKind {
    /// Above the maximum.
    ExcursionHigh,
    /// Below the minimum.
    ExcursionLow,
    /// No reading for the offline period.
    SensorOffline,
}

impl From<ExcursionKind> for AlarmKind {
    fn from(kind: ExcursionKind) -> Self {
        match kind {
            ExcursionKind::High => AlarmKind::ExcursionHigh,
            ExcursionKind::Low => AlarmKind::ExcursionLow,
        }
    }
}

impl AlarmKind {
    /// The excursion side, for excursion alarms.
    pub fn excursion(self) -> Option<ExcursionKind> {
        match self {
            AlarmKind::ExcursionHigh => Some(ExcursionKind::High),
            AlarmKind::ExcursionLow => Some(ExcursionKind::Low),
            AlarmKind::SensorOffline => None,
        }
    }
}

/// The four states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    /// Active, not acknowledged.
    ActiveUnack,
    /// Active, acknowledged.
    ActiveAck,
    /// Cleared, not acknowledged.
    ClearedUnack,
    /// Cleared and acknowledged: closed.
    ClearedAck,
}

impl AlarmState {
    /// The proto name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            AlarmState::ActiveUnack => "ACTIVE_UNACK",
            AlarmState::ActiveAck => "ACTIVE_ACK",
            AlarmState::ClearedUnack => "CLEARED_UNACK",
            AlarmState::ClearedAck => "CLEARED_ACK",
        }
    }
}

/// Whether the affected stock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    /// No hold needed.
    NotRequired,
    /// Waiting in the outbox.
    Pending,
    /// Placed.
    Placed,
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// When, ms.
    pub at: i64,
    /// What was done or found.
    pub note: String,
}

/// The hold part of an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldInfo {
    /// Its status.
    pub status: HoldStatus,
    /// Holds placed in the inventory service.
    pub hold_ids: Vec<String>,
    /// The last error while pending, with its code; empty otherwise.
    pub last_error: String,
}

/// What changed in an alarm (the proto's AlarmEventKind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmChange {
    /// Raised.
    Raised,
    /// Figures changed.
    Updated,
    /// Acknowledged.
    Acknowledged,
    /// The condition ended.
    Cleared,
    /// Hold status, ids or error changed.
    HoldChanged,
}

/// A stored alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// Its id.
    pub alarm_id: String,
    /// The sensor.
    pub sensor_id: String,
    /// The sensor's binding when the alarm was raised.
    pub binding: Binding,
    /// What it is about.
    pub kind: AlarmKind,
    /// Excursions: first out-of-limit reading; offline: when the sensor's status turned
    /// OFFLINE (server clock: its offline period after the last arrival or registration).
    pub started_at: i64,
    /// Excursions: latest out-of-limit reading; offline: latest check finding silence.
    pub last_seen_at: i64,
    /// Excursions: latest reading of the excursion; offline: as `last_seen_at`.
    pub last_at: i64,
    /// When the condition ended (excursions: the reading that cleared it; offline: the
    /// arrival of the next reading, server clock).
    pub cleared_at: Option<i64>,
    /// The limit crossed, centi-°C (0 for offline).
    pub limit: i32,
    /// The most extreme reading, centi-°C (0 for offline).
    pub peak: i32,
    /// Twice the deviation integral, centi-°C·ms.
    pub twice_area: i128,
    /// The acknowledgement.
    pub ack: Option<Ack>,
    /// The hold.
    pub hold: HoldInfo,
    /// Late readings showed the excursion did not happen as first detected: cleared and
    /// kept for the record (a hold may cite it), never matched again.
    pub retracted: bool,
    /// When it was raised (server clock), ms.
    pub raised_at: i64,
    /// When its last event was recorded (server clock), ms: figure updates are coalesced.
    pub last_event_at: i64,
    /// Who acknowledged it, as the server authenticated the call (see
    /// [`acknowledged_author`]). Last, so that records of earlier builds (postcard, which
    /// ends where they end) still decode, without it.
    #[serde(default, deserialize_with = "super::stored::absent_as_default")]
    pub ack_author: Option<Author>,
}

/// The actor of the holds an alarm requires: the telemetry service places them under its
/// own credential, and names the alarm as the reason it acted. Cut to
/// [`coldchain_audit::MAX_ACTOR_BYTES`] on a character boundary.
pub fn hold_actor(alarm_id: &str) -> String {
    let mut actor = format!("alarm {alarm_id}");
    if actor.len() > coldchain_audit::MAX_ACTOR_BYTES {
        let mut end = coldchain_audit::MAX_ACTOR_BYTES;
        while !actor.is_char_boundary(end) {
            end -= 1;
        }
        actor.truncate(end);
    }
    actor
}

/// Who acknowledged an alarm: the recorded author, or for an acknowledgement recorded
/// before the service kept principals, principal "unknown" with its `acknowledged_by` as
/// the actor. `None` while unacknowledged.
pub fn acknowledged_author(ack: Option<&Ack>, recorded: Option<&Author>) -> Option<Author> {
    let ack = ack?;
    Some(
        recorded
            .cloned()
            .unwrap_or_else(|| Author::new(coldchain_audit::UNKNOWN, ack.by.clone())),
    )
}

impl AlarmRecord {
    /// A new excursion alarm. `hold_required`: the sensor's binding needs a hold.
    pub fn excursion(
        alarm_id: String,
        sensor_id: String,
        binding: Binding,
        excursion: &Excursion,
        hold_required: bool,
        now_ms: i64,
    ) -> Self {
        let hold = if hold_required {
            HoldStatus::Pending
        } else {
            HoldStatus::NotRequired
        };
        let mut alarm = Self::raised(alarm_id, sensor_id, binding, hold, now_ms);
        alarm.take_figures(excursion);
        alarm
    }

    /// A new SENSOR_OFFLINE alarm: the sensor went offline at `since` (see
    /// `SensorState::offline_at`), found silent at `now_ms`.
    pub fn offline(
        alarm_id: String,
        sensor_id: String,
        binding: Binding,
        since: i64,
        now_ms: i64,
    ) -> Self {
        Self {
            started_at: since,
            ..Self::raised(
                alarm_id,
                sensor_id,
                binding,
                HoldStatus::NotRequired,
                now_ms,
            )
        }
    }

    /// A new alarm raised at `now_ms` whose hold is `hold`: a SENSOR_OFFLINE one seen at
    /// `now_ms`, without limit, peak or area, until the constructor sets its figures.
    fn raised(
        alarm_id: String,
        sensor_id: String,
        binding: Binding,
        hold: HoldStatus,
        now_ms: i64,
    ) -> Self {
        Self {
            alarm_id,
            sensor_id,
            binding,
            kind: AlarmKind::SensorOffline,
            started_at: now_ms,
            last_seen_at: now_ms,
            last_at: now_ms,
            cleared_at: None,
            limit: 0,
            peak: 0,
            twice_area: 0,
            ack: None,
            hold: HoldInfo {
                status: hold,
                hold_ids: Vec::new(),
                last_error: String::new(),
            },
            retracted: false,
            raised_at: now_ms,
            last_event_at: now_ms,
            ack_author: None,
        }
    }

    /// Takes the figures of an excursion as detected (its side included).
    fn take_figures(&mut self, excursion: &Excursion) {
        self.kind = excursion.kind.into();
        self.started_at = excursion.started_at;
        self.last_seen_at = excursion.last_seen_at;
        self.last_at = excursion.last_at;
        self.cleared_at = excursion.cleared_at;
        self.limit = excursion.limit;
        self.peak = excursion.peak;
        self.twice_area = excursion.twice_area;
    }

    /// Active or cleared, acknowledged or not.
    pub fn state(&self) -> AlarmState {
        match (self.cleared_at.is_none(), self.ack.is_some()) {
            (true, false) => AlarmState::ActiveUnack,
            (true, true) => AlarmState::ActiveAck,
            (false, false) => AlarmState::ClearedUnack,
            (false, true) => AlarmState::ClearedAck,
        }
    }

    /// True while the condition lasts.
    pub fn is_active(&self) -> bool {
        self.cleared_at.is_none()
    }

    /// The matching end: when it cleared, or its latest reading.
    pub fn end(&self) -> i64 {
        self.cleared_at.unwrap_or(self.last_at)
    }

    /// How long the condition lasted (until cleared, or so far), ms.
    pub fn duration_ms(&self) -> i64 {
        detect::duration_ms(self.started_at, self.end())
    }

    /// °C·min beyond the limit.
    pub fn degree_minutes(&self) -> f64 {
        detect::degree_minutes(self.twice_area)
    }

    /// How far the peak lies beyond the limit, centi-°C (0 for an offline alarm).
    pub fn peak_deviation(&self) -> i32 {
        self.kind
            .excursion()
            .map_or(0, |side| side.beyond(self.limit, self.peak))
    }

    /// Takes recomputed figures; the change to record, if any.
    pub fn apply_excursion(&mut self, excursion: &Excursion) -> Option<AlarmChange> {
        let was_active = self.is_active();
        let before = self.clone();
        self.take_figures(excursion);
        if *self == before {
            None
        } else if was_active && !self.is_active() {
            Some(AlarmChange::Cleared)
        } else {
            Some(AlarmChange::Updated)
        }
    }

    /// Late readings broke the excursion: cleared at its latest known reading and kept.
    pub fn retract(&mut self) -> Option<AlarmChange> {
        if self.retracted {
            return None;
        }
        self.retracted = true;
        if self.is_active() {
            self.cleared_at = Some(self.last_at);
            Some(AlarmChange::Cleared)
        } else {
            Some(AlarmChange::Updated)
        }
    }

    /// The events a new alarm gives, in order, each with the alarm as that event shows
    /// it: RAISED with the alarm active, then CLEARED when the write that raised it also
    /// ended it (readings raised and cleared an excursion in one call, or a sensor came back
    /// from a silence no check had seen). However readings are batched, every alarm goes
    /// through each step of its life in the feed; only figure updates are coalesced.
    pub fn raise_steps(&self) -> Vec<(AlarmChange, AlarmRecord)> {
        let raised = AlarmRecord {
            cleared_at: None,
            ..self.clone()
        };
        let mut steps = vec![(AlarmChange::Raised, raised)];
        if !self.is_active() {
            steps.push((AlarmChange::Cleared, self.clone()));
        }
        steps
    }

    /// A reading ended the silence at `at`.
    pub fn clear_offline(&mut self, at: i64) -> Option<AlarmChange> {
        if !self.is_active() {
            return None;
        }
        self.cleared_at = Some(at.max(self.started_at));
        Some(AlarmChange::Cleared)
    }

    /// Acknowledges, by `author` (whose actor is the request's `acknowledged_by`); the
    /// current state when it already was.
    pub fn acknowledge(
        &mut self,
        author: &Author,
        note: &str,
        at: i64,
    ) -> Result<AlarmChange, AlarmState> {
        if self.ack.is_some() {
            return Err(self.state());
        }
        self.ack = Some(Ack {
            by: author.actor.clone(),
            at,
            note: note.to_string(),
        });
        self.ack_author = Some(author.clone());
        Ok(AlarmChange::Acknowledged)
    }
}

/// An alarm as shown to clients (ListAlarms, AcknowledgeAlarm, the alarm feed): the
/// record's figures in °C and ms.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    /// Its id.
    pub alarm_id: String,
    /// The site.
    pub site_id: String,
    /// The sensor.
    pub sensor_id: String,
    /// The sensor's binding when the alarm was raised.
    pub binding: Binding,
    /// What it is about.
    pub kind: AlarmKind,
    /// Its state.
    pub state: AlarmState,
    /// See [`AlarmRecord::started_at`].
    pub started_at: i64,
    /// See [`AlarmRecord::last_seen_at`].
    pub last_seen_at: i64,
    /// When the condition ended.
    pub cleared_at: Option<i64>,
    /// The limit crossed, °C (0 for offline).
    pub limit_celsius: f64,
    /// The most extreme reading, °C (0 for offline).
    pub peak_celsius: f64,
    /// How far the peak lies beyond the limit, °C (0 for offline).
    pub peak_deviation_celsius: f64,
    /// How long the condition lasted, ms.
    pub duration_ms: i64,
    /// °C·min beyond the limit (0 for offline).
    pub degree_minutes: f64,
    /// The acknowledgement.
    pub ack: Option<Ack>,
    /// Who acknowledged it (see [`acknowledged_author`]).
    pub acknowledged_author: Option<Author>,
    /// The hold's status.
    pub hold_status: HoldStatus,
    /// Holds placed.
    pub hold_ids: Vec<String>,
    /// The last error while the hold is pending; empty otherwise.
    pub hold_last_error: String,
}

impl AlarmRecord {
    /// The alarm as shown, at site `site_id`.
    pub fn view(&self, site_id: &str) -> AlarmView {
        let excursion = self.kind != AlarmKind::SensorOffline;
        let celsius = |centi: i32| {
            if excursion {
                f64::from(centi) / 100.0
            } else {
                0.0
            }
        };
        AlarmView {
            alarm_id: self.alarm_id.clone(),
            site_id: site_id.to_string(),
            sensor_id: self.sensor_id.clone(),
            binding: self.binding.clone(),
            kind: self.kind,
            state: self.state(),
            started_at: self.started_at,
            last_seen_at: self.last_seen_at,
            cleared_at: self.cleared_at,
            limit_celsius: celsius(self.limit),
            peak_celsius: celsius(self.peak),
            peak_deviation_celsius: celsius(self.peak_deviation()),
            duration_ms: self.duration_ms(),
            degree_minutes: if excursion {
                self.degree_minutes()
            } else {
                0.0
            },
            ack: self.ack.clone(),
            acknowledged_author: acknowledged_author(self.ack.as_ref(), self.ack_author.as_ref()),
            hold_status: self.hold.status,
            hold_ids: self.hold.hold_ids.clone(),
            hold_last_error: if self.hold.status == HoldStatus::Pending {
                self.hold.last_error.clone()
            } else {
                String::new()
            },
        }
    }
}

/// One entry of the site's alarm feed: an alarm as it is after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    /// Its sequence in the feed.
    pub sequence: u64,
    /// When it was recorded (server clock), ms.
    pub recorded_at: i64,
    /// What changed.
    pub change: AlarmChange,
    /// The alarm after the change.
    pub alarm: AlarmView,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excursion(cleared_at: Option<i64>) -> Excursion {
        Excursion {
            kind: ExcursionKind::High,
            limit: 400,
            started_at: 1_000,
            last_seen_at: 5_000,
            last_at: 6_000,
            cleared_at,
            peak: 650,
            twice_area: 1_200_000 * 2,
        }
    }

    fn alarm() -> AlarmRecord {
        AlarmRecord::excursion(
            "alm-1".into(),
            "s1".into(),
            Binding::Zone("chilled-a".into()),
            &excursion(None),
            true,
            9,
        )
    }

    #[test]
    fn four_states() {
        let mut a = alarm();
        assert_eq!(a.state(), AlarmState::ActiveUnack);
        assert_eq!(a.hold.status, HoldStatus::Pending);
        assert_eq!(
            a.acknowledge(&Author::new("ops", "qa"), "looked", 10),
            Ok(AlarmChange::Acknowledged)
        );
        assert_eq!(a.state(), AlarmState::ActiveAck);
        assert_eq!(
            a.acknowledge(&Author::new("ops", "qa"), "again", 11),
            Err(AlarmState::ActiveAck)
        );
        assert_eq!(
            a.apply_excursion(&excursion(Some(7_000))),
            Some(AlarmChange::Cleared)
        );
        assert_eq!(a.state(), AlarmState::ClearedAck);
        let mut b = alarm();
        b.apply_excursion(&excursion(Some(7_000)));
        assert_eq!(b.state(), AlarmState::ClearedUnack);
        b.acknowledge(&Author::new("ops", "qa"), "", 12).unwrap();
        assert_eq!(b.state(), AlarmState::ClearedAck);
    }

    #[test]
    fn figures() {
        let a = alarm();
        assert_eq!(a.peak_deviation(), 250);
        assert_eq!(a.duration_ms(), 5_000);
        assert!((a.degree_minutes() - 0.2).abs() < 1e-12);
        let mut same = a.clone();
        assert_eq!(same.apply_excursion(&excursion(None)), None);
    }

    #[test]
    fn retraction_clears_and_sticks() {
        let mut a = alarm();
        assert_eq!(a.retract(), Some(AlarmChange::Cleared));
        assert_eq!(a.cleared_at, Some(6_000));
        assert_eq!(a.retract(), None);
    }

    #[test]
    fn a_new_alarm_already_cleared_is_raised_active_then_cleared() {
        let open = alarm();
        let steps = open.raise_steps();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].0, AlarmChange::Raised);
        assert_eq!(steps[0].1, open);
        let closed = AlarmRecord::excursion(
            "alm-1".into(),
            "s1".into(),
            Binding::Zone("chilled-a".into()),
            &excursion(Some(7_000)),
            true,
            9,
        );
        let steps = closed.raise_steps();
        let shown: Vec<_> = steps.iter().map(|(c, a)| (*c, a.state())).collect();
        assert_eq!(
            shown,
            vec![
                (AlarmChange::Raised, AlarmState::ActiveUnack),
                (AlarmChange::Cleared, AlarmState::ClearedUnack)
            ]
        );
        assert_eq!(steps[1].1, closed);
        assert_eq!(steps[0].1.started_at, closed.started_at);
    }

    #[test]
    fn offline_alarms_clear_on_the_next_reading() {
        let mut a = AlarmRecord::offline(
            "alm-2".into(),
            "s1".into(),
            Binding::Zone("z".into()),
            100,
            1_000,
        );
        assert_eq!(a.state(), AlarmState::ActiveUnack);
        assert_eq!(a.hold.status, HoldStatus::NotRequired);
        assert_eq!(a.clear_offline(2_000), Some(AlarmChange::Cleared));
        assert_eq!(a.duration_ms(), 1_900);
        assert_eq!(a.clear_offline(3_000), None);
    }
}
