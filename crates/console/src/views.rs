//! The frame of every page, and the small pieces pages share: times in a site's own zone,
//! state badges that carry a word and a symbol as well as a colour, numbers.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use coldchain_ops::format;
use coldchain_runtime::proto_time;
use maud::{DOCTYPE, Markup, html};

use crate::session::Session;

/// The style sheet (no CDN: served by the console itself).
pub const STYLE: &str = include_str!("static/console.css");
/// The one script: live alarms over server-sent events. Every page works without it.
pub const ALARMS_SCRIPT: &str = include_str!("static/alarms.js");
/// The console's icon, a thermometer (browsers ask for one; its absence is an error in
/// their console).
pub const FAVICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect x="6" y="1" width="4" height="10" rx="2" fill="#1f6fb2"/><circle cx="8" cy="12" r="3.5" fill="#1f6fb2"/></svg>"##;

/// A page of a logged-in person: the navigation, their credential, the logout form.
pub fn page(title: &str, session: &Session, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cold-chain console" }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                header.top {
                    nav {
                        a href="/" { "Network" }
                        a href="/alarms" { "Alarms" }
                        // What a role may not read is not offered (the services refuse it anyway).
                        @if session.sees_network() { a href="/transfers" { "Transfers" } }
                        @if session.sees_network() || session.customer().is_some() {
                            a href="/booking" { "Booking" }
                        }
                        @if let Some(site) = session.own_site() {
                            a href={ "/sites/" (site) } { "My site" }
                        }
                    }
                    form.logout method="post" action="/logout" {
                        span.who { (session.credential) }
                        @if let Some(role) = &session.role { span.role { " (" (role.name()) ")" } }
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page without a session (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cold-chain console" }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/console.css";
            }
            body { main { (body) } }
        }
    }
}

/// A contract instant as a chrono one.
pub fn instant(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    format::instant(ts)
}

/// An instant in a site's own time zone, with the zone's abbreviation, e.g.
/// `2026-03-01 17:00 +07`.
pub fn local_time(ts: Option<&prost_types::Timestamp>, zone: Tz) -> String {
    match instant(ts) {
        Some(t) => t
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        None => "–".to_owned(),
    }
}

/// A duration like `4m30s`.
pub fn duration(d: Option<&prost_types::Duration>) -> String {
    format::duration_short(d)
}

/// A contract date as `YYYY-MM-DD`.
pub fn date(d: Option<&coldchain_proto::common::v1::Date>) -> String {
    format::date_str(d).unwrap_or_else(|| "–".to_owned())
}

/// Milliseconds of a duration (0 when absent).
pub fn millis(d: Option<&prost_types::Duration>) -> i64 {
    d.and_then(proto_time::duration_millis).unwrap_or(0)
}

/// A temperature, one decimal, with its unit.
pub fn celsius(value: f64) -> String {
    format!("{value:.1} °C")
}

/// How bad something is: each level has a word, a symbol and a colour, so that none of
/// them alone (least of all red against green) carries the meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Needs a look.
    Warn,
    /// Wrong.
    Bad,
    /// Not known.
    Unknown,
}

impl Level {
    /// The CSS class (colours chosen for colour-blind readers: blue, amber, magenta, grey).
    pub fn class(self) -> &'static str {
        match self {
            Level::Ok => "lvl-ok",
            Level::Warn => "lvl-warn",
            Level::Bad => "lvl-bad",
            Level::Unknown => "lvl-unknown",
        }
    }

    /// The symbol shown with the word.
    pub fn symbol(self) -> &'static str {
        match self {
            Level::Ok => "✓",
            Level::Warn => "!",
            Level::Bad => "✕",
            Level::Unknown => "?",
        }
    }

    /// The fill of an SVG mark of this level.
    pub fn fill(self) -> &'static str {
        match self {
            Level::Ok => "#1f5fbf",
            Level::Warn => "#c98a00",
            Level::Bad => "#b0127a",
            Level::Unknown => "#8a8a8a",
        }
    }
}

/// A badge: symbol and word on a coloured ground.
pub fn badge(level: Level, word: &str) -> Markup {
    html! { span class={ "badge " (level.class()) } { (level.symbol()) " " (word) } }
}

/// The level of an endpoint's health.
pub fn health_level(health: i32) -> Level {
    use coldchain_proto::network::v1::EndpointHealth;
    match EndpointHealth::try_from(health) {
        Ok(EndpointHealth::Serving) => Level::Ok,
        Ok(EndpointHealth::NotServing) => Level::Warn,
        Ok(EndpointHealth::Unreachable) => Level::Bad,
        _ => Level::Unknown,
    }
}

/// The level of an alarm state.
pub fn alarm_level(state: i32) -> Level {
    use coldchain_proto::telemetry::v1::AlarmState;
    match AlarmState::try_from(state) {
        Ok(AlarmState::ActiveUnack) => Level::Bad,
        Ok(AlarmState::ActiveAck | AlarmState::ClearedUnack) => Level::Warn,
        Ok(AlarmState::ClearedAck) => Level::Ok,
        _ => Level::Unknown,
    }
}

/// True for an alarm that is still active.
pub fn alarm_active(state: i32) -> bool {
    use coldchain_proto::telemetry::v1::AlarmState;
    matches!(
        AlarmState::try_from(state),
        Ok(AlarmState::ActiveUnack | AlarmState::ActiveAck)
    )
}

/// A sensor status's level.
pub fn sensor_level(status: i32) -> Level {
    use coldchain_proto::telemetry::v1::SensorStatus;
    match SensorStatus::try_from(status) {
        Ok(SensorStatus::Ok) => Level::Ok,
        Ok(SensorStatus::Excursion) => Level::Bad,
        Ok(SensorStatus::Offline) => Level::Warn,
        _ => Level::Unknown,
    }
}

/// A note that a section is left out because the credential may not read it.
pub fn not_for_you(what: &str) -> Markup {
    html! { p.muted { (what) ": not available to your credential." } }
}

/// A note that a section could not be read.
pub fn unavailable(what: &str, problem: &str) -> Markup {
    html! { p.problem { (badge(Level::Bad, "unavailable")) " " (what) ": " (problem) } }
}
