//! Taking an online snapshot of the database (see `crate::snapshot` for the design and
//! the file).

use std::io::Write;

use super::{FORMAT_VERSION, Store, WAL_DIR};
use crate::StoreError;
use crate::snapshot::{SnapshotHeader, SnapshotManifest, SnapshotWriter};
use crate::wal::{self, Tail};

impl Store {
    /// Writes a consistent snapshot of the database to `out` while writes go on, and
    /// returns `out` with the snapshot's manifest.
    ///
    /// Every write acknowledged before the call is in it; the snapshot is sled's state at
    /// one generation (G1), whose ledger sequence the manifest names. Writers wait only
    /// once, for one commit of the group commit, while G1 is noted; the copy and the log's
    /// records are read off their path (blocking threads). While it runs, the write-ahead
    /// log keeps every segment the snapshot may read.
    pub async fn snapshot<W: Write + Send + 'static>(
        &self,
        out: W,
    ) -> Result<(W, SnapshotManifest), StoreError> {
        self.inner.commit.check_open()?;
        let pin = self.inner.commit.pin();
        let base_generation = pin.generation();
        let header = SnapshotHeader {
            site: self.inner.identity.site.clone(),
            service: self.inner.identity.service.clone(),
            format_version: FORMAT_VERSION,
            base_generation,
            started_at_ms: self.inner.options.clock.now_millis(),
        };
        let data = self.inner.data.clone();
        let copy_header = header.clone();
        let mut writer = blocking(move || {
            let mut writer = SnapshotWriter::start(out, &copy_header)?;
            for entry in data.iter() {
                let (key, value) = entry?;
                writer.entry(&key, &value)?;
            }
            Ok(writer)
        })
        .await?;
        // G1: under the writer lock once everything staged is applied, nothing is on its
        // way into sled, so the marker, the generation and the ledger sequence agree, and
        // no generation after G1 touched what was copied.
        let (generation, last_logged, ledger_sequence) = {
            let state = self.inner.commit.lock().await;
            self.inner.commit.check_open()?;
            let commit = self.inner.commit.request_flush()?;
            let staged_through = commit.generation();
            commit.wait().await?;
            self.inner.commit.wait_applied(staged_through).await?;
            (
                self.inner.commit.applied_through(),
                wal::applied_generation(&self.inner.data)?,
                state.next_sequence.saturating_sub(1),
            )
        };
        let wal_dir = self.inner.path.join(WAL_DIR);
        let finished_at_ms = self.inner.options.clock.now_millis();
        let (out, manifest) = blocking(move || {
            let mut copied = base_generation;
            let mut buffer = Vec::new();
            let segments = wal::segments(&wal_dir)?;
            let newest = segments.len().saturating_sub(1);
            for (index, (first, path)) in segments.iter().enumerate() {
                if *first > generation {
                    break;
                }
                let bytes = match std::fs::read(path) {
                    Ok(bytes) => bytes,
                    // Retired meanwhile: it held only generations up to the pin.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                let (records, tail) = wal::decode_segment(&bytes);
                if index != newest && matches!(tail, Tail::Torn { .. }) {
                    return Err(StoreError::Corrupt(format!(
                        "{}: damaged write-ahead log segment; no snapshot taken",
                        path.display()
                    )));
                }
                for record in records {
                    if record.generation <= copied || record.generation > generation {
                        continue;
                    }
                    wal::encode(record.generation, &record.changes, &mut buffer)?;
                    writer.log_record(&buffer)?;
                    copied = record.generation;
                }
            }
            if last_logged > base_generation && copied != last_logged {
                return Err(StoreError::Corrupt(format!(
                    "the write-ahead log ends at generation {copied}, sled has {last_logged}: no snapshot taken"
                )));
            }
            writer.finish(SnapshotManifest {
                site: header.site,
                service: header.service,
                format_version: header.format_version,
                base_generation,
                generation,
                ledger_sequence,
                started_at_ms: header.started_at_ms,
                finished_at_ms,
                entries: 0,
                log_records: 0,
                sha256: String::new(),
            })
        })
        .await?;
        drop(pin);
        Ok((out, manifest))
    }
}

/// Runs `f` on tokio's blocking threads: a copy reads all of sled and the log.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("snapshot task: {e}"))))?
}
