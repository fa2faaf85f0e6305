//! The day, act by act (see the crate documentation), and what every act shares: the run,
//! its anchor in time, the progress shown on stderr, the warnings, and the clients of the
//! gateway and of the two corridor sites.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use coldchain_credentials::{self as credentials, OPERATIONS};
use coldchain_ops::connect_as;
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig, TemperatureClass};

use crate::outcome::{DemoError, DemoOutcome, usage};
use crate::{
    DemoConfig, PARK, VIENTIANE, bookings, excursion, figures, ledger, reefer, run_anchor, survey,
    transfer,
};

/// Drives the day; see the crate documentation.
pub async fn drive(config: &DemoConfig) -> Result<DemoOutcome, DemoError> {
    let mut day = Day::open(config)?;
    let network = survey::network(&day).await?;
    let follower = ledger::Follower::start(&mut day).await;
    let park_lots = crate::receipts::at_park(&day).await?;
    let mut corridor = transfer::start(&mut day, &park_lots).await?;
    let mut journey = reefer::ride(&mut day, &corridor).await?;
    let transfer_state = transfer::arrive(&mut day, &mut corridor).await?;
    let uploaded = reefer::upload(&day, &mut journey).await?;
    let excursion = excursion::hold_and_acknowledge(&mut day, &corridor, uploaded).await?;
    let transfer = transfer::outcome(&day, corridor, transfer_state.clone()).await?;

    let processing = park_lots.processing.clone();
    let park_lots_made = park_lots
        .lots
        .iter()
        .find(|lot| lot.sku == crate::receipts::SEGMENTS)
        .cloned();
    let mut received_lots = park_lots.lots;
    let (bananas, banana_booking) = bookings::bananas(&day).await?;
    received_lots.push(bananas);
    let mut bookings = vec![banana_booking];
    bookings.extend(bookings::shipper(&mut day).await?);
    bookings.extend(bookings::seller(&mut day).await?);

    let stock = figures::stock(&day).await?;
    let active_alarms = figures::active_alarms(&day).await?;
    let ledger = follower.finish(&mut day).await?;
    let trace = crate::trace::excursion_lot(&day, &transfer).await?;
    let segments_trace = crate::trace::segments_lot(&day, &park_lots_made).await?;

    let count = |state: booking::BookingState| {
        let name = coldchain_ops::format::booking_state_name(state as i32);
        bookings.iter().filter(|b| b.states.contains(&name)).count()
    };
    // The demo's own RecordMovements calls, and the saga's one TRANSFER_OUT at the source and
    // one TRANSFER_IN at the destination of the completed transfer (each answered once on a
    // network that loses no answer).
    let mut record_movements_ok = day.recorded_calls();
    if transfer.state == "COMPLETED" {
        for site in [&transfer.source_site_id, &transfer.destination_site_id] {
            *record_movements_ok.entry(site.clone()).or_default() += 1;
        }
    }
    Ok(DemoOutcome {
        record_movements_ok,
        run_id: day.run.to_string(),
        gateway: config.gateway.clone(),
        sites: network.sites,
        services_serving: network.services_serving,
        services_total: network.services_total,
        received_lots,
        transfer,
        transfer_state,
        readings: journey.readings,
        alarm: excursion.alarm,
        hold_placed: excursion.hold_placed,
        bookings_held: count(booking::BookingState::Held),
        bookings_confirmed: count(booking::BookingState::Confirmed),
        bookings_cancelled: count(booking::BookingState::Cancelled),
        bookings_checked_in: count(booking::BookingState::CheckedIn),
        bookings,
        stock,
        processing,
        trace,
        segments_trace,
        ledger_entries_seen: ledger.entries_seen,
        ledger,
        active_alarms,
        warnings: day.warnings,
        elapsed_ms: day.progress.started.elapsed().as_millis() as u64,
    })
}

/// What every act of the day shares.
pub(crate) struct Day<'a> {
    pub(crate) config: &'a DemoConfig,
    /// The run id, in every id the day creates.
    pub(crate) run: &'a str,
    /// The instant the run is anchored at ([`run_anchor`]).
    pub(crate) anchor: DateTime<Utc>,
    pub(crate) progress: Progress,
    pub(crate) warnings: Vec<String>,
    /// RecordMovements calls answered OK, per site: the demo's own.
    pub(crate) recorded: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The gateway, called by operations, which runs the corridor.
    pub(crate) gateway: NetworkServiceClient<Channel>,
    pub(crate) park: SiteClients,
    pub(crate) vte: SiteClients,
}

impl Day<'_> {
    /// Counts a RecordMovements call answered OK at `site`.
    pub(crate) fn recorded_at(&self, site: &str) {
        // A panic while holding this lock leaves the map consistent (one increment).
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        *recorded.entry(site.to_string()).or_default() += 1;
    }

    /// The RecordMovements calls counted so far, per site.
    pub(crate) fn recorded_calls(&self) -> BTreeMap<String, u64> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl<'a> Day<'a> {
    /// The start of the day: the clock of the progress, then the clients.
    fn open(config: &'a DemoConfig) -> Result<Self, DemoError> {
        let progress = Progress {
            started: Instant::now(),
        };
        let run = config.run_id.as_str();
        Ok(Self {
            config,
            run,
            anchor: run_anchor(run),
            progress,
            warnings: Vec::new(),
            recorded: std::sync::Mutex::default(),
            gateway: NetworkServiceClient::new(channel_as(&config.gateway, OPERATIONS)?),
            park: site_clients(&config.network, PARK)?,
            vte: site_clients(&config.network, VIENTIANE)?,
        })
    }

    /// The request id of the day's mutating call `what`: the same in a rerun of the run.
    pub(crate) fn rid(&self, what: &str) -> String {
        format!("demo-{}-{what}", self.run)
    }

    /// The site-local date at `site` at the run's anchor.
    pub(crate) fn local_day(&self, site: &SiteConfig) -> NaiveDate {
        self.anchor.with_timezone(&site.time_zone).date_naive()
    }
}

/// Progress on stderr.
pub(crate) struct Progress {
    pub(crate) started: Instant,
}

impl Progress {
    pub(crate) fn say(&self, message: &str) {
        eprintln!(
            "[demo {:>5.1}s] {message}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// A channel to `endpoint` calling as the credential `id` (see [`coldchain_ops::connect_as`]).
pub(crate) fn channel_as(endpoint: &str, id: &str) -> Result<Channel, DemoError> {
    connect_as(endpoint, id).map_err(|error| DemoError {
        step: "connecting".into(),
        error,
    })
}

/// The clients of one site, each calling as the role that does that work in real life.
pub(crate) struct SiteClients {
    pub(crate) site: SiteConfig,
    /// The site's warehouse system: receipts, stock, the ledger.
    pub(crate) inventory: InventoryServiceClient<Channel>,
    /// The site's sensor gateway: it only sends readings.
    pub(crate) sensors: TelemetryServiceClient<Channel>,
    /// Operations (QA): alarms and sensor registration.
    pub(crate) telemetry: TelemetryServiceClient<Channel>,
    /// The booking service, reached as each customer's booking client ([`Self::booking`]).
    booking_endpoint: String,
}

impl SiteClients {
    /// The booking service as `customer`'s booking client: a booking client books, sees
    /// and cancels only its own customer's bookings.
    pub(crate) fn booking(
        &self,
        customer: &str,
    ) -> Result<BookingServiceClient<Channel>, DemoError> {
        Ok(BookingServiceClient::new(channel_as(
            &self.booking_endpoint,
            &credentials::customer(customer),
        )?))
    }
}

pub(crate) fn site_clients(
    network: &NetworkConfig,
    site_id: &str,
) -> Result<SiteClients, DemoError> {
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

/// The first zone of `class` at `site`.
pub(crate) fn zone_of(site: &SiteConfig, class: TemperatureClass) -> Result<String, DemoError> {
    site.zones_of_class(class)
        .next()
        .map(|z| z.id.clone())
        .ok_or_else(|| usage("planning", format!("site {} has no {class} zone", site.id)))
}

/// `days` after `day` (`day` itself past the end of the calendar).
pub(crate) fn plus_days(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(chrono::Days::new(days)).unwrap_or(day)
}
