//! The gateway's own database (`<data_dir>/gateway`, identity site "hub"): the corridor
//! transfers and their indexes.
//!
//! | table | key | value |
//! |---|---|---|
//! | `transfer` | transfer_id | the [`Transfer`] |
//! | `created` | (−created_ms, transfer_id) | () — ListTransfers, newest first |
//! | `transit` | (sku, transfer_id) | () — transfers IN_TRANSIT or RECEIVING, for FindStock |
//! | `pending` | transfer_id | () — transfers with a saga step to do, for the drainer  |
//!
//! and the recalls ([`recalls`]).
//!
//! Every change of a transfer is one atomic write that also updates the indexes and appends
//! the transfer as it now is to the ledger (an audit trail of every state change).
//!
//! The answer of an idempotent write (a [`TransferRef`]) is kept through the codec the
//! caller hands in (`wire::TransferRefCodec`: the protobuf bytes earlier builds kept).

use coldchain_store::{
    Idempotent, KeyCodec, Store, StoreError, Table, Value, WriteError, WriteTx, Written,
};

use coldchain_audit::Author;

use crate::domain::{self, Transfer, TransferError, TransferRef, TransferSpec};
use stored::StoredTransfer;

mod stored;

pub use crate::domain::TransferFilter as ListFilter;
pub use coldchain_store::ReplyCodec;

const TRANSFERS: Table<String, StoredTransfer> = Table::new("transfer");
const BY_CREATED: Table<(i64, String), ()> = Table::new("created");
const TRANSIT: Table<(String, String), ()> = Table::new("transit");
const PENDING: Table<String, ()> = Table::new("pending");

/// Why a write was refused: a rule of the transfer, or storage.
#[derive(Debug)]
pub enum Refused {
    /// A transfer rule.
    Transfer(TransferError),
    /// A recall rule.
    Recall(crate::domain::RecallError),
    /// Storage failed while reading inside the write.
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

impl From<TransferError> for Refused {
    fn from(error: TransferError) -> Self {
        Refused::Transfer(error)
    }
}

/// A page of ListTransfers.
#[derive(Debug)]
pub struct TransferPage {
    /// The transfers, newest first.
    pub transfers: Vec<Transfer>,
    /// The relative key of the last one, when more may follow.
    pub last_key: Option<Vec<u8>>,
}

/// The gateway's transfers on its store.
#[derive(Clone)]
pub struct GatewayStore {
    store: Store,
}

impl GatewayStore {
    /// Transfers on `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn raw(&self) -> &Store {
        &self.store
    }

    /// Records a new transfer (REQUESTED) started by `started_by` in one write,
    /// idempotently by `request`. A transfer_id that exists with the same definition
    /// answers that transfer (its starter stays); with another definition it is
    /// [`TransferError::AlreadyExists`].
    pub async fn create(
        &self,
        idempotent: Idempotent<'_, TransferRef, Refused>,
        spec: TransferSpec,
        started_by: Author,
    ) -> Result<Written<TransferRef>, WriteError<Refused>> {
        let digest = idempotent.request.digest;
        self.store
            .write(Some(idempotent), move |tx| {
                let now = tx.now_millis();
                let transfer_id = match &spec.transfer_id {
                    Some(id) => id.clone(),
                    None => {
                        let mut id = domain::assigned_transfer_id(&digest, now);
                        let mut n = 1;
                        while tx.get(&TRANSFERS, &id)?.is_some() {
                            n += 1;
                            id = format!("{}-{n}", domain::assigned_transfer_id(&digest, now));
                        }
                        id
                    }
                };
                if let Some(StoredTransfer(existing)) = tx.get(&TRANSFERS, &transfer_id)? {
                    if existing.same_definition(&spec) {
                        return Ok(TransferRef { transfer_id });
                    }
                    return Err(TransferError::AlreadyExists(transfer_id).into());
                }
                let transfer = Transfer::new(transfer_id.clone(), spec, started_by, now);
                put_transfer(tx, None, &transfer)?;
                Ok(TransferRef { transfer_id })
            })
            .await
    }

    /// ReceiveTransfer's write by `reported_by`, idempotently by `request`: IN_TRANSIT →
    /// RECEIVING (RECEIVING stays).
    pub async fn arrive(
        &self,
        idempotent: Idempotent<'_, TransferRef, Refused>,
        transfer_id: &str,
        reported_by: Author,
    ) -> Result<Written<TransferRef>, WriteError<Refused>> {
        self.store
            .write(Some(idempotent), |tx| {
                let now = tx.now_millis();
                let mut transfer = tx
                    .get(&TRANSFERS, &transfer_id.to_string())?
                    .map(|stored| stored.0)
                    .ok_or_else(|| TransferError::NotFound(transfer_id.to_string()))?;
                let before = transfer.clone();
                if transfer.arrived(reported_by, now)? {
                    put_transfer(tx, Some(&before), &transfer)?;
                }
                Ok(TransferRef {
                    transfer_id: transfer_id.to_string(),
                })
            })
            .await
    }

    /// Applies `change` to a transfer in one write (nothing is written when it reports no
    /// change) and answers the transfer as it is afterwards.
    pub async fn update(
        &self,
        transfer_id: &str,
        change: impl FnOnce(&mut Transfer, i64) -> Result<bool, TransferError>,
    ) -> Result<Transfer, WriteError<Refused>> {
        let mut after: Option<Transfer> = None;
        let slot = &mut after;
        self.store
            .write(None, move |tx| {
                let now = tx.now_millis();
                let mut transfer = tx
                    .get(&TRANSFERS, &transfer_id.to_string())?
                    .map(|stored| stored.0)
                    .ok_or_else(|| TransferError::NotFound(transfer_id.to_string()))?;
                let before = transfer.clone();
                if change(&mut transfer, now)? {
                    put_transfer(tx, Some(&before), &transfer)?;
                }
                *slot = Some(transfer);
                Ok::<(), Refused>(())
            })
            .await?;
        after.ok_or_else(|| {
            WriteError::Store(StoreError::Corrupt("update produced no transfer".into()))
        })
    }

    /// One transfer.
    pub fn get(&self, transfer_id: &str) -> Result<Option<Transfer>, StoreError> {
        Ok(self
            .store
            .get(&TRANSFERS, &transfer_id.to_string())?
            .map(|stored| stored.0))
    }

    /// Transfers newest first, after the relative key `after`, passing `filter`; at most
    /// `limit`.
    pub fn list(
        &self,
        filter: &ListFilter,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<TransferPage, StoreError> {
        let mut transfers = Vec::new();
        let mut last_key = None;
        let mut more = false;
        for entry in self.store.scan_after(&BY_CREATED, &[], after) {
            let (key, ()) = entry?;
            let Some(StoredTransfer(transfer)) = self.store.get(&TRANSFERS, &key.1)? else {
                continue;
            };
            if !filter.matches(&transfer) {
                continue;
            }
            if transfers.len() == limit {
                more = true;
                break;
            }
            last_key = Some(key.encode());
            transfers.push(transfer);
        }
        Ok(TransferPage {
            transfers,
            last_key: if more { last_key } else { None },
        })
    }

    /// The transfers IN_TRANSIT or RECEIVING that carry `sku`.
    pub fn travelling_with_sku(&self, sku: &str) -> Result<Vec<Transfer>, StoreError> {
        let prefix = coldchain_store::Prefix::new().str(sku);
        let mut out = Vec::new();
        for entry in self.store.scan_prefix(&TRANSIT, prefix.as_bytes()) {
            let ((_, transfer_id), ()) = entry?;
            if let Some(StoredTransfer(transfer)) = self.store.get(&TRANSFERS, &transfer_id)?
                && transfer.state.is_travelling()
            {
                out.push(transfer);
            }
        }
        Ok(out)
    }

    /// The ids of the transfers with a saga step to do.
    pub fn pending(&self) -> Result<Vec<String>, StoreError> {
        self.store
            .scan_prefix(&PENDING, &[])
            .map(|entry| entry.map(|(id, ())| id))
            .collect()
    }
}

/// Stages a transfer and keeps the indexes in step with it; appends it to the ledger.
fn put_transfer(
    tx: &mut WriteTx<'_>,
    before: Option<&Transfer>,
    after: &Transfer,
) -> Result<(), StoreError> {
    // The one clone per change buys the stored layout a type of its own.
    let stored = StoredTransfer(after.clone());
    tx.put(&TRANSFERS, &after.transfer_id, &stored)?;
    if before.is_none() {
        tx.put(
            &BY_CREATED,
            &(-after.created_ms, after.transfer_id.clone()),
            &(),
        )?;
    }
    let was_travelling = before.is_some_and(|b| b.state.is_travelling());
    if was_travelling != after.state.is_travelling() {
        for sku in after.skus() {
            let key = (sku.to_string(), after.transfer_id.clone());
            if after.state.is_travelling() {
                tx.put(&TRANSIT, &key, &())?;
            } else {
                tx.delete(&TRANSIT, &key);
            }
        }
    }
    if after.needs_work() {
        tx.put(&PENDING, &after.transfer_id, &())?;
    } else {
        tx.delete(&PENDING, &after.transfer_id);
    }
    let bytes = stored.to_bytes()?;
    tx.append_ledger(|_| bytes);
    Ok(())
}

mod recalls;

pub use recalls::RECALL_LEDGER_MARK;

#[cfg(test)]
mod tests;
