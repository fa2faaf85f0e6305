//! Opening a database: waiting for sled's lock, and checking whose data it holds and in
//! which format.

use std::path::Path;
use std::time::Duration;

use super::{FORMAT_VERSION, Identity, META_FORMAT, META_SERVICE, META_SITE};
use crate::StoreError;

/// Waits until nothing holds the lock sled takes on `file`, for at most `wait`.
///
/// sled tries its lock once and fails at once. But after a database's last handle is
/// dropped, sled's I/O threads may still be writing its final buffers, holding the lock a
/// moment longer: a reopen in the same process (a service restarted in place, a test)
/// would fail for nothing. Another process holding it is reported after `wait`, naming
/// the file. The lock is released again here; sled takes its own right after.
pub(super) fn wait_for_lock(file: &Path, wait: Duration) -> Result<(), StoreError> {
    let probe = match std::fs::File::open(file) {
        Ok(probe) => probe,
        // A new database: there is nothing to wait for.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        match probe.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "the database at {} is in use: {} is still locked after {wait:?} \
                         (is another instance running on the same data directory?)",
                        file.parent().unwrap_or(file).display(),
                        file.display()
                    ),
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

pub(super) fn check_identity(
    db: &sled::Db,
    path: &Path,
    identity: &Identity,
) -> Result<(), StoreError> {
    let meta = db.open_tree("_meta")?;
    let text = |key: &[u8]| -> Result<Option<String>, StoreError> {
        Ok(meta
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    };
    match meta.get(META_FORMAT)? {
        None => {
            meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
            meta.insert(META_SITE, identity.site.as_bytes())?;
            meta.insert(META_SERVICE, identity.service.as_bytes())?;
            db.flush()?;
            Ok(())
        }
        Some(raw) => {
            let version = <[u8; 4]>::try_from(raw.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    StoreError::Corrupt(format!("{}: malformed format version", path.display()))
                })?;
            if version > FORMAT_VERSION {
                return Err(StoreError::Incompatible(format!(
                    "database at {} has format version {version}; this binary supports up to {FORMAT_VERSION}: upgrade the binary (the data was left untouched)",
                    path.display()
                )));
            }
            let site = text(META_SITE)?.unwrap_or_default();
            let service = text(META_SERVICE)?.unwrap_or_default();
            if site != identity.site || service != identity.service {
                return Err(StoreError::Incompatible(format!(
                    "database at {} belongs to site {site:?} service {service:?}, not site {:?} service {:?}: check data_dir (the data was left untouched)",
                    path.display(),
                    identity.site,
                    identity.service
                )));
            }
            if version < FORMAT_VERSION {
                // Every older format is readable as is; from now on only a binary that
                // knows this format may open it.
                meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Ok(())
        }
    }
}
