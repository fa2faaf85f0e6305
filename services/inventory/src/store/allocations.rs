//! The write closures of AllocateStock and ReleaseAllocation.

use std::collections::HashMap;

use chrono_tz::Tz;
use coldchain_store::{Prefix, StoreError, WriteTx};

use super::tables::{
    ALLOCATIONS, AllocationRecord, LOTS, LotRecord, ORDER_ALLOCATIONS, POSITIONS, PickRecord, SKUS,
    state_code, strategy_code,
};
use super::{LedgerWriter, TxError, append, load_holds};
use crate::domain::{
    self, AllocateCommand, Allocation, AllocationState, Candidate, DomainError, EntryKind,
    LedgerEntry,
};

pub(super) fn allocate(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    tz: Tz,
    command: &AllocateCommand,
) -> Result<Allocation, TxError> {
    let now = tx.now_millis();
    let today = domain::local_date(now, &tz);
    let sku = tx
        .get(&SKUS, &command.sku)?
        .ok_or_else(|| DomainError::UnknownSku {
            sku: command.sku.clone(),
        })?;
    if !command.unit.is_empty() && command.unit != sku.unit {
        return Err(DomainError::UnitMismatch {
            sku: command.sku.clone(),
            expected: sku.unit,
            given: command.unit.clone(),
        }
        .into());
    }
    let holds = load_holds(tx)?;
    let mut lots: HashMap<String, LotRecord> = HashMap::new();
    let mut candidates = Vec::new();
    let mut records = Vec::new();
    for ((sku_id, lot_id, zone_id), record) in
        tx.scan_prefix(&POSITIONS, Prefix::new().str(&command.sku).as_bytes())?
    {
        if !command.zone_id.is_empty() && zone_id != command.zone_id {
            continue;
        }
        let lot = match lots.get(&lot_id) {
            Some(lot) => lot.clone(),
            None => {
                let lot = tx
                    .get(&LOTS, &(sku_id.clone(), lot_id.clone()))?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("position of unknown lot {lot_id:?}"))
                    })?;
                lots.insert(lot_id.clone(), lot.clone());
                lot
            }
        };
        let held = domain::is_held(&holds, &sku_id, &lot_id, &zone_id);
        candidates.push(Candidate {
            lot_id,
            zone_id,
            expiry: lot.expiry(),
            first_received_ms: lot.first_received_ms,
            available: record.position().available(held),
            held,
        });
        records.push((record, lot));
    }
    let picks = domain::pick(&candidates, command.quantity, command.strategy, today).map_err(
        |allocatable| DomainError::NotAllocatable {
            sku: command.sku.clone(),
            requested: command.quantity,
            allocatable,
        },
    )?;
    let first_sequence = tx.next_sequence();
    let allocation_id = format!("alloc-{first_sequence}");
    let mut pick_records = Vec::with_capacity(picks.len());
    for (index, quantity) in picks {
        let candidate = &candidates[index];
        let (record, lot) = &records[index];
        let mut after = *record;
        after.allocated = after
            .allocated
            .checked_add(quantity)
            .filter(|allocated| *allocated <= after.on_hand)
            .ok_or_else(|| StoreError::Corrupt("allocation beyond on hand".into()))?;
        let key = (
            command.sku.clone(),
            candidate.lot_id.clone(),
            candidate.zone_id.clone(),
        );
        tx.put(&POSITIONS, &key, &after)?;
        let mut entry = LedgerEntry {
            sku: command.sku.clone(),
            lot: Some(lot.info(&candidate.lot_id)),
            zone_id: candidate.zone_id.clone(),
            unit: sku.unit.clone(),
            balance_after: after.on_hand,
            allocated_delta: quantity,
            version: after.version,
            order_id: command.order_id.clone(),
            allocation_id: allocation_id.clone(),
            ..LedgerEntry::new(EntryKind::Allocate, now, &command.request_id)
        };
        append(tx, entries, &mut entry)?;
        pick_records.push(PickRecord {
            lot_id: candidate.lot_id.clone(),
            zone_id: candidate.zone_id.clone(),
            expiry: lot.expiry,
            quantity,
            consumed: 0,
        });
    }
    let allocation = AllocationRecord {
        allocation_id: allocation_id.clone(),
        order_id: command.order_id.clone(),
        sku: command.sku.clone(),
        unit: sku.unit,
        quantity: command.quantity,
        strategy: strategy_code(command.strategy),
        picks: pick_records,
        state: state_code(AllocationState::Active),
        created_ms: now,
        closed_ms: None,
    };
    tx.put(&ALLOCATIONS, &allocation_id, &allocation)?;
    tx.put(
        &ORDER_ALLOCATIONS,
        &(command.order_id.clone(), first_sequence),
        &allocation_id,
    )?;
    Ok(allocation.allocation()?)
}

pub(super) fn release(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    request_id: &str,
    order_id: &str,
    allocation_id: &str,
) -> Result<Vec<Allocation>, TxError> {
    let now = tx.now_millis();
    let ids: Vec<String> = tx
        .scan_prefix(&ORDER_ALLOCATIONS, Prefix::new().str(order_id).as_bytes())?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    if ids.is_empty() {
        return Err(DomainError::UnknownOrder {
            order_id: order_id.to_string(),
        }
        .into());
    }
    let targets = if allocation_id.is_empty() {
        ids
    } else if ids.iter().any(|id| id == allocation_id) {
        vec![allocation_id.to_string()]
    } else {
        return Err(DomainError::UnknownAllocation {
            order_id: order_id.to_string(),
            allocation_id: allocation_id.to_string(),
        }
        .into());
    };
    let mut released = Vec::new();
    for id in targets {
        let mut allocation = tx.get(&ALLOCATIONS, &id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("order index names missing allocation {id:?}"))
        })?;
        if !allocation.is_active() {
            if allocation_id.is_empty() {
                continue;
            }
            let state = match allocation.state()? {
                AllocationState::Consumed => AllocationState::Consumed,
                _ => AllocationState::Released,
            };
            return Err(DomainError::AllocationNotActive {
                allocation_id: id,
                state: state.name(),
            }
            .into());
        }
        for pick in &allocation.picks {
            let remaining = (pick.quantity - pick.consumed).max(0);
            if remaining == 0 {
                continue;
            }
            let key = (
                allocation.sku.clone(),
                pick.lot_id.clone(),
                pick.zone_id.clone(),
            );
            let mut record = tx.get(&POSITIONS, &key)?.ok_or_else(|| {
                StoreError::Corrupt(format!("allocation {id:?} on a missing position"))
            })?;
            record.allocated = (record.allocated - remaining).max(0);
            tx.put(&POSITIONS, &key, &record)?;
            let lot = tx
                .get(&LOTS, &(allocation.sku.clone(), pick.lot_id.clone()))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("allocation {id:?} of a missing lot"))
                })?;
            let mut entry = LedgerEntry {
                sku: allocation.sku.clone(),
                lot: Some(lot.info(&pick.lot_id)),
                zone_id: pick.zone_id.clone(),
                unit: allocation.unit.clone(),
                balance_after: record.on_hand,
                allocated_delta: -remaining,
                version: record.version,
                order_id: order_id.to_string(),
                allocation_id: id.clone(),
                ..LedgerEntry::new(EntryKind::Deallocate, now, request_id)
            };
            append(tx, entries, &mut entry)?;
        }
        allocation.state = state_code(AllocationState::Released);
        allocation.closed_ms = Some(now);
        tx.put(&ALLOCATIONS, &id, &allocation)?;
        released.push(allocation.allocation()?);
    }
    Ok(released)
}
