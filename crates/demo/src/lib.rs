#![forbid(unsafe_code)]
//! `coldchain demo`: a realistic day on a running network (`coldchain dev` or compose).
//!
//! 1. The gateway lists the network and its health.
//! 2. A warehouse system starts following Vientiane's ledger (`WatchLedger`).
//! 3. The park receives Hunan produce — Mayang navel oranges, Xiangxi kiwifruit — and
//!    processed goods (frozen citrus segments, dried rice noodles) into its zones.
//! 4. A China–Laos express train carries chilled and frozen lots from the park to Vientiane:
//!    a gateway transfer with the reefer's sensor bound to it (by the gateway, at the
//!    source's telemetry).
//! 5. The reefer streams readings live to the park's telemetry while the train has
//!    coverage; its logger buffers through northern Laos, where a door opened at the border.
//! 6. The train arrives: `ReceiveTransfer` at Vientiane. The logger uploads its buffer
//!    (`PushReadings`); the excursion raises an alarm that holds the transfer's lots
//!    (waited for with a bounded timeout), QA acknowledges it, and the lots' stock is
//!    checked at both ends.
//! 7. Vientiane's bananas: a forwarder holds and confirms cool space, and the receipt citing
//!    the booking checks it in.
//! 8. Booking clients across sites: a shipper finds chilled space with the gateway, holds
//!    and confirms it; an e-commerce seller holds frozen space and cancels it.
//! 9. The ledger follower's figures, and the network's active alarms.
//!
//! Each call is made as the role that makes it in real life, with that role's key from the
//! keyring (`$COLDCHAIN_KEYRING`, else the dev keyring under the data directory): the
//! sites' warehouse systems record receipts, read stock and follow the ledger; the park's
//! sensor gateway sends the reefer's readings; each customer's booking client holds,
//! confirms, reads or cancels its own bookings (and the shipper finds space through the
//! gateway); operations runs the transfer, lists and acknowledges alarms.
//!
//! Every id the demo creates carries the run id (derived from the time, or `--run-id`), and
//! every mutating call has a request id derived from it: a new run adds a new day, a rerun
//! with the same `--run-id` replays idempotently. [`drive`] returns a [`DemoOutcome`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::Args;
use coldchain_command::say;
use coldchain_credentials::{self as credentials, OPERATIONS};
use coldchain_ops::call;
use coldchain_ops::format::{self, thousands};
use coldchain_ops::{CliError, connect_as, unary};
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig, TemperatureClass};
use serde::Serialize;
use tokio::sync::watch;

/// The park: the hub, where the produce is received.
pub const PARK: &str = "cn-huaihua-park";
/// Vientiane: the China–Laos railway terminal.
pub const VIENTIANE: &str = "la-vientiane";
/// The train of the demo's transfer.
pub const TRAIN: &str = "China-Laos express X8011";
/// The forwarder that books cool space at Vientiane for bananas.
pub const FORWARDER: &str = "lao-banana-forwarding";
/// The shipper that finds chilled space through the gateway.
pub const SHIPPER: &str = "hunan-citrus-export";
/// The e-commerce seller that holds frozen space and cancels it.
pub const SELLER: &str = "ecom-seller-frozen-dumplings";

#[derive(Args)]
pub struct DemoArgs {
    /// The gateway [default: the network file's gateway].
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// The network file (site endpoints and time zones).
    #[arg(long, value_name = "FILE", default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
    /// Print the outcome as one JSON document instead of the narrative.
    #[arg(long)]
    json: bool,
    /// The run id suffixed to every id the demo creates [default: from the time]; give a
    /// previous run's id to replay it idempotently.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// How long to wait for asynchronous effects (the excursion's hold, the ledger
    /// follower), e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
}

/// What the demo needs to run.
pub struct DemoConfig {
    /// The gateway endpoint.
    pub gateway: String,
    /// The network (site endpoints, zones, time zones).
    pub network: NetworkConfig,
    /// The run id.
    pub run_id: String,
    /// The bound on every wait for an asynchronous effect.
    pub wait: Duration,
}

/// One lot received.
#[derive(Debug, Clone, Serialize)]
pub struct LotOutcome {
    pub site_id: String,
    pub sku: String,
    pub lot_id: String,
    pub zone_id: String,
    pub quantity: i64,
    pub unit: String,
    pub expiry: String,
    pub origin: String,
    pub sequence: u64,
}

/// One transfer line and the stock of its lot at both ends afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct TransferLineOutcome {
    pub sku: String,
    pub lot_id: String,
    pub source_zone_id: String,
    pub destination_zone_id: String,
    pub quantity: i64,
    pub unit: String,
    /// The lot's on-hand quantity at the source after the transfer.
    pub source_on_hand: i64,
    /// The lot's on-hand quantity at the destination after the transfer.
    pub destination_on_hand: i64,
    /// The part of it under a hold at the destination.
    pub destination_held: i64,
}

/// The corridor transfer.
#[derive(Debug, Clone, Serialize)]
pub struct TransferOutcome {
    pub transfer_id: String,
    pub source_site_id: String,
    pub destination_site_id: String,
    pub train_or_route: String,
    pub reefer_container_id: String,
    pub reefer_sensor_id: String,
    /// The state StartTransfer answered.
    pub state_after_start: String,
    /// The final state.
    pub state: String,
    pub last_error: String,
    pub lines: Vec<TransferLineOutcome>,
}

/// The reefer's readings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadingsOutcome {
    pub site_id: String,
    pub sensor_id: String,
    pub sent: i64,
    /// Streamed live (StreamReadings) during the journey.
    pub streamed_live: i64,
    /// Buffered by the logger and uploaded on arrival (PushReadings).
    pub uploaded_on_arrival: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub rejected: i64,
    pub min_celsius: f64,
    pub max_celsius: f64,
    /// True when the demo had to register the sensor itself (the gateway had not).
    pub registered_by_demo: bool,
}

/// The excursion alarm.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmOutcome {
    pub site_id: String,
    pub alarm_id: String,
    pub kind: String,
    pub state: String,
    pub limit_celsius: f64,
    pub peak_celsius: f64,
    pub degree_minutes: f64,
    pub duration_ms: Option<i64>,
    pub hold_status: String,
    pub hold_ids: Vec<String>,
    pub hold_last_error: String,
    pub acknowledged_by: String,
    /// Milliseconds from the upload of the excursion's readings until the hold was seen
    /// PLACED.
    pub hold_placed_after_ms: Option<u64>,
}

/// A booking made by the demo.
#[derive(Debug, Clone, Serialize)]
pub struct BookingOutcome {
    /// Who made it and why.
    pub role: String,
    pub site_id: String,
    pub booking_id: String,
    pub customer_id: String,
    pub zone_id: String,
    pub temperature_class: String,
    pub pallets: i32,
    pub first_day: String,
    pub last_day: String,
    /// The states it went through, in order.
    pub states: Vec<String>,
    /// Its final state.
    pub state: String,
}

/// A sku's stock across the network (gateway FindStock).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StockOutcome {
    pub sku: String,
    pub unit: String,
    pub park_on_hand: i64,
    pub vientiane_on_hand: i64,
    pub vientiane_held: i64,
    pub in_transit: i64,
    pub sites_answered: usize,
    pub site_failures: Vec<String>,
}

/// What the warehouse system following Vientiane's ledger saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerOutcome {
    pub site_id: String,
    pub from_sequence: u64,
    /// The ledger's head when the follower caught up, before the day began.
    pub head_at_start: u64,
    /// Every entry read, history included.
    pub entries_read: u64,
    /// Entries recorded after the follower caught up (live).
    pub entries_seen: u64,
    /// Entries about this run's lots or transfer.
    pub run_entries: u64,
    pub transfer_in_entries: u64,
    pub receipt_entries: u64,
    pub hold_entries: u64,
    pub last_sequence: u64,
    pub reconnects: u64,
    pub error: Option<String>,
    pub timed_out: bool,
}

/// Everything the demo did, with figures.
#[derive(Debug, Clone, Serialize)]
pub struct DemoOutcome {
    pub run_id: String,
    pub gateway: String,
    pub sites: usize,
    pub services_serving: usize,
    pub services_total: usize,
    pub received_lots: Vec<LotOutcome>,
    pub transfer: TransferOutcome,
    pub transfer_state: String,
    pub readings: ReadingsOutcome,
    pub alarm: Option<AlarmOutcome>,
    pub hold_placed: bool,
    pub bookings: Vec<BookingOutcome>,
    pub bookings_held: usize,
    pub bookings_confirmed: usize,
    pub bookings_cancelled: usize,
    pub bookings_checked_in: usize,
    pub stock: StockOutcome,
    pub ledger: LedgerOutcome,
    pub ledger_entries_seen: u64,
    pub active_alarms: usize,
    pub warnings: Vec<String>,
    pub elapsed_ms: u64,
}

/// A failed step.
#[derive(Debug)]
pub struct DemoError {
    /// The step, e.g. `park receipts`.
    pub step: String,
    /// What went wrong.
    pub error: CliError,
}

fn step_err(step: &str) -> impl Fn(tonic::Status) -> DemoError + '_ {
    move |status| DemoError {
        step: step.to_string(),
        error: status.into(),
    }
}

fn usage(step: &str, message: String) -> DemoError {
    DemoError {
        step: step.to_string(),
        error: CliError::Usage(message),
    }
}

fn failed(step: &str, message: String) -> DemoError {
    DemoError {
        step: step.to_string(),
        error: CliError::Failed(message),
    }
}

/// Runs `coldchain demo`.
pub async fn run(args: DemoArgs) -> ExitCode {
    let network = match coldchain_ops::load_network(&args.network) {
        Ok(network) => network,
        Err(error) => return error.report(),
    };
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| Utc::now().format(RUN_ID_FORMAT).to_string());
    if !valid_run_id(&run_id) {
        return CliError::Usage(format!(
            "--run-id {run_id:?}: use 1 to 40 characters of A-Z a-z 0-9 . _ : -"
        ))
        .report();
    }
    let config = DemoConfig {
        gateway: args
            .gateway
            .clone()
            .unwrap_or_else(|| network.gateway_endpoint()),
        network,
        run_id,
        wait: args.wait,
    };
    match drive(&config).await {
        Ok(outcome) => {
            if args.json {
                match serde_json::to_value(&outcome) {
                    Ok(value) => coldchain_ops::print_json(&value),
                    Err(e) => {
                        eprintln!("error: cannot encode the outcome: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                for line in narrative(&outcome) {
                    say!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let code = failure.error.report();
            eprintln!("  during the demo step: {}", failure.step);
            eprintln!(
                "  (a rerun with --run-id {} resumes it idempotently)",
                config.run_id
            );
            code
        }
    }
}

/// A run id fit to be suffixed to every id the demo creates.
pub fn valid_run_id(run_id: &str) -> bool {
    (1..=40).contains(&run_id.len())
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// Progress on stderr.
struct Progress {
    started: Instant,
}

impl Progress {
    fn say(&self, message: &str) {
        eprintln!(
            "[demo {:>5.1}s] {message}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// A channel to `endpoint` calling as the credential `id` (see [`coldchain_ops::connect_as`]).
fn channel_as(endpoint: &str, id: &str) -> Result<Channel, DemoError> {
    connect_as(endpoint, id).map_err(|error| DemoError {
        step: "connecting".into(),
        error,
    })
}

/// The clients of one site, each calling as the role that does that work in real life.
struct SiteClients {
    site: SiteConfig,
    /// The site's warehouse system: receipts, stock, the ledger.
    inventory: InventoryServiceClient<Channel>,
    /// The site's sensor gateway: it only sends readings.
    sensors: TelemetryServiceClient<Channel>,
    /// Operations (QA): alarms and sensor registration.
    telemetry: TelemetryServiceClient<Channel>,
    /// The booking service, reached as each customer's booking client ([`Self::booking`]).
    booking_endpoint: String,
}

impl SiteClients {
    /// The booking service as `customer`'s booking client: a booking client books, sees
    /// and cancels only its own customer's bookings.
    fn booking(&self, customer: &str) -> Result<BookingServiceClient<Channel>, DemoError> {
        Ok(BookingServiceClient::new(channel_as(
            &self.booking_endpoint,
            &credentials::customer(customer),
        )?))
    }
}

fn site_clients(network: &NetworkConfig, site_id: &str) -> Result<SiteClients, DemoError> {
    let step = "connecting";
    let site = network
        .site(site_id)
        .ok_or_else(|| usage(step, format!("the network file has no site {site_id:?}")))?
        .clone();
    let endpoint = |kind| {
        site.endpoint(kind)
            .ok_or_else(|| usage(step, format!("site {site_id} has no {kind} endpoint")))
    };
    let telemetry = endpoint(ServiceKind::Telemetry)?;
    Ok(SiteClients {
        inventory: InventoryServiceClient::new(channel_as(
            &endpoint(ServiceKind::Inventory)?,
            &credentials::warehouse(site_id),
        )?),
        sensors: TelemetryServiceClient::new(channel_as(
            &telemetry,
            &credentials::sensors(site_id),
        )?),
        telemetry: TelemetryServiceClient::new(channel_as(&telemetry, OPERATIONS)?),
        booking_endpoint: endpoint(ServiceKind::Booking)?,
        site,
    })
}

fn zone_of(site: &SiteConfig, class: TemperatureClass) -> Result<String, DemoError> {
    site.zones_of_class(class)
        .next()
        .map(|z| z.id.clone())
        .ok_or_else(|| usage("planning", format!("site {} has no {class} zone", site.id)))
}

/// The format of a run id derived from the time (UTC), e.g. `20261128-165445-456`.
pub const RUN_ID_FORMAT: &str = "%Y%m%d-%H%M%S-%3f";

/// The instant a run is anchored at: the time in a time-derived run id (so a rerun with the
/// same id sends the very same requests and replays), else now.
pub fn run_anchor(run_id: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(run_id, RUN_ID_FORMAT)
        .map(|naive| naive.and_utc())
        .unwrap_or_else(|_| Utc::now())
}

/// The site-local date at `site` at the instant `at`.
fn local_day(site: &SiteConfig, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&site.time_zone).date_naive()
}

fn plus_days(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(chrono::Days::new(days)).unwrap_or(day)
}

/// Drives the day; see the module documentation.
pub async fn drive(config: &DemoConfig) -> Result<DemoOutcome, DemoError> {
    let progress = Progress {
        started: Instant::now(),
    };
    let run = config.run_id.as_str();
    let anchor = run_anchor(run);
    let rid = |what: &str| format!("demo-{run}-{what}");
    let mut warnings: Vec<String> = Vec::new();

    // ---------------------------------------------------------------- 1. the network
    // Operations runs the corridor through the gateway.
    let gateway = NetworkServiceClient::new(channel_as(&config.gateway, OPERATIONS)?);
    let park = site_clients(&config.network, PARK)?;
    let vte = site_clients(&config.network, VIENTIANE)?;
    progress.say(&format!(
        "run {run}: asking the gateway {} for the network",
        config.gateway
    ));
    let sites = coldchain_ops::gateway_list_sites(&gateway, Vec::new())
        .await
        .map_err(|error| DemoError {
            step: "list sites".into(),
            error,
        })?;
    let services_total: usize = sites.iter().map(|s| s.endpoints.len()).sum();
    let services_serving = sites
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.health == network::EndpointHealth::Serving as i32)
        .count();
    progress.say(&format!(
        "{} sites, {services_serving}/{services_total} services serving",
        sites.len()
    ));

    // ---------------------------------------------------------------- 2. the ledger follower
    let transfer_id = format!("x8011-{run}");
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let follower = tokio::spawn(follow_ledger(
        vte.inventory.clone(),
        run.to_string(),
        2,
        stop_rx,
        ready_tx,
        Instant::now() + config.wait * 4 + Duration::from_secs(600),
    ));
    let caught_up = tokio::time::timeout(config.wait.min(Duration::from_secs(10)), async {
        while !*ready_rx.borrow_and_update() {
            if ready_rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    if caught_up.is_err() {
        warnings.push("the ledger follower did not catch up before the day began".into());
    }
    progress.say("a warehouse system follows Vientiane's ledger");

    // ---------------------------------------------------------------- 3. park receipts
    let step = "park receipts";
    let park_today = local_day(&park.site, anchor);
    let chilled = zone_of(&park.site, TemperatureClass::Chilled)?;
    let frozen = zone_of(&park.site, TemperatureClass::Frozen)?;
    let ambient = zone_of(&park.site, TemperatureClass::Ambient)?;
    let lots = [
        (
            "citrus-navel-mayang",
            format!("mayang-navel-{run}"),
            chilled.clone(),
            12_000,
            "kg",
            40,
            "Mayang Miao Autonomous County, Huaihua, Hunan",
        ),
        (
            "kiwifruit-xiangxi",
            format!("xiangxi-kiwi-{run}"),
            chilled.clone(),
            6_000,
            "kg",
            60,
            "Fenghuang, Xiangxi, Hunan",
        ),
        (
            "citrus-segments-frozen",
            format!("segments-{run}"),
            frozen.clone(),
            4_000,
            "kg",
            365,
            "park processing line 2 (Mayang navel)",
        ),
        (
            "rice-noodles-dried",
            format!("noodles-{run}"),
            ambient.clone(),
            800,
            "case",
            270,
            "park processing line 1",
        ),
    ];
    let movements: Vec<inventory::Movement> = lots
        .iter()
        .map(
            |(sku, lot, zone, qty, unit, shelf_days, origin)| inventory::Movement {
                kind: inventory::MovementKind::Receipt as i32,
                sku: sku.to_string(),
                lot: Some(inventory::LotInfo {
                    lot_id: lot.clone(),
                    expiry: Some(format::to_date(plus_days(park_today, *shelf_days))),
                    production: Some(format::to_date(park_today.pred_opt().unwrap_or(park_today))),
                    origin: origin.to_string(),
                }),
                zone_id: zone.clone(),
                quantity: *qty,
                unit: unit.to_string(),
                reason: "inbound from Hunan growers and the park's processing lines".into(),
                reference: Some(common::Reference {
                    kind: common::ReferenceKind::Document as i32,
                    id: format!("grn-{run}"),
                }),
                ..Default::default()
            },
        )
        .collect();
    let request = inventory::RecordMovementsRequest {
        request_id: rid("park-receipts"),
        movements,
    };
    // The park's warehouse system records what its docks received.
    let answer = call!(park.inventory, record_movements, request).map_err(step_err(step))?;
    let mut received_lots: Vec<LotOutcome> = lots
        .iter()
        .zip(
            answer
                .entries
                .iter()
                .map(|e| e.sequence)
                .chain(std::iter::repeat(0)),
        )
        .map(
            |((sku, lot, zone, qty, unit, shelf_days, origin), sequence)| LotOutcome {
                site_id: PARK.into(),
                sku: sku.to_string(),
                lot_id: lot.clone(),
                zone_id: zone.clone(),
                quantity: *qty,
                unit: unit.to_string(),
                expiry: plus_days(park_today, *shelf_days).to_string(),
                origin: origin.to_string(),
                sequence,
            },
        )
        .collect();
    progress.say(&format!(
        "the park received {} lots (ledger {}..{})",
        received_lots.len(),
        received_lots.first().map_or(0, |l| l.sequence),
        received_lots.last().map_or(0, |l| l.sequence)
    ));

    // ---------------------------------------------------------------- 4. the transfer
    let step = "start transfer";
    let vte_chilled = zone_of(&vte.site, TemperatureClass::Chilled)?;
    let vte_frozen = zone_of(&vte.site, TemperatureClass::Frozen)?;
    let sensor_id = format!("reefer-{run}");
    let container_id = format!("LCRU-{run}");
    let lines = vec![
        network::TransferLine {
            sku: "citrus-navel-mayang".into(),
            lot_id: format!("mayang-navel-{run}"),
            source_zone_id: chilled.clone(),
            destination_zone_id: vte_chilled.clone(),
            quantity: 3_000,
            unit: "kg".into(),
            lot: None,
        },
        network::TransferLine {
            sku: "citrus-segments-frozen".into(),
            lot_id: format!("segments-{run}"),
            source_zone_id: frozen.clone(),
            destination_zone_id: vte_frozen.clone(),
            quantity: 1_000,
            unit: "kg".into(),
            lot: None,
        },
    ];
    let request = network::StartTransferRequest {
        request_id: rid("transfer-start"),
        transfer_id: transfer_id.clone(),
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        lines: lines.clone(),
        reefer_sensor_id: sensor_id.clone(),
        reefer_container_id: container_id.clone(),
        reefer_temperature_class: common::TemperatureClass::Chilled as i32,
        train_or_route: TRAIN.into(),
    };
    let started = call!(gateway, start_transfer, request).map_err(step_err(step))?;
    let state_after_start = format::transfer_state_name(started.state);
    progress.say(&format!(
        "{TRAIN} leaves with transfer {transfer_id}: {state_after_start}"
    ));
    let mut transfer = started;
    if transfer.state == network::TransferState::Requested as i32 {
        transfer = wait_transfer(
            &gateway,
            &transfer_id,
            &[
                network::TransferState::InTransit,
                network::TransferState::Failed,
            ],
            config.wait,
        )
        .await
        .map_err(step_err(step))?;
        if transfer.state != network::TransferState::InTransit as i32 {
            warnings.push(format!(
                "transfer {transfer_id} is {} after waiting: {}",
                format::transfer_state_name(transfer.state),
                transfer.last_error
            ));
        }
    }

    // ---------------------------------------------------------------- 5. the journey
    // The reefer streams live while the train has coverage; through the tunnels and
    // mountains of northern Laos its logger buffers (the door opened at the border then),
    // and it uploads the buffer on arrival.
    let step = "reefer readings";
    let journey = journey(&sensor_id, anchor);
    let (live, buffered) = journey.split_at(LIVE_READINGS.min(journey.len()));
    let mut readings = ReadingsOutcome {
        site_id: PARK.into(),
        sensor_id: sensor_id.clone(),
        sent: journey.len() as i64,
        streamed_live: live.len() as i64,
        uploaded_on_arrival: buffered.len() as i64,
        min_celsius: journey
            .iter()
            .map(|r| r.celsius)
            .fold(f64::INFINITY, f64::min),
        max_celsius: journey
            .iter()
            .map(|r| r.celsius)
            .fold(f64::NEG_INFINITY, f64::max),
        ..ReadingsOutcome::default()
    };
    let reefer = telemetry::ReeferBinding {
        container_id: container_id.clone(),
        train_or_route: TRAIN.into(),
        transfer_id: transfer_id.clone(),
        temperature_class: common::TemperatureClass::Chilled as i32,
    };
    stream_live(&park, &sensor_id, &reefer, live, config.wait, &mut readings)
        .await
        .map_err(step_err(step))?;
    if readings.registered_by_demo {
        warnings.push(format!(
            "the reefer sensor {sensor_id} was not registered at {PARK} by the transfer; the demo registered it"
        ));
    }
    progress.say(&format!(
        "the reefer streamed {} live readings to {PARK} telemetry",
        live.len()
    ));

    // ---------------------------------------------------------------- 6. arrival
    let step = "receive transfer";
    if transfer.state == network::TransferState::InTransit as i32
        || transfer.state == network::TransferState::Receiving as i32
    {
        let request = network::ReceiveTransferRequest {
            request_id: rid("transfer-receive"),
            transfer_id: transfer_id.clone(),
        };
        transfer = call!(gateway, receive_transfer, request).map_err(step_err(step))?;
        if transfer.state == network::TransferState::Receiving as i32 {
            transfer = wait_transfer(
                &gateway,
                &transfer_id,
                &[network::TransferState::Completed],
                config.wait,
            )
            .await
            .map_err(step_err(step))?;
        }
    } else if transfer.state != network::TransferState::Completed as i32 {
        warnings.push(format!(
            "transfer {transfer_id} not received: it is {}",
            format::transfer_state_name(transfer.state)
        ));
    }
    let transfer_state = format::transfer_state_name(transfer.state);
    progress.say(&format!(
        "the train arrived at {VIENTIANE}: transfer {transfer_state}"
    ));

    let step = "reefer upload";
    let request = telemetry::PushReadingsRequest {
        request_id: rid("reefer-upload"),
        readings: buffered.to_vec(),
    };
    let summary = call!(park.sensors, push_readings, request).map_err(step_err(step))?;
    readings.accepted += summary.accepted;
    readings.duplicates += summary.duplicates;
    readings.rejected += summary.rejected;
    let uploaded = Instant::now();
    progress.say(&format!(
        "the reefer's logger uploaded {} buffered readings: {} accepted, {} duplicates, {} rejected in all",
        buffered.len(),
        readings.accepted,
        readings.duplicates,
        readings.rejected
    ));

    // The excursion's alarm and its hold on the transfer's lots (bounded wait).
    let step = "excursion alarm";
    let alarm = wait_alarm(&park.telemetry, &sensor_id, config.wait, |a| {
        a.hold_status == telemetry::HoldStatus::Placed as i32
            || a.hold_status == telemetry::HoldStatus::NotRequired as i32
    })
    .await
    .map_err(step_err(step))?;
    let hold_placed = alarm
        .as_ref()
        .is_some_and(|a| a.hold_status == telemetry::HoldStatus::Placed as i32);
    let hold_placed_after_ms = hold_placed.then(|| uploaded.elapsed().as_millis() as u64);
    match &alarm {
        None => warnings.push(format!(
            "no excursion alarm for {sensor_id} within {} s",
            config.wait.as_secs()
        )),
        Some(a) if hold_placed => progress.say(&format!(
            "alarm {} {}: hold placed ({})",
            a.alarm_id,
            format::alarm_kind_name(a.kind),
            a.hold_ids.join(", ")
        )),
        Some(a) => warnings.push(format!(
            "alarm {}: the excursion's hold is {} after {} s{}",
            a.alarm_id,
            format::hold_status_name(a.hold_status),
            config.wait.as_secs(),
            if a.hold_last_error.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.hold_last_error)
            }
        )),
    }

    // QA acknowledges the alarm.
    let mut alarm_outcome = None;
    if let Some(a) = &alarm {
        let step = "acknowledge alarm";
        let request = telemetry::AcknowledgeAlarmRequest {
            request_id: rid("ack"),
            alarm_id: a.alarm_id.clone(),
            acknowledged_by: "qa.duty@cn-huaihua-park".into(),
            note: "reefer door opened at the Mohan-Boten border inspection; lots held pending QA"
                .into(),
        };
        let acked = match call!(park.telemetry, acknowledge_alarm, request) {
            Ok(acked) => acked,
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                warnings.push(format!("alarm {} was already acknowledged", a.alarm_id));
                a.clone()
            }
            Err(status) => return Err(step_err(step)(status)),
        };
        progress.say(&format!(
            "QA acknowledged alarm {}: {}",
            acked.alarm_id,
            format::alarm_state_name(acked.state)
        ));
        alarm_outcome = Some(AlarmOutcome {
            site_id: PARK.into(),
            alarm_id: acked.alarm_id.clone(),
            kind: format::alarm_kind_name(acked.kind),
            state: format::alarm_state_name(acked.state),
            limit_celsius: acked.limit_celsius,
            peak_celsius: acked.peak_celsius,
            degree_minutes: acked.degree_minutes,
            duration_ms: format::duration_ms(acked.duration.as_ref()),
            hold_status: format::hold_status_name(a.hold_status),
            hold_ids: a.hold_ids.clone(),
            hold_last_error: a.hold_last_error.clone(),
            acknowledged_by: acked.acknowledged_by.clone(),
            hold_placed_after_ms,
        });
    }

    // Stock of the transferred lots at both ends.
    let step = "stock after the transfer";
    let mut line_outcomes = Vec::new();
    for line in &lines {
        let at_source = lot_stock(&park.inventory, &line.sku, &line.lot_id)
            .await
            .map_err(step_err(step))?;
        let at_destination = lot_stock(&vte.inventory, &line.sku, &line.lot_id)
            .await
            .map_err(step_err(step))?;
        line_outcomes.push(TransferLineOutcome {
            sku: line.sku.clone(),
            lot_id: line.lot_id.clone(),
            source_zone_id: line.source_zone_id.clone(),
            destination_zone_id: line.destination_zone_id.clone(),
            quantity: line.quantity,
            unit: line.unit.clone(),
            source_on_hand: at_source.on_hand,
            destination_on_hand: at_destination.on_hand,
            destination_held: at_destination.held,
        });
    }
    let transfer_outcome = TransferOutcome {
        transfer_id: transfer_id.clone(),
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        train_or_route: transfer.train_or_route.clone(),
        reefer_container_id: container_id.clone(),
        reefer_sensor_id: sensor_id.clone(),
        state_after_start,
        state: transfer_state.clone(),
        last_error: transfer.last_error.clone(),
        lines: line_outcomes,
    };

    // ---------------------------------------------------------------- 7. bananas
    let mut bookings: Vec<BookingOutcome> = Vec::new();
    let step = "banana booking";
    let vte_today = local_day(&vte.site, anchor);
    let request = booking::HoldSpaceRequest {
        request_id: rid("banana-hold"),
        customer_id: FORWARDER.into(),
        space: Some(booking::hold_space_request::Space::TemperatureClass(
            common::TemperatureClass::Cool as i32,
        )),
        pallets: 6,
        first_day: Some(format::to_date(vte_today)),
        last_day: Some(format::to_date(plus_days(vte_today, 2))),
        hold_ttl: Some(format::proto_duration(Duration::from_secs(15 * 60))),
        customer_reference: format!("ban-{run}"),
    };
    let forwarder = vte.booking(FORWARDER)?;
    let held = call!(forwarder, hold_space, request).map_err(step_err(step))?;
    let mut states = vec![format::booking_state_name(held.state)];
    let request = booking::ConfirmBookingRequest {
        request_id: rid("banana-confirm"),
        booking_id: held.booking_id.clone(),
    };
    let confirmed = call!(forwarder, confirm_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(confirmed.state));
    let step = "banana receipt";
    let banana_lot = format!("vte-banana-{run}");
    let banana_expiry = plus_days(vte_today, 12);
    let request = inventory::RecordMovementsRequest {
        request_id: rid("banana-receipt"),
        movements: vec![inventory::Movement {
            kind: inventory::MovementKind::Receipt as i32,
            sku: "banana-cavendish".into(),
            lot: Some(inventory::LotInfo {
                lot_id: banana_lot.clone(),
                expiry: Some(format::to_date(banana_expiry)),
                production: Some(format::to_date(vte_today)),
                origin: "Vientiane Prefecture, Laos".into(),
            }),
            zone_id: confirmed.zone_id.clone(),
            quantity: 9_600,
            unit: "kg".into(),
            reason: "bananas for the northbound train, ripening held at 13-14 °C".into(),
            booking_id: confirmed.booking_id.clone(),
            pallets: 6,
            ..Default::default()
        }],
    };
    let answer = call!(vte.inventory, record_movements, request).map_err(step_err(step))?;
    received_lots.push(LotOutcome {
        site_id: VIENTIANE.into(),
        sku: "banana-cavendish".into(),
        lot_id: banana_lot.clone(),
        zone_id: confirmed.zone_id.clone(),
        quantity: 9_600,
        unit: "kg".into(),
        expiry: banana_expiry.to_string(),
        origin: "Vientiane Prefecture, Laos".into(),
        sequence: answer.entries.first().map_or(0, |e| e.sequence),
    });
    let request = booking::GetBookingRequest {
        booking_id: confirmed.booking_id.clone(),
    };
    // The forwarder sees its booking checked in by the receipt.
    let checked = call!(forwarder, get_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(checked.state));
    progress.say(&format!(
        "bananas in {}: booking {} {}",
        checked.zone_id,
        checked.booking_id,
        states.join(" -> ")
    ));
    bookings.push(booking_outcome(
        "forwarder: bananas into the cool zone",
        &checked,
        states,
    ));

    // ---------------------------------------------------------------- 8. booking clients
    let step = "shipper booking";
    let first = plus_days(park_today, 3);
    let last = plus_days(park_today, 5);
    let request = network::FindSpaceRequest {
        temperature_class: common::TemperatureClass::Chilled as i32,
        pallets: 20,
        first_day: Some(format::to_date(first)),
        last_day: Some(format::to_date(last)),
        site_ids: Vec::new(),
    };
    // The shipper asks the gateway itself, as its own booking client.
    let shipper_gateway = NetworkServiceClient::new(channel_as(
        &config.gateway,
        &credentials::customer(SHIPPER),
    )?);
    let space = call!(shipper_gateway, find_space, request).map_err(step_err(step))?;
    for f in &space.failures {
        warnings.push(format!(
            "find space: {} did not answer: {}: {}",
            f.site_id, f.code, f.message
        ));
    }
    let offer = space
        .offers
        .iter()
        .find(|o| o.fits && o.site_id != PARK)
        .or_else(|| space.offers.iter().find(|o| o.fits))
        .cloned();
    match offer {
        None => warnings.push("no site has 20 chilled pallets free for the shipper".into()),
        Some(offer) => {
            let shipper = site_clients(&config.network, &offer.site_id)?.booking(SHIPPER)?;
            let request = booking::HoldSpaceRequest {
                request_id: rid("shipper-hold"),
                customer_id: SHIPPER.into(),
                space: Some(booking::hold_space_request::Space::ZoneId(
                    offer.zone_id.clone(),
                )),
                pallets: 20,
                first_day: Some(format::to_date(first)),
                last_day: Some(format::to_date(last)),
                hold_ttl: Some(format::proto_duration(Duration::from_secs(30 * 60))),
                customer_reference: format!("po-{run}"),
            };
            let held = call!(shipper, hold_space, request).map_err(step_err(step))?;
            let mut states = vec![format::booking_state_name(held.state)];
            let request = booking::ConfirmBookingRequest {
                request_id: rid("shipper-confirm"),
                booking_id: held.booking_id.clone(),
            };
            let confirmed = call!(shipper, confirm_booking, request).map_err(step_err(step))?;
            states.push(format::booking_state_name(confirmed.state));
            progress.say(&format!(
                "a shipper booked 20 chilled pallets at {} / {}: {}",
                offer.site_id,
                offer.zone_id,
                states.join(" -> ")
            ));
            bookings.push(booking_outcome(
                "shipper: chilled space found through the gateway",
                &confirmed,
                states,
            ));
        }
    }

    let step = "seller booking";
    let seller_site = ["vn-hanoi", "th-bangkok", "sg-singapore"]
        .iter()
        .filter_map(|id| config.network.site(id))
        .chain(config.network.sites.iter().filter(|s| s.id != PARK))
        .find(|s| s.has_class(TemperatureClass::Frozen))
        .map(|s| s.id.clone());
    match seller_site {
        None => warnings.push("no site besides the park has frozen space".into()),
        Some(site_id) => {
            let clients = site_clients(&config.network, &site_id)?;
            let local = local_day(&clients.site, anchor);
            let seller = clients.booking(SELLER)?;
            let request = booking::HoldSpaceRequest {
                request_id: rid("seller-hold"),
                customer_id: SELLER.into(),
                space: Some(booking::hold_space_request::Space::TemperatureClass(
                    common::TemperatureClass::Frozen as i32,
                )),
                pallets: 8,
                first_day: Some(format::to_date(plus_days(local, 2))),
                last_day: Some(format::to_date(plus_days(local, 4))),
                hold_ttl: Some(format::proto_duration(Duration::from_secs(10 * 60))),
                customer_reference: format!("flash-sale-{run}"),
            };
            let held = call!(seller, hold_space, request).map_err(step_err(step))?;
            let mut states = vec![format::booking_state_name(held.state)];
            let request = booking::CancelBookingRequest {
                request_id: rid("seller-cancel"),
                booking_id: held.booking_id.clone(),
                reason: "flash sale moved to next week".into(),
            };
            let cancelled = call!(seller, cancel_booking, request).map_err(step_err(step))?;
            states.push(format::booking_state_name(cancelled.state));
            progress.say(&format!(
                "an e-commerce seller held 8 frozen pallets at {site_id} and cancelled: {}",
                states.join(" -> ")
            ));
            bookings.push(booking_outcome(
                "e-commerce seller: held frozen space, then cancelled",
                &cancelled,
                states,
            ));
        }
    }

    // ---------------------------------------------------------------- 9. figures
    let step = "find stock";
    let request = network::FindStockRequest {
        sku: "citrus-navel-mayang".into(),
        temperature_class: 0,
        min_quantity: 0,
        site_ids: Vec::new(),
    };
    let found = call!(gateway, find_stock, request).map_err(step_err(step))?;
    let mut stock = StockOutcome {
        sku: found.sku.clone(),
        unit: "kg".into(),
        sites_answered: found.sites.len(),
        site_failures: found
            .failures
            .iter()
            .map(|f| format!("{}: {}: {}", f.site_id, f.code, f.message))
            .collect(),
        ..StockOutcome::default()
    };
    for site in &found.sites {
        let on_hand: i64 = site.zones.iter().map(|z| z.on_hand).sum();
        let held: i64 = site.zones.iter().map(|z| z.held).sum();
        if site.site_id == PARK {
            stock.park_on_hand = on_hand;
        } else if site.site_id == VIENTIANE {
            stock.vientiane_on_hand = on_hand;
            stock.vientiane_held = held;
        }
    }
    stock.in_transit = found.in_transit.iter().map(|t| t.quantity).sum();

    let step = "network alarms";
    let request = network::ListAlarmsRequest {
        active_only: true,
        page_size: 1000,
        ..Default::default()
    };
    let active = call!(gateway, list_alarms, request).map_err(step_err(step))?;
    let active_alarms = active.alarms.len();

    // The follower: wait (bounded) until it saw this run's entries, then stop it.
    let _ = stop_tx.send(Some(Instant::now() + config.wait));
    let ledger = match follower.await {
        Ok(ledger) => ledger,
        Err(e) => {
            return Err(failed(
                "ledger follower",
                format!("the follower task failed: {e}"),
            ));
        }
    };
    if let Some(error) = &ledger.error {
        warnings.push(format!("ledger follower: {error}"));
    }
    if ledger.timed_out {
        warnings.push(format!(
            "the ledger follower saw {} of this run's entries within {} s",
            ledger.run_entries,
            config.wait.as_secs()
        ));
    }
    progress.say(&format!(
        "the Vientiane follower read {} entries ({} live, {} of this run)",
        ledger.entries_read, ledger.entries_seen, ledger.run_entries
    ));

    let count = |state: booking::BookingState| {
        let name = format::booking_state_name(state as i32);
        bookings.iter().filter(|b| b.states.contains(&name)).count()
    };
    Ok(DemoOutcome {
        run_id: run.to_string(),
        gateway: config.gateway.clone(),
        sites: sites.len(),
        services_serving,
        services_total,
        received_lots,
        transfer: transfer_outcome,
        transfer_state,
        readings,
        alarm: alarm_outcome,
        hold_placed,
        bookings_held: count(booking::BookingState::Held),
        bookings_confirmed: count(booking::BookingState::Confirmed),
        bookings_cancelled: count(booking::BookingState::Cancelled),
        bookings_checked_in: count(booking::BookingState::CheckedIn),
        bookings,
        stock,
        ledger_entries_seen: ledger.entries_seen,
        ledger,
        active_alarms,
        warnings,
        elapsed_ms: progress.started.elapsed().as_millis() as u64,
    })
}

fn booking_outcome(role: &str, b: &booking::Booking, states: Vec<String>) -> BookingOutcome {
    BookingOutcome {
        role: role.to_string(),
        site_id: b.site_id.clone(),
        booking_id: b.booking_id.clone(),
        customer_id: b.customer_id.clone(),
        zone_id: b.zone_id.clone(),
        temperature_class: format::class_name(b.temperature_class),
        pallets: b.pallets,
        first_day: format::date_str(b.first_day.as_ref()).unwrap_or_default(),
        last_day: format::date_str(b.last_day.as_ref()).unwrap_or_default(),
        state: format::booking_state_name(b.state),
        states,
    }
}

/// Polls GetTransfer until the transfer is in one of `states` or `within` elapsed; answers
/// the last read.
async fn wait_transfer(
    gateway: &NetworkServiceClient<Channel>,
    transfer_id: &str,
    states: &[network::TransferState],
    within: Duration,
) -> Result<network::Transfer, tonic::Status> {
    let deadline = Instant::now() + within;
    loop {
        let request = network::GetTransferRequest {
            transfer_id: transfer_id.to_string(),
        };
        let transfer = call!(gateway, get_transfer, request)?;
        if states.iter().any(|s| *s as i32 == transfer.state) || Instant::now() >= deadline {
            return Ok(transfer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls the sensor's excursion alarms until one satisfies `done` or `within` elapsed;
/// answers the newest excursion alarm seen (None if none was raised).
async fn wait_alarm(
    client: &TelemetryServiceClient<Channel>,
    sensor_id: &str,
    within: Duration,
    done: impl Fn(&telemetry::Alarm) -> bool,
) -> Result<Option<telemetry::Alarm>, tonic::Status> {
    let deadline = Instant::now() + within;
    loop {
        let request = telemetry::ListAlarmsRequest {
            sensor_id: sensor_id.to_string(),
            kinds: vec![
                telemetry::AlarmKind::ExcursionHigh as i32,
                telemetry::AlarmKind::ExcursionLow as i32,
            ],
            page_size: 10,
            ..Default::default()
        };
        let answer = call!(client, list_alarms, request)?;
        let newest = answer.alarms.into_iter().next();
        if newest.as_ref().is_some_and(&done) || Instant::now() >= deadline {
            return Ok(newest);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The summed stock of one lot at a site (zero when the site never had it).
async fn lot_stock(
    client: &InventoryServiceClient<Channel>,
    sku: &str,
    lot_id: &str,
) -> Result<inventory::StockTotals, tonic::Status> {
    let request = inventory::GetStockRequest {
        sku: sku.to_string(),
        lot_id: lot_id.to_string(),
        zone_id: String::new(),
    };
    match call!(client, get_stock, request) {
        Ok(answer) => Ok(answer.totals.unwrap_or_default()),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(Default::default()),
        Err(status) => Err(status),
    }
}

/// The reefer's journey: a reading every 30 s over the 50 minutes before `anchor`, about 2.5 °C, with
/// a 12-minute excursion up to about 7 °C while the door was open at the border.
fn journey(sensor_id: &str, anchor: DateTime<Utc>) -> Vec<telemetry::Reading> {
    let now = anchor;
    let count: i64 = 100;
    (0..count)
        .map(|i| {
            let at = now - chrono::Duration::seconds((count - i) * 30);
            let base = 2.3 + 0.3 * (i as f64 / 5.0).sin();
            let excursion = (40..64).contains(&i);
            let celsius = if excursion {
                4.6 + 2.4 * (std::f64::consts::PI * (i - 40) as f64 / 24.0).sin()
            } else {
                base
            };
            telemetry::Reading {
                sensor_id: sensor_id.to_string(),
                time: Some(format::timestamp(at)),
                celsius: (celsius * 100.0).round() / 100.0,
                humidity_percent: Some(if excursion { 74.0 } else { 88.0 }),
                door_open: Some((40..44).contains(&i)),
            }
        })
        .collect()
}

/// How many of the journey's readings the reefer streams live; the rest it buffers.
const LIVE_READINGS: usize = 36;

/// Streams the live readings to the park's telemetry. If every reading is refused as coming
/// from an unknown sensor (the gateway binds the sensor as a step of the transfer), waits
/// for the binding, and in the end registers the sensor itself.
async fn stream_live(
    park: &SiteClients,
    sensor_id: &str,
    reefer: &telemetry::ReeferBinding,
    live: &[telemetry::Reading],
    within: Duration,
    outcome: &mut ReadingsOutcome,
) -> Result<(), tonic::Status> {
    let deadline = Instant::now() + within.min(Duration::from_secs(10));
    loop {
        let batches: Vec<telemetry::ReadingBatch> = live
            .chunks(20)
            .map(|chunk| telemetry::ReadingBatch {
                readings: chunk.to_vec(),
            })
            .collect();
        let mut client = park.sensors.clone();
        let summary = client
            .stream_readings(unary(futures::stream::iter(batches)))
            .await?
            .into_inner();
        let unknown = summary
            .rejections
            .iter()
            .all(|r| r.reason == telemetry::RejectionReason::UnknownSensor as i32);
        outcome.accepted += summary.accepted;
        outcome.duplicates += summary.duplicates;
        if summary.rejected == 0 || !unknown || outcome.registered_by_demo {
            outcome.rejected += summary.rejected;
            return Ok(());
        }
        if Instant::now() >= deadline {
            // The transfer did not bind the sensor: register it as its reefer ourselves.
            let request = telemetry::RegisterSensorRequest {
                request_id: format!("demo-register-{sensor_id}"),
                sensor_id: sensor_id.to_string(),
                binding: Some(telemetry::register_sensor_request::Binding::Reefer(
                    reefer.clone(),
                )),
                profile: None,
                description: "reefer of the demo's China-Laos train".into(),
            };
            call!(park.telemetry, register_sensor, request)?;
            outcome.registered_by_demo = true;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Follows a site's ledger from the beginning: catches up on history (then signals
/// `ready`), counts live entries and this run's entries (lots or transfer carrying the run
/// id), and stops once told to and this run's TRANSFER_IN lines and RECEIPT were seen, or at
/// the stop's grace deadline, or at `hard_deadline`.
async fn follow_ledger(
    client: InventoryServiceClient<Channel>,
    run_id: String,
    transfer_lines: u64,
    mut stop: watch::Receiver<Option<Instant>>,
    ready: watch::Sender<bool>,
    hard_deadline: Instant,
) -> LedgerOutcome {
    let mut out = LedgerOutcome {
        site_id: VIENTIANE.into(),
        from_sequence: 1,
        ..LedgerOutcome::default()
    };
    let mut next: u64 = 1;
    let mut head_at_start: Option<u64> = None;
    let suffix = format!("-{run_id}");
    let complete =
        |o: &LedgerOutcome| o.transfer_in_entries >= transfer_lines && o.receipt_entries >= 1;
    'outer: loop {
        if Instant::now() >= hard_deadline {
            out.timed_out = true;
            break;
        }
        let mut c = client.clone();
        let opened = tokio::time::timeout(
            Duration::from_secs(10),
            c.watch_ledger(inventory::WatchLedgerRequest {
                from_sequence: next,
            }),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if coldchain_ops::stream_retryable(&status) => {
                out.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Ok(Err(status)) => {
                out.error = Some(format!(
                    "{}: {}",
                    format::code_name(status.code()),
                    status.message()
                ));
                let _ = ready.send(true);
                break;
            }
            Err(_) => {
                out.reconnects += 1;
                continue;
            }
        };
        loop {
            let grace = *stop.borrow();
            if let Some(grace) = grace {
                if complete(&out) {
                    break 'outer;
                }
                if Instant::now() >= grace {
                    out.timed_out = true;
                    break 'outer;
                }
            }
            let wake = grace.unwrap_or(hard_deadline).min(hard_deadline);
            // An empty ledger sends nothing: after a short quiet spell, count it as caught up.
            let quiet = if head_at_start.is_none() {
                Instant::now() + Duration::from_secs(2)
            } else {
                hard_deadline
            };
            tokio::select! {
                message = stream.message() => match message {
                    Ok(Some(message)) => {
                        let head = *head_at_start.get_or_insert(message.head_sequence);
                        for e in message.entries {
                            if e.sequence < next {
                                continue;
                            }
                            next = e.sequence + 1;
                            out.last_sequence = e.sequence;
                            out.entries_read += 1;
                            if e.sequence > head {
                                out.entries_seen += 1;
                            }
                            let ours = e.transfer_id.ends_with(&suffix)
                                || e.lot.as_ref().is_some_and(|l| l.lot_id.ends_with(&suffix));
                            if ours {
                                out.run_entries += 1;
                                match inventory::LedgerEntryKind::try_from(e.kind) {
                                    Ok(inventory::LedgerEntryKind::TransferIn) => out.transfer_in_entries += 1,
                                    Ok(inventory::LedgerEntryKind::Receipt) => out.receipt_entries += 1,
                                    Ok(inventory::LedgerEntryKind::HoldPlaced) => out.hold_entries += 1,
                                    _ => {}
                                }
                            }
                        }
                        if next > head {
                            let _ = ready.send(true);
                        }
                    }
                    Ok(None) => continue 'outer,
                    Err(status) if coldchain_ops::stream_retryable(&status) => {
                        out.reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue 'outer;
                    }
                    Err(status) => {
                        out.error = Some(format!("{}: {}", format::code_name(status.code()), status.message()));
                        let _ = ready.send(true);
                        break 'outer;
                    }
                },
                changed = stop.changed() => {
                    if changed.is_err() {
                        break 'outer;
                    }
                }
                _ = tokio::time::sleep_until(quiet.into()), if head_at_start.is_none() => {
                    head_at_start = Some(0);
                    let _ = ready.send(true);
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
    out.head_at_start = head_at_start.unwrap_or(0);
    let _ = ready.send(true);
    out
}

/// The human narrative of an outcome.
pub fn narrative(o: &DemoOutcome) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "A day on the Huaihua cold-chain network (run {}, {:.1} s)",
        o.run_id,
        o.elapsed_ms as f64 / 1000.0
    ));
    out.push(String::new());
    out.push(format!(
        "1. The gateway ({}) sees {} sites, {} of {} services serving.",
        o.gateway, o.sites, o.services_serving, o.services_total
    ));
    let park_lots: Vec<String> = o
        .received_lots
        .iter()
        .filter(|l| l.site_id == PARK)
        .map(|l| {
            format!(
                "{} {} {} (lot {}, {}, use by {})",
                thousands(l.quantity),
                l.unit,
                l.sku,
                l.lot_id,
                l.zone_id,
                l.expiry
            )
        })
        .collect();
    out.push(format!(
        "2. The park received {} lots from Hunan growers and its processing lines:",
        park_lots.len()
    ));
    for lot in park_lots {
        out.push(format!("     {lot}"));
    }
    let t = &o.transfer;
    out.push(format!(
        "3. {} left {} for {} with transfer {} ({} at start, {} now), reefer {} with sensor {}:",
        t.train_or_route,
        t.source_site_id,
        t.destination_site_id,
        t.transfer_id,
        t.state_after_start,
        t.state,
        t.reefer_container_id,
        t.reefer_sensor_id
    ));
    for l in &t.lines {
        out.push(format!(
            "     {} {} {} lot {}: {} -> {}; now {} at the park, {} at Vientiane ({} held)",
            thousands(l.quantity),
            l.unit,
            l.sku,
            l.lot_id,
            l.source_zone_id,
            l.destination_zone_id,
            thousands(l.source_on_hand),
            thousands(l.destination_on_hand),
            thousands(l.destination_held)
        ));
    }
    let r = &o.readings;
    out.push(format!(
        "4. The reefer sent {} readings to {} telemetry, {} live and {} from its logger on arrival ({} accepted, {} duplicates, {} rejected), {:.1} to {:.1} °C.",
        r.sent, r.site_id, r.streamed_live, r.uploaded_on_arrival, r.accepted, r.duplicates, r.rejected, r.min_celsius, r.max_celsius
    ));
    match &o.alarm {
        Some(a) => {
            out.push(format!(
                "   A door opened at the border: alarm {} {} peaked at {:.1} °C over the {:.1} °C limit for {}, {:.1} °C·min.",
                a.alarm_id,
                a.kind,
                a.peak_celsius,
                a.limit_celsius,
                format::duration_short(
                    a.duration_ms
                        .map(|ms| prost_types::Duration {
                            seconds: ms / 1000,
                            nanos: ((ms % 1000) * 1_000_000) as i32
                        })
                        .as_ref()
                ),
                a.degree_minutes
            ));
            out.push(format!(
                "   Hold {}{}{}; QA ({}) acknowledged it: {}.",
                a.hold_status,
                if a.hold_ids.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.hold_ids.join(", "))
                },
                a.hold_placed_after_ms
                    .map(|ms| format!(" {:.1} s after the upload", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                a.acknowledged_by,
                a.state
            ));
        }
        None => out.push("   No excursion alarm was raised.".into()),
    }
    out.push(format!(
        "5. The train arrived: transfer {}. Network-wide {}: {} kg at the park, {} kg at Vientiane ({} held), {} kg in transit.",
        o.transfer_state,
        o.stock.sku,
        thousands(o.stock.park_on_hand),
        thousands(o.stock.vientiane_on_hand),
        thousands(o.stock.vientiane_held),
        thousands(o.stock.in_transit)
    ));
    out.push(format!(
        "6. Bookings: {} held, {} confirmed, {} checked in, {} cancelled:",
        o.bookings_held, o.bookings_confirmed, o.bookings_checked_in, o.bookings_cancelled
    ));
    for b in &o.bookings {
        out.push(format!(
            "     {} — {} at {} / {} ({}), {} pallets {} .. {}: {}",
            b.role,
            b.booking_id,
            b.site_id,
            b.zone_id,
            b.temperature_class,
            b.pallets,
            b.first_day,
            b.last_day,
            b.states.join(" -> ")
        ));
    }
    if let Some(bananas) = o.received_lots.iter().find(|l| l.site_id == VIENTIANE) {
        out.push(format!(
            "   Vientiane received {} {} {} into {} under the forwarder's booking.",
            thousands(bananas.quantity),
            bananas.unit,
            bananas.sku,
            bananas.zone_id
        ));
    }
    let l = &o.ledger;
    out.push(format!(
        "7. Vientiane's warehouse system read {} ledger entries: caught up at {}, then {} live ({} about this run: {} TRANSFER_IN, {} RECEIPT, {} HOLD_PLACED), up to sequence {}.",
        l.entries_read,
        l.head_at_start,
        l.entries_seen,
        l.run_entries,
        l.transfer_in_entries,
        l.receipt_entries,
        l.hold_entries,
        l.last_sequence
    ));
    out.push(format!(
        "8. Active alarms across the network: {}.",
        o.active_alarms
    ));
    if !o.warnings.is_empty() {
        out.push(String::new());
        out.push("Warnings:".into());
        for w in &o.warnings {
            out.push(format!("  - {w}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_derived_run_id_anchors_the_run() {
        let at = run_anchor("20261128-165445-456");
        assert_eq!(at.to_rfc3339(), "2026-11-28T16:54:45.456+00:00");
        assert_eq!(
            journey("r", at),
            journey("r", at),
            "a rerun sends the same readings"
        );
        let before = Utc::now();
        assert!(run_anchor("my-own-run") >= before);
        assert!(valid_run_id("20261128-165445-456") && valid_run_id("my-own-run"));
        assert!(!valid_run_id("bad id!") && !valid_run_id("") && !valid_run_id(&"x".repeat(41)));
    }

    #[test]
    fn the_demo_customers_have_keys_in_the_dev_keyring() {
        for customer in [FORWARDER, SHIPPER, SELLER] {
            assert!(
                coldchain_credentials::DEV_CUSTOMERS.contains(&customer),
                "{customer} has no booking client in the dev keyring"
            );
        }
    }

    #[test]
    fn the_journey_has_one_long_excursion_above_chilled() {
        let readings = journey("reefer-x", Utc::now());
        assert_eq!(readings.len(), 100);
        let above: Vec<usize> = readings
            .iter()
            .enumerate()
            .filter(|(_, r)| r.celsius > 4.0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(above.first(), Some(&40));
        assert_eq!(above.last(), Some(&63));
        assert_eq!(above.len(), 24, "12 minutes at one reading per 30 s");
        let peak = readings.iter().map(|r| r.celsius).fold(f64::MIN, f64::max);
        assert!((6.5..7.5).contains(&peak), "{peak}");
        // Inside the limits again by more than the default hysteresis afterwards.
        assert!(readings[64..].iter().all(|r| r.celsius < 3.0));
        let times: Vec<i64> = readings
            .iter()
            .map(|r| r.time.as_ref().unwrap().seconds)
            .collect();
        assert!(times.windows(2).all(|w| w[1] - w[0] == 30));
        assert!(Utc::now().timestamp() - times[0] <= 50 * 60 + 1);
    }
}
