//! The clients: warehouse systems recording movements, operations moving lots along the
//! corridor through the gateway, a shipper holding, confirming and cancelling space, sensor
//! gateways pushing readings with excursions, and a WatchAlarms consumer that reconnects
//! through the faults. Every acknowledged write goes into the history.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::proto_time;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::call::{Outcome, Recorder, request};
use crate::model::{
    AlarmEventSeen, MovementKind, MovementLine, MovementWrite, ReadingsAck, TransferAck,
    TransferLine,
};

/// The unit of every soak sku.
const UNIT: &str = "kg";
/// The sku stored in each class of zone the movements use.
const SKUS: [(&str, &str); 2] = [
    ("frozen", "soak-fish-frozen"),
    ("ambient", "soak-rice-ambient"),
];

/// A lot received at a site: (site index, zone class, lot id).
pub type LotAt = (usize, &'static str, String);

/// One site as the clients see it.
#[derive(Clone)]
pub struct SiteClients {
    /// The site.
    pub id: String,
    /// As the site's warehouse system.
    pub inventory: InventoryServiceClient<Channel>,
    /// As operations (sensor registration, reads).
    pub telemetry_ops: TelemetryServiceClient<Channel>,
    /// As the site's sensor gateway.
    pub telemetry_sensors: TelemetryServiceClient<Channel>,
    /// As the soak's shipper.
    pub booking: BookingServiceClient<Channel>,
    /// As operations (reads).
    pub booking_ops: BookingServiceClient<Channel>,
    /// The zone per movement class (`frozen`, `ambient`).
    pub zones: BTreeMap<&'static str, String>,
    /// The chilled zone its sensor watches.
    pub chilled_zone: String,
    /// The zone the shipper books.
    pub booking_zone: String,
    /// Its sensor.
    pub sensor: String,
}

/// What every client shares.
#[derive(Clone)]
pub struct Workload {
    /// The sites.
    pub sites: Vec<SiteClients>,
    /// The gateway, as operations.
    pub gateway: NetworkServiceClient<Channel>,
    /// The shipper that books space.
    pub customer: String,
    /// The days bookings fall in, first and last (the same at every site): 3-day windows
    /// inside it overlap, so bookings compete for space.
    pub booking_days: (NaiveDate, NaiveDate),
    /// Ids start with this, so a run's ids never meet another's.
    pub run: String,
    /// The seed the clients' choices derive from.
    pub seed: u64,
    /// The history and the counts.
    pub recorder: Recorder,
    /// Lots received, that transfers draw from.
    pub lots: Arc<Mutex<Vec<LotAt>>>,
    /// When the sensors' readings start (milliseconds since the epoch).
    pub readings_from_ms: i64,
}

/// The sku stored in zones of `class`.
fn sku_of(class: &str) -> &'static str {
    SKUS.iter()
        .find(|(c, _)| *c == class)
        .map_or("soak-unknown", |(_, sku)| sku)
}

pub(crate) fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

pub(crate) async fn pause(rng: &mut StdRng, from_ms: u64, to_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rng.gen_range(from_ms..to_ms))).await;
}

fn lasting() -> common::Date {
    common::Date {
        year: 2099,
        month: 12,
        day: 31,
    }
}

impl Workload {
    pub(crate) fn rng(&self, worker: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A warehouse system of site `site`: receipts of new lots, issues and write-offs.
    pub async fn movements(self, site: usize, worker: u64, stop: watch::Receiver<bool>) {
        let mut rng = self.rng(worker);
        let clients = &self.sites[site];
        let mut own: Vec<(&'static str, String)> = Vec::new();
        let mut n = 0u64;
        while !stopped(&stop) {
            n += 1;
            let request_id = format!("{}-m{worker}-{n}", self.run);
            let mut lines: Vec<(MovementKind, &'static str, String, i64)> = Vec::new();
            let choice = rng.gen_range(0..10);
            if choice < 5 || own.is_empty() {
                let (class, _) = SKUS[rng.gen_range(0..SKUS.len())];
                let lot = format!("{}-w{worker}-{n}", self.run);
                lines.push((
                    MovementKind::Receipt,
                    class,
                    lot.clone(),
                    rng.gen_range(100..1_000),
                ));
                if rng.gen_bool(0.2) {
                    // A batch of two: received and partly issued atomically.
                    lines.push((MovementKind::Issue, class, lot, -rng.gen_range(1..50)));
                }
            } else {
                let (class, lot) = own[rng.gen_range(0..own.len())].clone();
                let (kind, delta) = if choice < 8 {
                    (MovementKind::Issue, -rng.gen_range(1..20))
                } else {
                    (MovementKind::Adjustment, -rng.gen_range(1..5))
                };
                lines.push((kind, class, lot, delta));
            }
            let movements: Vec<inventory::Movement> = lines
                .iter()
                .map(|(kind, class, lot, delta)| inventory::Movement {
                    kind: match kind {
                        MovementKind::Receipt => inventory::MovementKind::Receipt,
                        MovementKind::Issue => inventory::MovementKind::Issue,
                        MovementKind::Adjustment => inventory::MovementKind::Adjustment,
                    } as i32,
                    sku: sku_of(class).to_owned(),
                    lot: Some(inventory::LotInfo {
                        lot_id: lot.clone(),
                        expiry: Some(lasting()),
                        ..Default::default()
                    }),
                    zone_id: clients.zones.get(class).cloned().unwrap_or_default(),
                    quantity: if *kind == MovementKind::Adjustment {
                        *delta
                    } else {
                        delta.abs()
                    },
                    unit: UNIT.into(),
                    reason: if *kind == MovementKind::Adjustment {
                        "damaged in handling: written off".into()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                })
                .collect();
            let message = inventory::RecordMovementsRequest {
                request_id: request_id.clone(),
                movements,
                actor: Default::default(),
            };
            let write = MovementWrite {
                site: clients.id.clone(),
                request_id: request_id.clone(),
                lines: lines
                    .iter()
                    .map(|(kind, class, lot, delta)| MovementLine {
                        kind: *kind,
                        sku: sku_of(class).to_owned(),
                        lot: lot.clone(),
                        zone: clients.zones.get(class).cloned().unwrap_or_default(),
                        delta: *delta,
                    })
                    .collect(),
                sequences: Vec::new(),
            };
            let client = clients.inventory.clone();
            let outcome = self
                .recorder
                .call(&format!("RecordMovements {request_id}"), || {
                    let mut client = client.clone();
                    let message = message.clone();
                    async move { client.record_movements(request(message)).await }
                })
                .await;
            match outcome {
                Outcome::Ack(answer) => {
                    let sequences = answer.entries.iter().map(|e| e.sequence).collect();
                    for (kind, class, lot, _) in &lines {
                        if *kind == MovementKind::Receipt {
                            own.push((class, lot.clone()));
                            self.lots
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((site, class, lot.clone()));
                        }
                    }
                    self.recorder
                        .record(|h| h.movements.push(MovementWrite { sequences, ..write }));
                }
                Outcome::Refused(_) => {}
                Outcome::NoAnswer => self.recorder.record(|h| h.unanswered_movements.push(write)),
            }
            pause(&mut rng, 50, 250).await;
        }
    }

    /// Operations moving lots between sites through the gateway, and receiving them.
    pub async fn transfers(self, worker: u64, stop: watch::Receiver<bool>) {
        let mut rng = self.rng(worker);
        let mut arriving: Vec<(String, tokio::time::Instant)> = Vec::new();
        let mut n = 0u64;
        while !stopped(&stop) {
            self.receive_arrived(&mut arriving).await;
            let lot = {
                let lots = self.lots.lock().unwrap_or_else(PoisonError::into_inner);
                (!lots.is_empty()).then(|| lots[rng.gen_range(0..lots.len())].clone())
            };
            let Some((source, class, lot)) = lot else {
                pause(&mut rng, 200, 500).await;
                continue;
            };
            if self.sites.len() < 2 {
                return;
            }
            let mut destination = rng.gen_range(0..self.sites.len() - 1);
            if destination >= source {
                destination += 1;
            }
            n += 1;
            let transfer_id = format!("{}-t{worker}-{n}", self.run);
            let request_id = format!("{transfer_id}-start");
            let quantity = rng.gen_range(5..40);
            let message = network::StartTransferRequest {
                request_id: request_id.clone(),
                transfer_id: transfer_id.clone(),
                source_site_id: self.sites[source].id.clone(),
                destination_site_id: self.sites[destination].id.clone(),
                lines: vec![network::TransferLine {
                    sku: sku_of(class).to_owned(),
                    lot_id: lot.clone(),
                    source_zone_id: self.sites[source]
                        .zones
                        .get(class)
                        .cloned()
                        .unwrap_or_default(),
                    destination_zone_id: self.sites[destination]
                        .zones
                        .get(class)
                        .cloned()
                        .unwrap_or_default(),
                    quantity,
                    unit: UNIT.into(),
                    lot: None,
                }],
                train_or_route: "soak corridor".into(),
                ..Default::default()
            };
            let client = self.gateway.clone();
            let outcome = self
                .recorder
                .call(&format!("StartTransfer {request_id}"), || {
                    let mut client = client.clone();
                    let message = message.clone();
                    async move { client.start_transfer(request(message)).await }
                })
                .await;
            if let Outcome::Ack(_) = outcome {
                self.recorder.record(|h| {
                    h.transfers.push(TransferAck {
                        transfer_id: transfer_id.clone(),
                        request_id,
                        source: self.sites[source].id.clone(),
                        destination: self.sites[destination].id.clone(),
                        lines: vec![TransferLine {
                            sku: sku_of(class).to_owned(),
                            lot: lot.clone(),
                            quantity,
                        }],
                    });
                });
                let after = Duration::from_millis(rng.gen_range(500..3_000));
                arriving.push((transfer_id, tokio::time::Instant::now() + after));
                self.lots
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((destination, class, lot));
            }
            pause(&mut rng, 200, 800).await;
        }
    }

    /// ReceiveTransfer for every transfer whose train has arrived; ones the gateway has not
    /// yet shipped stay for the next round.
    async fn receive_arrived(&self, arriving: &mut Vec<(String, tokio::time::Instant)>) {
        let now = tokio::time::Instant::now();
        let mut still = Vec::new();
        for (transfer_id, at) in arriving.drain(..) {
            if at > now {
                still.push((transfer_id, at));
                continue;
            }
            if !receive(&self.recorder, &self.gateway, &transfer_id).await {
                still.push((transfer_id, now + Duration::from_millis(500)));
            }
        }
        *arriving = still;
    }

    /// A site's sensor gateway: registers the chilled zone's sensor, then pushes readings
    /// (5 s apart in reading time) that now and then go warm for over a minute, so an
    /// excursion alarm is raised and the zone is held.
    pub async fn readings(self, site: usize, worker: u64, stop: watch::Receiver<bool>) {
        let mut rng = self.rng(worker);
        let clients = &self.sites[site];
        let register = telemetry::RegisterSensorRequest {
            request_id: format!("{}-register-{}", self.run, clients.sensor),
            sensor_id: clients.sensor.clone(),
            binding: Some(telemetry::register_sensor_request::Binding::ZoneId(
                clients.chilled_zone.clone(),
            )),
            profile: Some(telemetry::SensorProfile {
                min_excursion_duration: Some(proto_time::duration(Duration::from_secs(60))),
                offline_after: Some(proto_time::duration(Duration::from_secs(7 * 86_400))),
                ..Default::default()
            }),
            description: "soak: chilled room".into(),
            actor: Default::default(),
        };
        let client = clients.telemetry_ops.clone();
        let registered = self
            .recorder
            .call(&format!("RegisterSensor {}", clients.sensor), || {
                let mut client = client.clone();
                let message = register.clone();
                async move { client.register_sensor(request(message)).await }
            })
            .await;
        if !matches!(registered, Outcome::Ack(_)) {
            return;
        }
        let mut clock = self.readings_from_ms;
        let mut warm_left = 0u32;
        let mut n = 0u64;
        while !stopped(&stop) {
            if clock > Utc::now().timestamp_millis() - 60_000 {
                pause(&mut rng, 500, 1_000).await;
                continue;
            }
            n += 1;
            let request_id = format!("{}-r{worker}-{n}", self.run);
            let mut readings = Vec::new();
            for _ in 0..6 {
                if warm_left == 0 && rng.gen_bool(0.02) {
                    warm_left = rng.gen_range(14..24);
                }
                let celsius = if warm_left > 0 {
                    warm_left -= 1;
                    rng.gen_range(7.0..9.0)
                } else {
                    rng.gen_range(2.0..3.0)
                };
                clock += 5_000;
                readings.push(telemetry::Reading {
                    sensor_id: clients.sensor.clone(),
                    time: Some(proto_time::timestamp(clock)),
                    celsius,
                    ..Default::default()
                });
            }
            let times_ms = readings
                .iter()
                .filter_map(|r| r.time.as_ref().and_then(proto_time::millis))
                .collect();
            let message = telemetry::PushReadingsRequest {
                request_id: request_id.clone(),
                readings,
            };
            let client = clients.telemetry_sensors.clone();
            let outcome = self
                .recorder
                .call(&format!("PushReadings {request_id}"), || {
                    let mut client = client.clone();
                    let message = message.clone();
                    async move { client.push_readings(request(message)).await }
                })
                .await;
            if let Outcome::Ack(summary) = outcome {
                if summary.rejected == 0 {
                    self.recorder.record(|h| {
                        h.readings.push(ReadingsAck {
                            site: clients.id.clone(),
                            sensor: clients.sensor.clone(),
                            request_id,
                            times_ms,
                        });
                    });
                } else {
                    self.recorder.record(|h| {
                        h.bad_answers.push(crate::model::BadAnswer {
                            call: format!("PushReadings {request_id}"),
                            code: "REJECTED".into(),
                            message: format!("{:?}", summary.rejections),
                        });
                    });
                }
            }
            pause(&mut rng, 150, 400).await;
        }
    }

    /// The WatchAlarms consumer: follows every site's alarm events through the gateway,
    /// reconnecting after any interruption from the last sequence it received + 1.
    pub async fn watch_alarms(self, mut stop: watch::Receiver<bool>) {
        let mut last: BTreeMap<String, u64> =
            self.sites.iter().map(|s| (s.id.clone(), 0)).collect();
        while !stopped(&stop) {
            let message = network::WatchAlarmsRequest {
                from_sequences: last
                    .iter()
                    .map(|(site, seq)| (site.clone(), seq + 1))
                    .collect(),
                site_ids: Vec::new(),
            };
            let mut client = self.gateway.clone();
            let opened = tokio::select! {
                opened = client.watch_alarms(tonic::Request::new(message)) => opened,
                _ = stop.changed() => return,
            };
            if let Ok(stream) = opened {
                let mut stream = stream.into_inner();
                loop {
                    let next = tokio::select! {
                        next = stream.message() => next,
                        _ = stop.changed() => return,
                    };
                    let Ok(Some(answer)) = next else { break };
                    self.recorder.record(|h| {
                        for event in answer.events {
                            let Some(inner) = event.event else { continue };
                            let seen = AlarmEventSeen {
                                sequence: inner.sequence,
                                alarm_id: inner.alarm.map(|a| a.alarm_id).unwrap_or_default(),
                            };
                            let at = last.entry(event.site_id.clone()).or_default();
                            *at = (*at).max(seen.sequence);
                            h.watched.entry(event.site_id).or_default().push(seen);
                        }
                    });
                }
            }
            self.recorder
                .stats
                .reconnections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// ReceiveTransfer of one transfer: true when it is done with (completed, receiving on its
/// own, failed), false when it is not yet shipped.
///
/// Each call is a new attempt with a request id of its own, retried under that id through
/// transient failures. A refused attempt (not shipped yet) is remembered under its id as
/// refused (README, Guarantees): trying again later under the same id would be answered
/// the same refusal forever, as a real client would find.
pub async fn receive(
    recorder: &Recorder,
    gateway: &NetworkServiceClient<Channel>,
    transfer_id: &str,
) -> bool {
    static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = network::ReceiveTransferRequest {
        request_id: format!("{transfer_id}-receive-{attempt}"),
        transfer_id: transfer_id.to_owned(),
        actor: Default::default(),
    };
    let outcome = recorder
        .call(&format!("ReceiveTransfer {transfer_id}"), || {
            let mut client = gateway.clone();
            let message = message.clone();
            async move { client.receive_transfer(request(message)).await }
        })
        .await;
    match outcome {
        Outcome::Ack(_) | Outcome::NoAnswer => true,
        Outcome::Refused(status) if status.code() == tonic::Code::FailedPrecondition => {
            // Not in transit yet (REQUESTED), or FAILED for good.
            let message = network::GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            };
            let read = recorder
                .call(&format!("GetTransfer {transfer_id}"), || {
                    let mut client = gateway.clone();
                    let message = message.clone();
                    async move { client.get_transfer(request(message)).await }
                })
                .await;
            match read {
                Outcome::Ack(t) => t.state != network::TransferState::Requested as i32,
                _ => true,
            }
        }
        Outcome::Refused(_) => true,
    }
}
