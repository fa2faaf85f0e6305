//! `coldchain.admin.v1.AdminService`: what operations does to a server's own database over
//! gRPC, the same in `dev`, compose, Swarm and Kubernetes. For now: stream an online
//! snapshot (see `coldchain_store::snapshot`) as a backup file's bytes.
//!
//! The server bootstrap serves it next to every service that opened a store (see
//! `host::ServiceContext::limits`); the policy table lets only `operations` call it.

use std::io::Write;

use coldchain_proto::admin::v1::admin_service_server::{AdminService, AdminServiceServer};
use coldchain_proto::admin::v1::{SnapshotChunk, StreamSnapshotRequest};
use coldchain_store::Store;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ServiceError;

/// Bytes per streamed chunk: well under the 4 MiB message limit.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued ahead of a slow client before the snapshot waits for it.
const QUEUED_CHUNKS: usize = 4;

/// The admin service of one server's store.
#[derive(Clone)]
pub struct Admin {
    store: Store,
    label: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("label", &self.label).finish()
    }
}

impl Admin {
    /// The service for `store`; `label` names the server in logs.
    pub fn new(store: Store, label: String) -> Self {
        Self { store, label }
    }

    /// Its tonic server, with the server's message limit.
    pub fn server(self, max_message_bytes: usize) -> AdminServiceServer<Self> {
        AdminServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }
}

type Chunks = ReceiverStream<Result<SnapshotChunk, tonic::Status>>;

#[tonic::async_trait]
impl AdminService for Admin {
    type StreamSnapshotStream = Chunks;

    async fn stream_snapshot(
        &self,
        _request: tonic::Request<StreamSnapshotRequest>,
    ) -> Result<tonic::Response<Chunks>, tonic::Status> {
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let store = self.store.clone();
        let label = self.label.clone();
        tokio::spawn(async move {
            let sink = ChunkSink {
                tx: tx.clone(),
                buffer: Vec::with_capacity(CHUNK_BYTES),
            };
            match store.snapshot(sink).await {
                Ok((_, manifest)) => tracing::info!(
                    service = %label,
                    generation = manifest.generation,
                    ledger_sequence = manifest.ledger_sequence,
                    entries = manifest.entries,
                    log_records = manifest.log_records,
                    sha256 = %manifest.sha256,
                    "streamed a snapshot"
                ),
                Err(error) => {
                    tracing::warn!(service = %label, %error, "a snapshot failed");
                    // The client may be gone already (that is what failed the snapshot).
                    let _ = tx
                        .send(Err(tonic::Status::from(ServiceError::from(error))))
                        .await;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

/// A `Write` that sends what it is given as chunks to the client. Used only on the
/// snapshot's blocking threads (it blocks while the client is slow).
struct ChunkSink {
    tx: mpsc::Sender<Result<SnapshotChunk, tonic::Status>>,
    buffer: Vec<u8>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(SnapshotChunk { data }))
            .map_err(|_| std::io::Error::other("the client stopped reading the snapshot"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
