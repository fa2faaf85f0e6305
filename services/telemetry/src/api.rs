//! The tonic handlers, a few lines each: the request through the wire (checked for form),
//! the use case in the app, the answer through the wire. Refusals become statuses in
//! `error`.

use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_server::TelemetryService;
use coldchain_runtime::auth::author;
use coldchain_runtime::feed::FeedStream;
use coldchain_runtime::idempotency::record_request_id;
use futures::TryStreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::app::TelemetryApp;
use crate::wire::{self, convert, requests};

/// The telemetry service of one site.
pub struct TelemetryApi {
    app: TelemetryApp,
}

impl TelemetryApi {
    /// Handlers over `app`.
    pub fn new(app: TelemetryApp) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl TelemetryService for TelemetryApi {
    async fn stream_readings(
        &self,
        request: Request<Streaming<pb::ReadingBatch>>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        let batches = request.into_inner().map_ok(|batch| batch.readings);
        let summary = self.app.ingest_stream(batches, wire::prepare).await?;
        Ok(Response::new(convert::ingest_summary(summary)))
    }

    async fn push_readings(
        &self,
        request: Request<pb::PushReadingsRequest>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let fingerprint = requests::push_readings(&req)?;
        let summary = (self.app)
            .push_readings(fingerprint, &req.readings, wire::prepare)
            .await?;
        Ok(Response::new(convert::ingest_summary(summary)))
    }

    async fn register_sensor(
        &self,
        request: Request<pb::RegisterSensorRequest>,
    ) -> Result<Response<pb::Sensor>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, sensor) = requests::register_sensor(req, self.app.site())?;
        let sensor = self
            .app
            .register_sensor(fingerprint, sensor, author)
            .await?;
        Ok(Response::new(convert::sensor(sensor)))
    }

    async fn list_sensors(
        &self,
        request: Request<pb::ListSensorsRequest>,
    ) -> Result<Response<pb::ListSensorsResponse>, Status> {
        let (filter, page, query) = requests::list_sensors(request.get_ref())?;
        let (sensors, last) = self.app.list_sensors(&filter, &page)?;
        Ok(Response::new(wire::sensors_page(sensors, last, &query)))
    }

    async fn query_readings(
        &self,
        request: Request<pb::QueryReadingsRequest>,
    ) -> Result<Response<pb::QueryReadingsResponse>, Status> {
        let query = requests::query_readings(request.get_ref())?;
        let result = self.app.query_readings(&query)?;
        Ok(Response::new(wire::readings(query.sensor_id, result)))
    }

    async fn get_mean_kinetic_temperature(
        &self,
        request: Request<pb::GetMeanKineticTemperatureRequest>,
    ) -> Result<Response<pb::GetMeanKineticTemperatureResponse>, Status> {
        let query = requests::mean_kinetic_temperature(request.get_ref())?;
        let result = self.app.mean_kinetic_temperature(&query)?;
        Ok(Response::new(wire::mean_kinetic_temperature(
            query.sensor_id,
            query.activation_energy,
            result,
        )))
    }

    async fn get_exposure(
        &self,
        request: Request<pb::GetExposureRequest>,
    ) -> Result<Response<pb::Exposure>, Status> {
        let query = requests::exposure(request.get_ref())?;
        let (record, figures) = self.app.exposure(&query)?;
        Ok(Response::new(wire::exposure(query, &record, figures)))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let (filter, page, query) = requests::list_alarms(request.get_ref())?;
        let (alarms, last) = self.app.list_alarms(&filter, &page)?;
        Ok(Response::new(wire::alarms_page(alarms, last, &query)))
    }

    async fn acknowledge_alarm(
        &self,
        request: Request<pb::AcknowledgeAlarmRequest>,
    ) -> Result<Response<pb::Alarm>, Status> {
        // The request's acknowledged_by is the actor.
        let author = author(&request, &request.get_ref().acknowledged_by);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, ack) = requests::acknowledge_alarm(req)?;
        let alarm = self.app.acknowledge_alarm(fingerprint, ack, author).await?;
        Ok(Response::new(convert::alarm(alarm)))
    }

    type WatchAlarmsStream = FeedStream<pb::WatchAlarmsResponse>;

    /// The alarm feed from `from_sequence`, by the rules of the network's one resumable
    /// feed (see [`crate::app::watch`]): a message with no events and the head once the
    /// consumer has everything and every keep-alive interval after; RESOURCE_EXHAUSTED for
    /// a consumer that leaves its queue full for the stall time, UNAVAILABLE at shutdown,
    /// both naming `resume from_sequence N`; DATA_LOSS for an event that cannot be decoded.
    async fn watch_alarms(
        &self,
        request: Request<pb::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        let from = request.get_ref().from_sequence;
        let events = (self.app).watch_alarms(from, wire::alarm_event, wire::watch_message);
        Ok(Response::new(events))
    }
}
