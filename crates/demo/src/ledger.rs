//! Act 2 (and its close): a warehouse system follows Vientiane's ledger (`WatchLedger`)
//! through the whole day, counting what the day adds to it.

use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::retry::describe;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::VIENTIANE;
use crate::day::Day;
use crate::outcome::{DemoError, LedgerOutcome, failed};

/// The transfer lines of the day that arrive at Vientiane.
const TRANSFER_LINES: u64 = 2;

/// The follower running in the background.
pub(crate) struct Follower {
    task: JoinHandle<LedgerOutcome>,
    stop: watch::Sender<Option<Instant>>,
}

impl Follower {
    /// Starts following, and waits (bounded) until the follower caught up on history.
    pub(crate) async fn start(day: &mut Day<'_>) -> Self {
        let wait = day.config.wait;
        let (stop, stop_rx) = watch::channel(None::<Instant>);
        let (ready_tx, mut ready_rx) = watch::channel(false);
        let task = tokio::spawn(follow_ledger(
            day.vte.inventory.clone(),
            day.run.to_string(),
            TRANSFER_LINES,
            stop_rx,
            ready_tx,
            Instant::now() + wait * 4 + Duration::from_secs(600),
        ));
        let caught_up = tokio::time::timeout(wait.min(Duration::from_secs(10)), async {
            while !*ready_rx.borrow_and_update() {
                if ready_rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if caught_up.is_err() {
            day.warnings
                .push("the ledger follower did not catch up before the day began".into());
        }
        day.progress
            .say("a warehouse system follows Vientiane's ledger");
        Self { task, stop }
    }

    /// Waits (bounded) until the follower saw this run's entries, then stops it.
    pub(crate) async fn finish(self, day: &mut Day<'_>) -> Result<LedgerOutcome, DemoError> {
        let wait = day.config.wait;
        let _ = self.stop.send(Some(Instant::now() + wait));
        let ledger = match self.task.await {
            Ok(ledger) => ledger,
            Err(e) => {
                return Err(failed(
                    "ledger follower",
                    format!("the follower task failed: {e}"),
                ));
            }
        };
        if let Some(error) = &ledger.error {
            day.warnings.push(format!("ledger follower: {error}"));
        }
        if ledger.timed_out {
            day.warnings.push(format!(
                "the ledger follower saw {} of this run's entries within {} s",
                ledger.run_entries,
                wait.as_secs()
            ));
        }
        day.progress.say(&format!(
            "the Vientiane follower read {} entries ({} live, {} of this run)",
            ledger.entries_read, ledger.entries_seen, ledger.run_entries
        ));
        Ok(ledger)
    }
}

/// What the follower counted so far, and where it reads next.
struct Following {
    out: LedgerOutcome,
    /// The next sequence to read.
    next: u64,
    /// The ledger's head when the follower first heard from it.
    head_at_start: Option<u64>,
    /// What ends the ids of this run's lots and transfer.
    suffix: String,
    transfer_lines: u64,
}

impl Following {
    /// True once this run's TRANSFER_IN lines and RECEIPT were seen.
    fn complete(&self) -> bool {
        self.out.transfer_in_entries >= self.transfer_lines && self.out.receipt_entries >= 1
    }

    /// Counts the entries of one message; signals `ready` once caught up with the head.
    fn take(&mut self, message: inventory::WatchLedgerResponse, ready: &watch::Sender<bool>) {
        let head = *self.head_at_start.get_or_insert(message.head_sequence);
        for e in message.entries {
            if e.sequence < self.next {
                continue;
            }
            self.next = e.sequence + 1;
            self.out.last_sequence = e.sequence;
            self.out.entries_read += 1;
            if e.sequence > head {
                self.out.entries_seen += 1;
            }
            let ours = e.transfer_id.ends_with(&self.suffix)
                || e.lot
                    .as_ref()
                    .is_some_and(|l| l.lot_id.ends_with(&self.suffix));
            if ours {
                self.out.run_entries += 1;
                match inventory::LedgerEntryKind::try_from(e.kind) {
                    Ok(inventory::LedgerEntryKind::TransferIn) => self.out.transfer_in_entries += 1,
                    Ok(inventory::LedgerEntryKind::Receipt) => self.out.receipt_entries += 1,
                    Ok(inventory::LedgerEntryKind::HoldPlaced) => self.out.hold_entries += 1,
                    _ => {}
                }
            }
        }
        if self.next > head {
            let _ = ready.send(true);
        }
    }

    /// The stream failed for good: say why, and stop waiting for the follower.
    fn fail(&mut self, status: &tonic::Status, ready: &watch::Sender<bool>) {
        self.out.error = Some(describe(status));
        let _ = ready.send(true);
    }
}

/// Follows a site's ledger from the beginning: catches up on history (then signals
/// `ready`), counts live entries and this run's entries (lots or transfer carrying the run
/// id), and stops once told to and this run's TRANSFER_IN lines and RECEIPT were seen, or at
/// the stop's grace deadline, or at `hard_deadline`.
async fn follow_ledger(
    client: InventoryServiceClient<Channel>,
    run_id: String,
    transfer_lines: u64,
    mut stop: watch::Receiver<Option<Instant>>,
    ready: watch::Sender<bool>,
    hard_deadline: Instant,
) -> LedgerOutcome {
    let mut f = Following {
        out: LedgerOutcome {
            site_id: VIENTIANE.into(),
            from_sequence: 1,
            ..LedgerOutcome::default()
        },
        next: 1,
        head_at_start: None,
        suffix: format!("-{run_id}"),
        transfer_lines,
    };
    'outer: loop {
        if Instant::now() >= hard_deadline {
            f.out.timed_out = true;
            break;
        }
        let mut c = client.clone();
        let opened = tokio::time::timeout(
            Duration::from_secs(10),
            c.watch_ledger(inventory::WatchLedgerRequest {
                from_sequence: f.next,
            }),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if coldchain_ops::stream_retryable(&status) => {
                f.out.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Ok(Err(status)) => {
                f.fail(&status, &ready);
                break;
            }
            Err(_) => {
                f.out.reconnects += 1;
                continue;
            }
        };
        loop {
            let grace = *stop.borrow();
            if let Some(grace) = grace {
                if f.complete() {
                    break 'outer;
                }
                if Instant::now() >= grace {
                    f.out.timed_out = true;
                    break 'outer;
                }
            }
            let wake = grace.unwrap_or(hard_deadline).min(hard_deadline);
            // An empty ledger sends nothing: after a short quiet spell, count it as caught up.
            let quiet = if f.head_at_start.is_none() {
                Instant::now() + Duration::from_secs(2)
            } else {
                hard_deadline
            };
            tokio::select! {
                message = stream.message() => match message {
                    Ok(Some(message)) => f.take(message, &ready),
                    Ok(None) => continue 'outer,
                    Err(status) if coldchain_ops::stream_retryable(&status) => {
                        f.out.reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue 'outer;
                    }
                    Err(status) => {
                        f.fail(&status, &ready);
                        break 'outer;
                    }
                },
                changed = stop.changed() => {
                    if changed.is_err() {
                        break 'outer;
                    }
                }
                _ = tokio::time::sleep_until(quiet.into()), if f.head_at_start.is_none() => {
                    f.head_at_start = Some(0);
                    let _ = ready.send(true);
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
    f.out.head_at_start = f.head_at_start.unwrap_or(0);
    let _ = ready.send(true);
    f.out
}
