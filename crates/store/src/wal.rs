//! The write-ahead log: how a generation of the group commit becomes durable.
//!
//! Why not sled's own `flush()`: it holds sled's concurrency-control lock while it waits for
//! the disk, so no batch can be applied meanwhile, and each flush wakes sled's whole I/O
//! thread pool. Measured on the bench machine: a flush took 0.4 ms, an append to this log
//! plus `fdatasync` 0.13 ms, and applying the next generation can run while the log syncs.
//!
//! A record holds every change of one generation (the absolute new value of each key, or
//! its deletion), so replaying it is the same as applying it. Every applied generation
//! writes its number under [`APPLIED_KEY`] after its changes (see [`apply`]): after a
//! crash, sled recovers some prefix of the inserts, that key says which generations are
//! whole, and recovery replays the logged generations after it, in order. Once sled has flushed a segment's
//! generations, the segment is deleted: the log only holds what sled may not have on disk.
//!
//! Segments are written into files already filled with zeros to their full size, made ahead
//! of time in the background (`next.spare`, renamed when it is needed): an `fdatasync` then
//! writes only the record, not the file's new size too. Measured on the bench machine: 166
//! µs and 65 µs of CPU per append and sync, against 333 µs and 158 µs for a growing file.
//! The zeros after the last record mark the end of the newest segment.
//!
//! Segment files are `<first generation, 20 digits>.log` in the log's directory. A record is
//! `payload length (u32 LE) | CRC-32 of the payload (u32 LE) | payload`, and a payload is
//! `generation (u64 LE) | change count (u32 LE) | changes`, each change
//! `key length (u32 LE) | key | 0 (delete) or 1 (put) | for a put: value length (u32 LE) | value`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crate::StoreError;
use crate::fs::FileSystem;
use crate::records;

/// One change of a generation: a key and its new value (`None` = deleted).
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

/// The sled key (in the data tree) holding the last generation applied to it.
pub(crate) const APPLIED_KEY: &[u8] = b"_wal/applied";

/// The next segment's file while it is being filled with zeros.
const SPARE_NAME: &str = "next.spare";
/// Zeros written and synced at a time into a spare (see `zero_filled`).
const ZERO_CHUNK: usize = 1 << 20;

/// The size of the first segment after a start (see `WalWriter::next_size`).
const FIRST_SEGMENT_BYTES: u64 = 1 << 20;

/// Record header: payload length and CRC.
const HEADER_BYTES: usize = 8;

/// A record larger than this is corrupt, whatever its CRC says (a generation holds at most
/// a few thousand small changes).
const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// Encodes one generation's record, header included, into `out`.
pub(crate) fn encode(
    generation: u64,
    changes: &[Change],
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    out.clear();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&len_u32(changes.len())?.to_le_bytes());
    for (key, value) in changes {
        out.extend_from_slice(&len_u32(key.len())?.to_le_bytes());
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&len_u32(value.len())?.to_le_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    let payload_len = out.len() - HEADER_BYTES;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(StoreError::Encode(format!(
            "a generation of {payload_len} bytes is over the write-ahead log's limit"
        )));
    }
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[..4].copy_from_slice(&len_u32(payload_len)?.to_le_bytes());
    out[4..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn len_u32(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len)
        .map_err(|_| StoreError::Encode(format!("a write-ahead log field of {len} bytes")))
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub generation: u64,
    pub changes: Vec<Change>,
}

/// How reading a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The segment ended exactly after its last record.
    Clean,
    /// The bytes after the last whole record are not a record: a write the crash cut short
    /// (or damage). Nothing after it can be trusted.
    Torn { offset: usize },
    /// Only zeros follow the last whole record: space made for records not yet written.
    Zeros { offset: usize },
}

/// Every whole record of a segment's bytes, in order, and how the bytes ended.
pub(crate) fn decode_segment(bytes: &[u8]) -> (Vec<Record>, Tail) {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match decode_record(&bytes[offset..]) {
            Some((record, used)) => {
                records.push(record);
                offset += used;
            }
            None if bytes[offset..].iter().all(|&byte| byte == 0) => {
                return (records, Tail::Zeros { offset });
            }
            None => return (records, Tail::Torn { offset }),
        }
    }
    (records, Tail::Clean)
}

/// One record at the start of `bytes` and its length, or `None` when it is not whole and
/// intact.
fn decode_record(bytes: &[u8]) -> Option<(Record, usize)> {
    let header = bytes.get(..HEADER_BYTES)?;
    let payload_len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if payload_len > MAX_PAYLOAD_BYTES {
        return None;
    }
    let payload = bytes.get(HEADER_BYTES..HEADER_BYTES + payload_len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = decode_payload(payload)?;
    Some((record, HEADER_BYTES + payload_len))
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut reader = Reader(payload);
    let generation = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
    let count = reader.u32()? as usize;
    // Each change takes at least 5 bytes: a count beyond that is corrupt, not a reason to
    // reserve memory.
    let mut changes = Vec::with_capacity(count.min(payload.len() / 5));
    for _ in 0..count {
        let key_len = reader.u32()? as usize;
        let key = reader.take(key_len)?.to_vec();
        let value = match reader.take(1)?[0] {
            0 => None,
            1 => {
                let value_len = reader.u32()? as usize;
                Some(reader.take(value_len)?.to_vec())
            }
            _ => return None,
        };
        changes.push((key, value));
    }
    reader.0.is_empty().then_some(Record {
        generation,
        changes,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// A closed segment: every generation in it is at most `last_generation`.
#[derive(Debug)]
pub(crate) struct ClosedSegment {
    pub path: PathBuf,
    pub last_generation: u64,
}

/// The appending end of the log. Owned by the group commit's log thread.
pub(crate) struct WalWriter {
    dir: PathBuf,
    /// The largest segment: one is closed, and a new one started, once its records fill it.
    segment_bytes: u64,
    /// The size of the next segment made: the first after a start is small, and each next
    /// one twice the last, up to `segment_bytes`. A store that writes little never holds
    /// (in its segment and spare) much more disk than it wrote.
    next_size: u64,
    current: Option<OpenSegment>,
    buffer: Vec<u8>,
    /// The next segment's file and its size, being filled with zeros in the background.
    spare: Option<(u64, JoinHandle<Result<(), StoreError>>)>,
}

struct OpenSegment {
    path: PathBuf,
    file: File,
    /// Its size, zeros included: it is closed once `bytes` reaches it.
    size: u64,
    /// The bytes of records in it.
    bytes: u64,
    last_generation: u64,
}

impl WalWriter {
    /// A writer that starts its first segment at the first record it appends.
    pub(crate) fn new(dir: &Path, segment_bytes: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segment_bytes,
            next_size: segment_bytes.min(FIRST_SEGMENT_BYTES),
            current: None,
            buffer: Vec::new(),
            spare: None,
        }
    }

    /// Appends one generation's changes and waits until they are on disk. Returns the
    /// segment it closed to make room, if any: once sled has flushed that segment's
    /// generations it may be deleted.
    pub(crate) fn append(
        &mut self,
        generation: u64,
        changes: &[Change],
    ) -> Result<Option<ClosedSegment>, StoreError> {
        let mut closed = None;
        if self
            .current
            .as_ref()
            .is_some_and(|segment| segment.bytes >= segment.size)
        {
            closed = self.close_current();
        }
        encode(generation, changes, &mut self.buffer)?;
        let segment = match self.current.take() {
            Some(segment) => segment,
            None => self.open_segment(generation)?,
        };
        let segment = self.current.insert(segment);
        segment.file.write_all_at(&self.buffer, segment.bytes)?;
        segment.file.sync_data()?;
        segment.bytes += self.buffer.len() as u64;
        segment.last_generation = generation;
        Ok(closed)
    }

    /// The bytes the last [`WalWriter::append`] wrote.
    pub(crate) fn last_record_bytes(&self) -> u64 {
        self.buffer.len() as u64
    }

    /// Closes the segment being written, if any (on shutdown, so it can be retired too).
    pub(crate) fn close_current(&mut self) -> Option<ClosedSegment> {
        self.current.take().map(|segment| ClosedSegment {
            path: segment.path,
            last_generation: segment.last_generation,
        })
    }

    /// Starts a segment in the spare file (made now if the background one failed), and
    /// starts making the next spare.
    fn open_segment(&mut self, first_generation: u64) -> Result<OpenSegment, StoreError> {
        let spare = self.dir.join(SPARE_NAME);
        let size = match self.spare.take() {
            Some((size, thread)) => {
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "making the next write-ahead log segment in the background failed; trying again now");
                        zero_filled(&spare, size)?;
                    }
                    Err(_) => zero_filled(&spare, size)?,
                }
                size
            }
            None => {
                let size = self.plan_size();
                zero_filled(&spare, size)?;
                size
            }
        };
        let path = segment_path(&self.dir, first_generation);
        if path.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("write-ahead log segment {} already exists", path.display()),
            )));
        }
        std::fs::rename(&spare, &path)
            .map_err(|e| io_error(&path, "cannot create write-ahead log segment", e))?;
        // The new name must be durable before any record in it counts.
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "cannot open write-ahead log segment", e))?;
        let next = self.plan_size();
        // If the thread cannot start, the next segment is made when it is needed.
        self.spare = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || zero_filled(&spare, next))
            .ok()
            .map(|thread| (next, thread));
        Ok(OpenSegment {
            path,
            file,
            size,
            bytes: 0,
            last_generation: first_generation,
        })
    }
}

impl WalWriter {
    /// The size of the next segment to make; doubles the one after.
    fn plan_size(&mut self) -> u64 {
        let size = self.next_size.max(1);
        self.next_size = size.saturating_mul(2).min(self.segment_bytes);
        size
    }
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        // Not left writing into a directory its store has closed.
        if let Some((_, spare)) = self.spare.take() {
            let _ = spare.join();
        }
        // Made again at the next start: a spare a crash interrupted could hold anything.
        let _ = std::fs::remove_file(self.dir.join(SPARE_NAME));
    }
}

/// Writes a file of `bytes` zeros at `path` (replacing one there) and syncs it, size
/// included.
///
/// Synced a chunk at a time: the log's `fdatasync` queues behind whatever the disk is
/// writing, and one sync of a whole 32 MiB segment held every write of the database for
/// 35–55 ms on the development VM (the inventory bench's p99.9), where a 1 MiB chunk takes
/// about 4 ms.
fn zero_filled(path: &Path, bytes: u64) -> Result<(), StoreError> {
    let fill = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        let zeros = vec![0u8; ZERO_CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            file.sync_data()?;
            left -= n as u64;
        }
        file.sync_all()
    };
    fill().map_err(|e| io_error(path, "cannot make a write-ahead log segment", e))
}

fn segment_path(dir: &Path, first_generation: u64) -> PathBuf {
    dir.join(format!("{first_generation:020}.log"))
}

/// The segments in `dir`, oldest first, with their first generation.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list the write-ahead log", e))?;
    for entry in entries {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".log"))
        else {
            continue;
        };
        let first = stem.parse::<u64>().map_err(|_| {
            StoreError::Corrupt(format!(
                "{}: not a write-ahead log segment name",
                path.display()
            ))
        })?;
        found.push((first, path));
    }
    found.sort();
    Ok(found)
}

/// Fsyncs a directory, so that files created or removed in it stay so after a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "cannot sync directory", e))
}

fn io_error(path: &Path, what: &str, error: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        error.kind(),
        format!("{what} {}: {error}", path.display()),
    ))
}

/// The last generation applied to `data` (0 for a database that never had one).
pub(crate) fn applied_generation(data: &sled::Tree) -> Result<u64, StoreError> {
    match data.get(APPLIED_KEY)? {
        None => Ok(0),
        Some(raw) => <[u8; 8]>::try_from(raw.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("malformed applied-generation marker".into())),
    }
}

/// Applies one logged generation to `data`: its changes one key at a time, in order, then
/// the applied-generation marker.
///
/// Not one `apply_batch`: sled 0.34 seals and writes out its I/O buffer twice for every
/// batch (through its thread pool), which made applying cost more than logging. The log
/// gives the atomicity instead: sled recovers a prefix of these inserts, so when the
/// marker says N, generations up to N are whole, and recovery replays from N + 1 (each
/// change is an absolute value, so a change sled already has is simply written again).
pub(crate) fn apply(
    data: &sled::Tree,
    generation: u64,
    changes: Vec<Change>,
) -> Result<(), StoreError> {
    for (key, value) in changes {
        match value {
            // Ledger blocks travel plain through the log and the overlay, and rest packed.
            Some(value) if key.starts_with(records::LEDGER_BLOCKS) => {
                data.insert(key, records::pack_block(value)?)?
            }
            Some(value) => data.insert(key, value)?,
            None => data.remove(key)?,
        };
    }
    data.insert(APPLIED_KEY, &generation.to_be_bytes())?;
    Ok(())
}

/// Generations replayed into sled in one batch at start-up (see `recover_counting`).
const REPLAY_BATCH_GENERATIONS: usize = 256;

/// Keeps each key's last change, in key order: a batch of generations is applied as a whole
/// (its last generation is marked applied only once all of it is in sled), so only the last
/// value of a key counts, and key order lets sled find each key near the last. Stable: the
/// changes to one key stay in the order they were made.
pub(crate) fn coalesce(changes: &mut Vec<Change>) {
    changes.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut kept: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes.drain(..) {
        match kept.last_mut() {
            Some(last) if last.0 == change.0 => *last = change,
            _ => kept.push(change),
        }
    }
    *changes = kept;
}

/// [`recover_counting`], returning the last generation now applied.
#[cfg(test)]
pub(crate) fn recover(
    db: &sled::Db,
    data: &sled::Tree,
    dir: &Path,
    fs: &dyn FileSystem,
) -> Result<u64, StoreError> {
    recover_counting(db, data, dir, fs, None).map(|(applied, _)| applied)
}

/// Brings `data` up to date with the log in `dir` after a crash: applies every logged
/// generation after the one `data` has, in order, flushes sled, and deletes the segments
/// (archived first into `archive`, if given).
/// Returns the last generation now applied, and how many generations it replayed.
///
/// A torn record at the end of the newest segment is a write the crash interrupted, never
/// acknowledged: it and anything after it are dropped. Damage anywhere else would lose
/// acknowledged writes, so it refuses to open, and leaves the files for an operator.
pub(crate) fn recover_counting(
    db: &sled::Db,
    data: &sled::Tree,
    dir: &Path,
    fs: &dyn FileSystem,
    archive: Option<&Path>,
) -> Result<(u64, u64), StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io_error(dir, "cannot create write-ahead log directory", e))?;
    let mut applied = applied_generation(data)?;
    let found = segments(dir)?;
    let newest = found.len().saturating_sub(1);
    let mut replayed = 0u64;
    for (index, (_, path)) in found.iter().enumerate() {
        let bytes = std::fs::read(path)
            .map_err(|e| io_error(path, "cannot read write-ahead log segment", e))?;
        let (records, tail) = decode_segment(&bytes);
        match tail {
            Tail::Clean => {}
            // A segment is closed only once its records fill it: zeros are space not yet
            // written in the newest one, and damage anywhere else.
            Tail::Torn { offset } | Tail::Zeros { offset } if index != newest => {
                return Err(StoreError::Corrupt(format!(
                    "{}: damaged record at byte {offset} of a segment that was complete; the files were left untouched",
                    path.display()
                )));
            }
            Tail::Zeros { .. } => {}
            Tail::Torn { offset } => tracing::warn!(
                segment = %path.display(),
                offset,
                "dropping the torn end of the write-ahead log (a write the crash interrupted, never acknowledged)"
            ),
        }
        // Replayed like the apply thread applies: many generations at once, each key once,
        // the batch's last generation marked only when all of it is in sled.
        let replay_after = applied;
        let mut pending = records
            .into_iter()
            .filter(|record| record.generation > replay_after)
            .peekable();
        while pending.peek().is_some() {
            let mut changes = Vec::new();
            let mut last = applied;
            for record in pending.by_ref().take(REPLAY_BATCH_GENERATIONS) {
                changes.extend(record.changes);
                last = record.generation;
                replayed += 1;
            }
            coalesce(&mut changes);
            apply(data, last, changes)?;
            applied = last;
        }
    }
    if !found.is_empty() {
        // The same barrier as a checkpoint's: sled's flush is not one by itself.
        db.flush()?;
        crate::fs::sync_database(fs, dir.parent().unwrap_or(dir), dir)?;
        for (_, path) in &found {
            if let Some(archive) = archive {
                crate::archive::archive_segment(path, archive)?;
            }
            fs.remove_file(path)
                .map_err(|e| io_error(path, "cannot remove write-ahead log segment", e))?;
        }
        fs.sync_dir(dir)
            .map_err(|e| io_error(dir, "cannot sync directory", e))?;
        if replayed > 0 {
            tracing::info!(
                generations = replayed,
                "replayed the write-ahead log after an unclean stop"
            );
        }
    }
    Ok((applied, replayed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(n: u8) -> Vec<Change> {
        (0..n)
            .map(|i| {
                let value = (i % 3 != 0).then(|| vec![i; usize::from(i) * 7]);
                (vec![b'k', i], value)
            })
            .collect()
    }

    /// A sled database with its data tree, and an empty log directory beside it.
    fn database() -> (tempfile::TempDir, sled::Db, sled::Tree, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let data = db.open_tree("data").unwrap();
        let wal_dir = dir.path().join("wal");
        std::fs::create_dir_all(&wal_dir).unwrap();
        (dir, db, data, wal_dir)
    }

    #[test]
    fn records_round_trip_and_end_clean() {
        let mut bytes = Vec::new();
        let mut buffer = Vec::new();
        for generation in 1..=5u64 {
            encode(generation, &changes(generation as u8), &mut buffer).unwrap();
            bytes.extend_from_slice(&buffer);
        }
        let (records, tail) = decode_segment(&bytes);
        assert_eq!(tail, Tail::Clean);
        assert_eq!(records.len(), 5);
        for (record, generation) in records.iter().zip(1u64..) {
            assert_eq!(record.generation, generation);
            assert_eq!(record.changes, changes(generation as u8));
        }
    }

    #[test]
    fn a_torn_or_damaged_tail_keeps_every_whole_record_before_it() {
        let mut bytes = Vec::new();
        let mut buffer = Vec::new();
        for generation in 1..=3u64 {
            encode(generation, &changes(4), &mut buffer).unwrap();
            bytes.extend_from_slice(&buffer);
        }
        let whole = bytes.len() - buffer.len();
        // Every cut inside the last record, and a flipped bit in each of its bytes.
        for cut in whole..bytes.len() {
            let (records, tail) = decode_segment(&bytes[..cut]);
            assert_eq!(records.len(), 2, "cut at {cut}");
            assert_eq!(
                tail,
                if cut == whole {
                    Tail::Clean
                } else {
                    Tail::Torn { offset: whole }
                }
            );
        }
        for at in whole..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            let (records, tail) = decode_segment(&damaged);
            assert_eq!(records.len(), 2, "damage at {at}");
            assert_eq!(tail, Tail::Torn { offset: whole });
        }
    }

    #[test]
    fn recovery_applies_only_the_generations_after_the_marker_and_clears_the_log() {
        let (_dir, db, data, wal_dir) = database();
        let mut writer = WalWriter::new(&wal_dir, 1 << 20);
        let put =
            |key: &str, value: &str| (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()));
        writer.append(1, &[put("a", "1")]).unwrap();
        writer.append(2, &[put("a", "2"), put("b", "2")]).unwrap();
        writer
            .append(3, &[(b"b".to_vec(), None), put("c", "3")])
            .unwrap();
        // sled had applied (and recovered) generation 1 before the crash: recovery must
        // replay 2 and 3 only, in order.
        apply(&data, 1, vec![put("a", "1")]).unwrap();
        // A torn record at the end: a write the crash interrupted.
        let segment = segments(&wal_dir).unwrap()[0].1.clone();
        let end = writer.current.as_ref().unwrap().bytes;
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.write_all_at(&[9, 0, 0, 0, 1, 2], end).unwrap();
        drop(file);

        assert_eq!(
            recover(&db, &data, &wal_dir, &crate::fs::RealFileSystem).unwrap(),
            3
        );
        let get = |key: &str| data.get(key).unwrap().map(|v| v.to_vec());
        assert_eq!(get("a"), Some(b"2".to_vec()));
        assert_eq!(get("b"), None);
        assert_eq!(get("c"), Some(b"3".to_vec()));
        assert_eq!(applied_generation(&data).unwrap(), 3);
        assert!(segments(&wal_dir).unwrap().is_empty());
        // A second recovery finds nothing to do.
        assert_eq!(
            recover(&db, &data, &wal_dir, &crate::fs::RealFileSystem).unwrap(),
            3
        );
    }

    #[test]
    fn damage_before_the_newest_segment_refuses_to_open() {
        let (_dir, db, data, wal_dir) = database();
        let mut buffer = Vec::new();
        encode(1, &changes(3), &mut buffer).unwrap();
        buffer.truncate(buffer.len() - 1);
        std::fs::write(segment_path(&wal_dir, 1), &buffer).unwrap();
        encode(2, &changes(3), &mut buffer).unwrap();
        std::fs::write(segment_path(&wal_dir, 2), &buffer).unwrap();
        let error = recover(&db, &data, &wal_dir, &crate::fs::RealFileSystem).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
        assert_eq!(
            segments(&wal_dir).unwrap().len(),
            2,
            "the files are left alone"
        );
        assert_eq!(applied_generation(&data).unwrap(), 0);
    }

    #[test]
    fn zeros_after_the_last_record_end_the_newest_segment_and_damage_an_older_one() {
        let mut bytes = Vec::new();
        let mut buffer = Vec::new();
        for generation in 1..=2u64 {
            encode(generation, &changes(3), &mut buffer).unwrap();
            bytes.extend_from_slice(&buffer);
        }
        let whole = bytes.len();
        bytes.resize(whole + 4096, 0);
        let (records, tail) = decode_segment(&bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(tail, Tail::Zeros { offset: whole });
        // A stray byte in the zeros is damage, not the end.
        bytes[whole + 100] = 1;
        assert_eq!(decode_segment(&bytes).1, Tail::Torn { offset: whole });
        bytes[whole + 100] = 0;

        let (_dir, db, data, wal_dir) = database();
        std::fs::write(segment_path(&wal_dir, 1), &bytes).unwrap();
        assert_eq!(
            recover(&db, &data, &wal_dir, &crate::fs::RealFileSystem).unwrap(),
            2
        );
        assert!(segments(&wal_dir).unwrap().is_empty());

        // The same segment followed by another: it was closed before it was full.
        std::fs::write(segment_path(&wal_dir, 1), &bytes).unwrap();
        encode(3, &changes(3), &mut buffer).unwrap();
        std::fs::write(segment_path(&wal_dir, 3), &buffer).unwrap();
        let error = recover(&db, &data, &wal_dir, &crate::fs::RealFileSystem).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    }

    #[test]
    fn segments_are_written_into_zero_filled_files_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::new(dir.path(), 1 << 16);
        for generation in 1..=3 {
            assert!(writer.append(generation, &changes(4)).unwrap().is_none());
        }
        let found = segments(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        let bytes = std::fs::read(&found[0].1).unwrap();
        assert_eq!(bytes.len(), 1 << 16, "made to its full size up front");
        let mut writer = WalWriter::new(dir.path(), 1 << 30);
        let sizes: Vec<u64> = (0..12).map(|_| writer.plan_size()).collect();
        assert_eq!(sizes[0], 1 << 20, "small at first");
        assert_eq!(sizes[1], 2 << 20, "then doubling");
        assert_eq!(sizes[11], 1 << 30, "up to the largest");
        let (records, tail) = decode_segment(&bytes);
        assert_eq!(records.len(), 3);
        assert!(matches!(tail, Tail::Zeros { .. }));
        drop(writer);
        assert!(
            !dir.path().join(SPARE_NAME).exists(),
            "the spare is not left behind"
        );
    }
}
