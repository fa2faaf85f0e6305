//! Domain values ⇄ protobuf messages, field by field. Rendering moves the domain value's
//! strings into the message; reading back a stored message refuses what a build never
//! wrote (unknown kinds, invalid dates or instants) as corrupt.

use coldchain_audit::Author;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::{class, proto_time};

use crate::domain::{
    Allocation, AllocationState, EntryKind, ExpiryBucket, ExpirySummary, Hold, HoldScope,
    HoldSnapshot, LedgerEntry, LotInfo, MovementKind, Pick, Reference, RelocationInfo, StockLevel,
    StockTotals, Strategy, TransformationSpec,
};

/// The kind of a protobuf `MovementKind` value (1..=9); `None` for unset or unknown.
pub fn movement_kind(value: i32) -> Option<MovementKind> {
    Some(match value {
        1 => MovementKind::Receipt,
        2 => MovementKind::Issue,
        3 => MovementKind::Adjustment,
        4 => MovementKind::TransferOut,
        5 => MovementKind::TransferIn,
        6 => MovementKind::Count,
        7 => MovementKind::TransformationInput,
        8 => MovementKind::TransformationOutput,
        9 => MovementKind::Relocation,
        _ => return None,
    })
}

/// The `LedgerEntryKind` value of an entry kind. Movements 1 to 6 share their value with
/// `MovementKind`; the later ones have their own (7 to 10 were taken by allocations and
/// holds), and a relocation records two kinds.
pub fn entry_kind_pb(kind: EntryKind) -> i32 {
    use pb::LedgerEntryKind as K;
    let kind = match kind {
        EntryKind::Movement(MovementKind::Receipt) => K::Receipt,
        EntryKind::Movement(MovementKind::Issue) => K::Issue,
        EntryKind::Movement(MovementKind::Adjustment) => K::Adjustment,
        EntryKind::Movement(MovementKind::TransferOut) => K::TransferOut,
        EntryKind::Movement(MovementKind::TransferIn) => K::TransferIn,
        EntryKind::Movement(MovementKind::Count) => K::Count,
        EntryKind::Movement(MovementKind::TransformationInput) => K::TransformationInput,
        EntryKind::Movement(MovementKind::TransformationOutput) => K::TransformationOutput,
        // A relocation's entries are always RelocationOut / RelocationIn.
        EntryKind::Movement(MovementKind::Relocation) | EntryKind::RelocationOut => {
            K::RelocationOut
        }
        EntryKind::RelocationIn => K::RelocationIn,
        EntryKind::Allocate => K::Allocate,
        EntryKind::Deallocate => K::Deallocate,
        EntryKind::HoldPlaced => K::HoldPlaced,
        EntryKind::HoldReleased => K::HoldReleased,
    };
    kind as i32
}

/// The entry kind of a stored `LedgerEntryKind` value.
pub fn entry_kind(value: i32) -> Result<EntryKind, String> {
    use pb::LedgerEntryKind as K;
    Ok(match K::try_from(value) {
        Ok(K::Receipt) => EntryKind::Movement(MovementKind::Receipt),
        Ok(K::Issue) => EntryKind::Movement(MovementKind::Issue),
        Ok(K::Adjustment) => EntryKind::Movement(MovementKind::Adjustment),
        Ok(K::TransferOut) => EntryKind::Movement(MovementKind::TransferOut),
        Ok(K::TransferIn) => EntryKind::Movement(MovementKind::TransferIn),
        Ok(K::Count) => EntryKind::Movement(MovementKind::Count),
        Ok(K::TransformationInput) => EntryKind::Movement(MovementKind::TransformationInput),
        Ok(K::TransformationOutput) => EntryKind::Movement(MovementKind::TransformationOutput),
        Ok(K::RelocationOut) => EntryKind::RelocationOut,
        Ok(K::RelocationIn) => EntryKind::RelocationIn,
        Ok(K::Allocate) => EntryKind::Allocate,
        Ok(K::Deallocate) => EntryKind::Deallocate,
        Ok(K::HoldPlaced) => EntryKind::HoldPlaced,
        Ok(K::HoldReleased) => EntryKind::HoldReleased,
        Ok(K::Unspecified) | Err(_) => {
            return Err(format!("unknown ledger entry kind {value}"));
        }
    })
}

/// The protobuf transformation.
pub fn transformation_pb(spec: TransformationSpec) -> pb::Transformation {
    pb::Transformation {
        transformation_id: spec.transformation_id,
        work_order: spec.work_order,
        input_mass_g: spec.input_mass_g,
        output_mass_g: spec.output_mass_g,
        waste_mass_g: spec.waste_mass_g,
        write_off: spec.write_off,
    }
}

/// A transformation as a request or a stored entry states it.
pub fn transformation(spec: &pb::Transformation) -> TransformationSpec {
    TransformationSpec {
        transformation_id: spec.transformation_id.clone(),
        work_order: spec.work_order.clone(),
        input_mass_g: spec.input_mass_g,
        output_mass_g: spec.output_mass_g,
        waste_mass_g: spec.waste_mass_g,
        write_off: spec.write_off,
    }
}

/// The protobuf relocation.
pub fn relocation_pb(relocation: RelocationInfo) -> pb::Relocation {
    pb::Relocation {
        from_zone_id: relocation.from_zone_id,
        to_zone_id: relocation.to_zone_id,
        from_class: class::to_proto(relocation.from_class) as i32,
        to_class: class::to_proto(relocation.to_class) as i32,
    }
}

fn relocation(relocation: pb::Relocation) -> Result<RelocationInfo, String> {
    let class_of = |value: i32, field: &str| {
        common::TemperatureClass::try_from(value)
            .ok()
            .and_then(class::from_proto)
            .ok_or_else(|| format!("relocation.{field} {value} is not a temperature class"))
    };
    Ok(RelocationInfo {
        from_class: class_of(relocation.from_class, "from_class")?,
        to_class: class_of(relocation.to_class, "to_class")?,
        from_zone_id: relocation.from_zone_id,
        to_zone_id: relocation.to_zone_id,
    })
}

/// A strategy from its protobuf value: 0 (unset) and 1 are FEFO, 2 is FIFO; others `None`.
pub fn strategy(value: i32) -> Option<Strategy> {
    match value {
        0 | 1 => Some(Strategy::Fefo),
        2 => Some(Strategy::Fifo),
        _ => None,
    }
}

/// The protobuf value of a strategy (never unspecified).
pub fn strategy_pb(strategy: Strategy) -> i32 {
    match strategy {
        Strategy::Fefo => pb::AllocationStrategy::Fefo as i32,
        Strategy::Fifo => pb::AllocationStrategy::Fifo as i32,
    }
}

fn bucket_pb(bucket: ExpiryBucket) -> i32 {
    match bucket {
        ExpiryBucket::Expired => pb::ExpiryBucket::Expired as i32,
        ExpiryBucket::Within30 => pb::ExpiryBucket::Within30Days as i32,
        ExpiryBucket::Within60 => pb::ExpiryBucket::Within60Days as i32,
        ExpiryBucket::Within90 => pb::ExpiryBucket::Within90Days as i32,
        ExpiryBucket::Later => pb::ExpiryBucket::Later as i32,
    }
}

fn stored_instant(ts: Option<prost_types::Timestamp>, field: &str) -> Result<i64, String> {
    ts.as_ref()
        .and_then(proto_time::millis)
        .ok_or_else(|| format!("{field} is missing or invalid"))
}

fn stored_date(date: Option<common::Date>) -> Result<Option<chrono::NaiveDate>, String> {
    date.as_ref().map(proto_time::naive_date).transpose()
}

/// The protobuf reference.
pub fn reference_pb(reference: Reference) -> common::Reference {
    common::Reference {
        kind: reference.kind,
        id: reference.id,
    }
}

fn reference(reference: common::Reference) -> Reference {
    Reference {
        kind: reference.kind,
        id: reference.id,
    }
}

/// The protobuf lot.
pub fn lot_pb(lot: LotInfo) -> pb::LotInfo {
    pb::LotInfo {
        lot_id: lot.lot_id,
        expiry: lot.expiry.map(proto_time::date),
        production: lot.production.map(proto_time::date),
        origin: lot.origin,
    }
}

fn lot(lot: pb::LotInfo) -> Result<LotInfo, String> {
    Ok(LotInfo {
        lot_id: lot.lot_id,
        expiry: stored_date(lot.expiry)?,
        production: stored_date(lot.production)?,
        origin: lot.origin,
    })
}

/// The protobuf ledger entry.
pub fn entry_pb(e: LedgerEntry) -> pb::LedgerEntry {
    pb::LedgerEntry {
        sequence: e.sequence,
        recorded_at: Some(proto_time::timestamp(e.recorded_ms)),
        request_id: e.request_id,
        kind: entry_kind_pb(e.kind),
        sku: e.sku,
        lot: e.lot.map(lot_pb),
        zone_id: e.zone_id,
        unit: e.unit,
        delta: e.delta,
        balance_after: e.balance_after,
        allocated_delta: e.allocated_delta,
        version: e.version,
        reason: e.reason,
        reference: e.reference.map(reference_pb),
        other_site_id: e.other_site_id,
        transfer_id: e.transfer_id,
        booking_id: e.booking_id,
        order_id: e.order_id,
        allocation_id: e.allocation_id,
        hold_id: e.hold_id,
        recorded_by: Some(author_pb(&e.recorded_by)),
        transformation: e.transformation.map(transformation_pb),
        relocation: e.relocation.map(relocation_pb),
    }
}

/// Who made a change, as the contract shows it.
pub fn author_pb(author: &Author) -> common::Author {
    common::Author {
        principal: author.principal.clone(),
        actor: author.actor.clone(),
    }
}

/// A stored author back; none stored (records of earlier builds): unknown.
pub fn author_from_pb(author: Option<common::Author>) -> Author {
    author.map_or_else(Author::unknown, |a| Author::new(a.principal, a.actor))
}

/// A stored ledger entry back as a domain entry.
pub fn entry_from_pb(e: pb::LedgerEntry) -> Result<LedgerEntry, String> {
    Ok(LedgerEntry {
        sequence: e.sequence,
        recorded_ms: stored_instant(e.recorded_at, "recorded_at")?,
        request_id: e.request_id,
        kind: entry_kind(e.kind)?,
        sku: e.sku,
        lot: e.lot.map(lot).transpose()?,
        zone_id: e.zone_id,
        unit: e.unit,
        delta: e.delta,
        balance_after: e.balance_after,
        allocated_delta: e.allocated_delta,
        version: e.version,
        reason: e.reason,
        reference: e.reference.map(reference),
        other_site_id: e.other_site_id,
        transfer_id: e.transfer_id,
        booking_id: e.booking_id,
        order_id: e.order_id,
        allocation_id: e.allocation_id,
        hold_id: e.hold_id,
        recorded_by: author_from_pb(e.recorded_by),
        transformation: e.transformation.as_ref().map(transformation),
        relocation: e.relocation.map(relocation).transpose()?,
    })
}

fn allocation_state_pb(state: AllocationState) -> i32 {
    match state {
        AllocationState::Active => pb::AllocationState::Active as i32,
        AllocationState::Consumed => pb::AllocationState::Consumed as i32,
        AllocationState::Released => pb::AllocationState::Released as i32,
    }
}

/// The protobuf allocation.
pub fn allocation_pb(a: Allocation) -> pb::Allocation {
    pb::Allocation {
        allocation_id: a.allocation_id,
        order_id: a.order_id,
        sku: a.sku,
        unit: a.unit,
        quantity: a.quantity,
        strategy: strategy_pb(a.strategy),
        picks: a
            .picks
            .into_iter()
            .map(|p| pb::Pick {
                lot_id: p.lot_id,
                expiry: p.expiry.map(proto_time::date),
                zone_id: p.zone_id,
                quantity: p.quantity,
                consumed_quantity: p.consumed,
            })
            .collect(),
        state: allocation_state_pb(a.state),
        created_at: Some(proto_time::timestamp(a.created_ms)),
        closed_at: a.closed_ms.map(proto_time::timestamp),
    }
}

/// A stored allocation answer back as a domain allocation.
pub fn allocation_from_pb(a: pb::Allocation) -> Result<Allocation, String> {
    let state = match pb::AllocationState::try_from(a.state) {
        Ok(pb::AllocationState::Active) => AllocationState::Active,
        Ok(pb::AllocationState::Consumed) => AllocationState::Consumed,
        Ok(pb::AllocationState::Released) => AllocationState::Released,
        _ => return Err(format!("unknown allocation state {}", a.state)),
    };
    let picks = a
        .picks
        .into_iter()
        .map(|p| {
            Ok(Pick {
                lot_id: p.lot_id,
                expiry: stored_date(p.expiry)?,
                zone_id: p.zone_id,
                quantity: p.quantity,
                consumed: p.consumed_quantity,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Allocation {
        allocation_id: a.allocation_id,
        order_id: a.order_id,
        sku: a.sku,
        unit: a.unit,
        quantity: a.quantity,
        strategy: strategy(a.strategy)
            .ok_or_else(|| format!("unknown allocation strategy {}", a.strategy))?,
        picks,
        state,
        created_ms: stored_instant(a.created_at, "created_at")?,
        closed_ms: a
            .closed_at
            .map(|ts| stored_instant(Some(ts), "closed_at"))
            .transpose()?,
    })
}

/// The protobuf hold, without quantities.
pub fn hold_pb(hold: Hold) -> pb::Hold {
    pb::Hold {
        hold_id: hold.hold_id,
        zone_id: hold.scope.zone_id,
        sku: hold.scope.sku,
        lot_id: hold.scope.lot_id,
        reason: hold.reason,
        reference: hold.reference.map(reference_pb),
        state: if hold.active {
            pb::HoldState::Active as i32
        } else {
            pb::HoldState::Released as i32
        },
        placed_at: Some(proto_time::timestamp(hold.placed_ms)),
        released_at: hold.released_ms.map(proto_time::timestamp),
        release_reason: hold.release_reason,
        held_quantities: Vec::new(),
        position_count: 0,
        placed_by: Some(author_pb(&hold.placed_by)),
        released_by: hold.released_by.as_ref().map(author_pb),
        allow_relocation: hold.allow_relocation,
    }
}

/// A stored hold answer back as a domain hold.
pub fn hold_from_pb(hold: pb::Hold) -> Result<Hold, String> {
    let active = match pb::HoldState::try_from(hold.state) {
        Ok(pb::HoldState::Active) => true,
        Ok(pb::HoldState::Released) => false,
        _ => return Err(format!("unknown hold state {}", hold.state)),
    };
    Ok(Hold {
        hold_id: hold.hold_id,
        scope: HoldScope {
            zone_id: hold.zone_id,
            sku: hold.sku,
            lot_id: hold.lot_id,
        },
        reason: hold.reason,
        reference: hold.reference.map(reference),
        active,
        placed_ms: stored_instant(hold.placed_at, "placed_at")?,
        released_ms: hold
            .released_at
            .map(|ts| stored_instant(Some(ts), "released_at"))
            .transpose()?,
        release_reason: hold.release_reason,
        placed_by: author_from_pb(hold.placed_by),
        released_by: hold.released_by.map(|a| author_from_pb(Some(a))),
        allow_relocation: hold.allow_relocation,
    })
}

/// The protobuf hold with the stock it covers now.
pub fn hold_with_snapshot(hold: Hold, snapshot: HoldSnapshot) -> pb::Hold {
    pb::Hold {
        held_quantities: snapshot
            .quantities
            .into_iter()
            .map(|q| pb::UnitQuantity {
                unit: q.unit,
                quantity: q.quantity,
            })
            .collect(),
        position_count: snapshot.positions,
        ..hold_pb(hold)
    }
}

/// The protobuf stock level.
pub fn level_pb(level: StockLevel) -> pb::StockLevel {
    let p = level.position;
    pb::StockLevel {
        sku: level.sku,
        lot: Some(lot_pb(level.lot)),
        zone_id: level.zone_id,
        unit: level.unit,
        on_hand: p.on_hand,
        allocated: p.allocated,
        held: p.held(level.held),
        available: p.available(level.held),
        version: p.version,
        expired: level.expired,
        first_received_at: Some(proto_time::timestamp(level.first_received_ms)),
        updated_at: Some(proto_time::timestamp(level.updated_ms)),
    }
}

/// The protobuf totals.
pub fn totals_pb(totals: StockTotals) -> pb::StockTotals {
    pb::StockTotals {
        on_hand: totals.on_hand,
        allocated: totals.allocated,
        held: totals.held,
        available: totals.available,
    }
}

/// The protobuf expiry summary row.
pub fn summary_pb(row: ExpirySummary) -> pb::ExpiryBucketSummary {
    pb::ExpiryBucketSummary {
        bucket: bucket_pb(row.bucket),
        unit: row.unit,
        on_hand: row.totals.on_hand,
        allocated: row.totals.allocated,
        held: row.totals.held,
        available: row.totals.available,
        lot_count: row.lot_count,
        position_count: row.position_count,
    }
}
