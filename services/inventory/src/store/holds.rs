//! The write closures of PlaceHold and ReleaseHold.

use coldchain_store::WriteTx;

use super::tables::{
    ACTIVE_HOLDS, HOLD_AUTHORS, HOLDS, HoldAuthors, HoldRecord, LOTS, LotRecord, ReferenceRecord,
    SKUS, ScopeRecord,
};
use super::{LedgerWriter, TxError, append};
use crate::domain::{DomainError, EntryKind, Hold, LedgerEntry, PlaceHoldCommand};

pub(super) fn place(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    command: &PlaceHoldCommand,
) -> Result<Hold, TxError> {
    let now = tx.now_millis();
    let scope = &command.scope;
    if !scope.sku.is_empty() && tx.get(&SKUS, &scope.sku)?.is_none() {
        return Err(DomainError::UnknownSku {
            sku: scope.sku.clone(),
        }
        .into());
    }
    let lot = if scope.lot_id.is_empty() {
        None
    } else {
        Some(
            tx.get(&LOTS, &(scope.sku.clone(), scope.lot_id.clone()))?
                .ok_or_else(|| DomainError::UnknownLot {
                    sku: scope.sku.clone(),
                    lot_id: scope.lot_id.clone(),
                })?,
        )
    };
    let hold_id = format!("hold-{}", tx.next_sequence());
    let record = HoldRecord {
        hold_id: hold_id.clone(),
        zone_id: scope.zone_id.clone(),
        sku: scope.sku.clone(),
        lot_id: scope.lot_id.clone(),
        reason: command.reason.clone(),
        reference: ReferenceRecord::from_domain(&command.reference),
        active: true,
        placed_ms: now,
        released_ms: None,
        release_reason: String::new(),
        allow_relocation: command.allow_relocation,
    };
    tx.put(&HOLDS, &hold_id, &record)?;
    tx.put(
        &ACTIVE_HOLDS,
        &hold_id,
        &ScopeRecord {
            zone_id: scope.zone_id.clone(),
            sku: scope.sku.clone(),
            lot_id: scope.lot_id.clone(),
            allow_relocation: command.allow_relocation,
        },
    )?;
    let mut entry = hold_entry(
        EntryKind::HoldPlaced,
        &record,
        &command.request_id,
        lot.as_ref(),
        now,
    );
    append(tx, entries, &mut entry)?;
    let authors = HoldAuthors {
        placed_by: entries.author().clone(),
        released_by: None,
        released_sequence: None,
    };
    tx.put(&HOLD_AUTHORS, &hold_id, &authors)?;
    Ok(record.hold(Some(&authors)))
}

pub(super) fn release(
    tx: &mut WriteTx<'_>,
    entries: &LedgerWriter<'_>,
    request_id: &str,
    hold_id: &str,
    reason: &str,
) -> Result<Hold, TxError> {
    let now = tx.now_millis();
    let key = hold_id.to_string();
    let mut record = tx
        .get(&HOLDS, &key)?
        .ok_or_else(|| DomainError::UnknownHold {
            hold_id: key.clone(),
        })?;
    if !record.active {
        return Err(DomainError::HoldReleased { hold_id: key }.into());
    }
    record.active = false;
    record.released_ms = Some(now);
    record.release_reason = reason.to_string();
    tx.put(&HOLDS, &key, &record)?;
    tx.delete(&ACTIVE_HOLDS, &key);
    let lot = if record.lot_id.is_empty() {
        None
    } else {
        tx.get(&LOTS, &(record.sku.clone(), record.lot_id.clone()))?
    };
    let mut entry = hold_entry(
        EntryKind::HoldReleased,
        &record,
        request_id,
        lot.as_ref(),
        now,
    );
    entry.reason = reason.to_string();
    append(tx, entries, &mut entry)?;
    // A hold of an earlier build has no authors kept: its placer stays unknown.
    let mut authors = tx.get(&HOLD_AUTHORS, &key)?.unwrap_or(HoldAuthors {
        placed_by: coldchain_audit::Author::unknown(),
        released_by: None,
        released_sequence: None,
    });
    authors.released_by = Some(entries.author().clone());
    authors.released_sequence = Some(entry.sequence);
    tx.put(&HOLD_AUTHORS, &key, &authors)?;
    Ok(record.hold(Some(&authors)))
}

fn hold_entry(
    kind: EntryKind,
    record: &HoldRecord,
    request_id: &str,
    lot: Option<&LotRecord>,
    now: i64,
) -> LedgerEntry {
    LedgerEntry {
        sku: record.sku.clone(),
        lot: lot.map(|l| l.info(&record.lot_id)),
        zone_id: record.zone_id.clone(),
        reason: record.reason.clone(),
        reference: record.reference.as_ref().map(ReferenceRecord::reference),
        hold_id: record.hold_id.clone(),
        ..LedgerEntry::new(kind, now, request_id)
    }
}
