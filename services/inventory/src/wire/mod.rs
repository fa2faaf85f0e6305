//! Protobuf ⇄ domain: requests validated in form into domain values ([`requests`]),
//! domain answers rendered as responses (here and [`convert`]), and the protobuf bytes the
//! store keeps ([`codec`]) and the change feed sends ([`feed`]).

pub mod codec;
pub mod convert;
pub mod feed;
pub mod requests;

use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::proto_time;

pub use requests::{Call, ListStock};

use crate::domain::{
    Allocation, Hold, HoldSnapshot, LedgerEntry, RecordedMovements, RecordedTransformation,
    SkuStock, StockPage,
};

/// RecordMovements' response.
pub fn recorded(recorded: RecordedMovements) -> pb::RecordMovementsResponse {
    pb::RecordMovementsResponse {
        entries: recorded
            .entries
            .into_iter()
            .map(convert::entry_pb)
            .collect(),
        relocation_arrivals: recorded
            .arrivals
            .into_iter()
            .map(convert::entry_pb)
            .collect(),
    }
}

/// GetTransformation's response.
pub fn transformation(recorded: RecordedTransformation) -> pb::TransformationRecord {
    pb::TransformationRecord {
        transformation: Some(convert::transformation_pb(recorded.spec)),
        inputs: recorded.inputs.into_iter().map(convert::entry_pb).collect(),
        outputs: recorded
            .outputs
            .into_iter()
            .map(convert::entry_pb)
            .collect(),
    }
}

/// GetStock's response.
pub fn sku_stock(stock: SkuStock) -> pb::GetStockResponse {
    pb::GetStockResponse {
        sku: stock.sku,
        unit: stock.unit,
        levels: stock.levels.into_iter().map(convert::level_pb).collect(),
        totals: Some(convert::totals_pb(stock.totals)),
    }
}

/// ListStock's response for `page` of `request`.
pub fn stock_page(page: StockPage, request: &ListStock) -> pb::ListStockResponse {
    pb::ListStockResponse {
        levels: page.levels.into_iter().map(convert::level_pb).collect(),
        next_page_token: requests::next_page_token(&request.query_bytes, page.next_key.as_deref()),
        expiry_summary: page.summary.into_iter().map(convert::summary_pb).collect(),
        as_of: Some(proto_time::date(page.today)),
    }
}

/// ListExpiring's response.
pub fn expiring_page(
    page: StockPage,
    request: &requests::ListExpiring,
) -> pb::ListExpiringResponse {
    pb::ListExpiringResponse {
        levels: page.levels.into_iter().map(convert::level_pb).collect(),
        next_page_token: requests::next_page_token(&request.query_bytes, page.next_key.as_deref()),
        as_of: Some(proto_time::date(page.today)),
    }
}

/// ListLotEntries' response: the page, and a token after its last entry when more follow.
pub fn lot_entries_page(
    entries: Vec<LedgerEntry>,
    more: bool,
    request: &requests::ListLotEntries,
) -> pb::ListLotEntriesResponse {
    let last = entries.last().map(|e| e.sequence.to_be_bytes());
    pb::ListLotEntriesResponse {
        entries: entries.into_iter().map(convert::entry_pb).collect(),
        next_page_token: if more {
            requests::next_page_token(&request.query_bytes, last.as_ref().map(|b| b.as_slice()))
        } else {
            String::new()
        },
    }
}

/// AllocateStock's response.
pub fn allocation(allocation: Allocation) -> pb::Allocation {
    convert::allocation_pb(allocation)
}

/// ReleaseAllocation's response.
pub fn released(released: Vec<Allocation>) -> pb::ReleaseAllocationResponse {
    pb::ReleaseAllocationResponse {
        released: released.into_iter().map(convert::allocation_pb).collect(),
    }
}

/// PlaceHold's and ReleaseHold's response: the hold with the stock it covers now.
pub fn hold((hold, snapshot): (Hold, HoldSnapshot)) -> pb::Hold {
    convert::hold_with_snapshot(hold, snapshot)
}
