//! StreamReadings: a client stream of batches of readings, stored as they come. A reader
//! task keeps receiving while a write is in flight, and consecutive batches that arrived
//! meanwhile are stored in one write (up to [`MAX_READINGS_PER_WRITE`] readings).

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::{PrepareFn, TelemetryApp};
use crate::domain::{
    IngestSummary, MAX_BATCH_READINGS, MAX_REJECTION_DETAILS, StreamEnd, TelemetryRefusal,
};
use crate::store::TelemetryError;

/// The most readings one StreamReadings write gathers from consecutive batches.
pub const MAX_READINGS_PER_WRITE: usize = 20_000;
/// Batches a stream reads ahead while a write is in flight.
pub const STREAM_READ_AHEAD: usize = 8;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TelemetryApp {
    /// Stores every batch of `batches` (each a batch's readings, or the stream's error,
    /// which ends it as it is) and answers with the summary of them all. Every batch
    /// before an error, an oversized batch or a silence longer than the idle timeout is
    /// stored.
    pub async fn ingest_stream<R, E, S>(
        &self,
        batches: S,
        prepare: PrepareFn<R>,
    ) -> Result<IngestSummary, E>
    where
        S: Stream<Item = Result<Vec<R>, E>> + Send + Unpin + 'static,
        R: Send + 'static,
        E: From<TelemetryError> + From<StreamEnd> + Send + 'static,
    {
        let idle = self.idle_timeout;
        let (tx, mut rx) = mpsc::channel::<Result<Vec<R>, E>>(STREAM_READ_AHEAD);
        let mut batches = batches;
        let reader = tokio::spawn(async move {
            loop {
                // A client that holds a stream open and sends nothing would keep its
                // connection and task forever: silence beyond the idle timeout ends it.
                let next = match tokio::time::timeout(idle, batches.next()).await {
                    Ok(next) => next,
                    Err(_) => Some(Err(E::from(StreamEnd::Idle {
                        seconds: idle.as_secs(),
                    }))),
                };
                let (message, last) = match next {
                    Some(Ok(batch)) => (Ok(batch), false),
                    None => return,
                    Some(Err(error)) => (Err(error), true),
                };
                if tx.send(message).await.is_err() || last {
                    return;
                }
            }
        });
        let _abort_reader = AbortOnDrop(reader);
        let mut total = IngestSummary::default();
        let mut next_batch_index = 0i64;
        while let Some(first) = rx.recv().await {
            let mut received = vec![first];
            let mut readings = received[0].as_ref().map_or(0, Vec::len);
            while readings < MAX_READINGS_PER_WRITE {
                match rx.try_recv() {
                    Ok(more) => {
                        readings += more.as_ref().map_or(0, Vec::len);
                        received.push(more);
                    }
                    Err(_) => break,
                }
            }
            let mut owned = Vec::with_capacity(received.len());
            let mut refused = None;
            for batch in received {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => {
                        refused = Some(error);
                        break;
                    }
                };
                if batch.len() > MAX_BATCH_READINGS {
                    refused = Some(E::from(TelemetryError::Refused(
                        TelemetryRefusal::BatchTooLarge {
                            batch: next_batch_index,
                            readings: batch.len(),
                            max: MAX_BATCH_READINGS,
                        },
                    )));
                    break;
                }
                owned.push((next_batch_index, batch));
                next_batch_index += 1;
            }
            if !owned.is_empty() {
                let budget = MAX_REJECTION_DETAILS.saturating_sub(total.rejections.len());
                let prepared = {
                    let views: Vec<(i64, &[R])> =
                        owned.iter().map(|(i, b)| (*i, b.as_slice())).collect();
                    prepare(
                        &self.store.known_sensors(),
                        &self.site().id,
                        &views,
                        self.store.now_millis(),
                        budget,
                    )
                };
                let summary = self.store.ingest(None, prepared).await?;
                self.readings.record(&summary);
                total.add(summary);
            }
            if let Some(error) = refused {
                return Err(error);
            }
        }
        Ok(total)
    }
}
