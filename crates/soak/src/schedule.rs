//! The fault schedule: which process is killed or paused when, drawn from the seed alone,
//! so a run can be replayed from the seed it printed.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// What happens to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL, then a restart of the same service on the same data after `lasts`.
    Kill,
    /// SIGSTOP, then SIGCONT after `lasts`: its callers see a partition.
    Pause,
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Since the start of the workload.
    #[serde(rename = "at_ms", serialize_with = "millis")]
    pub at: Duration,
    /// The process, by its name (`gateway`, `inventory@la-vientiane`, …).
    pub target: String,
    /// Kill or pause.
    pub kind: FaultKind,
    /// How long the process stays down or paused.
    #[serde(rename = "lasts_ms", serialize_with = "millis")]
    pub lasts: Duration,
    /// Faults drawn together share a group number (several processes at once).
    pub group: u32,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FaultKind::Kill => "SIGKILL, restart after",
            FaultKind::Pause => "SIGSTOP, SIGCONT after",
        };
        write!(
            f,
            "t={:>7.1}s  #{:<3} {:<24} {what} {:.1}s",
            self.at.as_secs_f64(),
            self.group,
            self.target,
            self.lasts.as_secs_f64()
        )
    }
}

/// Faults stop this long before the end of the workload, so the last restart has happened
/// before the network is asked to settle.
const QUIET_TAIL: Duration = Duration::from_secs(5);

/// Draws the schedule of a run of `duration` over `targets` (in a fixed order) from `seed`.
/// Faults come every 2 to 8 s; one group in four hits 2 or 3 processes at once; a process
/// is never faulted again while it is still down or paused. The same inputs always give
/// the same schedule.
pub fn draw(seed: u64, duration: Duration, targets: &[String]) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    if targets.is_empty() {
        return faults;
    }
    let end = duration.saturating_sub(QUIET_TAIL);
    let mut busy_until = vec![Duration::ZERO; targets.len()];
    let mut at = Duration::from_millis(rng.gen_range(2_000..5_000));
    let mut group = 0;
    while at + Duration::from_secs(1) < end {
        group += 1;
        let size = if rng.gen_bool(0.25) {
            rng.gen_range(2..=3)
        } else {
            1
        };
        for _ in 0..size {
            let free: Vec<usize> = (0..targets.len())
                .filter(|&i| busy_until[i] <= at)
                .collect();
            if free.is_empty() {
                break;
            }
            let pick = free[rng.gen_range(0..free.len())];
            let kind = if rng.gen_bool(0.5) {
                FaultKind::Kill
            } else {
                FaultKind::Pause
            };
            let lasts = match kind {
                FaultKind::Kill => Duration::from_millis(rng.gen_range(200..4_000)),
                FaultKind::Pause => Duration::from_millis(rng.gen_range(1_000..6_000)),
            };
            let lasts = lasts.min(end.saturating_sub(at));
            busy_until[pick] = at + lasts + Duration::from_millis(500);
            faults.push(Fault {
                at,
                target: targets[pick].clone(),
                kind,
                lasts,
                group,
            });
        }
        at += Duration::from_millis(rng.gen_range(2_000..8_000));
    }
    faults
}

/// One step of carrying out a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// SIGKILL the process.
    Kill(String),
    /// Start it again.
    Restart(String),
    /// SIGSTOP it.
    Stop(String),
    /// SIGCONT it.
    Continue(String),
}

/// The schedule as timed steps, in time order (a fault's end after its start).
pub fn steps(faults: &[Fault]) -> Vec<(Duration, Step)> {
    let mut steps = Vec::new();
    for fault in faults {
        let target = fault.target.clone();
        let (begin, end) = match fault.kind {
            FaultKind::Kill => (Step::Kill(target.clone()), Step::Restart(target)),
            FaultKind::Pause => (Step::Stop(target.clone()), Step::Continue(target)),
        };
        steps.push((fault.at, begin));
        steps.push((fault.at + fault.lasts, end));
    }
    // Stable: a fault's begin stays before its end at equal times.
    steps.sort_by_key(|(at, _)| *at);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<String> {
        [
            "gateway",
            "inventory@a",
            "telemetry@a",
            "booking@a",
            "inventory@b",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = draw(42, Duration::from_secs(600), &targets());
        let b = draw(42, Duration::from_secs(600), &targets());
        assert_eq!(a, b);
        assert!(a.len() > 50, "{} faults in 10 minutes", a.len());
        let c = draw(43, Duration::from_secs(600), &targets());
        assert_ne!(a, c, "another seed, another schedule");
    }

    #[test]
    fn the_schedule_has_kills_pauses_and_groups_and_never_overlaps_a_process() {
        let duration = Duration::from_secs(600);
        let faults = draw(7, duration, &targets());
        assert!(faults.iter().any(|f| f.kind == FaultKind::Kill));
        assert!(faults.iter().any(|f| f.kind == FaultKind::Pause));
        assert!(faults.iter().any(|f| f.target == "gateway"));
        let grouped = faults
            .windows(2)
            .any(|w| w[0].group == w[1].group && w[0].target != w[1].target);
        assert!(grouped, "some faults hit several processes at once");
        for fault in &faults {
            assert!(fault.at + fault.lasts <= duration - QUIET_TAIL, "{fault}");
            let overlapping = faults.iter().filter(|other| {
                other.target == fault.target
                    && other.at < fault.at + fault.lasts
                    && fault.at < other.at + other.lasts
            });
            assert_eq!(overlapping.count(), 1, "{fault} overlaps another fault");
        }
    }

    #[test]
    fn every_fault_ends_after_it_begins() {
        let faults = draw(1, Duration::from_secs(120), &targets());
        let steps = steps(&faults);
        assert_eq!(steps.len(), faults.len() * 2);
        for fault in &faults {
            let begin = steps
                .iter()
                .position(|(at, s)| {
                    *at == fault.at
                        && matches!(s, Step::Kill(t) | Step::Stop(t) if *t == fault.target)
                })
                .unwrap();
            let end = steps
                .iter()
                .position(|(at, s)| {
                    *at == fault.at + fault.lasts
                        && matches!(s, Step::Restart(t) | Step::Continue(t) if *t == fault.target)
                })
                .unwrap();
            assert!(begin < end);
        }
        assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn a_run_too_short_for_faults_has_none() {
        assert!(draw(1, Duration::from_secs(4), &targets()).is_empty());
        assert!(draw(1, Duration::from_secs(60), &[]).is_empty());
    }
}
