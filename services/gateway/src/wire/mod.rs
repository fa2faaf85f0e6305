//! Protobuf ⇄ domain: the gateway's answers rendered as `coldchain.network.v1` messages
//! ([`requests`] validates the requests' form; [`sites`] builds the calls to the site
//! services and reads their answers). No rules here, only shapes.

pub mod recall;
pub mod requests;
pub mod sites;
pub mod trace;

use coldchain_network::TemperatureClass;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::page_token;
use coldchain_runtime::proto_time::{date, naive_date, timestamp};
use coldchain_runtime::{ServiceError, idempotency::Protobuf};
use coldchain_store::ReplyCodec;

use crate::domain::{
    InTransit, Lot, SiteFailure, SpaceAnswer, StockAnswer, Transfer, TransferRef, TransferState,
};

pub use sites::{sensor_request, transfer_in_request, transfer_out_request};

/// The stored answer of StartTransfer and ReceiveTransfer, as earlier builds kept it: the
/// protobuf message `{ string transfer_id = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredTransferRef {
    #[prost(string, tag = "1")]
    transfer_id: String,
}

/// Keeps a [`TransferRef`] as the protobuf bytes earlier builds stored, so answers kept
/// before an upgrade still replay after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferRefCodec;

impl ReplyCodec<TransferRef> for TransferRefCodec {
    fn encode(&self, reply: &TransferRef) -> Vec<u8> {
        ReplyCodec::<StoredTransferRef>::encode(
            &Protobuf,
            &StoredTransferRef {
                transfer_id: reply.transfer_id.clone(),
            },
        )
    }

    fn decode(&self, bytes: &[u8]) -> Result<TransferRef, String> {
        let stored: StoredTransferRef = Protobuf.decode(bytes)?;
        Ok(TransferRef {
            transfer_id: stored.transfer_id,
        })
    }
}

/// A class → its proto enum.
pub fn class_to_proto(class: TemperatureClass) -> common::TemperatureClass {
    coldchain_runtime::class::to_proto(class)
}

/// An unknown enum value in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue(pub i32);

/// A proto class value → `Ok(None)` for UNSPECIFIED, `Err` for an unknown value.
pub fn class_from_proto(value: i32) -> Result<Option<TemperatureClass>, UnknownValue> {
    common::TemperatureClass::try_from(value)
        .map(coldchain_runtime::class::from_proto)
        .map_err(|_| UnknownValue(value))
}

/// A state → its proto enum.
pub fn state_to_proto(state: TransferState) -> pb::TransferState {
    match state {
        TransferState::Requested => pb::TransferState::Requested,
        TransferState::InTransit => pb::TransferState::InTransit,
        TransferState::Receiving => pb::TransferState::Receiving,
        TransferState::Completed => pb::TransferState::Completed,
        TransferState::Failed => pb::TransferState::Failed,
    }
}

/// A proto state value → a state; `None` for UNSPECIFIED or an unknown value.
pub fn state_from_proto(value: i32) -> Option<TransferState> {
    match pb::TransferState::try_from(value).ok()? {
        pb::TransferState::Unspecified => None,
        pb::TransferState::Requested => Some(TransferState::Requested),
        pb::TransferState::InTransit => Some(TransferState::InTransit),
        pb::TransferState::Receiving => Some(TransferState::Receiving),
        pb::TransferState::Completed => Some(TransferState::Completed),
        pb::TransferState::Failed => Some(TransferState::Failed),
    }
}

/// A lot → LotInfo.
pub fn lot_to_proto(lot: &Lot) -> inv::LotInfo {
    inv::LotInfo {
        lot_id: lot.lot_id.clone(),
        expiry: lot.expiry.map(date),
        production: lot.production.map(date),
        origin: lot.origin.clone(),
    }
}

/// The lot a ledger entry reports (falling back to the bare id); a date the site sent
/// that is not a calendar date is left out.
pub fn lot_from_proto(info: Option<&inv::LotInfo>, lot_id: &str) -> Lot {
    match info {
        Some(info) => Lot {
            lot_id: if info.lot_id.is_empty() {
                lot_id.to_string()
            } else {
                info.lot_id.clone()
            },
            expiry: info.expiry.as_ref().and_then(|d| naive_date(d).ok()),
            production: info.production.as_ref().and_then(|d| naive_date(d).ok()),
            origin: info.origin.clone(),
        },
        None => Lot {
            lot_id: lot_id.to_string(),
            expiry: None,
            production: None,
            origin: String::new(),
        },
    }
}

/// A line's lot as the contract shows it: its attributes once shipped, else its bare id.
fn line_lot(lot: Option<&Lot>, lot_id: &str) -> inv::LotInfo {
    lot.map(lot_to_proto).unwrap_or_else(|| inv::LotInfo {
        lot_id: lot_id.to_string(),
        ..inv::LotInfo::default()
    })
}

/// A stored transfer → Transfer.
pub fn transfer_to_proto(t: &Transfer) -> pb::Transfer {
    pb::Transfer {
        transfer_id: t.transfer_id.clone(),
        source_site_id: t.source_site_id.clone(),
        destination_site_id: t.destination_site_id.clone(),
        lines: t
            .lines
            .iter()
            .map(|l| pb::TransferLine {
                sku: l.sku.clone(),
                lot_id: l.lot_id.clone(),
                source_zone_id: l.source_zone_id.clone(),
                destination_zone_id: l.destination_zone_id.clone(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                lot: l.lot.as_ref().map(lot_to_proto),
            })
            .collect(),
        state: state_to_proto(t.state) as i32,
        reefer_sensor_id: t.reefer_sensor_id.clone(),
        reefer_container_id: t.reefer_container_id.clone(),
        reefer_temperature_class: class_to_proto(t.reefer_class) as i32,
        train_or_route: t.train_or_route.clone(),
        created_at: Some(timestamp(t.created_ms)),
        shipped_at: t.shipped_ms.map(timestamp),
        received_at: t.received_ms.map(timestamp),
        completed_at: t.completed_ms.map(timestamp),
        updated_at: Some(timestamp(t.updated_ms)),
        last_error: t.last_error.clone(),
        started_by: Some(author_to_proto(&t.started_by)),
        arrival_reported_by: t.arrival_reported_by.as_ref().map(author_to_proto),
    }
}

/// Who made a change → Author.
fn author_to_proto(author: &coldchain_audit::Author) -> common::Author {
    common::Author {
        principal: author.principal.clone(),
        actor: author.actor.clone(),
    }
}

/// A site that did not answer → SiteError.
pub fn site_error(failure: SiteFailure) -> pb::SiteError {
    pb::SiteError {
        site_id: failure.site_id,
        code: failure.code,
        message: failure.message,
    }
}

fn in_transit(t: InTransit) -> pb::InTransitStock {
    pb::InTransitStock {
        lot: Some(line_lot(t.lot.as_ref(), &t.lot_id)),
        transfer_id: t.transfer_id,
        state: state_to_proto(t.state) as i32,
        source_site_id: t.source_site_id,
        destination_site_id: t.destination_site_id,
        quantity: t.quantity,
        unit: t.unit,
        train_or_route: t.train_or_route,
        shipped_at: t.shipped_ms.map(timestamp),
    }
}

/// ListExpiring's answer.
pub fn expiring_answer(
    levels: Vec<pb::SiteStockLevel>,
    truncated: bool,
    failures: Vec<SiteFailure>,
) -> pb::NetworkListExpiringResponse {
    pb::NetworkListExpiringResponse {
        levels,
        truncated,
        failures: failures.into_iter().map(site_error).collect(),
    }
}

/// FindStock's response.
pub fn stock_answer(answer: StockAnswer) -> pb::FindStockResponse {
    pb::FindStockResponse {
        sku: answer.sku,
        sites: answer
            .sites
            .into_iter()
            .map(|site| pb::SiteStock {
                zones: site
                    .zones
                    .into_iter()
                    .map(|row| pb::ZoneStock {
                        zone_id: row.zone_id,
                        temperature_class: row
                            .class
                            .map_or(common::TemperatureClass::Unspecified, class_to_proto)
                            as i32,
                        unit: site.unit.clone(),
                        on_hand: row.on_hand,
                        allocated: row.allocated,
                        held: row.held,
                        available: row.available,
                        earliest_expiry: row.earliest_expiry.map(date),
                        lot_count: row.lot_count,
                    })
                    .collect(),
                site_id: site.site_id,
                inbound_in_transit: site.inbound_in_transit,
            })
            .collect(),
        in_transit: answer.in_transit.into_iter().map(in_transit).collect(),
        failures: answer.failures.into_iter().map(site_error).collect(),
    }
}

/// FindSpace's answer.
pub fn space_answer(answer: SpaceAnswer) -> pb::FindSpaceResponse {
    let class = class_to_proto(answer.class) as i32;
    pb::FindSpaceResponse {
        offers: answer
            .offers
            .into_iter()
            .map(|o| pb::SpaceOffer {
                site_id: o.site_id,
                zone_id: o.zone_id,
                temperature_class: class,
                capacity_pallets: o.capacity,
                min_free: o.min_free,
                fits: o.fits,
            })
            .collect(),
        failures: answer.failures.into_iter().map(site_error).collect(),
    }
}

/// A page of ListSites, with the token of the next (bound to `query`): the position of
/// its first site.
pub fn sites_page(sites: Vec<pb::Site>, next: Option<u32>, query: &[u8]) -> pb::ListSitesResponse {
    pb::ListSitesResponse {
        sites,
        next_page_token: next
            .map(|position| page_token::encode(query, &position.to_be_bytes()))
            .unwrap_or_default(),
    }
}

/// A page of transfers, with the token of the next (bound to `query`).
pub fn transfers_page(
    transfers: &[Transfer],
    last_key: Option<Vec<u8>>,
    query: &[u8],
) -> pb::ListTransfersResponse {
    pb::ListTransfersResponse {
        transfers: transfers.iter().map(transfer_to_proto).collect(),
        next_page_token: last_key
            .map(|key| page_token::encode(query, &key))
            .unwrap_or_default(),
    }
}

/// A merged page of alarms, with the token of the next (bound to `query`) when there is
/// one.
pub fn alarms_page(
    alarms: Vec<tel::Alarm>,
    next: Option<&crate::domain::MergeCursor>,
    failures: Vec<SiteFailure>,
    query: &[u8],
) -> Result<pb::ListAlarmsResponse, ServiceError> {
    let next_page_token = match next {
        Some(cursor) => {
            let raw = postcard::to_allocvec(cursor).map_err(crate::error::unencodable)?;
            page_token::encode(query, &raw)
        }
        None => String::new(),
    };
    Ok(pb::ListAlarmsResponse {
        alarms,
        next_page_token,
        failures: failures.into_iter().map(site_error).collect(),
    })
}

#[cfg(test)]
mod tests;
