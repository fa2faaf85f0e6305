//! The report of a run: what it did (operations, acknowledgements, faults, retries, time to
//! settle) and every violation, as text or as one JSON document.

use std::collections::BTreeMap;
use std::time::Duration;

use coldchain_command::say;
use serde::Serialize;

use crate::call::Counts;
use crate::checker::Violation;
use crate::model::{History, Observed, TransferState};
use crate::schedule::{Fault, FaultKind};

/// The report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The seed (replays the schedule).
    pub seed: u64,
    /// The sites run.
    pub sites: Vec<String>,
    /// The workload's duration, seconds.
    pub duration_s: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// Faults of the schedule (each injected once).
    pub faults_injected: u32,
    /// Processes started again (after a kill or an unexpected exit).
    pub restarts: u32,
    /// Calls, acknowledgements, refusals, retries, reconnections.
    pub counts: Counts,
    /// What the history holds.
    pub acknowledged: BTreeMap<&'static str, usize>,
    /// Transfers by final state.
    pub transfers: BTreeMap<String, usize>,
    /// Excursion alarms at the end, across the sites.
    pub excursion_alarms: usize,
    /// Alarm events the watcher received.
    pub alarm_events_watched: usize,
    /// From the end of the faults until settled and observed, milliseconds.
    pub settle_ms: u64,
    /// Why the network did not settle within the bound, if it did not.
    pub not_settled: Option<String>,
    /// Every violation.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Assembles the report.
    #[allow(clippy::too_many_arguments)] // one call site, every field named there
    pub fn new(
        seed: u64,
        sites: &[String],
        duration: Duration,
        schedule: &[Fault],
        faults_injected: u32,
        restarts: u32,
        counts: Counts,
        history: &History,
        observed: &Observed,
        settle: Duration,
        not_settled: Option<String>,
        violations: Vec<Violation>,
    ) -> Report {
        let mut faults = BTreeMap::new();
        for fault in schedule {
            let kind = match fault.kind {
                FaultKind::Kill => "sigkill_restart",
                FaultKind::Pause => "sigstop_sigcont",
            };
            *faults.entry(kind).or_default() += 1;
        }
        let groups: std::collections::BTreeSet<u32> = schedule
            .iter()
            .filter(|f| schedule.iter().filter(|g| g.group == f.group).count() > 1)
            .map(|f| f.group)
            .collect();
        faults.insert(
            "groups_of_several",
            u32::try_from(groups.len()).unwrap_or(u32::MAX),
        );
        let acknowledged = [
            ("movement_batches", history.movements.len()),
            ("transfers_started", history.transfers.len()),
            ("bookings", history.bookings.len()),
            ("reading_batches", history.readings.len()),
        ]
        .into();
        let mut transfers = BTreeMap::new();
        for t in &observed.transfers {
            let state = match t.state {
                TransferState::Requested => "requested",
                TransferState::InTransit => "in_transit",
                TransferState::Receiving => "receiving",
                TransferState::Completed => "completed",
                TransferState::Failed => "failed",
            };
            *transfers.entry(state.to_owned()).or_default() += 1;
        }
        Report {
            seed,
            sites: sites.to_vec(),
            duration_s: duration.as_secs(),
            faults,
            faults_injected,
            restarts,
            counts,
            acknowledged,
            transfers,
            excursion_alarms: observed
                .sites
                .values()
                .map(|s| s.alarms.iter().filter(|a| a.excursion).count())
                .sum(),
            alarm_events_watched: history.watched.values().map(Vec::len).sum(),
            settle_ms: u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
            not_settled,
            violations,
        }
    }

    /// True when every invariant held and the network settled in time.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.not_settled.is_none()
    }

    /// Prints it: a table, or one JSON document.
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => say!("{text}"),
                Err(e) => eprintln!("soak: cannot encode the report: {e}"),
            }
            return;
        }
        say!(
            "soak report (seed {}, {} s, sites {})",
            self.seed,
            self.duration_s,
            self.sites.join(", ")
        );
        let c = &self.counts;
        say!(
            "  operations {}  acknowledged {}  refused {}  retries {} ({} broken connections)  watch reconnections {}",
            c.operations,
            c.acknowledgements,
            c.refusals,
            c.retries,
            c.transport_errors,
            c.reconnections
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        say!(
            "  faults injected {} ({}), restarts {}",
            self.faults_injected,
            faults.join(", "),
            self.restarts
        );
        let acked: Vec<String> = self
            .acknowledged
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        say!("  acknowledged writes: {}", acked.join(", "));
        let transfers: Vec<String> = self
            .transfers
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        say!("  transfers: {}", transfers.join(", "));
        say!(
            "  excursion alarms {}, alarm events watched {}",
            self.excursion_alarms,
            self.alarm_events_watched
        );
        say!("  time to settle {:.1} s", self.settle_ms as f64 / 1000.0);
        if let Some(problem) = &self.not_settled {
            say!("  NOT SETTLED: {problem}");
        }
        if self.violations.is_empty() {
            say!("  invariants 1-6: all hold");
        } else {
            say!("  {} violations:", self.violations.len());
            for v in &self.violations {
                say!(
                    "  [{}] {} (ids: {})",
                    v.invariant,
                    v.message,
                    v.ids.join(", ")
                );
            }
        }
        say!("{}", if self.passed() { "PASS" } else { "FAIL" });
    }
}
