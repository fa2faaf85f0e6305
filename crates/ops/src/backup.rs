//! `coldchain backup`, `coldchain backup verify` and `coldchain restore`: online backups of
//! a site's databases over `coldchain.admin.v1.AdminService` (as operations), checking a
//! backup file, and laying one out as a data directory `serve` opens.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use coldchain_proto::admin::v1::StreamSnapshotRequest;
use coldchain_proto::admin::v1::admin_service_client::AdminServiceClient;
use coldchain_runtime::network::ServiceKind;
use coldchain_store::snapshot::{self, SnapshotManifest};
use coldchain_store::{FORMAT_VERSION, Identity};

use crate::{CliError, DEFAULT_NETWORK, connect, load_network, print_json, resolve_site};

/// The site services a backup takes by default.
const SITE_SERVICES: [ServiceKind; 3] = [
    ServiceKind::Inventory,
    ServiceKind::Telemetry,
    ServiceKind::Booking,
];

/// The suffix of backup files.
pub const BACKUP_SUFFIX: &str = "ccbackup";

/// `coldchain backup`.
#[derive(Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// The site whose databases to back up, e.g. la-vientiane (repeat it for several).
    #[arg(long, value_name = "ID")]
    pub site: Vec<String>,
    /// Every site of the network file.
    #[arg(long, conflicts_with = "site")]
    pub all_sites: bool,
    /// The gateway's database too (alone, without --site or --all-sites), from the
    /// gateway endpoint of the network file.
    #[arg(long)]
    pub gateway: bool,
    /// Only this service (inventory, telemetry or booking) [default: all three].
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// The directory to write one backup file per service into (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The network file giving the site's endpoints.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_NETWORK)]
    pub network: PathBuf,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `coldchain backup verify`.
#[derive(Subcommand, Clone, Debug)]
pub enum BackupCommand {
    /// Check a backup file without restoring it (structure, counts, SHA-256) and print its
    /// manifest.
    Verify {
        /// The backup file.
        file: PathBuf,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `coldchain restore`.
#[derive(Args, Clone, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// The data directory of the server that will open it: the database is laid out in
    /// `<DIR>/<site>/<service>`, which must be empty or missing.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The site this data directory serves: a backup of another site is refused
    /// [default: the backup's].
    #[arg(long, value_name = "ID")]
    pub site: Option<String>,
    /// The service this database is for: a backup of another service is refused
    /// [default: the backup's].
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// The database's log archive (its `<wal_archive_dir>/<site>/<service>`): replay the
    /// archived generations after the backup's, for point-in-time recovery.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// With --archive: stop at this ledger sequence (a generation is restored whole, so the
    /// restore stops before a generation that passes it) [default: the archive's end].
    #[arg(
        long,
        value_name = "N",
        requires = "archive",
        conflicts_with = "to_time"
    )]
    pub to_sequence: Option<u64>,
    /// With --archive: stop at this time (RFC 3339, e.g. 2026-12-04T13:00:00Z): restore
    /// the generations whose writes were all recorded at or before it, and none after. The
    /// archive must hold a write recorded after it.
    #[arg(long, value_name = "TIME", requires = "archive", value_parser = parse_time_ms)]
    pub to_time: Option<i64>,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `coldchain backup` (or `backup verify`).
pub async fn backup(args: BackupArgs) -> Result<(), CliError> {
    if let Some(BackupCommand::Verify { file, json }) = args.command {
        let manifest = snapshot::verify(&file).map_err(|e| failed(&file, e))?;
        report(&file, &manifest, json, "verified");
        return Ok(());
    }
    let network = load_network(&args.network)?;
    let sites: Vec<String> = if args.all_sites {
        network.site_ids().map(str::to_owned).collect()
    } else {
        args.site
    };
    let Some(out) = args.out.filter(|_| !sites.is_empty() || args.gateway) else {
        return Err(CliError::Usage(
            "backup needs --site ID (or --all-sites, or --gateway) and --out DIR (or: backup verify FILE)"
                .into(),
        ));
    };
    let kinds = match &args.service {
        None => SITE_SERVICES.to_vec(),
        Some(name) => vec![site_service(name)?],
    };
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::Failed(format!("cannot make {}: {e}", out.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    // Every site and service is checked against the network file before any backup starts.
    let mut planned = Vec::new();
    for site in &sites {
        for kind in &kinds {
            planned.push((
                Some(site.as_str()),
                *kind,
                resolve_site(&network, site, *kind)?.1,
            ));
        }
    }
    if args.gateway {
        planned.push((None, ServiceKind::Gateway, network.gateway_endpoint()));
    }
    let mut written = Vec::new();
    let mut failures = 0;
    for (site, kind, endpoint) in &planned {
        let taken = backup_one(*site, *kind, endpoint, &out, &stamp.to_string()).await;
        match taken {
            Ok((file, manifest)) if args.json => written.push(manifest_json(&file, &manifest)),
            Ok((file, manifest)) => report(&file, &manifest, false, "wrote"),
            // The other services are still backed up: one down server must not cost
            // the whole night's backups.
            Err(error) => {
                let label = site.map_or_else(
                    || kind.as_str().to_string(),
                    |site| format!("{site}/{}", kind.as_str()),
                );
                eprintln!("error: {label}: {}", error.summary());
                failures += 1;
            }
        }
    }
    if args.json {
        // One document for the whole backup: the files written, one per service.
        print_json(&serde_json::Value::Array(written));
    }
    if failures == 0 {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{failures} of {} backups failed (see above)",
            planned.len()
        )))
    }
}

/// Backs up one site service (or, without a site, the gateway) into `out`; returns the
/// file and its manifest.
async fn backup_one(
    site: Option<&str>,
    kind: ServiceKind,
    endpoint: &str,
    out: &Path,
    stamp: &str,
) -> Result<(PathBuf, SnapshotManifest), CliError> {
    let file = match site {
        Some(site) => out.join(format!("{site}-{}-{stamp}.{BACKUP_SUFFIX}", kind.as_str())),
        None => out.join(format!("{}-{stamp}.{BACKUP_SUFFIX}", kind.as_str())),
    };
    let manifest = fetch(endpoint, &file).await?;
    // The gateway serves no site: its identity's site is whatever it was opened with.
    let expected = Identity {
        site: site.map_or_else(|| manifest.site.clone(), str::to_owned),
        service: kind.as_str().to_string(),
    };
    if manifest.identity() != expected {
        let _ = std::fs::remove_file(&file);
        return Err(CliError::Failed(format!(
            "{endpoint} sent the backup of site {:?} service {:?}, not of {:?} {:?}: \
             check the network file",
            manifest.site,
            manifest.service,
            expected.site,
            kind.as_str()
        )));
    }
    Ok((file, manifest))
}

/// Streams one server's snapshot into `file` (through a `.partial` file renamed once the
/// whole file is written, synced and verified), and returns its manifest.
async fn fetch(endpoint: &str, file: &Path) -> Result<SnapshotManifest, CliError> {
    let partial = file.with_extension(format!("{BACKUP_SUFFIX}.partial"));
    let result = async {
        let channel = connect(endpoint)?;
        // No deadline: a snapshot takes as long as the database is large.
        let mut stream = AdminServiceClient::new(channel)
            .max_decoding_message_size(8 << 20)
            .stream_snapshot(tonic::Request::new(StreamSnapshotRequest {}))
            .await?
            .into_inner();
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&partial).map_err(|e| {
                CliError::Failed(format!("cannot create {}: {e}", partial.display()))
            })?);
        let write_error = |e: std::io::Error| {
            CliError::Failed(format!("cannot write {}: {e}", partial.display()))
        };
        while let Some(chunk) = stream.message().await? {
            out.write_all(&chunk.data).map_err(write_error)?;
        }
        let out = out.into_inner().map_err(|e| write_error(e.into_error()))?;
        out.sync_all().map_err(write_error)?;
        let manifest = snapshot::verify(&partial).map_err(|e| failed(&partial, e))?;
        std::fs::rename(&partial, file).map_err(write_error)?;
        if let Some(dir) = file.parent() {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(write_error)?;
        }
        Ok(manifest)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Runs `coldchain restore`.
pub fn restore(args: RestoreArgs) -> Result<(), CliError> {
    let manifest = snapshot::verify(&args.file).map_err(|e| failed(&args.file, e))?;
    if let Some(service) = &args.service
        && service != "gateway"
    {
        site_service(service)?;
    }
    let identity = Identity {
        site: args.site.unwrap_or_else(|| manifest.site.clone()),
        service: args.service.unwrap_or_else(|| manifest.service.clone()),
    };
    let target = if identity.service == "gateway" {
        args.data_dir.join("gateway")
    } else {
        args.data_dir.join(&identity.site).join(&identity.service)
    };
    let recovery = args.archive.as_deref().map(|archive| snapshot::Recovery {
        archive,
        to_sequence: args.to_sequence,
        to_time_ms: args.to_time,
    });
    let restored = snapshot::restore_to(&args.file, &target, &identity, recovery)
        .map_err(|e| failed(&args.file, e))?;
    report(&target, &restored, args.json, "restored into");
    Ok(())
}

/// An RFC 3339 time as ms since the epoch.
fn parse_time_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time (e.g. 2026-12-04T13:00:00Z): {e}"))
}

fn site_service(name: &str) -> Result<ServiceKind, CliError> {
    SITE_SERVICES
        .into_iter()
        .find(|kind| kind.as_str() == name)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "unknown service {name:?}; a site has inventory, telemetry and booking"
            ))
        })
}

fn failed(file: &Path, error: coldchain_store::StoreError) -> CliError {
    CliError::Failed(format!("{}: {error}", file.display()))
}

fn time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// A backup file's manifest as the JSON the commands print.
fn manifest_json(path: &Path, manifest: &SnapshotManifest) -> serde_json::Value {
    serde_json::json!({
        "path": path.display().to_string(),
        "site": manifest.site,
        "service": manifest.service,
        "format_version": manifest.format_version,
        "generation": manifest.generation,
        "base_generation": manifest.base_generation,
        "ledger_sequence": manifest.ledger_sequence,
        "started_at": time(manifest.started_at_ms),
        "finished_at": time(manifest.finished_at_ms),
        "entries": manifest.entries,
        "log_records": manifest.log_records,
        "sha256": manifest.sha256,
    })
}

fn report(path: &Path, manifest: &SnapshotManifest, json: bool, what: &str) {
    if json {
        print_json(&manifest_json(path, manifest));
        return;
    }
    let newer = if manifest.format_version > FORMAT_VERSION {
        " (newer than this binary's: it cannot restore it)"
    } else {
        ""
    };
    coldchain_command::say!(
        "{what} {}\n  site {} service {}, store format {}{newer}\n  ledger sequence {} at generation {} (copy from generation {}: {} entries, {} log records)\n  taken {} .. {}\n  sha256 {}",
        path.display(),
        manifest.site,
        manifest.service,
        manifest.format_version,
        manifest.ledger_sequence,
        manifest.generation,
        manifest.base_generation,
        manifest.entries,
        manifest.log_records,
        time(manifest.started_at_ms),
        time(manifest.finished_at_ms),
        manifest.sha256
    );
}
