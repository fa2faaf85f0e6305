//! Charts written as SVG by the server: a sensor's temperature with its limits, a
//! sparkline, and the corridor. Colours come with shapes and words (hatching for
//! excursions, symbols on sites), so that no meaning rests on colour alone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};

use crate::views::Level;

/// One bucket of readings: its start and its min, mean and max in °C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, ms since the epoch.
    pub start_ms: i64,
    /// Lowest reading.
    pub min: f64,
    /// Mean of the readings.
    pub mean: f64,
    /// Highest reading.
    pub max: f64,
}

/// What a temperature chart shows.
pub struct TemperatureChart<'a> {
    /// The window, ms since the epoch.
    pub from_ms: i64,
    /// End of the window.
    pub to_ms: i64,
    /// The bucket length, ms.
    pub bucket_ms: i64,
    /// The buckets with readings, in time order.
    pub buckets: &'a [Bucket],
    /// The allowed range, °C.
    pub limits: Option<(f64, f64)>,
    /// When alarms started, ms since the epoch, with a label.
    pub alarms: &'a [(i64, String)],
    /// The site's time zone: the axis is in its local time.
    pub zone: Tz,
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 50.0;

/// The chart: the limits as a band, excursion buckets hatched, the min–max envelope, the
/// mean as one path with one point per bucket, alarm markers, axes with units.
pub fn temperature(chart: &TemperatureChart<'_>) -> Markup {
    let span = (chart.to_ms - chart.from_ms).max(1) as f64;
    let (mut low, mut high) = chart.limits.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    for b in chart.buckets {
        low = low.min(b.min);
        high = high.max(b.max);
    }
    if !low.is_finite() || !high.is_finite() {
        (low, high) = (0.0, 10.0);
    }
    let pad = ((high - low) * 0.1).max(1.0);
    let (low, high) = ((low - pad).floor(), (high + pad).ceil());
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |ms: i64| LEFT + (ms - chart.from_ms) as f64 / span * plot_w;
    let y = |c: f64| TOP + (high - c) / (high - low) * plot_h;
    let bucket_w = (chart.bucket_ms as f64 / span * plot_w).max(1.0);
    let mean_path = path(
        chart
            .buckets
            .iter()
            .map(|b| (x(b.start_ms + chart.bucket_ms / 2), y(b.mean))),
    );
    let envelope = envelope(chart.buckets, chart.bucket_ms, &x, &y);
    let outside = |b: &Bucket| {
        chart
            .limits
            .is_some_and(|(lo, hi)| b.max > hi || b.min < lo)
    };
    let y_ticks = ticks(low, high, 6);
    let x_ticks = time_ticks(chart.from_ms, chart.to_ms);
    let offset = local_offset(chart.to_ms, chart.zone);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            role="img" aria-label="temperature over time" class="chart" {
            defs {
                pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse"
                    patternTransform="rotate(45)" {
                    line x1="0" y1="0" x2="0" y2="6" stroke="#b0127a" stroke-width="3" stroke-opacity="0.45" {}
                }
            }
            @if let Some((lo, hi)) = chart.limits {
                rect class="limits" x=(f(LEFT)) y=(f(y(hi))) width=(f(plot_w)) height=(f(y(lo) - y(hi)))
                    fill="#d6e4f7" fill-opacity="0.7" {
                    title { "allowed " (lo) " to " (hi) " °C" }
                }
                line x1=(f(LEFT)) x2=(f(LEFT + plot_w)) y1=(f(y(hi))) y2=(f(y(hi))) stroke="#1f5fbf" stroke-dasharray="6 3" {}
                line x1=(f(LEFT)) x2=(f(LEFT + plot_w)) y1=(f(y(lo))) y2=(f(y(lo))) stroke="#1f5fbf" stroke-dasharray="6 3" {}
            }
            @for b in chart.buckets.iter().filter(|b| outside(b)) {
                rect class="excursion" x=(f(x(b.start_ms))) y=(f(TOP)) width=(f(bucket_w)) height=(f(plot_h))
                    fill="url(#hatch)" {
                    title { "outside the limits" }
                }
            }
            @if !envelope.is_empty() {
                path class="envelope" d=(envelope) fill="#8a8a8a" fill-opacity="0.25" stroke="none" {}
            }
            path id="mean" class="mean" d=(mean_path) fill="none" stroke="#12324f" stroke-width="2"
                data-points=(chart.buckets.len()) {}
            @for (at, label) in chart.alarms {
                @let ax = x((*at).clamp(chart.from_ms, chart.to_ms));
                path class="alarm-marker" d={ "M" (f(ax)) " " (f(TOP)) " l-6 -12 h12 z" }
                    fill=(Level::Bad.fill()) {
                    title { (label) }
                }
            }
            // Axes.
            line x1=(f(LEFT)) y1=(f(TOP)) x2=(f(LEFT)) y2=(f(TOP + plot_h)) stroke="#333" {}
            line x1=(f(LEFT)) y1=(f(TOP + plot_h)) x2=(f(LEFT + plot_w)) y2=(f(TOP + plot_h)) stroke="#333" {}
            @for t in &y_ticks {
                line x1=(f(LEFT - 4.0)) x2=(f(LEFT)) y1=(f(y(*t))) y2=(f(y(*t))) stroke="#333" {}
                text x=(f(LEFT - 6.0)) y=(f(y(*t) + 4.0)) text-anchor="end" font-size="11" { (t) }
            }
            text x="14" y=(f(TOP + plot_h / 2.0)) font-size="12" text-anchor="middle"
                transform={ "rotate(-90 14 " (f(TOP + plot_h / 2.0)) ")" } { "temperature (°C)" }
            @for t in &x_ticks {
                line x1=(f(x(*t))) x2=(f(x(*t))) y1=(f(TOP + plot_h)) y2=(f(TOP + plot_h + 4.0)) stroke="#333" {}
                text x=(f(x(*t))) y=(f(TOP + plot_h + 16.0)) text-anchor="middle" font-size="11" {
                    (local_label(*t, chart.to_ms - chart.from_ms, chart.zone))
                }
            }
            text x=(f(LEFT + plot_w / 2.0)) y=(f(HEIGHT - 6.0)) text-anchor="middle" font-size="12" {
                "local time, " (chart.zone.name()) " (UTC" (offset) ")"
            }
        }
    }
}

/// `M x y L x y …`: one point per item.
fn path(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut out = String::new();
    for (i, (px, py)) in points.enumerate() {
        out.push_str(if i == 0 { "M" } else { " L" });
        out.push_str(&format!("{} {}", f(px), f(py)));
    }
    out
}

/// The band between each bucket's min and max, as one closed path.
fn envelope(
    buckets: &[Bucket],
    bucket_ms: i64,
    x: &impl Fn(i64) -> f64,
    y: &impl Fn(f64) -> f64,
) -> String {
    if buckets.is_empty() {
        return String::new();
    }
    let top = buckets
        .iter()
        .map(|b| (x(b.start_ms + bucket_ms / 2), y(b.max)));
    let bottom = buckets
        .iter()
        .rev()
        .map(|b| (x(b.start_ms + bucket_ms / 2), y(b.min)));
    format!("{} Z", path(top.chain(bottom)))
}

/// About `count` round values covering low..high.
fn ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
    let raw = (high - low) / count.max(1) as f64;
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
        .into_iter()
        .find(|s| *s >= raw)
        .unwrap_or(100.0);
    let mut out = Vec::new();
    let mut t = (low / step).ceil() * step;
    while t <= high && out.len() < 50 {
        // `ceil` of a small negative gives -0, which would print as "-0".
        out.push(if t == 0.0 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Six instants spread over the window.
fn time_ticks(from_ms: i64, to_ms: i64) -> Vec<i64> {
    (0..=5)
        .map(|i| from_ms + (to_ms - from_ms) * i / 5)
        .collect()
}

/// An instant's label in local time: hours for a day, days for longer windows.
fn local_label(ms: i64, span_ms: i64, zone: Tz) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return String::new();
    };
    let local = t.with_timezone(&zone);
    if span_ms <= 2 * 24 * 3_600_000 {
        local.format("%H:%M").to_string()
    } else {
        local.format("%m-%d %H:%M").to_string()
    }
}

/// The zone's UTC offset at an instant, e.g. `+07:00`.
fn local_offset(ms: i64, zone: Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&zone).format("%:z").to_string())
        .unwrap_or_default()
}

/// A number for an SVG attribute: one decimal.
fn f(value: f64) -> String {
    format!("{value:.1}")
}

/// A small line of values (e.g. a sensor's last 24 h), with its limits as a band.
pub fn sparkline(values: &[f64], limits: Option<(f64, f64)>) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let (mut low, mut high) = limits.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    for v in values {
        low = low.min(*v);
        high = high.max(*v);
    }
    if !low.is_finite() || !high.is_finite() || high - low < 0.1 {
        (low, high) = (low.min(0.0), low.max(0.0) + 1.0);
    }
    let n = values.len().max(2) as f64 - 1.0;
    let x = |i: usize| i as f64 / n * W;
    let y = |v: f64| 2.0 + (high - v) / (high - low) * (H - 4.0);
    let line = path(values.iter().enumerate().map(|(i, v)| (x(i), y(*v))));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } width="120" height="28"
            role="img" aria-label="last 24 hours" class="sparkline" {
            @if let Some((lo, hi)) = limits {
                rect x="0" y=(f(y(hi))) width=(W) height=(f((y(lo) - y(hi)).max(0.0))) fill="#d6e4f7" {}
            }
            @if values.is_empty() {
                text x="4" y="18" font-size="10" { "no readings" }
            } @else {
                path d=(line) fill="none" stroke="#12324f" stroke-width="1.5" {}
            }
        }
    }
}

/// One site on the corridor diagram.
pub struct CorridorSite<'a> {
    /// The site id.
    pub id: &'a str,
    /// Its display name.
    pub name: &'a str,
    /// How goods reach it (the route).
    pub reached_by: &'a str,
    /// The worst health of its services.
    pub level: Level,
    /// The word for that level.
    pub word: &'a str,
    /// Transfers in transit to it.
    pub inbound: usize,
}

/// The corridor: the hub at the top, every other site below it on its route, each with a
/// symbol and a word for its health.
pub fn corridor(hub: &CorridorSite<'_>, sites: &[CorridorSite<'_>]) -> Markup {
    let n = sites.len().max(1) as f64;
    let w = 900.0;
    let col = w / n;
    let hub_x = w / 2.0;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 900 300" role="img"
            aria-label="the corridor: the hub and the sites on their routes" class="corridor" {
            @for (i, site) in sites.iter().enumerate() {
                @let sx = col * (i as f64 + 0.5);
                line x1=(f(hub_x)) y1="60" x2=(f(sx)) y2="200" stroke="#555"
                    stroke-dasharray=(if site.reached_by.contains("sea") { "6 4" } else { "none" }) {}
                text x=(f((hub_x + sx) / 2.0)) y=(f(130.0 + (i % 2) as f64 * 14.0)) font-size="10"
                    text-anchor="middle" fill="#333" { (site.reached_by) }
                @if site.inbound > 0 {
                    text x=(f(sx)) y="182" font-size="10" text-anchor="middle" {
                        "▼ " (site.inbound) " in transit"
                    }
                }
                (node(site, sx, 210.0))
            }
            (node(hub, hub_x, 40.0))
        }
    }
}

fn node(site: &CorridorSite<'_>, cx: f64, cy: f64) -> Markup {
    html! {
        a href={ "/sites/" (site.id) } {
            circle cx=(f(cx)) cy=(f(cy)) r="16" fill=(site.level.fill()) stroke="#222" {
                title { (site.name) ": " (site.word) }
            }
            text x=(f(cx)) y=(f(cy + 5.0)) text-anchor="middle" font-size="15" fill="#fff"
                font-weight="bold" { (site.level.symbol()) }
            text x=(f(cx)) y=(f(cy + 34.0)) text-anchor="middle" font-size="11" { (site.id) }
            text x=(f(cx)) y=(f(cy + 48.0)) text-anchor="middle" font-size="10" fill="#333" { (site.word) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_path_has_one_point_per_bucket() {
        let buckets: Vec<Bucket> = (0..7)
            .map(|i| Bucket {
                start_ms: i * 3_600_000,
                min: 1.0,
                mean: 2.0 + i as f64,
                max: 3.0 + i as f64,
            })
            .collect();
        let chart = TemperatureChart {
            from_ms: 0,
            to_ms: 7 * 3_600_000,
            bucket_ms: 3_600_000,
            buckets: &buckets,
            limits: Some((0.0, 4.0)),
            alarms: &[],
            zone: chrono_tz::Asia::Vientiane,
        };
        let svg = temperature(&chart).into_string();
        let d = svg.split("id=\"mean\"").nth(1).unwrap();
        let d = d.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count() + d.matches('L').count(), 7);
        // Buckets whose max passes 4 °C are hatched: i = 2..=6 (max 5 °C and more).
        assert_eq!(svg.matches("class=\"excursion\"").count(), 5);
        assert!(svg.contains("Asia/Vientiane (UTC+07:00)"), "{svg}");
    }

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(
            ticks(-25.0, -15.0, 6),
            vec![-24.0, -22.0, -20.0, -18.0, -16.0]
        );
        assert!(ticks(0.0, 0.0, 6).len() <= 1);
        for t in ticks(-0.5, 4.0, 6) {
            assert!(!format!("{t}").starts_with("-0"), "{t}");
        }
    }
}
