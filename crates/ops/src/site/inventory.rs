//! The inventory service's command: `ledger`, read or followed live with `--follow`.

use std::time::{Duration, Instant};

use clap::Args;
use coldchain_command::say;
use coldchain_credentials as credentials;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::client::{Channel, with_retry};
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::retry::describe;
use serde_json::json;

use crate::format::{self, Table, or_dash, thousands, ts_short};
use crate::stream::{Reconnect, retryable};
use crate::{CliError, SiteOpts, client_options, connect_as, emit, print_json};

#[derive(Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// The first sequence to read.
    #[arg(long, value_name = "N", default_value_t = 1)]
    from: u64,
    /// Keep following live entries (JSON lines with --json) until interrupted.
    #[arg(long)]
    follow: bool,
    /// Stop after this many entries.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Follow: stop after this long, e.g. 30s or 5m.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    for_: Option<Duration>,
    /// Call as this credential of the keyring, e.g. operations [default: <SITE>-warehouse,
    /// the site's warehouse system].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

/// How long a non-following read waits for the next message before it counts as caught up.
const LEDGER_IDLE: Duration = Duration::from_secs(2);

pub async fn ledger(args: LedgerArgs) -> Result<(), CliError> {
    let (site, endpoint) = args.site.resolve(ServiceKind::Inventory)?;
    let caller = args
        .caller
        .clone()
        .unwrap_or_else(|| credentials::warehouse(&site.id));
    let client = InventoryServiceClient::new(connect_as(&endpoint, &caller)?);
    let started = Instant::now();
    let deadline = args.for_.map(|d| started + d);
    let mut reader = Reader {
        follow: args.follow,
        json: args.site.json,
        limit: args.limit,
        next: args.from.max(1),
        head: 0,
        seen: 0,
        entries: Vec::new(),
        caught_up_reported: false,
    };
    if reader.follow {
        eprintln!(
            "following the ledger of {} from sequence {}",
            site.id, reader.next
        );
    }
    if reader.follow && !reader.json && !emit(&ledger_header()) {
        return Ok(());
    }
    let result = reader.read(&client, deadline).await;
    let Reader {
        next,
        head,
        seen,
        entries,
        ..
    } = reader;
    if args.follow {
        eprintln!(
            "{seen} entries in {:.1}s; resume with --from {next}",
            started.elapsed().as_secs_f64()
        );
        return result;
    }
    result?;
    if args.site.json {
        print_json(&json!({
            "site_id": site.id,
            "from_sequence": args.from.max(1),
            "head_sequence": head,
            "next_sequence": next,
            "entries": entries.iter().map(format::ledger_entry_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "SEQ", "RECORDED", "KIND", "SKU", "LOT", "ZONE", "DELTA", "BALANCE", "UNIT", "DETAIL",
    ]);
    for e in &entries {
        table.row(ledger_cells(e).into());
    }
    table.print();
    say!(
        "{} entries of {} (head {head}); next --from {next}",
        entries.len(),
        site.id
    );
    Ok(())
}

/// A read of the ledger: until caught up (or `--limit`), or following live entries.
struct Reader {
    follow: bool,
    json: bool,
    limit: Option<u64>,
    /// The next sequence to read.
    next: u64,
    /// The highest head the server reported.
    head: u64,
    seen: u64,
    /// What a read that does not follow prints at the end.
    entries: Vec<inventory::LedgerEntry>,
    caught_up_reported: bool,
}

/// Whether a read goes on after a message.
enum Flow {
    More,
    Done,
}

impl Reader {
    /// Opens the stream from `next` (again after an interruption while following) and
    /// reads it until done or `deadline`.
    async fn read(
        &mut self,
        client: &InventoryServiceClient<Channel>,
        deadline: Option<Instant>,
    ) -> Result<(), CliError> {
        let mut reconnect = Reconnect::new();
        'outer: loop {
            let options = client_options();
            let next = self.next;
            let opened = with_retry(&options, || {
                let mut c = client.clone();
                async move {
                    c.watch_ledger(inventory::WatchLedgerRequest {
                        from_sequence: next,
                    })
                    .await
                }
            });
            let opened = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), opened).await {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                },
                None => opened.await,
            };
            let mut stream = match opened {
                Ok(r) => r.into_inner(),
                Err(status) if self.follow && retryable(&status) => {
                    let why = describe(&status);
                    reconnect
                        .pause(|ms| format!("{why}; reconnecting in {ms} ms"))
                        .await;
                    continue;
                }
                Err(status) => return Err(status.into()),
            };
            loop {
                let wait = if self.follow {
                    deadline.map(|d| d.saturating_duration_since(Instant::now()))
                } else {
                    Some(LEDGER_IDLE)
                };
                let message = match wait {
                    Some(w) => match tokio::time::timeout(w, stream.message()).await {
                        Ok(m) => m,
                        Err(_) => return Ok(()),
                    },
                    None => stream.message().await,
                };
                match message {
                    Ok(Some(message)) => {
                        reconnect.reset();
                        if let Flow::Done = self.take(message) {
                            return Ok(());
                        }
                    }
                    Ok(None) => {
                        if !self.follow {
                            return Ok(());
                        }
                        continue 'outer;
                    }
                    Err(status) if self.follow && retryable(&status) => {
                        let (why, next) = (describe(&status), self.next);
                        reconnect
                            .pause(|ms| {
                                format!(
                                    "stream interrupted: {why}; resuming from {next} in {ms} ms"
                                )
                            })
                            .await;
                        continue 'outer;
                    }
                    Err(status) => return Err(status.into()),
                }
            }
        }
    }

    /// Takes the entries of one message: prints them when following, keeps them otherwise.
    fn take(&mut self, message: inventory::WatchLedgerResponse) -> Flow {
        self.head = self.head.max(message.head_sequence);
        for entry in message.entries {
            if entry.sequence < self.next {
                continue;
            }
            self.next = entry.sequence + 1;
            self.seen += 1;
            if self.follow {
                let line = if self.json {
                    format::ledger_entry_json(&entry).to_string()
                } else {
                    ledger_line(&entry)
                };
                if !emit(&line) {
                    return Flow::Done;
                }
            } else {
                self.entries.push(entry);
            }
            if self.limit.is_some_and(|l| self.seen >= l) {
                return Flow::Done;
            }
        }
        if self.next > self.head {
            if !self.follow {
                return Flow::Done;
            }
            if !self.caught_up_reported {
                self.caught_up_reported = true;
                eprintln!(
                    "caught up at sequence {} ({} entries); following live entries",
                    self.head, self.seen
                );
            }
        }
        Flow::More
    }
}

fn ledger_header() -> String {
    format!(
        "{:>7}  {:<20}  {:<21}  {:<24}  {:<34}  {:<10}  {:>9}  {:>10}  {:<6}  DETAIL",
        "SEQ", "RECORDED", "KIND", "SKU", "LOT", "ZONE", "DELTA", "BALANCE", "UNIT"
    )
}

/// The cells of one ledger entry: sequence, time, kind, sku, lot, zone, delta, balance,
/// unit, detail.
fn ledger_cells(e: &inventory::LedgerEntry) -> [String; 10] {
    let mut detail = Vec::new();
    if !e.transfer_id.is_empty() {
        detail.push(format!("transfer {} ({})", e.transfer_id, e.other_site_id));
    }
    if let Some(t) = &e.transformation {
        let mut text = format!(
            "transformation {}: {} g in, {} g out, {} g waste",
            t.transformation_id,
            thousands(t.input_mass_g),
            thousands(t.output_mass_g),
            thousands(t.waste_mass_g)
        );
        if !t.work_order.is_empty() {
            text.push_str(&format!(", work order {}", t.work_order));
        }
        if t.write_off {
            text.push_str(", write-off");
        }
        detail.push(text);
    }
    if let Some(r) = &e.relocation {
        let class = format::class_name;
        detail.push(format!(
            "{} ({}) -> {} ({})",
            r.from_zone_id,
            class(r.from_class),
            r.to_zone_id,
            class(r.to_class)
        ));
    }
    if !e.booking_id.is_empty() {
        detail.push(format!("booking {}", e.booking_id));
    }
    if !e.order_id.is_empty() {
        detail.push(format!("order {}", e.order_id));
    }
    if !e.hold_id.is_empty() {
        detail.push(format!("hold {}", e.hold_id));
    }
    if let Some(r) = &e.reference {
        detail.push(format!(
            "{} {}",
            format::reference_kind_name(r.kind).to_ascii_lowercase(),
            r.id
        ));
    }
    if !e.reason.is_empty() {
        detail.push(e.reason.clone());
    }
    if e.allocated_delta != 0 {
        detail.push(format!("allocated {:+}", e.allocated_delta));
    }
    if e.recorded_by.is_some() {
        detail.push(format!(
            "by {}",
            format::author_short(e.recorded_by.as_ref())
        ));
    }
    let signed = |n: i64| {
        if n > 0 {
            format!("+{}", thousands(n))
        } else {
            thousands(n)
        }
    };
    [
        e.sequence.to_string(),
        ts_short(e.recorded_at.as_ref()),
        format::ledger_kind_name(e.kind),
        or_dash(&e.sku),
        e.lot
            .as_ref()
            .map(|l| or_dash(&l.lot_id))
            .unwrap_or_else(|| "-".into()),
        or_dash(&e.zone_id),
        signed(e.delta),
        thousands(e.balance_after),
        or_dash(&e.unit),
        detail.join("; "),
    ]
}

/// One ledger entry as a fixed-width line (for --follow, where widths cannot be measured).
pub fn ledger_line(e: &inventory::LedgerEntry) -> String {
    let [
        sequence,
        recorded,
        kind,
        sku,
        lot,
        zone,
        delta,
        balance,
        unit,
        detail,
    ] = ledger_cells(e);
    format!(
        "{sequence:>7}  {recorded:<20}  {kind:<21}  {sku:<24}  {lot:<34}  {zone:<10}  {delta:>9}  {balance:>10}  {unit:<6}  {detail}"
    )
}
