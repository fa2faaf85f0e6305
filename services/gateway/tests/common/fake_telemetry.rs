//! A site's telemetry that has two alarms and answers ListAlarms with them, newest first,
//! a page at a time, and whose alarm feed holds [`FEED_EVENTS`] events (then nothing new,
//! the stream staying open); every other call is UNIMPLEMENTED.

use std::pin::Pin;

use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_server::{
    TelemetryService, TelemetryServiceServer,
};
use coldchain_runtime::host::ServiceContext;
use coldchain_runtime::proto_time::timestamp;
use coldchain_runtime::server::{ServiceSpec, always_healthy, never_fatal};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// The fake's server, as the host runs it.
pub fn service(ctx: &ServiceContext) -> ServiceSpec {
    ServiceSpec {
        label: ctx.label(),
        service_name: coldchain_proto::TELEMETRY_SERVICE,
        routes: tonic::service::Routes::new(TelemetryServiceServer::new(TwoAlarms {
            site_id: ctx.site.id.clone(),
        })),
        probe: always_healthy(),
        fatal: never_fatal(),
        on_stopped: Box::new(|| {}),
    }
}

struct TwoAlarms {
    site_id: String,
}

impl TwoAlarms {
    /// Two excursions, newest first, cleared a second after they started.
    fn alarms(&self) -> Vec<tel::Alarm> {
        let at_ms = 1_780_000_000_000;
        ["b", "a"]
            .into_iter()
            .zip([at_ms + 10_000, at_ms])
            .map(|(tag, started_ms)| tel::Alarm {
                alarm_id: format!("alarm-{tag}"),
                site_id: self.site_id.clone(),
                sensor_id: "reefer-1".into(),
                kind: tel::AlarmKind::ExcursionHigh as i32,
                state: tel::AlarmState::ClearedUnack as i32,
                started_at: Some(timestamp(started_ms)),
                cleared_at: Some(timestamp(started_ms + 1_000)),
                ..tel::Alarm::default()
            })
            .collect()
    }
}

/// Events in the fake's alarm feed (sequences 1 to this).
pub const FEED_EVENTS: u64 = 40_000;

/// One feed event, padded so that the feed weighs about 10 MB: far more than the windows
/// and buffers between a gateway and a client that stops reading.
fn feed_event(site_id: &str, sequence: u64) -> tel::AlarmEvent {
    tel::AlarmEvent {
        sequence,
        kind: tel::AlarmEventKind::Updated as i32,
        alarm: Some(tel::Alarm {
            alarm_id: format!("alarm-{sequence}"),
            site_id: site_id.to_string(),
            sensor_id: format!("{sequence:-<200}"),
            ..tel::Alarm::default()
        }),
        ..tel::AlarmEvent::default()
    }
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the fake telemetry only lists alarms",
    ))
}

#[tonic::async_trait]
impl TelemetryService for TwoAlarms {
    async fn get_exposure(
        &self,
        _: Request<tel::GetExposureRequest>,
    ) -> Result<Response<tel::Exposure>, Status> {
        unimplemented()
    }
    async fn list_alarms(
        &self,
        request: Request<tel::ListAlarmsRequest>,
    ) -> Result<Response<tel::ListAlarmsResponse>, Status> {
        let request = request.into_inner();
        let alarms = self.alarms();
        let from: usize = request.page_token.parse().unwrap_or(0).min(alarms.len());
        let size = match usize::try_from(request.page_size) {
            Ok(0) | Err(_) => alarms.len(),
            Ok(size) => size,
        };
        let to = from.saturating_add(size).min(alarms.len());
        Ok(Response::new(tel::ListAlarmsResponse {
            next_page_token: if to < alarms.len() {
                to.to_string()
            } else {
                String::new()
            },
            alarms: alarms[from..to].to_vec(),
        }))
    }

    async fn stream_readings(
        &self,
        _: Request<Streaming<tel::ReadingBatch>>,
    ) -> Result<Response<tel::IngestSummary>, Status> {
        unimplemented()
    }

    async fn push_readings(
        &self,
        _: Request<tel::PushReadingsRequest>,
    ) -> Result<Response<tel::IngestSummary>, Status> {
        unimplemented()
    }

    async fn register_sensor(
        &self,
        _: Request<tel::RegisterSensorRequest>,
    ) -> Result<Response<tel::Sensor>, Status> {
        unimplemented()
    }

    async fn list_sensors(
        &self,
        _: Request<tel::ListSensorsRequest>,
    ) -> Result<Response<tel::ListSensorsResponse>, Status> {
        unimplemented()
    }

    async fn query_readings(
        &self,
        _: Request<tel::QueryReadingsRequest>,
    ) -> Result<Response<tel::QueryReadingsResponse>, Status> {
        unimplemented()
    }

    async fn get_mean_kinetic_temperature(
        &self,
        _: Request<tel::GetMeanKineticTemperatureRequest>,
    ) -> Result<Response<tel::GetMeanKineticTemperatureResponse>, Status> {
        unimplemented()
    }

    async fn acknowledge_alarm(
        &self,
        _: Request<tel::AcknowledgeAlarmRequest>,
    ) -> Result<Response<tel::Alarm>, Status> {
        unimplemented()
    }

    type WatchAlarmsStream = Stream<tel::WatchAlarmsResponse>;

    async fn watch_alarms(
        &self,
        request: Request<tel::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        let from = request.into_inner().from_sequence.max(1);
        let site_id = self.site_id.clone();
        let batches: Vec<Result<tel::WatchAlarmsResponse, Status>> = (from..=FEED_EVENTS)
            .collect::<Vec<u64>>()
            .chunks(500)
            .map(|chunk| {
                Ok(tel::WatchAlarmsResponse {
                    events: chunk.iter().map(|n| feed_event(&site_id, *n)).collect(),
                    head_sequence: FEED_EVENTS,
                })
            })
            .collect();
        let caught_up = Ok(tel::WatchAlarmsResponse {
            events: Vec::new(),
            head_sequence: FEED_EVENTS,
        });
        let feed = tokio_stream::iter(batches)
            .chain(tokio_stream::once(caught_up))
            .chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(feed)))
    }
}
