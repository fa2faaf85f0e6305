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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{WalWriter, decode_segment, segments};

    fn put(key: &str, value: &str) -> wal::Change {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    #[test]
    fn recovery_archives_the_whole_records_of_each_segment_before_deleting_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let data = db.open_tree("data").unwrap();
        let wal_dir = dir.path().join("wal");
        let archive = dir.path().join("archive");
        std::fs::create_dir_all(&wal_dir).unwrap();
        let mut writer = WalWriter::new(&wal_dir, 1 << 16);
        for generation in 1..=3 {
            writer
                .append(generation, &[put("k", &generation.to_string())])
                .unwrap();
        }
        drop(writer);
        // What a crash leaves: the segment, made to its full size, never checkpointed.
        let (applied, _) = wal::recover_counting(
            &db,
            &data,
            &wal_dir,
            &crate::fs::RealFileSystem,
            Some(&archive),
        )
        .unwrap();
        assert_eq!(applied, 3);
        assert!(segments(&wal_dir).unwrap().is_empty());
        let archived = segments(&archive).unwrap();
        assert_eq!(archived.len(), 1);
        let bytes = std::fs::read(&archived[0].1).unwrap();
        let (records, tail) = decode_segment(&bytes);
        assert_eq!(records.len(), 3);
        assert_eq!(
            tail,
            Tail::Clean,
            "whole records only, not the zeros after them"
        );

        // The same segment archived again (a crash between archiving and deleting) is
        // fine; other bytes under its name are refused.
        std::fs::write(wal_dir.join(archived[0].1.file_name().unwrap()), &bytes).unwrap();
        archive_segment(&wal_dir.join(archived[0].1.file_name().unwrap()), &archive).unwrap();
        let mut buffer = Vec::new();
        wal::encode(9, &[put("x", "y")], &mut buffer).unwrap();
        let other_segment = wal_dir.join(archived[0].1.file_name().unwrap());
        std::fs::write(&other_segment, &buffer).unwrap();
        let error = archive_segment(&other_segment, &archive).unwrap_err();
        assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
    }
}
