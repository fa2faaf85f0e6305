//! The run: start the processes, inject the schedule's faults under the workload, settle,
//! observe, check, report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use coldchain_command::say;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::{ClientOptions, lazy_channel};
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, TemperatureClass};
use tokio::sync::watch;

use crate::call::{Recorder, request};
use crate::cluster::Cluster;
use crate::model::TransferState;
use crate::observe;
use crate::report::Report;
use crate::schedule::{self, Step};
use crate::workload::{SiteClients, Workload, receive};

/// The sites of a run without `--sites`: the hub and two warehouses, ten processes with
/// the gateway, which fit a machine of two cores.
pub const DEFAULT_SITES: &str = "cn-huaihua-park,la-vientiane,vn-hanoi";

#[derive(Args)]
pub struct SoakArgs {
    /// The seed of the fault schedule and the clients' choices [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// How long the workload runs under faults, e.g. 2m.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    duration: Duration,
    /// The sites to run (comma-separated ids of the network file).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_SITES)]
    sites: Vec<String>,
    /// The network file the sites come from.
    #[arg(long, value_name = "FILE", default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
    /// The bound on the time the network gets to settle after the faults stop.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    settle: Duration,
    /// Run no faults (a baseline for the same workload).
    #[arg(long)]
    no_faults: bool,
    /// Keep the run's directory (data, logs, keyring) and say where it is.
    #[arg(long)]
    keep: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
}

/// The shipper the soak books for (a customer of every keyring).
const CUSTOMER: &str = "bench-shipper";

/// Runs `coldchain soak`; `exe` is the `coldchain` binary to start the servers from.
///
/// SIGINT or SIGTERM ends the run: dropping it kills every server it started (their
/// children are killed on drop) and removes its directory.
pub async fn run(args: SoakArgs, exe: PathBuf) -> ExitCode {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(error) => {
                eprintln!("soak: cannot watch for SIGTERM: {error}");
                return ExitCode::from(1);
            }
        };
    let interrupted = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::select! {
        outcome = soak(args, exe) => match outcome {
            Ok(code) => code,
            Err(problem) => {
                eprintln!("soak: {problem}");
                ExitCode::from(1)
            }
        },
        () = interrupted => {
            eprintln!("soak: interrupted; the servers are stopped");
            ExitCode::from(130)
        }
    }
}

async fn soak(args: SoakArgs, exe: PathBuf) -> Result<ExitCode, String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let shipped = std::fs::read_to_string(&args.network)
        .map_err(|e| format!("{}: {e}", args.network.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("coldchain-soak-")
        .tempdir()
        .map_err(|e| format!("cannot make the run's directory: {e}"))?;
    let mut cluster = Cluster::prepare(dir.path(), exe, &shipped, &args.sites)?;
    let faults = if args.no_faults {
        Vec::new()
    } else {
        schedule::draw(seed, args.duration, &cluster.names())
    };
    let progress = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            say!("{line}");
        }
    };
    progress(format!(
        "soak: seed {seed} (replay: coldchain soak --seed {seed} --duration {}s --sites {})",
        args.duration.as_secs(),
        args.sites.join(",")
    ));
    progress(format!(
        "soak: {} processes in {}",
        cluster.names().len(),
        dir.path().display()
    ));
    progress(format!("soak: schedule of {} faults:", faults.len()));
    for fault in &faults {
        progress(format!("  {fault}"));
    }
    cluster.start_all(Duration::from_secs(60)).await?;
    let workload = clients(&cluster, seed)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (watch_stop_tx, watch_stop_rx) = watch::channel(false);
    let mut workers = Vec::new();
    for site in 0..workload.sites.len() {
        let w = workload.clone();
        workers.push(tokio::spawn(w.movements(
            site,
            100 + site as u64,
            stop_rx.clone(),
        )));
        let w = workload.clone();
        workers.push(tokio::spawn(w.readings(
            site,
            200 + site as u64,
            stop_rx.clone(),
        )));
    }
    for k in 0..2 {
        let w = workload.clone();
        workers.push(tokio::spawn(w.transfers(300 + k, stop_rx.clone())));
        let w = workload.clone();
        workers.push(tokio::spawn(w.bookings(400 + k, stop_rx.clone())));
    }
    let watcher = tokio::spawn(workload.clone().watch_alarms(watch_stop_rx));

    // Faults, on the schedule's clock, and a watch for processes exiting on their own.
    let started = Instant::now();
    let mut injected = 0u32;
    let mut unexpected = Vec::new();
    for (at, step) in schedule::steps(&faults) {
        while started.elapsed() < at {
            unexpected.extend(cluster.reap_unexpected());
            // The clock moves between the check and here: saturate, never underflow.
            let left = at.saturating_sub(started.elapsed());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
        unexpected.extend(cluster.reap_unexpected());
        let done = match &step {
            Step::Kill(name) => {
                injected += 1;
                cluster.kill(name).await
            }
            Step::Restart(name) => cluster.restart(name),
            Step::Stop(name) => {
                injected += 1;
                cluster.signal_pause(name, true).await
            }
            Step::Continue(name) => cluster.signal_pause(name, false).await,
        };
        done?;
    }
    while started.elapsed() < args.duration {
        unexpected.extend(cluster.reap_unexpected());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Settle: no more faults or new work; calls in flight retry until the bound.
    let _ = stop_tx.send(true);
    let settle_start = Instant::now();
    let settle_deadline = settle_start + args.settle;
    workload.recorder.give_up_at(settle_deadline);
    cluster.heal().await?;
    progress(format!(
        "soak: workload stopped after {} s; {injected} faults injected; settling (at most {} s)",
        started.elapsed().as_secs(),
        args.settle.as_secs()
    ));
    let healthy = cluster.wait_healthy(args.settle).await;
    for worker in workers {
        let _ = worker.await;
    }
    let settled = settle(&workload, settle_deadline).await;
    // The watcher catches up with every site's feed, within the bound.
    let caught_up = catch_up(&workload, settle_deadline).await;
    let settle_time = settle_start.elapsed();
    let _ = watch_stop_tx.send(true);
    let _ = watcher.await;
    unexpected.extend(cluster.reap_unexpected());
    healthy?;
    let readings_to = Utc::now().timestamp_millis() + 60_000;
    let observed = observe::observe(&workload, &cluster.network, readings_to).await?;
    unexpected.extend(cluster.reap_unexpected());
    workload
        .recorder
        .record(|h| h.unexpected_exits.extend(unexpected));
    let history = workload
        .recorder
        .history
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let violations = crate::checker::check(&history, &observed);
    let report = Report::new(
        seed,
        &args.sites,
        args.duration,
        &faults,
        injected,
        cluster.restarts(),
        workload.recorder.stats.counts(),
        &history,
        &observed,
        settle_time,
        settled.and(caught_up).err(),
        violations,
    );
    cluster.stop_all().await;
    if args.keep {
        let kept = dir.keep();
        progress(format!("soak: kept {}", kept.display()));
    }
    report.print(args.json);
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The clients of every site and of the gateway, each calling as its role.
fn clients(cluster: &Cluster, seed: u64) -> Result<Workload, String> {
    let net: &NetworkConfig = &cluster.network;
    let options = |id: &str| -> Result<ClientOptions, String> {
        Ok(ClientOptions {
            key: Some(cluster.keyring.key(id)?),
            ..ClientOptions::default()
        })
    };
    let channel = |endpoint: &str, id: &str| {
        lazy_channel(endpoint, &options(id)?).map_err(|e| format!("{endpoint}: {e}"))
    };
    let ops = coldchain_credentials::OPERATIONS;
    let mut sites = Vec::new();
    for site in &net.sites {
        let endpoint = |kind| site.endpoint(kind).unwrap_or_default();
        let zone_of = |class| {
            site.zones_of_class(class)
                .next()
                .map(|z| z.id.clone())
                .ok_or_else(|| format!("site {} has no {class:?} zone", site.id))
        };
        let booking_zone = site
            .zones
            .iter()
            .min_by_key(|z| z.capacity_pallets)
            .map(|z| z.id.clone())
            .ok_or_else(|| format!("site {} has no zone", site.id))?;
        let inventory = endpoint(ServiceKind::Inventory);
        let telemetry = endpoint(ServiceKind::Telemetry);
        let booking = endpoint(ServiceKind::Booking);
        sites.push(SiteClients {
            id: site.id.clone(),
            inventory: InventoryServiceClient::new(channel(
                &inventory,
                &coldchain_credentials::warehouse(&site.id),
            )?),
            telemetry_ops: TelemetryServiceClient::new(channel(&telemetry, ops)?),
            telemetry_sensors: TelemetryServiceClient::new(channel(
                &telemetry,
                &coldchain_credentials::sensors(&site.id),
            )?),
            booking: BookingServiceClient::new(channel(
                &booking,
                &coldchain_credentials::customer(CUSTOMER),
            )?),
            booking_ops: BookingServiceClient::new(channel(&booking, ops)?),
            zones: [
                ("frozen", zone_of(TemperatureClass::Frozen)?),
                ("ambient", zone_of(TemperatureClass::Ambient)?),
            ]
            .into(),
            chilled_zone: zone_of(TemperatureClass::Chilled)?,
            booking_zone,
            sensor: format!("soak-{}-chilled", site.id),
        });
    }
    // Days every site has ahead of it in its own time zone.
    let today = Utc::now().date_naive();
    let first = today + chrono::Days::new(10);
    let run = format!("s{seed:x}-{}", Utc::now().format("%H%M%S"));
    Ok(Workload {
        sites,
        gateway: NetworkServiceClient::new(channel(&net.gateway_endpoint(), ops)?),
        customer: CUSTOMER.into(),
        booking_days: (first, first + chrono::Days::new(20)),
        run,
        seed,
        recorder: Recorder::new(),
        lots: Default::default(),
        readings_from_ms: Utc::now().timestamp_millis() - 6 * 86_400_000,
    })
}

/// Drives every transfer to a terminal state (receiving the ones on their way, as their
/// destinations would) and waits for every excursion's hold, until `deadline`.
async fn settle(workload: &Workload, deadline: Instant) -> Result<(), String> {
    loop {
        let transfers = observe::transfers(workload).await;
        let open: Vec<_> = match &transfers {
            Ok(all) => all
                .iter()
                .filter(|t| !matches!(t.state, TransferState::Completed | TransferState::Failed))
                .collect(),
            Err(_) => Vec::new(),
        };
        for transfer in &open {
            if transfer.state == TransferState::InTransit {
                receive(&workload.recorder, &workload.gateway, &transfer.transfer_id).await;
            }
        }
        let pending_holds = pending_holds(workload).await;
        if transfers.is_ok() && open.is_empty() && pending_holds == Some(0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not settled: {} transfers short of terminal, {} holds pending{}",
                open.len(),
                pending_holds.map_or("?".into(), |n| n.to_string()),
                transfers
                    .err()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Excursion alarms whose hold is still pending, across the network (None: unreadable).
async fn pending_holds(workload: &Workload) -> Option<usize> {
    let pending = coldchain_proto::telemetry::v1::HoldStatus::Pending as i32;
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let message = network::ListAlarmsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let answer = workload
            .gateway
            .clone()
            .list_alarms(request(message))
            .await
            .ok()?
            .into_inner();
        if !answer.failures.is_empty() {
            return None;
        }
        count += answer
            .alarms
            .iter()
            .filter(|a| a.hold_status == pending)
            .count();
        if answer.next_page_token.is_empty() {
            return Some(count);
        }
        page_token = answer.next_page_token;
    }
}

/// Waits until the WatchAlarms consumer has received every site's feed up to its head.
async fn catch_up(workload: &Workload, deadline: Instant) -> Result<(), String> {
    loop {
        let heads = observe::alarm_heads(workload).await;
        let received: BTreeMap<String, u64> = workload
            .recorder
            .history
            .lock()
            .map(|h| {
                h.watched
                    .iter()
                    .map(|(site, events)| {
                        (
                            site.clone(),
                            events.iter().map(|e| e.sequence).max().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(heads) = &heads {
            let behind: Vec<String> = heads
                .iter()
                .filter(|(site, head)| received.get(*site).copied().unwrap_or(0) < **head)
                .map(|(site, head)| format!("{site} at {head}"))
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the alarm watcher is behind: {}",
                    behind.join(", ")
                ));
            }
        } else if Instant::now() >= deadline {
            return Err(heads.err().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
