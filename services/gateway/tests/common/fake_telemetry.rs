//! A site's telemetry that has two alarms and answers ListAlarms with them, newest first,
//! a page at a time; every other call is UNIMPLEMENTED.

use std::pin::Pin;

use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_server::{
    TelemetryService, TelemetryServiceServer,
};
use coldchain_runtime::host::ServiceContext;
use coldchain_runtime::proto_time::timestamp;
use coldchain_runtime::server::{ServiceSpec, always_healthy, never_fatal};
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

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the fake telemetry only lists alarms",
    ))
}

#[tonic::async_trait]
impl TelemetryService for TwoAlarms {
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
        _: Request<tel::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        unimplemented()
    }
}
