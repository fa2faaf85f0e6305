//! The file-system calls that decide what survives a power cut, behind one small seam so a
//! test can record their order.
//!
//! sled 0.34 makes its pages stable with `sync_file_range`, which neither flushes the
//! device's write cache nor syncs the file's metadata: after a power cut, what sled
//! "flushed" may be gone. A write-ahead log segment is therefore deleted only after sled's
//! flush **and** an `fsync` of every file of the sled database and of its directories
//! ([`sync_database`]): the barrier that makes the log's contents redundant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StoreError;

/// The calls a checkpoint makes. [`RealFileSystem`] in production.
pub trait FileSystem: Send + Sync {
    /// `fsync` of a regular file: its data and metadata reach stable storage.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// `fsync` of a directory: the files created and removed in it stay so.
    fn sync_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// The entries of a directory, with whether each is a directory.
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(PathBuf, bool)>>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFileSystem;

impl FileSystem for RealFileSystem {
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            entries.push((entry.path(), entry.file_type()?.is_dir()));
        }
        entries.sort();
        Ok(entries)
    }
}

/// The real file system, shared.
pub fn real() -> Arc<dyn FileSystem> {
    Arc::new(RealFileSystem)
}

/// Fsyncs every file of the sled database in `db_dir` and every directory of it, `db_dir`
/// included, leaving out `skip` (the write-ahead log's directory, synced by the log
/// itself). Files that vanish meanwhile (sled replaces its snapshot files) are skipped: the
/// directory's own sync makes their removal durable.
pub fn sync_database(fs: &dyn FileSystem, db_dir: &Path, skip: &Path) -> Result<(), StoreError> {
    let mut dirs = vec![db_dir.to_path_buf()];
    let mut synced_dirs = Vec::new();
    while let Some(dir) = dirs.pop() {
        let entries = fs
            .list_dir(&dir)
            .map_err(|e| io_error(&dir, "cannot list the database directory", e))?;
        for (path, is_dir) in entries {
            if path == skip {
                continue;
            }
            if is_dir {
                dirs.push(path);
                continue;
            }
            match fs.sync_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, "cannot sync a database file", e)),
            }
        }
        synced_dirs.push(dir);
    }
    // Directories last, deepest first: each records the files synced above.
    for dir in synced_dirs.iter().rev() {
        fs.sync_dir(dir)
            .map_err(|e| io_error(dir, "cannot sync a database directory", e))?;
    }
    Ok(())
}

fn io_error(path: &Path, what: &str, error: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        error.kind(),
        format!("{what} {}: {error}", path.display()),
    ))
}

/// One call a [`RecordingFileSystem`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsCall {
    /// [`FileSystem::sync_file`].
    SyncFile(PathBuf),
    /// [`FileSystem::sync_dir`].
    SyncDir(PathBuf),
    /// [`FileSystem::remove_file`].
    Remove(PathBuf),
}

/// The real file system, recording every sync and removal in order: for tests of the
/// ordering rules above.
#[derive(Debug, Default)]
pub struct RecordingFileSystem {
    calls: std::sync::Mutex<Vec<FsCall>>,
}

impl RecordingFileSystem {
    /// A recorder with nothing recorded.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FsCall> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FsCall>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileSystem for RecordingFileSystem {
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.lock().push(FsCall::SyncFile(path.to_path_buf()));
        RealFileSystem.sync_file(path)
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.lock().push(FsCall::SyncDir(path.to_path_buf()));
        RealFileSystem.sync_dir(path)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.lock().push(FsCall::Remove(path.to_path_buf()));
        RealFileSystem.remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
        RealFileSystem.list_dir(path)
    }
}
