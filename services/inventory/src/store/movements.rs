//! The write closure of RecordMovements: a batch of movements applied in order, each
//! checked against the stored state and the rules, each with its ledger entry (a
//! relocation with two), and the batch's transformations recorded with their entries.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_store::{Prefix, StoreError, WriteTx};

use super::tables::{
    ALLOCATIONS, LOTS, LotRecord, ORDER_ALLOCATIONS, POSITIONS, PositionRecord, SKUS, SkuRecord,
    TRANSFERS_IN, TRANSFORMATIONS, TransformationRecord, state_code,
};
use super::{LedgerWriter, TxError, ZoneClasses, append, load_active_holds};
use crate::domain::{
    self, ActiveHold, AllocationState, DomainError, EntryKind, LedgerEntry, Movement, MovementKind,
    RelocationInfo,
};

/// What one movement recorded: its entry, and for a relocation the entry of its arrival.
struct Applied {
    entry: LedgerEntry,
    arrival: Option<LedgerEntry>,
}

/// Applies the batch; answers one entry per movement, followed by the arrival entry of
/// each relocation in the order of the movements.
pub(super) fn apply_batch(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    tz: Tz,
    zones: &ZoneClasses,
    request_id: &str,
    movements: &[Movement],
) -> Result<Vec<LedgerEntry>, TxError> {
    let now = tx.now_millis();
    let today = domain::local_date(now, &tz);
    let at = |index: usize| {
        move |e: TxError| match e {
            TxError::Domain(error) => TxError::Movement { index, error },
            other => other,
        }
    };
    let transformations = transformations_of(movements);
    for (transformation_id, indexes) in &transformations {
        if let Some(earlier) = tx.get(&TRANSFORMATIONS, &transformation_id.to_string())? {
            return Err(at(indexes[0])(
                DomainError::TransformationExists {
                    transformation_id: transformation_id.to_string(),
                    request_id: earlier.request_id,
                }
                .into(),
            ));
        }
    }
    let mut holds: Option<Vec<ActiveHold>> = None;
    let mut recorded = Vec::with_capacity(movements.len());
    let mut arrivals = Vec::new();
    for (index, movement) in movements.iter().enumerate() {
        let applied = apply_one(
            tx, entries, zones, movement, now, today, request_id, &mut holds,
        )
        .map_err(at(index))?;
        recorded.push(applied.entry);
        arrivals.extend(applied.arrival);
    }
    for (transformation_id, indexes) in transformations {
        let spec = movements[indexes[0]]
            .transformation
            .clone()
            .unwrap_or_default();
        let record = TransformationRecord::new(
            request_id,
            &spec,
            indexes.iter().map(|&i| recorded[i].sequence).collect(),
        );
        tx.put(&TRANSFORMATIONS, &transformation_id.to_string(), &record)?;
    }
    recorded.extend(arrivals);
    Ok(recorded)
}

/// The movement indexes of each transformation of the batch, by id.
fn transformations_of(movements: &[Movement]) -> BTreeMap<&str, Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, m) in movements.iter().enumerate() {
        if let Some(spec) = &m.transformation {
            groups
                .entry(spec.transformation_id.as_str())
                .or_default()
                .push(index);
        }
    }
    groups
}

#[allow(clippy::too_many_arguments)]
fn apply_one(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    zones: &ZoneClasses,
    m: &Movement,
    now: i64,
    today: NaiveDate,
    request_id: &str,
    holds: &mut Option<Vec<ActiveHold>>,
) -> Result<Applied, TxError> {
    let transfer_key = (m.kind == MovementKind::TransferIn)
        .then(|| (m.transfer_id.clone(), m.sku.clone(), m.lot.lot_id.clone()));
    if let Some(key) = &transfer_key
        && let Some(bytes) = tx.get(&TRANSFERS_IN, key)?
    {
        // Already received: record nothing, answer the original entry.
        let entry = entries
            .decode(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("stored transfer entry: {e}")))?;
        return Ok(Applied {
            entry,
            arrival: None,
        });
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
    let write_off = m.transformation.as_ref().is_some_and(|t| t.write_off);
    if m.kind == MovementKind::TransformationInput
        && !write_off
        && domain::is_expired(attributes.expiry, today)
    {
        return Err(DomainError::ExpiredInput {
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
            *holds = Some(load_active_holds(tx)?);
        }
        let active = holds.as_deref().unwrap_or_default();
        if m.kind == MovementKind::Relocation {
            // Held stock moves only where its holds allow and follow it; it then moves
            // like free stock (allocated stock stays).
            domain::relocation_under_holds(
                active,
                &m.sku,
                &m.lot.lot_id,
                &m.zone_id,
                &m.to_zone_id,
            )
            .map_err(|why| DomainError::HeldNotRelocatable {
                sku: m.sku.clone(),
                lot_id: m.lot.lot_id.clone(),
                zone_id: m.zone_id.clone(),
                why: Box::new(why),
            })?;
            false
        } else {
            active
                .iter()
                .any(|h| h.scope.covers(&m.sku, &m.lot.lot_id, &m.zone_id))
        }
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

    let after = put_position(tx, &position_key, &effect, now)?;

    let relocation = (m.kind == MovementKind::Relocation).then(|| RelocationInfo {
        from_zone_id: m.zone_id.clone(),
        to_zone_id: m.to_zone_id.clone(),
        from_class: zones.class_of(&m.zone_id),
        to_class: zones.class_of(&m.to_zone_id),
    });
    let kind = if relocation.is_some() {
        EntryKind::RelocationOut
    } else {
        EntryKind::Movement(m.kind)
    };
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
        transformation: m.transformation.clone(),
        relocation: relocation.clone(),
        ..LedgerEntry::new(kind, now, request_id)
    };
    append(tx, entries, &mut entry)?;
    if let Some(key) = &transfer_key {
        tx.put(&TRANSFERS_IN, key, &entries.encode(&entry))?;
    }
    let arrival = match relocation {
        Some(relocation) => Some(arrive(tx, entries, m, &entry, relocation, now)?),
        None => None,
    };
    Ok(Applied { entry, arrival })
}

/// The arrival of a relocation at its zone: the destination position gains what the
/// departure `left` took, with an entry one sequence after it.
fn arrive(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    m: &Movement,
    left: &LedgerEntry,
    relocation: RelocationInfo,
    now: i64,
) -> Result<LedgerEntry, TxError> {
    let key = (m.sku.clone(), m.lot.lot_id.clone(), m.to_zone_id.clone());
    let record = tx.get(&POSITIONS, &key)?.unwrap_or_default();
    let quantity = left.delta.saturating_neg();
    let effect = domain::apply_arrival(record.position(), quantity).map_err(|refusal| {
        DomainError::Stock {
            sku: m.sku.clone(),
            lot_id: m.lot.lot_id.clone(),
            zone_id: m.to_zone_id.clone(),
            kind: m.kind,
            refusal,
        }
    })?;
    let after = put_position(tx, &key, &effect, now)?;
    let mut entry = LedgerEntry {
        sku: m.sku.clone(),
        lot: left.lot.clone(),
        zone_id: m.to_zone_id.clone(),
        unit: m.unit.clone(),
        delta: effect.delta,
        balance_after: after.on_hand,
        version: after.version,
        reason: m.reason.clone(),
        reference: m.reference.clone(),
        relocation: Some(relocation),
        ..LedgerEntry::new(EntryKind::RelocationIn, now, &left.request_id)
    };
    append(tx, entries, &mut entry)?;
    Ok(entry)
}

/// Stores a position as a movement left it.
fn put_position(
    tx: &mut WriteTx<'_>,
    key: &(String, String, String),
    effect: &domain::Effect,
    now: i64,
) -> Result<PositionRecord, StoreError> {
    let after = PositionRecord {
        on_hand: effect.after.on_hand,
        allocated: effect.after.allocated,
        version: effect.after.version,
        updated_ms: now,
    };
    tx.put(&POSITIONS, key, &after)?;
    Ok(after)
}
