#![forbid(unsafe_code)]
//! `coldchain bench`: the speed of every service, side by side with PostgreSQL and the gRPC
//! ceiling, in one run.
//!
//! Each round runs our scenario and then the PostgreSQL equivalent (alternated, so drift of
//! this shared machine hits both); every figure is the median of the rounds, and the ratio
//! is printed next to it. Figures are printed, never asserted: `--smoke` runs every scenario
//! for a moment and fails only on errors.

mod alone;
mod console;
mod history_report;
mod host;
mod load;
mod network;
mod postgres;
mod report;
mod restart;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use coldchain_command::say;
use coldchain_runtime::host::{ServiceContext, StartError};
use coldchain_runtime::server::ServiceSpec;
use load::LoadSpec;
use postgres::Postgres;
use report::{Figures, Row, median, rate, ratio};

pub use host::{Caller, Host, dir_size};
pub use scenarios::{ROUND_SECONDS, readings_round};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Scenarios to run: ceiling, inventory, booking, telemetry, query, network, console,
    /// history (or one of its services: history-inventory, history-booking), restart,
    /// booking-alone (comma separated), or all.
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
    /// Ledger entries written at the inventory before the history scenario runs its load
    /// again (bookings at the booking service: a tenth of it), and before the restart
    /// scenario fills its log. The scale is 10,000,000.
    #[arg(long, default_value_t = 1_000_000)]
    prefill: u64,
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
        args.prefill = args.prefill.min(5_000);
        args.concurrency = args.concurrency.min(16);
    }
    let wanted = Wanted(
        args.scenarios
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .collect(),
    );
    let spec = LoadSpec {
        concurrency: args.concurrency,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
    };
    let pg = if args.no_postgres
        || !(wanted.has("inventory")
            || wanted.has("booking")
            || wanted.has("telemetry")
            || wanted.has("history"))
    {
        None
    } else {
        start_postgres()
    };

    let mut figures = Figures::default();
    let mut samples = Samples::default();
    let bench = Bench {
        args: &args,
        wanted: &wanted,
        spec: &spec,
        build,
        pg: pg.as_ref(),
    };
    for round in 1..=args.rounds {
        eprintln!("round {round}/{}", args.rounds);
        bench.round(round, &mut figures, &mut samples).await;
    }
    bench.summary_rows(samples, &mut figures);
    if wanted.has("query") {
        bench.query(&mut figures).await;
    }
    if wanted.has("network") {
        idle_network(&mut figures).await;
    }
    if wanted.has("console") {
        console_page(&spec, &mut figures).await;
    }
    if wanted.has("history") || wanted.has("history-inventory") || wanted.has("history-booking") {
        bench.history(&mut figures).await;
    }
    if wanted.has("restart") {
        let fill = if args.smoke { 0.05 } else { 1.0 };
        match restart::restart_after_kill(fill, args.prefill, &spec, args.connections).await {
            Ok(run) => history_report::restart_row(&mut figures, &run),
            Err(e) => figures.errors.push(format!("restart: {e}")),
        }
    }
    if wanted.has("booking-alone") {
        let bookings = args.prefill / 10;
        eprintln!("booking alone: its own process, empty then with {bookings} bookings");
        match alone::booking_alone(&spec, args.connections, bookings, build).await {
            Ok(run) => history_report::alone_rows(&mut figures, &run),
            Err(e) => figures.errors.push(format!("booking alone: {e}")),
        }
    }

    let report = report::render(&args, &figures);
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

/// The scenarios asked for (`all` for every one).
struct Wanted(Vec<String>);

impl Wanted {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|w| w == "all" || w == name)
    }
}

fn start_postgres() -> Option<Postgres> {
    eprintln!("starting PostgreSQL on loopback…");
    match Postgres::start() {
        Ok(pg) => Some(pg),
        Err(problem) => {
            eprintln!("PostgreSQL cannot be started ({problem}); printing our own figures only");
            None
        }
    }
}

/// Each round's figure of each scenario, ours and PostgreSQL's; the report shows medians.
#[derive(Default)]
struct Samples {
    ceiling: Vec<f64>,
    durable_ceiling: Vec<f64>,
    inventory: Vec<f64>,
    inventory_pg: Vec<f64>,
    watch: Vec<f64>,
    booking: Vec<f64>,
    booking_pg: Vec<f64>,
    ingest: Vec<f64>,
    copy_pg: Vec<f64>,
    bytes: Vec<f64>,
}

/// One run of the bench: what it runs, and with what.
struct Bench<'a> {
    args: &'a BenchArgs,
    wanted: &'a Wanted,
    spec: &'a LoadSpec,
    build: Build,
    pg: Option<&'a Postgres>,
}

impl Bench<'_> {
    /// One round: each scenario asked for, ours then PostgreSQL's.
    async fn round(&self, round: usize, figures: &mut Figures, samples: &mut Samples) {
        if self.wanted.has("ceiling") {
            self.ceiling(round, figures, samples).await;
        }
        if self.wanted.has("inventory") {
            self.inventory(round, figures, samples).await;
        }
        if self.wanted.has("booking") {
            self.booking(round, figures, samples).await;
        }
        if self.wanted.has("telemetry") {
            self.telemetry(figures, samples).await;
        }
    }

    /// The no-op ceiling and the durable no-op.
    async fn ceiling(&self, round: usize, figures: &mut Figures, samples: &mut Samples) {
        match scenarios::ceiling(self.spec, self.args.connections, false).await {
            Ok(result) => samples.ceiling.push(figures.record_load(
                round,
                "ceiling",
                "ceiling (no-op unary)",
                &result,
            )),
            Err(e) => figures.errors.push(format!("ceiling: {e}")),
        }
        match scenarios::ceiling(self.spec, self.args.connections, true).await {
            Ok(result) => samples.durable_ceiling.push(figures.record_load(
                round,
                "durable no-op",
                "durable no-op (one ledger entry)",
                &result,
            )),
            Err(e) => figures.errors.push(format!("durable no-op: {e}")),
        }
    }

    /// RecordMovements and WatchLedger, and PostgreSQL's movement.
    async fn inventory(&self, round: usize, figures: &mut Figures, samples: &mut Samples) {
        match scenarios::inventory(self.spec, self.args.connections, self.build).await {
            Ok(run) => {
                samples.inventory.push(figures.record_load(
                    round,
                    "inventory",
                    "inventory RecordMovements",
                    &run.load,
                ));
                samples.watch.push(run.watch_entries_per_second);
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
        if let Some(pg) = self.pg {
            match pg.pgbench(
                postgres::MOVEMENT_SCRIPT,
                self.args.concurrency,
                self.spec.duration,
            ) {
                Ok(tps) => samples.inventory_pg.push(tps),
                Err(e) => figures.errors.push(format!("postgres movement: {e}")),
            }
        }
    }

    /// HoldSpace then ConfirmBooking, and PostgreSQL's booking.
    async fn booking(&self, round: usize, figures: &mut Figures, samples: &mut Samples) {
        match scenarios::booking(self.spec, self.args.connections, self.build).await {
            Ok(result) => samples.booking.push(figures.record_load(
                round,
                "booking",
                "booking HoldSpace+ConfirmBooking",
                &result,
            )),
            Err(e) => figures.errors.push(format!("booking: {e}")),
        }
        if let Some(pg) = self.pg {
            match pg.pgbench(
                postgres::BOOKING_SCRIPT,
                self.args.concurrency,
                self.spec.duration,
            ) {
                Ok(tps) => samples.booking_pg.push(tps),
                Err(e) => figures.errors.push(format!("postgres booking: {e}")),
            }
        }
    }

    /// StreamReadings and bytes per reading, and PostgreSQL's COPY.
    async fn telemetry(&self, figures: &mut Figures, samples: &mut Samples) {
        match scenarios::telemetry(self.spec, self.build).await {
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
                samples.ingest.push(run.readings_per_second);
                samples.bytes.push(run.bytes_per_reading);
                if let Some(pg) = self.pg {
                    let rows = run.readings.clamp(10_000, 2_000_000);
                    let csv = pg.scratch().join("readings.csv");
                    let copied = scenarios::readings_csv(&csv, rows)
                        .map_err(|e| e.to_string())
                        .and_then(|()| pg.copy_readings(&csv));
                    match copied {
                        Ok(elapsed) => samples
                            .copy_pg
                            .push(rows as f64 / elapsed.as_secs_f64().max(1e-9)),
                        Err(e) => figures.errors.push(format!("postgres copy: {e}")),
                    }
                }
            }
            Err(e) => figures.errors.push(format!("telemetry: {e}")),
        }
    }

    /// The medians of the rounds, as rows next to PostgreSQL's.
    fn summary_rows(&self, samples: Samples, figures: &mut Figures) {
        let ceiling = median(samples.ceiling);
        let durable_ceiling = median(samples.durable_ceiling);
        let inventory = median(samples.inventory);
        let watch = median(samples.watch);
        let booking = median(samples.booking);
        let ingest = median(samples.ingest);
        let bytes = median(samples.bytes);
        let (inventory_pg, booking_pg, copy_pg) = (
            median(samples.inventory_pg),
            median(samples.booking_pg),
            median(samples.copy_pg),
        );
        let fmt = |v: Option<f64>| v.map(rate).unwrap_or_else(|| "–".into());
        if self.wanted.has("ceiling") {
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
                peer: if self.wanted.has("inventory") {
                    format!("{} (movement)", fmt(inventory_pg))
                } else {
                    "–".into()
                },
                ratio: ratio(durable_ceiling, inventory_pg),
                target: "reference".into(),
            });
        }
        if self.wanted.has("inventory") {
            figures.rows.push(Row {
                figure: format!(
                    "inventory: durable RecordMovements, {} clients, 10,000 pairs",
                    self.args.concurrency
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
            // The storage issue's reference: the limit of the project's own durability path.
            figures.rows.push(Row {
                figure: "inventory vs the durable no-op".into(),
                ours: fmt(inventory),
                peer: format!("{} (durable no-op)", fmt(durable_ceiling)),
                ratio: match (inventory, durable_ceiling) {
                    (Some(i), Some(d)) if d > 0.0 => format!("{:.0}%", 100.0 * i / d),
                    _ => "–".into(),
                },
                target: "≥ 75% of the durable no-op".into(),
            });
            figures.rows.push(Row {
                figure: "inventory: WatchLedger entries to one consumer".into(),
                ours: fmt(watch),
                peer: "–".into(),
                ratio: "–".into(),
                target: "≥ 200k/s".into(),
            });
        }
        if self.wanted.has("booking") {
            figures.rows.push(Row {
                figure: format!(
                    "booking: HoldSpace then ConfirmBooking, {} clients (pairs)",
                    self.args.concurrency
                ),
                ours: fmt(booking),
                peer: fmt(booking_pg),
                ratio: ratio(booking, booking_pg),
                target: "≥ 4× PostgreSQL".into(),
            });
        }
        if self.wanted.has("telemetry") {
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
    }

    /// The inventory and booking loads again on stores with history, next to empty ones
    /// (once, after the rounds).
    async fn history(&self, figures: &mut Figures) {
        let entries = self.args.prefill;
        // PostgreSQL's bytes for the same rows, measured here; the figure without it.
        let bookings = entries / 10;
        let requests = (entries / 500).max(10_000);
        // `target` leads the cell: the target where it names one.
        let mut peer =
            |what: &str, target: &str, measured: Option<Result<f64, String>>| match measured {
                Some(Ok(bytes)) => format!("{target}PostgreSQL, same run: {bytes:.0} B"),
                Some(Err(e)) => {
                    figures.errors.push(format!("postgres {what} size: {e}"));
                    format!("{target}PostgreSQL: failed")
                }
                None => format!("{target}PostgreSQL: not run"),
            };
        let pg_per_entry = peer(
            "ledger",
            "≤ 100 B; ",
            self.pg.map(|pg| pg.ledger_bytes_per_row(entries.max(1))),
        );
        let pg_per_booking = peer(
            "booking",
            "",
            self.pg.map(|pg| pg.booking_bytes_per_row(bookings.max(1))),
        );
        let pg_per_request = peer(
            "idempotency",
            "",
            self.pg.map(|pg| pg.idempotency_bytes_per_row(requests)),
        );
        // A service's resident memory is read from this process, whose allocator keeps
        // what earlier phases used: `history-booking` alone measures booking's unmixed.
        if self.wanted.has("history") || self.wanted.has("history-inventory") {
            eprintln!("history: inventory, empty then with {entries} ledger entries");
            self.inventory_history(figures, &pg_per_entry, &pg_per_request)
                .await;
        }
        if self.wanted.has("history") || self.wanted.has("history-booking") {
            eprintln!("history: booking, empty then with {bookings} bookings");
            self.booking_history(figures, &pg_per_booking, &pg_per_request)
                .await;
        }
    }

    async fn inventory_history(&self, figures: &mut Figures, per_entry: &str, per_request: &str) {
        let (connections, build, entries) = (self.args.connections, self.build, self.args.prefill);
        match scenarios::inventory_history(self.spec, connections, build, entries).await {
            Ok(run) => history_report::history_rows(
                figures,
                "inventory",
                "ledger entries",
                "ListStock",
                ("ledger entry", per_entry),
                per_request,
                &run,
            ),
            Err(e) => figures.errors.push(format!("inventory history: {e}")),
        }
    }

    async fn booking_history(&self, figures: &mut Figures, per_booking: &str, per_request: &str) {
        let (connections, build) = (self.args.connections, self.build);
        let bookings = self.args.prefill / 10;
        match scenarios::booking_history(self.spec, connections, build, bookings).await {
            Ok(run) => history_report::history_rows(
                figures,
                "booking",
                "bookings",
                "ListBookings",
                ("booking", per_booking),
                per_request,
                &run,
            ),
            Err(e) => figures.errors.push(format!("booking history: {e}")),
        }
    }

    /// QueryReadings over days of history (once, after the rounds).
    async fn query(&self, figures: &mut Figures) {
        match scenarios::telemetry_query(self.spec, self.args.query_days, self.build).await {
            Ok(run) => {
                figures.record_errors("query", &run.load);
                figures.rows.push(Row {
                figure: format!("telemetry: QueryReadings of {} days in 1 h buckets ({} readings, {} buckets)", self.args.query_days, run.readings, run.buckets),
                ours: format!("{} (p50 {:.2} ms)", rate(run.load.ok_per_second()), run.load.latency_ms(0.5)),
                peer: "–".into(),
                ratio: "–".into(),
                target: "reads chunk summaries".into(),
            });
            }
            Err(e) => figures.errors.push(format!("query: {e}")),
        }
    }
}

/// The console's 30-day sensor page: p50 and p99 against the 300 ms.
async fn console_page(spec: &LoadSpec, figures: &mut Figures) {
    match console::sensor_page(spec).await {
        Ok(run) => {
            if run.failures > 0 || run.pages == 0 {
                figures.errors.push(format!(
                    "console: {} of {} sensor pages failed",
                    run.failures, run.pages
                ));
            }
            figures.rows.push(Row {
                figure: format!(
                    "console: sensor page, 30-day window ({} readings), one request at a time",
                    run.readings
                ),
                ours: format!(
                    "p50 {:.1} ms, p99 {:.1} ms ({} pages)",
                    run.latency_ms(0.5),
                    run.latency_ms(0.99),
                    run.pages
                ),
                peer: "–".into(),
                ratio: "–".into(),
                target: format!("≤ {} ms", console::TARGET_MS),
            });
        }
        Err(e) => figures.errors.push(format!("console: {e}")),
    }
}

/// The idle dev network: time to healthy and resident memory.
async fn idle_network(figures: &mut Figures) {
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
