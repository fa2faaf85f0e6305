//! Acts 4 and 6: a China–Laos express train carries chilled and frozen lots from the park
//! to Vientiane (a gateway transfer with the reefer's sensor bound to it), arrives
//! (`ReceiveTransfer`), and the lots' stock is checked at both ends.

use std::time::{Duration, Instant};

use coldchain_ops::call;
use coldchain_ops::format;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::network::TemperatureClass;

use crate::day::{Day, zone_of};
use crate::outcome::{DemoError, TransferLineOutcome, TransferOutcome, step_err};
use crate::receipts::ParkLots;
use crate::{PARK, TRAIN, VIENTIANE};

/// The day's transfer, as it goes.
pub(crate) struct Corridor {
    pub(crate) transfer_id: String,
    pub(crate) sensor_id: String,
    pub(crate) container_id: String,
    pub(crate) lines: Vec<network::TransferLine>,
    /// The state StartTransfer answered.
    pub(crate) state_after_start: String,
    /// The transfer as last read.
    pub(crate) transfer: network::Transfer,
}

/// Operations starts the transfer through the gateway, and waits (bounded) until the train
/// is on its way.
pub(crate) async fn start(day: &mut Day<'_>, park: &ParkLots) -> Result<Corridor, DemoError> {
    let step = "start transfer";
    let run = day.run;
    let transfer_id = format!("x8011-{run}");
    let vte_chilled = zone_of(&day.vte.site, TemperatureClass::Chilled)?;
    let vte_frozen = zone_of(&day.vte.site, TemperatureClass::Frozen)?;
    let sensor_id = format!("reefer-{run}");
    let container_id = format!("LCRU-{run}");
    let lines = vec![
        network::TransferLine {
            sku: "citrus-navel-mayang".into(),
            lot_id: format!("mayang-navel-{run}"),
            source_zone_id: park.chilled.clone(),
            destination_zone_id: vte_chilled.clone(),
            quantity: 3_000,
            unit: "kg".into(),
            lot: None,
        },
        network::TransferLine {
            sku: "citrus-segments-frozen".into(),
            lot_id: format!("segments-{run}"),
            source_zone_id: park.frozen.clone(),
            destination_zone_id: vte_frozen.clone(),
            quantity: 1_000,
            unit: "kg".into(),
            lot: None,
        },
    ];
    let request = network::StartTransferRequest {
        request_id: day.rid("transfer-start"),
        transfer_id: transfer_id.clone(),
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        lines: lines.clone(),
        reefer_sensor_id: sensor_id.clone(),
        reefer_container_id: container_id.clone(),
        reefer_temperature_class: common::TemperatureClass::Chilled as i32,
        train_or_route: TRAIN.into(),
        actor: Default::default(),
    };
    let started = call!(day.gateway, start_transfer, request).map_err(step_err(step))?;
    let state_after_start = format::transfer_state_name(started.state);
    day.progress.say(&format!(
        "{TRAIN} leaves with transfer {transfer_id}: {state_after_start}"
    ));
    let mut transfer = started;
    if transfer.state == network::TransferState::Requested as i32 {
        transfer = wait_transfer(
            &day.gateway,
            &transfer_id,
            &[
                network::TransferState::InTransit,
                network::TransferState::Failed,
            ],
            day.config.wait,
        )
        .await
        .map_err(step_err(step))?;
        if transfer.state != network::TransferState::InTransit as i32 {
            day.warnings.push(format!(
                "transfer {transfer_id} is {} after waiting: {}",
                format::transfer_state_name(transfer.state),
                transfer.last_error
            ));
        }
    }
    Ok(Corridor {
        transfer_id,
        sensor_id,
        container_id,
        lines,
        state_after_start,
        transfer,
    })
}

/// The train arrives: operations reports it (`ReceiveTransfer`) and waits (bounded) until
/// the transfer completes. Answers the transfer's final state.
pub(crate) async fn arrive(
    day: &mut Day<'_>,
    corridor: &mut Corridor,
) -> Result<String, DemoError> {
    let step = "receive transfer";
    let transfer_id = &corridor.transfer_id;
    let state = corridor.transfer.state;
    if state == network::TransferState::InTransit as i32
        || state == network::TransferState::Receiving as i32
    {
        let request = network::ReceiveTransferRequest {
            request_id: day.rid("transfer-receive"),
            transfer_id: transfer_id.clone(),
            actor: Default::default(),
        };
        corridor.transfer =
            call!(day.gateway, receive_transfer, request).map_err(step_err(step))?;
        if corridor.transfer.state == network::TransferState::Receiving as i32 {
            corridor.transfer = wait_transfer(
                &day.gateway,
                transfer_id,
                &[network::TransferState::Completed],
                day.config.wait,
            )
            .await
            .map_err(step_err(step))?;
        }
    } else if state != network::TransferState::Completed as i32 {
        day.warnings.push(format!(
            "transfer {transfer_id} not received: it is {}",
            format::transfer_state_name(state)
        ));
    }
    let transfer_state = format::transfer_state_name(corridor.transfer.state);
    day.progress.say(&format!(
        "the train arrived at {VIENTIANE}: transfer {transfer_state}"
    ));
    Ok(transfer_state)
}

/// The transfer with the stock of its lots at both ends.
pub(crate) async fn outcome(
    day: &Day<'_>,
    corridor: Corridor,
    state: String,
) -> Result<TransferOutcome, DemoError> {
    let step = "stock after the transfer";
    let mut line_outcomes = Vec::new();
    for line in &corridor.lines {
        let at_source = lot_stock(&day.park.inventory, &line.sku, &line.lot_id)
            .await
            .map_err(step_err(step))?;
        let at_destination = lot_stock(&day.vte.inventory, &line.sku, &line.lot_id)
            .await
            .map_err(step_err(step))?;
        line_outcomes.push(TransferLineOutcome {
            sku: line.sku.clone(),
            lot_id: line.lot_id.clone(),
            source_zone_id: line.source_zone_id.clone(),
            destination_zone_id: line.destination_zone_id.clone(),
            quantity: line.quantity,
            unit: line.unit.clone(),
            source_on_hand: at_source.on_hand,
            destination_on_hand: at_destination.on_hand,
            destination_held: at_destination.held,
        });
    }
    Ok(TransferOutcome {
        transfer_id: corridor.transfer_id,
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        train_or_route: corridor.transfer.train_or_route,
        reefer_container_id: corridor.container_id,
        reefer_sensor_id: corridor.sensor_id,
        state_after_start: corridor.state_after_start,
        state,
        last_error: corridor.transfer.last_error,
        lines: line_outcomes,
    })
}

/// Polls GetTransfer until the transfer is in one of `states` or `within` elapsed; answers
/// the last read.
async fn wait_transfer(
    gateway: &NetworkServiceClient<Channel>,
    transfer_id: &str,
    states: &[network::TransferState],
    within: Duration,
) -> Result<network::Transfer, tonic::Status> {
    let deadline = Instant::now() + within;
    loop {
        let request = network::GetTransferRequest {
            transfer_id: transfer_id.to_string(),
        };
        let transfer = call!(gateway, get_transfer, request)?;
        if states.iter().any(|s| *s as i32 == transfer.state) || Instant::now() >= deadline {
            return Ok(transfer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The summed stock of one lot at a site (zero when the site never had it).
async fn lot_stock(
    client: &InventoryServiceClient<Channel>,
    sku: &str,
    lot_id: &str,
) -> Result<inventory::StockTotals, tonic::Status> {
    let request = inventory::GetStockRequest {
        sku: sku.to_string(),
        lot_id: lot_id.to_string(),
        zone_id: String::new(),
    };
    match call!(client, get_stock, request) {
        Ok(answer) => Ok(answer.totals.unwrap_or_default()),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(Default::default()),
        Err(status) => Err(status),
    }
}
