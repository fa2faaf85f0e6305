#![forbid(unsafe_code)]
//! `coldchain bench`: the speed of every service, side by side with PostgreSQL and the gRPC
//! ceiling, in one run.
//!
//! Each round runs our scenario and then the PostgreSQL equivalent (alternated, so drift of
//! this shared machine hits both); every figure is the median of the rounds, and the ratio
//! is printed next to it. Figures are printed, never asserted: `--smoke` runs every scenario
//! for a moment and fails only on errors.

mod load;
mod network;
mod postgres;
mod scenarios;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use coldchain_command::say;
use coldchain_runtime::host::{ServiceContext, StartError};
use coldchain_runtime::server::ServiceSpec;
use load::LoadSpec;
pub use scenarios::{Caller, Host};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Scenarios to run: ceiling, inventory, booking, telemetry, query, network (comma
    /// separated), or all.
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Rounds; each figure is the median.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Fixed total rate (calls/s) instead of closed-loop: latency from scheduled start.
    #[arg(long)]
    rate: Option<f64>,
    /// Days of 1 Hz history for the QueryReadings scenario.
    #[arg(long, default_value_t = 30)]
    query_days: u32,
    /// Skip the PostgreSQL peer.
    #[arg(long)]
    no_postgres: bool,
    /// A few seconds per scenario, one round, 1 day of query history; exit 1 on any error.
    #[arg(long)]
    smoke: bool,
    /// Also write the report (with the machine and the command) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// One line of the report.
struct Row {
    figure: String,
    ours: String,
    peer: String,
    ratio: String,
    target: String,
}

#[derive(Default)]
struct Figures {
    rows: Vec<Row>,
    details: Vec<String>,
    errors: Vec<String>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    Some(values[values.len() / 2])
}

fn rate(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k/s", value / 1000.0)
    } else {
        format!("{value:.0}/s")
    }
}

fn ratio(ours: Option<f64>, peer: Option<f64>) -> String {
    match (ours, peer) {
        (Some(ours), Some(peer)) if peer > 0.0 => format!("{:.2}×", ours / peer),
        _ => "–".into(),
    }
}

/// Makes the server of a service for a context: the binary passes the one it serves with,
/// so the bench runs the real services without depending on them.
pub type Build = fn(&ServiceContext) -> Result<ServiceSpec, StartError>;

/// Runs the bench, starting each service under test with `build`.
pub async fn run(args: BenchArgs, build: Build) -> ExitCode {
    // The servers run with the subscriber they have in containers (JSON at `info`): its
    // span per RPC is part of what a call costs there. What it writes is discarded.
    coldchain_runtime::logging::init_with_writer(
        coldchain_runtime::config::LogFormat::Json,
        "info",
        std::io::sink,
    );
    let mut args = args;
    if args.smoke {
        args.duration = 2;
        args.warmup = 1;
        args.rounds = 1;
        args.query_days = 1;
        args.concurrency = args.concurrency.min(16);
    }
    let wanted: Vec<String> = args
        .scenarios
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .collect();
    let wants = |name: &str| wanted.iter().any(|w| w == "all" || w == name);
    let spec = LoadSpec {
        concurrency: args.concurrency,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
    };

    let pg = if args.no_postgres || !(wants("inventory") || wants("booking") || wants("telemetry"))
    {
        None
    } else {
        eprintln!("starting PostgreSQL on loopback…");
        match postgres::Postgres::start() {
            Ok(pg) => Some(pg),
            Err(problem) => {
                eprintln!(
                    "PostgreSQL cannot be started ({problem}); printing our own figures only"
                );
                None
            }
        }
    };

    let mut figures = Figures::default();
    let mut ceiling = Vec::new();
    let mut durable_ceiling = Vec::new();
    let mut inventory = Vec::new();
    let mut inventory_pg = Vec::new();
    let mut watch = Vec::new();
    let mut booking = Vec::new();
    let mut booking_pg = Vec::new();
    let mut ingest = Vec::new();
    let mut copy_pg = Vec::new();
    let mut bytes = Vec::new();

    for round in 1..=args.rounds {
        eprintln!("round {round}/{}", args.rounds);
        if wants("ceiling") {
            match scenarios::ceiling(&spec, args.connections, false).await {
                Ok(result) => ceiling.push(figures.record_load(
                    round,
                    "ceiling",
                    "ceiling (no-op unary)",
                    &result,
                )),
                Err(e) => figures.errors.push(format!("ceiling: {e}")),
            }
            match scenarios::ceiling(&spec, args.connections, true).await {
                Ok(result) => durable_ceiling.push(figures.record_load(
                    round,
                    "durable no-op",
                    "durable no-op (one ledger entry)",
                    &result,
                )),
                Err(e) => figures.errors.push(format!("durable no-op: {e}")),
            }
        }
        if wants("inventory") {
            match scenarios::inventory(&spec, args.connections, build).await {
                Ok(run) => {
                    inventory.push(figures.record_load(
                        round,
                        "inventory",
                        "inventory RecordMovements",
                        &run.load,
                    ));
                    watch.push(run.watch_entries_per_second);
                    if run.watch_entries < run.load.statuses.get("OK").copied().unwrap_or(0) {
                        figures.errors.push(format!(
                            "watch ledger: read {} entries, fewer than the {} acknowledged in the window",
                            run.watch_entries,
                            run.load.statuses.get("OK").copied().unwrap_or(0)
                        ));
                    }
                }
                Err(e) => figures.errors.push(format!("inventory: {e}")),
            }
            if let Some(pg) = &pg {
                match pg.pgbench(postgres::MOVEMENT_SCRIPT, args.concurrency, spec.duration) {
                    Ok(tps) => inventory_pg.push(tps),
                    Err(e) => figures.errors.push(format!("postgres movement: {e}")),
                }
            }
        }
        if wants("booking") {
            match scenarios::booking(&spec, args.connections, build).await {
                Ok(result) => booking.push(figures.record_load(
                    round,
                    "booking",
                    "booking HoldSpace+ConfirmBooking",
                    &result,
                )),
                Err(e) => figures.errors.push(format!("booking: {e}")),
            }
            if let Some(pg) = &pg {
                match pg.pgbench(postgres::BOOKING_SCRIPT, args.concurrency, spec.duration) {
                    Ok(tps) => booking_pg.push(tps),
                    Err(e) => figures.errors.push(format!("postgres booking: {e}")),
                }
            }
        }
        if wants("telemetry") {
            match scenarios::telemetry(&spec, build).await {
                Ok(run) => {
                    if run.errors > 0 {
                        figures.errors.push(format!(
                            "telemetry: {} readings or streams failed",
                            run.errors
                        ));
                    }
                    figures.details.push(format!(
                        "telemetry StreamReadings: {} readings from 500 sensors, {:.2} bytes on disk per reading",
                        run.readings, run.bytes_per_reading
                    ));
                    ingest.push(run.readings_per_second);
                    bytes.push(run.bytes_per_reading);
                    if let Some(pg) = &pg {
                        let rows = run.readings.clamp(10_000, 2_000_000);
                        let csv = pg.scratch().join("readings.csv");
                        let copied = scenarios::readings_csv(&csv, rows)
                            .map_err(|e| e.to_string())
                            .and_then(|()| pg.copy_readings(&csv));
                        match copied {
                            Ok(elapsed) => {
                                copy_pg.push(rows as f64 / elapsed.as_secs_f64().max(1e-9))
                            }
                            Err(e) => figures.errors.push(format!("postgres copy: {e}")),
                        }
                    }
                }
                Err(e) => figures.errors.push(format!("telemetry: {e}")),
            }
        }
    }

    let ceiling = median(ceiling);
    let durable_ceiling = median(durable_ceiling);
    let inventory = median(inventory);
    let watch = median(watch);
    let booking = median(booking);
    let ingest = median(ingest);
    let bytes = median(bytes);
    let (inventory_pg, booking_pg, copy_pg) =
        (median(inventory_pg), median(booking_pg), median(copy_pg));
    let fmt = |v: Option<f64>| v.map(rate).unwrap_or_else(|| "–".into());
    if wants("ceiling") {
        figures.rows.push(Row {
            figure: "gRPC ceiling: no-op unary, same server stack".into(),
            ours: fmt(ceiling),
            peer: "–".into(),
            ratio: "–".into(),
            target: "reference".into(),
        });
        // What a durable call costs before any service logic: the most any write of
        // this stack could reach on this machine, next to PostgreSQL's movement.
        figures.rows.push(Row {
            figure: "durable no-op: one ledger entry a call through the group commit".into(),
            ours: fmt(durable_ceiling),
            peer: if wants("inventory") {
                format!("{} (movement)", fmt(inventory_pg))
            } else {
                "–".into()
            },
            ratio: ratio(durable_ceiling, inventory_pg),
            target: "reference".into(),
        });
    }
    if wants("inventory") {
        figures.rows.push(Row {
            figure: format!(
                "inventory: durable RecordMovements, {} clients, 10,000 pairs",
                args.concurrency
            ),
            ours: fmt(inventory),
            peer: fmt(inventory_pg),
            ratio: ratio(inventory, inventory_pg),
            target: "≥ 4× PostgreSQL".into(),
        });
        figures.rows.push(Row {
            figure: "inventory vs the no-op ceiling".into(),
            ours: fmt(inventory),
            peer: format!("{} (ceiling)", fmt(ceiling)),
            ratio: match (inventory, ceiling) {
                (Some(i), Some(c)) if c > 0.0 => format!("{:.0}%", 100.0 * i / c),
                _ => "–".into(),
            },
            target: "≥ 60% of ceiling".into(),
        });
        figures.rows.push(Row {
            figure: "inventory: WatchLedger entries to one consumer".into(),
            ours: fmt(watch),
            peer: "–".into(),
            ratio: "–".into(),
            target: "≥ 200k/s".into(),
        });
    }
    if wants("booking") {
        figures.rows.push(Row {
            figure: format!(
                "booking: HoldSpace then ConfirmBooking, {} clients (pairs)",
                args.concurrency
            ),
            ours: fmt(booking),
            peer: fmt(booking_pg),
            ratio: ratio(booking, booking_pg),
            target: "≥ 4× PostgreSQL".into(),
        });
    }
    if wants("telemetry") {
        figures.rows.push(Row {
            figure: "telemetry: StreamReadings from 500 sensors (readings) vs COPY".into(),
            ours: fmt(ingest),
            peer: fmt(copy_pg),
            ratio: ratio(ingest, copy_pg),
            target: "≥ 5× PostgreSQL COPY".into(),
        });
        figures.rows.push(Row {
            figure: "telemetry: bytes on disk per stored reading".into(),
            ours: bytes
                .map(|b| format!("{b:.2} B"))
                .unwrap_or_else(|| "–".into()),
            peer: "–".into(),
            ratio: "–".into(),
            target: "≤ 4 B".into(),
        });
    }
    if wants("query") {
        match scenarios::telemetry_query(&spec, args.query_days, build).await {
            Ok(run) => {
                figures.record_errors("query", &run.load);
                figures.rows.push(Row {
                    figure: format!("telemetry: QueryReadings of {} days in 1 h buckets ({} readings, {} buckets)", args.query_days, run.readings, run.buckets),
                    ours: format!("{} (p50 {:.2} ms)", rate(run.load.ok_per_second()), run.load.latency_ms(0.5)),
                    peer: "–".into(),
                    ratio: "–".into(),
                    target: "reads chunk summaries".into(),
                });
            }
            Err(e) => figures.errors.push(format!("query: {e}")),
        }
    }
    if wants("network") {
        match network::idle_network().await {
            Ok(run) => {
                figures.rows.push(Row {
                    figure: "network: time until all 25 servers are healthy".into(),
                    ours: format!("{} ms", run.time_to_healthy.as_millis()),
                    peer: "–".into(),
                    ratio: "–".into(),
                    target: "≤ 5 s".into(),
                });
                figures.rows.push(Row {
                    figure: "network: resident memory of the idle dev network".into(),
                    ours: format!("{:.0} MiB", run.rss_bytes as f64 / 1048576.0),
                    peer: "–".into(),
                    ratio: "–".into(),
                    target: "< 300 MiB".into(),
                });
            }
            Err(e) => figures.errors.push(format!("network: {e}")),
        }
    }

    let report = render(&args, &figures);
    say!("{report}");
    if let Some(path) = &args.output
        && let Err(e) = std::fs::write(path, &report)
    {
        eprintln!("coldchain bench: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    if figures.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

impl Figures {
    /// Records one round of a load scenario: its failures, its latency line, and returns
    /// its rate of successful calls.
    fn record_load(
        &mut self,
        round: usize,
        scenario: &str,
        label: &str,
        result: &load::LoadResult,
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
    fn record_errors(&mut self, scenario: &str, result: &load::LoadResult) {
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

fn render(args: &BenchArgs, figures: &Figures) -> String {
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
        "Reproduce: `cargo run --release -- bench --duration {} --warmup {} --rounds {} --concurrency {} --connections {}`\n",
        args.duration, args.warmup, args.rounds, args.concurrency, args.connections
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
