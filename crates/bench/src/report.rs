//! The report: figures gathered round by round, their medians next to PostgreSQL's, and
//! the Markdown they are printed as.

use std::fmt::Write as _;

use crate::BenchArgs;
use crate::load::LoadResult;
use crate::network;

/// One line of the report.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) ours: String,
    pub(crate) peer: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
}

#[derive(Default)]
pub(crate) struct Figures {
    pub(crate) rows: Vec<Row>,
    pub(crate) details: Vec<String>,
    pub(crate) errors: Vec<String>,
}

pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    Some(values[values.len() / 2])
}

pub(crate) fn rate(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k/s", value / 1000.0)
    } else {
        format!("{value:.0}/s")
    }
}

pub(crate) fn ratio(ours: Option<f64>, peer: Option<f64>) -> String {
    match (ours, peer) {
        (Some(ours), Some(peer)) if peer > 0.0 => format!("{:.2}×", ours / peer),
        _ => "–".into(),
    }
}

impl Figures {
    /// Records one round of a load scenario: its failures, its latency line, and returns
    /// its rate of successful calls.
    pub(crate) fn record_load(
        &mut self,
        round: usize,
        scenario: &str,
        label: &str,
        result: &LoadResult,
    ) -> f64 {
        self.record_errors(scenario, result);
        self.details.push(format!(
            "round {round}, {label}: {} calls, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, statuses {:?}",
            result.calls,
            result.latency_ms(0.5),
            result.latency_ms(0.99),
            result.latency_ms(0.999),
            result.statuses
        ));
        result.ok_per_second()
    }

    /// Records a load's failed calls, and a load that completed none, as errors.
    pub(crate) fn record_errors(&mut self, scenario: &str, result: &LoadResult) {
        if result.errors() > 0 {
            self.errors.push(format!(
                "{scenario}: {} calls failed: {:?}",
                result.errors(),
                result.statuses
            ));
        }
        if result.calls == 0 {
            self.errors.push(format!(
                "{scenario}: no call completed in the measured window"
            ));
        }
    }
}

pub(crate) fn render(args: &BenchArgs, figures: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Run on {} ({}), {}.\n",
        network::machine(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if args.smoke { "smoke run" } else { "full run" }
    );
    let _ = writeln!(
        out,
        "Reproduce: `cargo run --release -- bench --scenarios {} --prefill {} --duration {} --warmup {} --rounds {} --concurrency {} --connections {}{}`\n",
        args.scenarios,
        args.prefill,
        args.duration,
        args.warmup,
        args.rounds,
        args.concurrency,
        args.connections,
        if args.no_postgres {
            " --no-postgres"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "Client and server share this machine; every figure is the median of {} round(s), ours and PostgreSQL alternated within each round.\n",
        args.rounds
    );
    let _ = writeln!(out, "| figure | ours | PostgreSQL | ratio | target |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for row in &figures.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.figure, row.ours, row.peer, row.ratio, row.target
        );
    }
    if !figures.details.is_empty() {
        let _ = writeln!(out, "\nLatency and statuses, round by round:\n");
        for line in &figures.details {
            let _ = writeln!(out, "- {line}");
        }
    }
    if !figures.errors.is_empty() {
        let _ = writeln!(out, "\nErrors:\n");
        for line in &figures.errors {
            let _ = writeln!(out, "- {line}");
        }
    }
    out
}
