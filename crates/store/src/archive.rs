//! The write-ahead log archive: with `StoreOptions::wal_archive_dir`, every log segment is
//! copied there, and the copy fsynced, before it may be deleted (at a checkpoint, or after
//! recovery replayed it). A backup (see `crate::snapshot`) plus the archived segments after
//! it restore the database to any later generation: point-in-time recovery.
//!
//! An archived segment holds the segment's whole records only (not the zeros a segment is
//! made with, nor a torn tail), under the segment's name, `<first generation>.log`. A
//! database restored from a backup numbers its generations from a new range (see
//! `snapshot::restore`), so it may keep archiving into the same directory without taking an
//! archived segment's name; an archived file that would be replaced by different bytes is
//! refused all the same, loudly.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::StoreError;
use crate::wal::{self, Tail};

/// Copies the whole records of `segment` into `archive` (made if missing) and makes the copy
/// durable: the file and the directory are fsynced before this returns.
pub(crate) fn archive_segment(segment: &Path, archive: &Path) -> Result<(), StoreError> {
    let Some(name) = segment.file_name() else {
        return Ok(());
    };
    let bytes = std::fs::read(segment)?;
    let (records, tail) = wal::decode_segment(&bytes);
    if records.is_empty() {
        return Ok(());
    }
    let end = match tail {
        Tail::Clean => bytes.len(),
        Tail::Torn { offset } | Tail::Zeros { offset } => offset,
    };
    let whole = &bytes[..end];
    std::fs::create_dir_all(archive)?;
    let target = archive.join(name);
    match std::fs::read(&target) {
        Ok(existing) if existing == whole => return Ok(()),
        Ok(_) => {
            return Err(StoreError::Incompatible(format!(
                "{} already holds other records of generation {}: is this archive \
                 directory shared with another database?",
                target.display(),
                name.to_string_lossy()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let partial = archive.join(format!("{}.partial", name.to_string_lossy()));
    let mut file = File::create(&partial)?;
    file.write_all(whole)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, &target)?;
    wal::sync_dir(archive)
}

/// Calls `apply` with every archived record after `after_generation`, in generation order,
/// until it returns `false`. Damage in an archived segment is an error: what follows it
/// could not be trusted.
pub(crate) fn replay(
    archive: &Path,
    after_generation: u64,
    mut apply: impl FnMut(wal::Record) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut last = after_generation;
    for (_, path) in wal::segments(archive)? {
        let bytes = std::fs::read(&path)?;
        let (records, tail) = wal::decode_segment(&bytes);
        if tail != Tail::Clean {
            return Err(StoreError::Corrupt(format!(
                "{}: damaged archived segment",
                path.display()
            )));
        }
        for record in records {
            if record.generation <= last {
                continue;
            }
            last = record.generation;
            if !apply(record)? {
                return Ok(());
            }
        }
    }
    Ok(())
}
