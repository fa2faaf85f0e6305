//! `recall start|release|show|list`: recalls of a lot across the network (gateway).

use clap::{Args, Subcommand};
use coldchain_command::say;
use coldchain_proto::network::v1 as network;
use serde_json::{Value, json};

use super::{CallerOpt, client};
use crate::format::{self, Table, or_dash, thousands, ts_short};
use crate::pages::Pages;
use crate::{CliError, GatewayOpts, RequestIdOpt, call, print_json, retry_with};

#[derive(Subcommand)]
pub enum RecallCommand {
    /// Recall lots of a sku (or all its lots) at every site: a hold wherever they are, and
    /// where they are travelling to once they arrive.
    Start(RecallStartArgs),
    /// Lift a recall: release every hold it placed.
    Release(RecallReleaseArgs),
    /// Show one recall: its holds per site, the positions held, what is in transit and
    /// the orders the lots went out to.
    Show(RecallShowArgs),
    /// List recalls, newest first.
    List(RecallListArgs),
}

#[derive(Args)]
pub struct RecallStartArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The sku.
    sku: String,
    /// A lot to recall (repeat for more).
    #[arg(long = "lot", value_name = "LOT", required_unless_present = "all_lots")]
    lots: Vec<String>,
    /// Recall every lot of the sku.
    #[arg(long, conflicts_with = "lots")]
    all_lots: bool,
    /// Why (written on every hold).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Also recall every lot made from these lots by processing (transformations), at any
    /// site, and the lots made from those.
    #[arg(long)]
    include_derived: bool,
    /// The recall's id [default: assigned by the gateway].
    #[arg(long = "id", value_name = "ID")]
    recall_id: Option<String>,
    /// Who at your desk asks (recorded beside your credential).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
}

#[derive(Args)]
pub struct RecallReleaseArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The recall.
    recall_id: String,
    /// Why it is lifted.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Who at your desk asks.
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
}

#[derive(Args)]
pub struct RecallShowArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The recall.
    recall_id: String,
}

#[derive(Args)]
pub struct RecallListArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// Only recalls not yet released.
    #[arg(long)]
    active: bool,
    /// At most this many recalls.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
}

pub async fn recall(command: RecallCommand) -> Result<(), CliError> {
    match command {
        RecallCommand::Start(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request_id = args.request_id.get();
            let request = network::RecallLotRequest {
                request_id: request_id.clone(),
                recall_id: args.recall_id.clone().unwrap_or_default(),
                sku: args.sku.clone(),
                lot_ids: args.lots.clone(),
                all_lots: args.all_lots,
                reason: args.reason.clone(),
                actor: args.actor.clone().unwrap_or_default(),
                include_derived: args.include_derived,
            };
            let answer = call!(client, recall_lot, request).map_err(retry_with(&request_id))?;
            print_answer(&answer, args.gateway.json);
        }
        RecallCommand::Release(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request_id = args.request_id.get();
            let request = network::ReleaseRecallRequest {
                request_id: request_id.clone(),
                recall_id: args.recall_id.clone(),
                reason: args.reason.clone(),
                actor: args.actor.clone().unwrap_or_default(),
            };
            let answer = call!(client, release_recall, request).map_err(retry_with(&request_id))?;
            print_answer(&answer, args.gateway.json);
        }
        RecallCommand::Show(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request = network::GetRecallRequest {
                recall_id: args.recall_id.clone(),
            };
            let answer = call!(client, get_recall, request)?;
            print_answer(&answer, args.gateway.json);
        }
        RecallCommand::List(args) => list(args).await?,
    }
    Ok(())
}

async fn list(args: RecallListArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let mut pages = Pages::new(args.limit);
    loop {
        let request = network::ListRecallsRequest {
            active_only: args.active,
            page_size: pages.page_size(),
            page_token: pages.token(),
        };
        let page = call!(client, list_recalls, request)?;
        if !pages.add(page.recalls, page.next_page_token) {
            break;
        }
    }
    let (recalls, more) = pages.finish();
    if args.gateway.json {
        print_json(&json!({
            "recalls": recalls.iter().map(recall_json).collect::<Vec<_>>(),
            "truncated": more,
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "RECALL", "STATE", "SKU", "LOTS", "HELD AT", "BY", "CREATED", "REASON",
    ]);
    for r in &recalls {
        let held_at = r
            .holds
            .iter()
            .filter(|h| h.state == network::RecallHoldState::Held as i32)
            .count();
        table.row(vec![
            r.recall_id.clone(),
            format::recall_state_name(r.state),
            r.sku.clone(),
            lots(r),
            held_at.to_string(),
            format::author_short(r.started_by.as_ref()),
            ts_short(r.created_at.as_ref()),
            r.reason.clone(),
        ]);
    }
    if table.is_empty() {
        say!("no recalls");
    } else {
        table.print();
    }
    if more {
        say!("(more than {}; use --limit)", args.limit);
    }
    Ok(())
}

fn lots(r: &network::Recall) -> String {
    if r.lot_ids.is_empty() {
        "(all lots)".to_string()
    } else {
        r.lot_ids.join(", ")
    }
}

/// A recall.
pub fn recall_json(r: &network::Recall) -> Value {
    json!({
        "recall_id": r.recall_id,
        "sku": r.sku,
        "lot_ids": r.lot_ids,
        "reason": r.reason,
        "state": format::recall_state_name(r.state),
        "include_derived": r.include_derived,
        "derived": r.derived.iter().map(format::lot_link_json).collect::<Vec<_>>(),
        "holds": r.holds.iter().map(|h| json!({
            "site_id": h.site_id,
            "sku": h.sku,
            "lot_id": h.lot_id,
            "state": format::recall_hold_state_name(h.state),
            "hold_id": h.hold_id,
            "last_error": h.last_error,
        })).collect::<Vec<_>>(),
        "started_by": format::author_json(r.started_by.as_ref()),
        "created_at": format::ts_str(r.created_at.as_ref()),
        "released_by": format::author_json(r.released_by.as_ref()),
        "release_reason": r.release_reason,
        "release_requested_at": format::ts_str(r.release_requested_at.as_ref()),
        "released_at": format::ts_str(r.released_at.as_ref()),
        "updated_at": format::ts_str(r.updated_at.as_ref()),
    })
}

fn answer_json(a: &network::RecallAnswer) -> Value {
    json!({
        "recall": a.recall.as_ref().map(recall_json),
        "positions": a.positions.iter().map(format::lot_position_json).collect::<Vec<_>>(),
        "in_transit": a.in_transit.iter().map(format::transfer_step_json).collect::<Vec<_>>(),
        "shipped": a.shipped.iter().map(|s| json!({
            "site_id": s.site_id,
            "sku": s.sku,
            "lot_id": s.lot_id,
            "order_id": s.order_id,
            "quantity": s.quantity,
            "unit": s.unit,
            "issued_at": format::ts_str(s.issued_at.as_ref()),
        })).collect::<Vec<_>>(),
        "errors": a.errors.iter().map(format::site_error_json).collect::<Vec<_>>(),
    })
}

fn print_answer(answer: &network::RecallAnswer, as_json: bool) {
    if as_json {
        print_json(&answer_json(answer));
        return;
    }
    for error in &answer.errors {
        eprintln!(
            "warning: {} did not answer ({}: {}); its positions and shipments are not shown",
            error.site_id, error.code, error.message
        );
    }
    let Some(r) = &answer.recall else { return };
    say!(
        "recall {} of {} {}: {} — {}",
        r.recall_id,
        r.sku,
        lots(r),
        format::recall_state_name(r.state),
        r.reason
    );
    say!(
        "started by {} at {}",
        format::author_short(r.started_by.as_ref()),
        ts_short(r.created_at.as_ref())
    );
    if r.released_by.is_some() {
        say!(
            "released by {} at {}: {}",
            format::author_short(r.released_by.as_ref()),
            ts_short(r.released_at.as_ref().or(r.release_requested_at.as_ref())),
            r.release_reason
        );
    }
    let mut holds = Table::new(&["SITE", "SKU", "LOT", "HOLD", "STATE", "ERROR"]);
    for h in &r.holds {
        holds.row(vec![
            h.site_id.clone(),
            if h.sku == r.sku {
                h.sku.clone()
            } else {
                format!("{} (derived)", h.sku)
            },
            if h.lot_id.is_empty() {
                "(all)".into()
            } else {
                h.lot_id.clone()
            },
            or_dash(&h.hold_id),
            format::recall_hold_state_name(h.state),
            or_dash(&h.last_error),
        ]);
    }
    holds.print();
    if !r.derived.is_empty() {
        say!("\nderived lots (made from the recalled lots)");
        super::trace::links_table(r.derived.iter()).print();
    }
    if !answer.positions.is_empty() {
        say!("\npositions");
        let mut table = Table::new(&["SITE", "SKU", "LOT", "ZONE", "ON HAND", "UNIT", "HELD"]);
        for p in &answer.positions {
            table.row(vec![
                p.site_id.clone(),
                or_dash(&p.sku),
                or_dash(&p.lot_id),
                p.zone_id.clone(),
                thousands(p.on_hand),
                p.unit.clone(),
                if p.held {
                    "held".into()
                } else {
                    "NOT HELD".into()
                },
            ]);
        }
        table.print();
    }
    if !answer.in_transit.is_empty() {
        say!("\nin transit (held on arrival)");
        let mut table = Table::new(&["TRANSFER", "SKU", "LOT", "FROM", "TO", "QUANTITY", "TRAIN"]);
        for t in &answer.in_transit {
            table.row(vec![
                t.transfer_id.clone(),
                or_dash(&t.sku),
                or_dash(&t.lot_id),
                t.source_site_id.clone(),
                t.destination_site_id.clone(),
                thousands(t.quantity),
                or_dash(&t.train_or_route),
            ]);
        }
        table.print();
    }
    if !answer.shipped.is_empty() {
        say!("\nalready gone out (tell these customers)");
        let mut table = Table::new(&["SITE", "SKU", "LOT", "ORDER", "QUANTITY", "UNIT", "ISSUED"]);
        for s in &answer.shipped {
            table.row(vec![
                s.site_id.clone(),
                or_dash(&s.sku),
                s.lot_id.clone(),
                or_dash(&s.order_id),
                thousands(s.quantity),
                s.unit.clone(),
                ts_short(s.issued_at.as_ref()),
            ]);
        }
        table.print();
    }
}
