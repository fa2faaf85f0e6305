//! Backup and restore as an operator runs them against a serving site: `coldchain backup`
//! streams the inventory's database while warehouse writes go on, `backup verify` checks
//! the file (and catches a flipped byte), only operations may take one, `restore` refuses
//! another site's data, and after a wipe the restored database serves the ledger up to the
//! backup's sequence with every receipt acknowledged before the backup began; with the log
//! archive, `restore --archive --to-sequence N` serves exactly the first N entries.
//! `--to-sequence` with `--to-time`, or a time that is not RFC 3339, is a usage error.
//! `backup --gateway` takes the gateway's database the same way; it verifies and restores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use common::{NO_RATE_LIMIT, Server, TestNetwork};

const PARK: &str = "cn-huaihua-park";

fn cli(net: &TestNetwork, key_id: &str, args: &[&str]) -> Output {
    common::command()
        .args(args)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_CLIENT_KEY_FILE", net.keyring().key_file(key_id))
        .output()
        .expect("run coldchain")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn receipt(request_id: String, quantity: i64) -> inv::RecordMovementsRequest {
    inv::RecordMovementsRequest {
        request_id,
        movements: vec![inv::Movement {
            kind: inv::MovementKind::Receipt as i32,
            sku: "citrus-navel".into(),
            lot: Some(common::lasting_lot("L1")),
            zone_id: "chilled-a".into(),
            quantity,
            unit: "kg".into(),
            ..Default::default()
        }],
        actor: Default::default(),
    }
}

/// Every ledger entry from 1 up to `last`, through WatchLedger.
async fn ledger(server: &Server, last: u64) -> Vec<inv::LedgerEntry> {
    let mut client = InventoryServiceClient::new(server.as_warehouse());
    let mut stream = client
        .watch_ledger(inv::WatchLedgerRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    while (entries.len() as u64) < last {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the ledger streams")
            .unwrap()
            .expect("the stream stays open");
        assert!(message.head_sequence >= last.min(1));
        entries.extend(message.entries);
    }
    entries
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_verify_wipe_restore_and_serve() {
    let net = TestNetwork::new();
    let archive_root = net.dir.path().join("archive");
    let env = [
        NO_RATE_LIMIT[0],
        NO_RATE_LIMIT[1],
        ("COLDCHAIN_WAL_ARCHIVE_DIR", archive_root.to_str().unwrap()),
    ];
    let server = Server::start_with_env(&net, "inventory", Some(PARK), &env);
    let mut client = InventoryServiceClient::new(server.as_warehouse());
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let entries = client
            .record_movements(receipt(format!("before-{i}"), 10))
            .await
            .unwrap()
            .into_inner()
            .entries;
        acknowledged.extend(entries.into_iter().map(|e| (e.sequence, e.request_id)));
    }
    // Writes go on while the backup streams.
    let load = {
        let mut client = client.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                client
                    .record_movements(receipt(format!("during-{i}"), 1))
                    .await
                    .unwrap();
            }
        })
    };
    let out = net.dir.path().join("backups");
    let network = net.file.to_str().unwrap().to_owned();
    let args = [
        "backup",
        "--site",
        PARK,
        "--service",
        "inventory",
        "--out",
        out.to_str().unwrap(),
        "--network",
        &network,
        "--json",
    ];
    let taken = cli(&net, common::OPERATIONS, &args);
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let written: serde_json::Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(written.as_array().map(Vec::len), Some(1), "{written}");
    load.await.unwrap();
    // After the backup, one at a time: each its own generation, for a restore to any of them.
    let mut after = Vec::new();
    for i in 0..20 {
        let entries = client
            .record_movements(receipt(format!("after-{i}"), 1))
            .await
            .unwrap()
            .into_inner()
            .entries;
        after.extend(entries.into_iter().map(|e| (e.sequence, e.request_id)));
    }
    let denied = cli(&net, &common::warehouse(PARK), &args);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stderr).contains("PERMISSION_DENIED"),
        "{}",
        text(&denied.stderr)
    );
    let file = only_file(&out);

    // Every site at once: the sites whose inventory is down fail, the others are written.
    let every = net.dir.path().join("every-site");
    let all = cli(
        &net,
        common::OPERATIONS,
        &[
            "backup",
            "--all-sites",
            "--service",
            "inventory",
            "--out",
            every.to_str().unwrap(),
            "--network",
            &network,
        ],
    );
    assert_eq!(all.status.code(), Some(1), "{}", text(&all.stderr));
    assert!(
        text(&all.stderr).contains("7 of 8 backups failed"),
        "{}",
        text(&all.stderr)
    );
    assert!(text(&all.stderr).contains("la-vientiane/inventory: UNAVAILABLE"));
    let park_file = only_file(&every);
    assert!(
        park_file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("{PARK}-inventory-")),
        "{park_file:?}"
    );
    assert!(file.to_str().unwrap().ends_with(".ccbackup"), "{file:?}");

    let verified = cli(
        &net,
        common::OPERATIONS,
        &["backup", "verify", file.to_str().unwrap(), "--json"],
    );
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(manifest["site"], PARK);
    assert_eq!(manifest["service"], "inventory");
    let last = manifest["ledger_sequence"].as_u64().unwrap();
    assert!(last >= 30, "{manifest}");

    let damaged = net.dir.path().join("damaged.ccbackup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    let refused = cli(
        &net,
        common::OPERATIONS,
        &["backup", "verify", damaged.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(1));

    assert!(server.terminate().success());
    let data = net.data_dir();
    std::fs::remove_dir_all(data.join(PARK).join("inventory")).unwrap();
    let data_dir = data.to_str().unwrap();
    let other = cli(
        &net,
        common::OPERATIONS,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir,
            "--site",
            "la-vientiane",
        ],
    );
    assert_eq!(other.status.code(), Some(1));
    assert!(
        text(&other.stderr).contains(PARK),
        "names whose backup it is: {}",
        text(&other.stderr)
    );
    assert!(!data.join("la-vientiane").join("inventory").exists());
    let restored = cli(
        &net,
        common::OPERATIONS,
        &["restore", file.to_str().unwrap(), "--data-dir", data_dir],
    );
    assert!(restored.status.success(), "{}", text(&restored.stderr));

    let server = Server::start_with_env(&net, "inventory", Some(PARK), &env);
    let entries = ledger(&server, last).await;
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=last).collect::<Vec<_>>(),
        "gapless to the backup's sequence"
    );
    for (sequence, request_id) in &acknowledged {
        assert_eq!(&entries[(*sequence - 1) as usize].request_id, request_id);
    }
    // It takes writes again, after the restored ledger.
    let next = InventoryServiceClient::new(server.as_warehouse())
        .record_movements(receipt("after".into(), 1))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(next[0].sequence, last + 1);
    assert!(server.terminate().success());

    // Point in time: the backup plus the archive, to five entries before the end.
    let (target, target_id) = after[after.len() - 6].clone();
    std::fs::remove_dir_all(data.join(PARK).join("inventory")).unwrap();
    let archive = archive_root.join(PARK).join("inventory");
    let to = target.to_string();
    let restored = cli(
        &net,
        common::OPERATIONS,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir,
            "--archive",
            archive.to_str().unwrap(),
            "--to-sequence",
            &to,
            "--json",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let reached: serde_json::Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(reached["ledger_sequence"].as_u64(), Some(target));
    let server = Server::start_with_env(&net, "inventory", Some(PARK), &env);
    let entries = ledger(&server, target).await;
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=target).collect::<Vec<_>>(),
        "exactly the first {target}"
    );
    assert_eq!(entries[(target - 1) as usize].request_id, target_id);
    let next = InventoryServiceClient::new(server.as_warehouse())
        .record_movements(receipt("after-pitr".into(), 1))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(next[0].sequence, target + 1);

    // A sequence and a time together, or a time that is not RFC 3339, are refused before
    // anything is restored.
    let untouched = data.join("untouched");
    for flags in [
        &["--to-sequence", "3", "--to-time", "2026-12-04T13:00:00Z"][..],
        &["--to-time", "yesterday"][..],
    ] {
        let mut args = vec![
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            untouched.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let refused = cli(&net, common::OPERATIONS, &args);
        assert_eq!(refused.status.code(), Some(2), "{flags:?} is a usage error");
        assert!(!untouched.exists(), "nothing was restored for {flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_database_backs_up_verifies_and_restores_from_the_cli() {
    let net = TestNetwork::new();
    let server = Server::start_with_env(&net, "gateway", None, &NO_RATE_LIMIT);
    let out = net.dir.path().join("backups");
    let network = net.file.to_str().unwrap().to_owned();
    let taken = cli(
        &net,
        common::OPERATIONS,
        &[
            "backup",
            "--gateway",
            "--out",
            out.to_str().unwrap(),
            "--network",
            &network,
            "--json",
        ],
    );
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let written: serde_json::Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(written.as_array().map(Vec::len), Some(1), "{written}");
    assert_eq!(written[0]["service"], "gateway", "{written}");
    let file = only_file(&out);
    let verified = cli(
        &net,
        common::OPERATIONS,
        &["backup", "verify", file.to_str().unwrap(), "--json"],
    );
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(server.terminate().success());

    let data = net.data_dir();
    std::fs::remove_dir_all(data.join("gateway")).unwrap();
    let restored = cli(
        &net,
        common::OPERATIONS,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let reached: serde_json::Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(reached["service"], "gateway", "{reached}");
    assert_eq!(reached["generation"], written[0]["generation"], "{reached}");
    assert_eq!(reached["entries"], written[0]["entries"], "{reached}");
    assert!(
        data.join("gateway").is_dir(),
        "laid out where serve opens it"
    );
    // The gateway serves from the restored database (start waits until it answers health).
    let server = Server::start_with_env(&net, "gateway", None, &NO_RATE_LIMIT);
    assert!(server.terminate().success());
}
