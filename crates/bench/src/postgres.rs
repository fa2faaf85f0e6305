//! The peer: PostgreSQL 15 from Debian's packages, started on loopback in a temporary
//! directory with its default durability (`synchronous_commit = on`, `fsync = on`), driven
//! by `pgbench` custom scripts and `COPY`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A running throwaway PostgreSQL cluster; stopped and removed on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as_postgres: bool,
}

/// The movement: an idempotency-keyed ledger insert plus a balance update that refuses
/// to go negative, in one transaction.
pub const MOVEMENT_SCRIPT: &str = r#"\set pair random(1, 10000)
\set nonce random(1, 1000000000000)
BEGIN;
INSERT INTO ledger (request_id, pair, delta) VALUES (:client_id || '-' || :nonce, :pair, 1);
UPDATE balances SET qty = qty + 1, version = version + 1 WHERE pair = :pair AND qty + 1 >= 0;
END;
"#;

/// The booking: a hold (conditional capacity update per day + insert), then a confirm
/// (state update + counter move), as two durable transactions like HoldSpace + Confirm.
pub const BOOKING_SCRIPT: &str = r#"\set day random(1, 365)
\set nonce random(1, 1000000000000)
BEGIN;
UPDATE capacity SET held = held + 1 WHERE zone = 1 AND day = :day AND held + confirmed + 1 <= cap;
INSERT INTO bookings (request_id, zone, day, pallets, state) VALUES (:client_id || '-' || :nonce, 1, :day, 1, 'HELD') RETURNING id \gset
END;
BEGIN;
UPDATE bookings SET state = 'CONFIRMED' WHERE id = :id AND state = 'HELD';
UPDATE capacity SET held = held - 1, confirmed = confirmed + 1 WHERE zone = 1 AND day = :day;
END;
"#;

const SCHEMA: &str = r#"
CREATE TABLE balances (pair int PRIMARY KEY, qty bigint NOT NULL, version bigint NOT NULL);
INSERT INTO balances SELECT g, 0, 0 FROM generate_series(1, 10000) g;
CREATE TABLE ledger (seq bigserial PRIMARY KEY, request_id text NOT NULL UNIQUE, pair int NOT NULL, delta bigint NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE capacity (zone int, day int, cap int NOT NULL, held int NOT NULL, confirmed int NOT NULL, PRIMARY KEY (zone, day));
INSERT INTO capacity SELECT 1, g, 1000000000, 0, 0 FROM generate_series(1, 365) g;
CREATE TABLE bookings (id bigserial PRIMARY KEY, request_id text NOT NULL UNIQUE, zone int NOT NULL, day int NOT NULL, pallets int NOT NULL, state text NOT NULL);
CREATE TABLE readings (sensor text NOT NULL, ts timestamptz NOT NULL, celsius double precision NOT NULL, PRIMARY KEY (sensor, ts));
"#;

fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Creates and starts a cluster, or says why it cannot.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir()
            .ok_or("no PostgreSQL server binaries found (apt-get install postgresql-15)")?;
        let dir = tempfile::Builder::new()
            .prefix("coldchain-bench-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let run_as_postgres = is_root();
        if run_as_postgres {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            run(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path()))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        let this = Self {
            bin,
            dir,
            port,
            run_as_postgres,
        };
        let data = this.data_dir();
        this.tool(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB",
            this.dir.path().display()
        );
        let log = this.dir.path().join("server.log").display().to_string();
        this.tool(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
        )?;
        this.psql(SCHEMA)?;
        Ok(this)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn tool(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        run(self.command(tool).args(args))
    }

    fn connection_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    /// Runs SQL through psql.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let mut command = self.command("psql");
        command.args(self.connection_args()).args([
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-d",
            "postgres",
            "-c",
            sql,
        ]);
        run(&mut command).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Runs a pgbench custom script and returns transactions per second (excluding
    /// connection set-up) and the count of failed transactions.
    pub fn pgbench(&self, script: &str, clients: usize, duration: Duration) -> Result<f64, String> {
        let path = self.dir.path().join("script.sql");
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        self.share(&path)?;
        let threads = clients.min(2).to_string();
        let mut command = self.command("pgbench");
        command
            .args(self.connection_args())
            .args(["-n", "-c", &clients.to_string(), "-j", &threads, "-T"])
            .arg(duration.as_secs().max(1).to_string())
            .arg("-f")
            .arg(&path)
            .arg("postgres");
        let output = run(&mut command)?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find(|line| line.starts_with("tps = "))
            .and_then(|line| line["tps = ".len()..].split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("no tps in pgbench output: {text}"))
    }

    /// `COPY`s a CSV of (sensor, ts, celsius) rows into `readings`; returns the time taken.
    pub fn copy_readings(&self, csv: &Path) -> Result<Duration, String> {
        self.share(csv)?;
        self.psql("TRUNCATE readings")?;
        let started = Instant::now();
        self.psql(&format!(
            "\\copy readings (sensor, ts, celsius) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .or_else(|_| {
            // psql -c does not accept backslash commands in every version: use COPY FROM
            // a server-side file instead (the file is readable by the server user).
            self.psql(&format!(
                "COPY readings (sensor, ts, celsius) FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ))
        })?;
        Ok(started.elapsed())
    }

    /// Bytes per row at rest of a table holding what one ledger entry holds (the request
    /// key, site, sku, lot, zone, kind, delta, balance, time; a bigserial key and a unique
    /// request key), filled with `rows` rows shaped like the bench's history and vacuumed:
    /// `pg_total_relation_size` (heap, indexes, TOAST) over the row count.
    pub fn ledger_bytes_per_row(&self, rows: u64) -> Result<f64, String> {
        self.bytes_per_row(
            "history_ledger",
            "seq bigserial PRIMARY KEY, request_key text NOT NULL UNIQUE,
               site text NOT NULL, sku text NOT NULL, lot text NOT NULL, zone text NOT NULL,
               kind smallint NOT NULL, delta bigint NOT NULL, balance bigint NOT NULL,
               at timestamptz NOT NULL",
            "(request_key, site, sku, lot, zone, kind, delta, balance, at)
               SELECT 'fill-' || (g / 500) || ':' || (g % 500), 'la-vientiane',
                      'SKU-' || lpad((g % 2000)::text, 4, '0'), 'LOT-' || (g / 100), 'chilled-a',
                      1, 10, 10 * (g / 2000 + 1), now()",
            "",
            rows,
        )
    }

    /// Bytes per row of a bookings table holding what one of ours holds (id, site,
    /// customer and reference, zone and class, pallets, the two days, state and its
    /// instants, a cancel reason), with the index a customer's list reads: vacuumed,
    /// `pg_total_relation_size` over the rows.
    pub fn booking_bytes_per_row(&self, rows: u64) -> Result<f64, String> {
        self.bytes_per_row(
            "history_bookings",
            "booking_id text PRIMARY KEY, site text NOT NULL, customer text NOT NULL,
               customer_reference text NOT NULL, zone text NOT NULL, class smallint NOT NULL,
               pallets int NOT NULL, pallets_arrived int NOT NULL, first_day date NOT NULL,
               last_day date NOT NULL, state smallint NOT NULL, expires_at timestamptz NOT NULL,
               check_in_deadline timestamptz, created_at timestamptz NOT NULL,
               updated_at timestamptz NOT NULL, cancel_reason text NOT NULL",
            "SELECT 'bk-la-vientiane-' || lpad(g::text, 10, '0'), 'la-vientiane',
                      'bench-customer-' || (g % 50), 'PO-' || g, 'chilled-a', 2, 1 + g % 20, 0,
                      date '2025-01-01' + (g % 730), date '2025-01-01' + (g % 730) + 3, 2,
                      now(), now(), now(), now(), ''",
            "CREATE INDEX history_bookings_customer ON history_bookings (customer, created_at);",
            rows,
        )
    }

    /// Bytes per row of an idempotency table keeping what ours keeps per request (the
    /// request key, a 32-byte fingerprint of the request, the answer by reference: its
    /// first ledger sequence and count, and when, with the index expiry scans), vacuumed.
    pub fn idempotency_bytes_per_row(&self, rows: u64) -> Result<f64, String> {
        self.bytes_per_row(
            "history_requests",
            "request_key text PRIMARY KEY, fingerprint bytea NOT NULL, first_seq bigint NOT NULL,
               entries int NOT NULL, recorded_at timestamptz NOT NULL",
            "SELECT 'fill-' || g, sha256(g::text::bytea), g * 500, 500, now()",
            "CREATE INDEX history_requests_expiry ON history_requests (recorded_at);",
            rows,
        )
    }

    /// Creates `table` (`columns`), fills it with `rows` rows of `select` over
    /// `generate_series(1, rows) g`, runs `indexes`, vacuums, and answers
    /// `pg_total_relation_size` over the rows.
    fn bytes_per_row(
        &self,
        table: &str,
        columns: &str,
        select: &str,
        indexes: &str,
        rows: u64,
    ) -> Result<f64, String> {
        let sql = format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} ({columns});
             INSERT INTO {table} {select} FROM generate_series(1, {rows}) g;
             {indexes}"
        );
        self.psql(&sql)?;
        // Alone: VACUUM cannot run inside the transaction a multi-statement -c runs in.
        self.psql(&format!("VACUUM ANALYZE {table}"))?;
        let answer = self.psql(&format!("SELECT pg_total_relation_size('{table}')"))?;
        self.psql(&format!("DROP TABLE {table}"))?;
        let bytes: f64 = answer
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|line| line.parse().ok())
            .ok_or_else(|| format!("pg_total_relation_size answered {answer:?}"))?;
        Ok(bytes / rows.max(1) as f64)
    }

    /// A scratch directory the server user can read.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn share(&self, path: &Path) -> Result<(), String> {
        if self.run_as_postgres {
            run(Command::new("chown").arg("postgres").arg(path))?;
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.tool("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .output()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{:?} failed: {}{}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    }
}
