//! The write closure of RecordMovements: a batch of movements applied in order, each
//! checked against the stored state and the rules, each with its ledger entry.

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_store::{Prefix, StoreError, WriteTx};

use super::tables::{
    ALLOCATIONS, LOTS, LotRecord, ORDER_ALLOCATIONS, POSITIONS, PositionRecord, SKUS, SkuRecord,
    TRANSFERS_IN, state_code,
};
use super::{LedgerWriter, TxError, append, load_holds};
use crate::domain::{
    self, AllocationState, DomainError, EntryKind, HoldScope, LedgerEntry, Movement, MovementKind,
};

pub(super) fn apply_batch(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    tz: Tz,
    request_id: &str,
    movements: &[Movement],
) -> Result<Vec<LedgerEntry>, TxError> {
    let now = tx.now_millis();
    let today = domain::local_date(now, &tz);
    let mut holds: Option<Vec<HoldScope>> = None;
    let mut recorded = Vec::with_capacity(movements.len());
    for (index, movement) in movements.iter().enumerate() {
        let entry =
            apply_one(tx, entries, movement, now, today, request_id, &mut holds).map_err(|e| {
                match e {
                    TxError::Domain(error) => TxError::Movement { index, error },
                    other => other,
                }
            })?;
        recorded.push(entry);
    }
    Ok(recorded)
}

fn apply_one(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    m: &Movement,
    now: i64,
    today: NaiveDate,
    request_id: &str,
    holds: &mut Option<Vec<HoldScope>>,
) -> Result<LedgerEntry, TxError> {
    let transfer_key = (m.kind == MovementKind::TransferIn)
        .then(|| (m.transfer_id.clone(), m.sku.clone(), m.lot.lot_id.clone()));
    if let Some(key) = &transfer_key
        && let Some(bytes) = tx.get(&TRANSFERS_IN, key)?
    {
        // Already received: record nothing, answer the original entry.
        return entries
            .decode(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("stored transfer entry: {e}")).into());
    }

    let sku_key = m.sku.clone();
    match tx.get(&SKUS, &sku_key)? {
        Some(record) if record.unit != m.unit => {
            return Err(DomainError::UnitMismatch {
                sku: m.sku.clone(),
                expected: record.unit,
                given: m.unit.clone(),
            }
            .into());
        }
        Some(_) => {}
        None if m.kind.is_inbound() => tx.put(
            &SKUS,
            &sku_key,
            &SkuRecord {
                unit: m.unit.clone(),
            },
        )?,
        None => return Err(DomainError::UnknownSku { sku: m.sku.clone() }.into()),
    }

    let lot_key = (m.sku.clone(), m.lot.lot_id.clone());
    let (lot, attributes) = match tx.get(&LOTS, &lot_key)? {
        Some(record) => {
            let attributes = record.attributes()?;
            m.lot
                .check_against(&attributes)
                .map_err(|conflict| DomainError::LotConflict {
                    sku: m.sku.clone(),
                    lot_id: m.lot.lot_id.clone(),
                    conflict,
                })?;
            (record, attributes)
        }
        None if m.kind.is_inbound() => {
            let attributes = m
                .lot
                .new_attributes()
                .ok_or_else(|| DomainError::MissingExpiry {
                    sku: m.sku.clone(),
                    lot_id: m.lot.lot_id.clone(),
                })?;
            let record = LotRecord::new(&attributes, now);
            tx.put(&LOTS, &lot_key, &record)?;
            (record, attributes)
        }
        None => {
            return Err(DomainError::UnknownLot {
                sku: m.sku.clone(),
                lot_id: m.lot.lot_id.clone(),
            }
            .into());
        }
    };
    if m.kind.is_inbound() && domain::is_expired(attributes.expiry, today) {
        return Err(DomainError::ExpiredLot {
            sku: m.sku.clone(),
            lot_id: m.lot.lot_id.clone(),
            expiry: attributes.expiry,
            today,
        }
        .into());
    }

    let position_key = (m.sku.clone(), m.lot.lot_id.clone(), m.zone_id.clone());
    let stored = tx.get(&POSITIONS, &position_key)?;
    if stored.is_none() && m.kind.is_outbound() {
        return Err(DomainError::UnknownPosition {
            sku: m.sku.clone(),
            lot_id: m.lot.lot_id.clone(),
            zone_id: m.zone_id.clone(),
        }
        .into());
    }
    let record = stored.unwrap_or_default();
    let held = if m.kind.is_outbound() {
        if holds.is_none() {
            *holds = Some(load_holds(tx)?);
        }
        holds
            .as_deref()
            .is_some_and(|h| domain::is_held(h, &m.sku, &m.lot.lot_id, &m.zone_id))
    } else {
        false
    };

    // An issue citing an order first consumes that order's allocations on this position.
    let mut order_allocations = Vec::new();
    let mut reserved = 0i64;
    if m.kind == MovementKind::Issue && !m.order_id.is_empty() {
        let prefix = Prefix::new().str(&m.order_id);
        for (_, allocation_id) in tx.scan_prefix(&ORDER_ALLOCATIONS, prefix.as_bytes())? {
            if let Some(allocation) = tx.get(&ALLOCATIONS, &allocation_id)?
                && allocation.is_active()
                && allocation.sku == m.sku
            {
                let picks = allocation.pick_states();
                let on_position = domain::reserved_on(&picks, &m.lot.lot_id, &m.zone_id);
                if on_position > 0 {
                    // At most the position's allocated quantity in all (≤ MAX_QUANTITY);
                    // apply_movement clamps it to that.
                    reserved = reserved.saturating_add(on_position);
                    order_allocations.push((allocation, picks));
                }
            }
        }
    }

    let effect = domain::apply_movement(
        record.position(),
        m.kind,
        m.quantity,
        m.expected_version,
        held,
        reserved,
    )
    .map_err(|refusal| DomainError::Stock {
        sku: m.sku.clone(),
        lot_id: m.lot.lot_id.clone(),
        zone_id: m.zone_id.clone(),
        kind: m.kind,
        refusal,
    })?;

    let mut to_consume = effect.allocated_delta.saturating_neg();
    for (mut allocation, mut picks) in order_allocations {
        if to_consume <= 0 {
            break;
        }
        let taken = domain::consume(&mut picks, &m.lot.lot_id, &m.zone_id, to_consume);
        to_consume -= taken;
        for (record, state) in allocation.picks.iter_mut().zip(&picks) {
            record.consumed = state.consumed;
        }
        if domain::fully_consumed(&picks) {
            allocation.state = state_code(AllocationState::Consumed);
            allocation.closed_ms = Some(now);
        }
        tx.put(&ALLOCATIONS, &allocation.allocation_id.clone(), &allocation)?;
    }

    let after = PositionRecord {
        on_hand: effect.after.on_hand,
        allocated: effect.after.allocated,
        version: effect.after.version,
        updated_ms: now,
    };
    tx.put(&POSITIONS, &position_key, &after)?;

    let mut entry = LedgerEntry {
        sku: m.sku.clone(),
        lot: Some(lot.info(&m.lot.lot_id)),
        zone_id: m.zone_id.clone(),
        unit: m.unit.clone(),
        delta: effect.delta,
        balance_after: after.on_hand,
        allocated_delta: effect.allocated_delta,
        version: after.version,
        reason: m.reason.clone(),
        reference: m.reference.clone(),
        other_site_id: m.other_site_id.clone(),
        transfer_id: m.transfer_id.clone(),
        booking_id: m.booking_id.clone(),
        order_id: m.order_id.clone(),
        ..LedgerEntry::new(EntryKind::Movement(m.kind), now, request_id)
    };
    append(tx, entries, &mut entry)?;
    if let Some(key) = &transfer_key {
        tx.put(&TRANSFERS_IN, key, &entries.encode(&entry))?;
    }
    Ok(entry)
}
