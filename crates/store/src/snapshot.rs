//! Online backups: the file a snapshot writes, checking one, and restoring one.
//!
//! A snapshot is a fuzzy copy plus redo, as databases take them. The log is pinned (no
//! segment holding a generation after G0, the last one applied, is deleted while the
//! snapshot runs); every key of sled's data tree is copied while writes go on (sled 0.34's
//! iterators are not point-in-time, so each key is copied at some generation between G0 and
//! the end of the copy); then, under the writer lock once everything staged is applied, G1
//! (the last generation applied) and the ledger sequence are noted, and the log's records
//! of the generations after G0 up to G1 are copied. A record holds each key's whole new
//! value (or its deletion), so replaying those records in order over the copy yields exactly
//! sled's state at G1: a key no generation in between touched was copied as it was at G1,
//! and every other key ends with its last value up to G1.
//!
//! The file is a sequence of frames, `kind (u8) | length (u32 LE) | payload`, then the
//! SHA-256 of every byte before it:
//! - `MAGIC` first (8 bytes, not a frame);
//! - one header frame (JSON [`SnapshotHeader`]): whose data, which format, from G0;
//! - entry frames, `key length (u32 LE) | key | value`: the copy of sled's data tree;
//! - log frames, each one write-ahead log record (`crate::wal`), generations ascending;
//! - one manifest frame (JSON [`SnapshotManifest`]), last: G1, the ledger sequence, the
//!   counts of entries and records.
//!
//! Checking a file reads it whole: its structure, the counts, and the digest, so one
//! flipped byte anywhere is refused by [`verify`] and by [`restore`].
//!
//! [`restore_to`] goes on from G1 with the database's log archive (`crate::archive`), up
//! to a ledger sequence: point-in-time recovery. A restored database numbers its
//! generations from a new range (`RESTORED_GENERATIONS`), so its log segments never take
//! the names of the original's archived ones.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{FORMAT_VERSION, Identity};
use crate::wal::{self, Record};
use crate::{StoreError, records};

/// The file's first bytes: what it is, and the layout's version (the last byte).
pub const MAGIC: &[u8; 8] = b"CCSNAP\x00\x01";

const HEADER: u8 = 1;
const ENTRY: u8 = 2;
const LOG: u8 = 3;
const MANIFEST: u8 = 4;

/// How far a restored database's generation numbers jump past the backup's: far more
/// generations than a database makes in centuries (2^48), and room for 65,536 restores.
/// So a database's history stays in one range of generations, `[k·2^48, (k+1)·2^48)`, and
/// the history of a database restored from its backup goes on in the next.
const RESTORED_GENERATIONS: u64 = 1 << 48;

/// sled's page cache while restoring.
const RESTORE_CACHE_BYTES: u64 = 64 << 20;

/// A frame larger than this is damage, not data (a log record is at most 1 GiB).
const MAX_FRAME_BYTES: usize = (1 << 30) + 64;

/// What a snapshot holds, written before its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub site: String,
    pub service: String,
    /// The store format of the data (`FORMAT_VERSION` of the binary that took it).
    pub format_version: u32,
    /// G0: every generation up to it was applied before the copy began.
    pub base_generation: u64,
    /// When the snapshot began, in milliseconds since the Unix epoch (the store's clock).
    pub started_at_ms: i64,
}

/// What a snapshot is, written after its content: the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub site: String,
    pub service: String,
    pub format_version: u32,
    /// G0, as in the header.
    pub base_generation: u64,
    /// G1: the restored database is sled's state once this generation was applied.
    pub generation: u64,
    /// The last ledger sequence at G1 (0 for an empty ledger): the ledger restored is
    /// gapless from 1 to it.
    pub ledger_sequence: u64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Entry frames in the file.
    pub entries: u64,
    /// Log frames in the file.
    pub log_records: u64,
    /// The SHA-256 of the file before its last 32 bytes (which hold it), in hex. Not in
    /// the manifest frame itself (it cannot hash itself): filled in when written or read.
    #[serde(skip)]
    pub sha256: String,
}

impl SnapshotManifest {
    /// The identity whose database this is.
    pub fn identity(&self) -> Identity {
        Identity {
            site: self.site.clone(),
            service: self.service.clone(),
        }
    }
}

/// Writes a snapshot's frames and hashes them.
pub(crate) struct SnapshotWriter<W: Write> {
    out: W,
    hasher: Sha256,
    pub(crate) entries: u64,
    pub(crate) log_records: u64,
    pub(crate) bytes: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a file with its magic and header.
    pub(crate) fn start(out: W, header: &SnapshotHeader) -> Result<Self, StoreError> {
        let mut writer = Self {
            out,
            hasher: Sha256::new(),
            entries: 0,
            log_records: 0,
            bytes: 0,
        };
        writer.write_raw(MAGIC)?;
        let json = serde_json::to_vec(header).map_err(|e| StoreError::Encode(e.to_string()))?;
        writer.frame(HEADER, &[&json])?;
        Ok(writer)
    }

    /// One key of sled's data tree.
    pub(crate) fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let key_len = len_u32(key.len())?.to_le_bytes();
        self.frame(ENTRY, &[&key_len, key, value])?;
        self.entries += 1;
        Ok(())
    }

    /// One write-ahead log record, header and CRC included.
    pub(crate) fn log_record(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.frame(LOG, &[record])?;
        self.log_records += 1;
        Ok(())
    }

    /// Ends the file with its manifest and digest; returns the manifest with the digest.
    pub(crate) fn finish(
        mut self,
        mut manifest: SnapshotManifest,
    ) -> Result<(W, SnapshotManifest), StoreError> {
        manifest.entries = self.entries;
        manifest.log_records = self.log_records;
        let json = serde_json::to_vec(&manifest).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.frame(MANIFEST, &[&json])?;
        let digest = self.hasher.finalize_reset();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        manifest.sha256 = hex(&digest);
        Ok((self.out, manifest))
    }

    fn frame(&mut self, kind: u8, parts: &[&[u8]]) -> Result<(), StoreError> {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if len > MAX_FRAME_BYTES {
            return Err(StoreError::Encode(format!(
                "a snapshot frame of {len} bytes"
            )));
        }
        self.write_raw(&[kind])?;
        self.write_raw(&len_u32(len)?.to_le_bytes())?;
        for part in parts {
            self.write_raw(part)?;
        }
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

fn len_u32(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len).map_err(|_| StoreError::Encode(format!("a snapshot field of {len} bytes")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One piece of a snapshot's content, in file order.
enum Item {
    Entry(Vec<u8>, Vec<u8>),
    Log(Record),
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("backup file: {what}"))
}

/// Reads a snapshot from `input`, checking everything but the identity, and hands each
/// item of its content to `visit` as it goes. The digest is only known at the end: a
/// caller that acts on items must undo what it did if this fails.
fn read_snapshot(
    input: impl Read,
    mut visit: impl FnMut(Item) -> Result<(), StoreError>,
) -> Result<(SnapshotHeader, SnapshotManifest), StoreError> {
    let mut reader = HashingReader {
        input,
        hasher: Sha256::new(),
        offset: 0,
    };
    let mut magic = [0u8; 8];
    reader.read(&mut magic, "its first bytes")?;
    if magic[..6] != MAGIC[..6] {
        return Err(corrupt(
            "not a coldchain backup (its first bytes are wrong)",
        ));
    }
    if magic[6..] != MAGIC[6..] {
        return Err(StoreError::Incompatible(format!(
            "backup file layout {} is not one this binary reads (it reads {}): upgrade the binary",
            u16::from_be_bytes([magic[6], magic[7]]),
            u16::from_be_bytes([MAGIC[6], MAGIC[7]])
        )));
    }
    let (kind, payload) = reader.frame()?;
    if kind != HEADER {
        return Err(corrupt(format!(
            "frame of kind {kind} where the header belongs"
        )));
    }
    let header: SnapshotHeader =
        serde_json::from_slice(&payload).map_err(|e| corrupt(format!("unreadable header: {e}")))?;
    let mut entries = 0u64;
    let mut log_records = 0u64;
    let mut last_generation = header.base_generation;
    let manifest = loop {
        let at = reader.offset;
        let (kind, payload) = reader.frame()?;
        match kind {
            ENTRY if log_records == 0 => {
                let key_len = payload
                    .get(..4)
                    .and_then(|raw| <[u8; 4]>::try_from(raw).ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(|| corrupt(format!("short entry at byte {at}")))?
                    as usize;
                let key = payload
                    .get(4..4 + key_len)
                    .ok_or_else(|| corrupt(format!("entry at byte {at} overruns its frame")))?
                    .to_vec();
                let value = payload[4 + key_len..].to_vec();
                entries += 1;
                visit(Item::Entry(key, value))?;
            }
            LOG => {
                let (records, tail) = wal::decode_segment(&payload);
                let record = match (records.into_iter().next(), tail) {
                    (Some(record), wal::Tail::Clean) => record,
                    _ => return Err(corrupt(format!("damaged log record at byte {at}"))),
                };
                if record.generation <= last_generation {
                    return Err(corrupt(format!(
                        "log record of generation {} after generation {last_generation}",
                        record.generation
                    )));
                }
                last_generation = record.generation;
                log_records += 1;
                visit(Item::Log(record))?;
            }
            MANIFEST => {
                break serde_json::from_slice::<SnapshotManifest>(&payload)
                    .map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
            }
            other => {
                return Err(corrupt(format!(
                    "unexpected frame of kind {other} at byte {at}"
                )));
            }
        }
    };
    let digest = reader.hasher.finalize_reset();
    let mut stored = [0u8; 32];
    reader.read_unhashed(&mut stored, "its digest")?;
    let mut rest = [0u8; 1];
    if reader.input.read(&mut rest)? != 0 {
        return Err(corrupt("bytes after the digest"));
    }
    if digest.as_slice() != stored {
        return Err(corrupt(format!(
            "its SHA-256 is {} but the file says {}: the file is damaged",
            hex(&digest),
            hex(&stored)
        )));
    }
    let consistent = manifest.site == header.site
        && manifest.service == header.service
        && manifest.format_version == header.format_version
        && manifest.base_generation == header.base_generation
        && manifest.started_at_ms == header.started_at_ms
        && manifest.entries == entries
        && manifest.log_records == log_records
        && last_generation <= manifest.generation.max(header.base_generation);
    if !consistent {
        return Err(corrupt("its manifest does not match its content"));
    }
    let mut manifest = manifest;
    manifest.sha256 = hex(&stored);
    Ok((header, manifest))
}

struct HashingReader<R> {
    input: R,
    hasher: Sha256,
    offset: u64,
}

impl<R: Read> HashingReader<R> {
    fn read_unhashed(&mut self, buf: &mut [u8], what: &str) -> Result<(), StoreError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(format!(
                    "cut short at byte {} (reading {what})",
                    self.offset
                ))
            } else {
                StoreError::Io(e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], what: &str) -> Result<(), StoreError> {
        self.read_unhashed(buf, what)?;
        self.hasher.update(&*buf);
        Ok(())
    }

    fn frame(&mut self) -> Result<(u8, Vec<u8>), StoreError> {
        let mut head = [0u8; 5];
        self.read(&mut head, "a frame's header")?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(corrupt(format!(
                "a frame of {len} bytes at byte {}",
                self.offset - 5
            )));
        }
        // Read in steps: a damaged length must not reserve memory the file does not have.
        let mut payload = Vec::new();
        let mut left = len;
        let mut chunk = vec![0u8; len.min(1 << 20)];
        while left > 0 {
            let n = left.min(chunk.len());
            self.read(&mut chunk[..n], "a frame")?;
            payload.extend_from_slice(&chunk[..n]);
            left -= n;
        }
        Ok((head[0], payload))
    }
}

/// Checks a backup file without restoring it: its structure, counts and digest. Returns
/// its manifest.
pub fn verify(file: &Path) -> Result<SnapshotManifest, StoreError> {
    let input = open(file)?;
    read_snapshot(input, |_| Ok(())).map(|(_, manifest)| manifest)
}

fn open(file: &Path) -> Result<BufReader<File>, StoreError> {
    File::open(file)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| {
            StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot open backup file {}: {e}", file.display()),
            ))
        })
}

/// Where a point-in-time restore goes on from a backup: the log archive of the database
/// (see `crate::archive`), and the ledger sequence to stop at (`None`: all of the archive).
#[derive(Debug, Clone, Copy)]
pub struct Recovery<'a> {
    /// The database's `wal_archive_dir`.
    pub archive: &'a Path,
    /// Restore no generation whose ledger entries pass this sequence. A generation is
    /// restored whole: when the generation holding this sequence holds later entries too,
    /// the restore stops before it (the manifest returned says where it stopped).
    pub to_sequence: Option<u64>,
    /// Restore the generations whose writes were all recorded at or before this instant
    /// (ms since the epoch), and none after: stop before the first generation holding a
    /// write recorded after it. A generation's time is the newest record time of the
    /// idempotent requests it holds (the store's clock when each was staged, under the
    /// writer lock, so generations' times never go back while the clock does not). A
    /// generation that records no request carries no time: it is restored only when a
    /// later generation at or before this instant shows it came before. The archive must
    /// hold a generation recorded after this instant, or the restore is refused (it could
    /// not tell that every write up to it is there). Not together with `to_sequence`.
    pub to_time_ms: Option<i64>,
}

/// Lays out the database a backup holds in `dir`, for `identity`, so `Store::open` opens
/// it at G1 of the snapshot. Returns the backup's manifest.
///
/// Refuses, before writing anything, a damaged file, another site's or service's backup,
/// a newer format than this binary's, and a `dir` that is not empty. The file is read
/// twice: checked whole first, then loaded (and its digest checked again; if it changed in
/// between, what was written is removed).
pub fn restore(
    file: &Path,
    dir: &Path,
    identity: &Identity,
) -> Result<SnapshotManifest, StoreError> {
    restore_to(file, dir, identity, None)
}

/// [`restore`], then the archived log's generations after the backup's, up to
/// `recovery.to_sequence`: point-in-time recovery. The manifest returned names the
/// generation and ledger sequence restored. Refuses an archive with generations missing
/// (a gap in the ledger) and a target before the backup's sequence or beyond the archive.
pub fn restore_to(
    file: &Path,
    dir: &Path,
    identity: &Identity,
    recovery: Option<Recovery<'_>>,
) -> Result<SnapshotManifest, StoreError> {
    let manifest = verify(file)?;
    if let Some(target) = recovery.and_then(|r| r.to_sequence)
        && target < manifest.ledger_sequence
    {
        return Err(StoreError::Incompatible(format!(
            "backup {} is at ledger sequence {}, after {target}: restore an older backup              (nothing was restored)",
            file.display(),
            manifest.ledger_sequence
        )));
    }
    if manifest.site != identity.site || manifest.service != identity.service {
        return Err(StoreError::Incompatible(format!(
            "backup {} holds site {:?} service {:?}, not site {:?} service {:?}: nothing was restored",
            file.display(),
            manifest.site,
            manifest.service,
            identity.site,
            identity.service
        )));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(StoreError::Incompatible(format!(
            "backup {} has store format version {}; this binary supports up to {FORMAT_VERSION}: upgrade the binary (nothing was restored)",
            file.display(),
            manifest.format_version
        )));
    }
    let existed = dir.exists();
    if existed
        && std::fs::read_dir(dir)
            .map_err(StoreError::Io)?
            .next()
            .is_some()
    {
        return Err(StoreError::Incompatible(format!(
            "{} is not empty: a backup is restored only into an empty directory (nothing was restored)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)?;
    match load(file, dir, &manifest, recovery) {
        Ok(restored) => Ok(restored),
        Err(error) => {
            // Half a database must not be opened as a whole one.
            let _ = if existed {
                clear_dir(dir)
            } else {
                std::fs::remove_dir_all(dir)
            };
            Err(error)
        }
    }
}

fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn load(
    file: &Path,
    dir: &Path,
    manifest: &SnapshotManifest,
    recovery: Option<Recovery<'_>>,
) -> Result<SnapshotManifest, StoreError> {
    let db = sled::Config::new()
        .path(dir)
        // sled's default page cache is 1 GiB: a restore writes each key once.
        .cache_capacity(RESTORE_CACHE_BYTES)
        .flush_every_ms(None)
        .open()?;
    let meta = db.open_tree("_meta")?;
    let data = db.open_tree("data")?;
    let (_, loaded) = read_snapshot(open(file)?, |item| {
        match item {
            Item::Entry(key, value) => {
                data.insert(key, value)?;
            }
            Item::Log(record) => wal::apply(&data, record.generation, record.changes)?,
        }
        Ok(())
    })?;
    if loaded.sha256 != manifest.sha256 {
        return Err(corrupt("the file changed while it was being restored"));
    }
    let mut restored = manifest.clone();
    if let Some(recovery) = recovery {
        redo_archive(&data, recovery, &mut restored)?;
    }
    // The restored database numbers its generations from a new range: its log segments
    // never take the names of the original's archived ones (see `crate::archive`).
    let next_range = restored.generation.saturating_add(RESTORED_GENERATIONS);
    data.insert(wal::APPLIED_KEY, &next_range.to_be_bytes())?;
    let ledger_sequence = match data.scan_prefix(records::LEDGER_BLOCKS).next_back() {
        Some(block) => {
            let (key, value) = block?;
            (records::decode_block_key(&key)? + records::block_len(&value)?).saturating_sub(1)
        }
        None => 0,
    };
    if ledger_sequence != restored.ledger_sequence {
        return Err(corrupt(format!(
            "restored ledger ends at sequence {ledger_sequence}, the manifest says {}",
            restored.ledger_sequence
        )));
    }
    // Written last: a database without its identity is not opened as anyone's.
    meta.insert(
        crate::store::META_FORMAT,
        &manifest.format_version.to_be_bytes(),
    )?;
    meta.insert(crate::store::META_SITE, manifest.site.as_bytes())?;
    meta.insert(crate::store::META_SERVICE, manifest.service.as_bytes())?;
    db.flush()?;
    drop((meta, data, db));
    let wal_dir = dir.join(crate::store::WAL_DIR);
    std::fs::create_dir_all(&wal_dir)?;
    let fs = crate::fs::RealFileSystem;
    crate::fs::sync_database(&fs, dir, &wal_dir)?;
    wal::sync_dir(&wal_dir)?;
    if let Some(parent) = dir.parent() {
        wal::sync_dir(parent)?;
    }
    Ok(restored)
}

/// Applies the archived generations after `restored.generation`, in order, checking the
/// ledger goes on without a gap, and stops before the first whose entries pass the target.
fn redo_archive(
    data: &sled::Tree,
    recovery: Recovery<'_>,
    restored: &mut SnapshotManifest,
) -> Result<(), StoreError> {
    if recovery.to_sequence.is_some() && recovery.to_time_ms.is_some() {
        return Err(StoreError::Incompatible(
            "a restore stops at a ledger sequence or at a time, not both (nothing was restored)"
                .into(),
        ));
    }
    let mut reached_target = false;
    // Generations with no time of their own, waiting for a later one to place them.
    let mut untimed: Vec<wal::Record> = Vec::new();
    let mut last_time_ms: Option<i64> = None;
    // Each restore moves a database's generations into the next range (see `load`).
    let range = restored.generation / RESTORED_GENERATIONS;
    crate::archive::replay(recovery.archive, restored.generation, |record| {
        if record.generation / RESTORED_GENERATIONS != range {
            // The history of a database restored from a backup of this one: this one's ends.
            return Ok(false);
        }
        let Some(target_ms) = recovery.to_time_ms else {
            return redo_generation(data, recovery, restored, &mut reached_target, record);
        };
        match generation_time_ms(&record)? {
            None => {
                untimed.push(record);
                Ok(true)
            }
            Some(time_ms) if time_ms > target_ms => {
                reached_target = true;
                Ok(false)
            }
            Some(time_ms) => {
                last_time_ms = Some(time_ms);
                for earlier in untimed.drain(..) {
                    redo_generation(data, recovery, restored, &mut reached_target, earlier)?;
                }
                redo_generation(data, recovery, restored, &mut reached_target, record)
            }
        }
    })?;
    if let Some(target_ms) = recovery.to_time_ms
        && !reached_target
    {
        let last = last_time_ms.map_or_else(
            || "holds no timed write after the backup".to_string(),
            |ms| format!("ends with a write recorded at {ms} ms since the epoch"),
        );
        return Err(StoreError::Incompatible(format!(
            "the archive {} {last}, none after {target_ms}: it may not hold every write up to that time (nothing was restored)",
            recovery.archive.display(),
        )));
    }
    if let Some(target) = recovery.to_sequence
        && !reached_target
        && restored.ledger_sequence < target
    {
        return Err(StoreError::Incompatible(format!(
            "the archive {} ends at ledger sequence {}, before {target} (nothing was restored)",
            recovery.archive.display(),
            restored.ledger_sequence
        )));
    }
    Ok(())
}

/// The newest record time of the idempotent requests `record` holds, if it holds any.
fn generation_time_ms(record: &wal::Record) -> Result<Option<i64>, StoreError> {
    let prefix = records::REQUEST_EXPIRY.raw_prefix(&[]);
    let mut newest = None;
    for (key, value) in &record.changes {
        if value.is_some() && key.starts_with(&prefix) {
            let (time_ms, _) = records::REQUEST_EXPIRY.decode_key(key)?;
            newest = newest.max(Some(time_ms));
        }
    }
    Ok(newest)
}

/// Applies one archived generation, checking the ledger goes on without a gap; returns
/// `false` (and applies nothing) when it would pass `recovery.to_sequence`.
fn redo_generation(
    data: &sled::Tree,
    recovery: Recovery<'_>,
    restored: &mut SnapshotManifest,
    reached_target: &mut bool,
    record: wal::Record,
) -> Result<bool, StoreError> {
    {
        if recovery.to_sequence == Some(restored.ledger_sequence) {
            *reached_target = true;
            return Ok(false);
        }
        let block = record.changes.iter().find_map(|(key, value)| {
            key.starts_with(records::LEDGER_BLOCKS)
                .then_some(value.as_ref().map(|value| (key, value)))
                .flatten()
        });
        let mut last = restored.ledger_sequence;
        if let Some((key, value)) = block {
            let first = records::decode_block_key(key)?;
            if first != restored.ledger_sequence + 1 {
                return Err(corrupt(format!(
                    "the archive's generation {} starts the ledger at {first}, after {}:                      generations are missing from {}",
                    record.generation,
                    restored.ledger_sequence,
                    recovery.archive.display()
                )));
            }
            last = (first + records::block_len(value)?).saturating_sub(1);
        }
        if let Some(target) = recovery.to_sequence
            && last > target
        {
            *reached_target = true;
            return Ok(false);
        }
        restored.generation = record.generation;
        restored.ledger_sequence = last;
        wal::apply(data, record.generation, record.changes)?;
        Ok(true)
    }
}
