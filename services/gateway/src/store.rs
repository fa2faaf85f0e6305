//! The gateway's own database (`<data_dir>/gateway`, identity site "hub"): the corridor
//! transfers and their indexes.
//!
//! | table | key | value |
//! |---|---|---|
//! | `transfer` | transfer_id | the [`Transfer`] |
//! | `created` | (−created_ms, transfer_id) | () — ListTransfers, newest first |
//! | `transit` | (sku, transfer_id) | () — transfers IN_TRANSIT or RECEIVING, for FindStock |
//! | `pending` | transfer_id | () — transfers with a saga step to do, for the resumer |
//!
//! Every change of a transfer is one atomic write that also updates the indexes and appends
//! the transfer as it now is to the ledger (an audit trail of every state change).

use coldchain_runtime::idempotency::Protobuf;
use coldchain_store::{
    Idempotent, KeyCodec, RequestFingerprint, Store, StoreError, Table, Value, WriteError, WriteTx,
    Written,
};

use crate::domain::{self, Transfer, TransferError, TransferSpec, TransferState};

const TRANSFERS: Table<String, Transfer> = Table::new("transfer");
const BY_CREATED: Table<(i64, String), ()> = Table::new("created");
const TRANSIT: Table<(String, String), ()> = Table::new("transit");
const PENDING: Table<String, ()> = Table::new("pending");

/// The stored response of an idempotent transfer call: the transfer it concerns. A replay
/// answers the transfer's current state, read after the replay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TransferRef {
    /// The transfer's id.
    #[prost(string, tag = "1")]
    pub transfer_id: String,
}

/// Why a write was refused: a rule of the transfer, or storage.
#[derive(Debug)]
pub enum Refused {
    /// A transfer rule.
    Transfer(TransferError),
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

/// Filters of ListTransfers.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these states (empty: all).
    pub states: Vec<TransferState>,
    /// Only from this site (empty: any).
    pub source_site_id: String,
    /// Only to this site (empty: any).
    pub destination_site_id: String,
}

impl ListFilter {
    fn matches(&self, t: &Transfer) -> bool {
        (self.states.is_empty() || self.states.contains(&t.state))
            && (self.source_site_id.is_empty() || self.source_site_id == t.source_site_id)
            && (self.destination_site_id.is_empty()
                || self.destination_site_id == t.destination_site_id)
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

    /// Records a new transfer (REQUESTED) in one write, idempotently by `request`. A
    /// transfer_id that exists with the same definition answers that transfer; with
    /// another definition it is [`TransferError::AlreadyExists`].
    pub async fn create(
        &self,
        request: &RequestFingerprint,
        spec: TransferSpec,
    ) -> Result<Written<TransferRef>, WriteError<Refused>> {
        let digest = request.digest;
        self.store
            .write(Some(Idempotent::new(request, &Protobuf)), move |tx| {
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
                if let Some(existing) = tx.get(&TRANSFERS, &transfer_id)? {
                    if existing.same_definition(&spec) {
                        return Ok(TransferRef { transfer_id });
                    }
                    return Err(TransferError::AlreadyExists(transfer_id).into());
                }
                let transfer = Transfer::new(transfer_id.clone(), spec, now);
                put_transfer(tx, None, &transfer)?;
                Ok(TransferRef { transfer_id })
            })
            .await
    }

    /// ReceiveTransfer's write, idempotently by `request`: IN_TRANSIT → RECEIVING
    /// (RECEIVING stays).
    pub async fn arrive(
        &self,
        request: &RequestFingerprint,
        transfer_id: &str,
    ) -> Result<Written<TransferRef>, WriteError<Refused>> {
        self.store
            .write(Some(Idempotent::new(request, &Protobuf)), |tx| {
                let now = tx.now_millis();
                let mut transfer = tx
                    .get(&TRANSFERS, &transfer_id.to_string())?
                    .ok_or_else(|| TransferError::NotFound(transfer_id.to_string()))?;
                let before = transfer.clone();
                if transfer.arrived(now)? {
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
                    .ok_or_else(|| TransferError::NotFound(transfer_id.to_string()))?;
                let before = transfer.clone();
                if change(&mut transfer, now)? {
                    put_transfer(tx, Some(&before), &transfer)?;
                }
                *slot = Some(transfer);
                Ok(TransferRef::default())
            })
            .await?;
        after.ok_or_else(|| {
            WriteError::Store(StoreError::Corrupt("update produced no transfer".into()))
        })
    }

    /// One transfer.
    pub fn get(&self, transfer_id: &str) -> Result<Option<Transfer>, StoreError> {
        self.store.get(&TRANSFERS, &transfer_id.to_string())
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
            let Some(transfer) = self.store.get(&TRANSFERS, &key.1)? else {
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
            if let Some(transfer) = self.store.get(&TRANSFERS, &transfer_id)?
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
    tx.put(&TRANSFERS, &after.transfer_id, after)?;
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
    let bytes = after.to_bytes()?;
    tx.append_ledger(|_| bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_runtime::network::TemperatureClass;
    use coldchain_store::{Identity, StoreOptions, fingerprint};

    fn open(dir: &std::path::Path) -> GatewayStore {
        let store = Store::open(
            dir,
            &Identity {
                site: "hub".into(),
                service: "gateway".into(),
            },
            StoreOptions::default(),
        )
        .expect("open");
        GatewayStore::new(store)
    }

    fn spec(id: Option<&str>, sku: &str) -> TransferSpec {
        TransferSpec {
            transfer_id: id.map(str::to_string),
            source_site_id: "cn-huaihua-park".into(),
            destination_site_id: "la-vientiane".into(),
            lines: vec![domain::Line {
                sku: sku.into(),
                lot_id: "l1".into(),
                source_zone_id: "chilled-a".into(),
                destination_zone_id: "chilled-a".into(),
                quantity: 5,
                unit: "kg".into(),
                lot: None,
            }],
            reefer_sensor_id: String::new(),
            reefer_container_id: String::new(),
            reefer_class: TemperatureClass::Chilled,
            train_or_route: String::new(),
        }
    }

    #[tokio::test]
    async fn indexes_follow_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let created = store
            .create(&fingerprint("r1", b"1"), spec(Some("t1"), "kiwi"))
            .await
            .unwrap();
        assert_eq!(created.value.transfer_id, "t1");
        assert_eq!(store.pending().unwrap(), ["t1"]);
        assert!(store.travelling_with_sku("kiwi").unwrap().is_empty());

        let shipped = store
            .update("t1", |t, now| t.shipped(vec![], now, now))
            .await
            .unwrap();
        assert_eq!(shipped.state, TransferState::InTransit);
        assert!(store.pending().unwrap().is_empty());
        assert_eq!(store.travelling_with_sku("kiwi").unwrap().len(), 1);
        assert!(store.travelling_with_sku("kiwi2").unwrap().is_empty());

        store.arrive(&fingerprint("r2", b"2"), "t1").await.unwrap();
        assert_eq!(store.pending().unwrap(), ["t1"]);
        assert_eq!(store.travelling_with_sku("kiwi").unwrap().len(), 1);

        store
            .update("t1", |t, now| t.completed(now, now))
            .await
            .unwrap();
        assert!(store.pending().unwrap().is_empty());
        assert!(store.travelling_with_sku("kiwi").unwrap().is_empty());
        assert_eq!(
            store.raw().durable_sequence(),
            4,
            "one ledger entry per change"
        );
    }

    #[tokio::test]
    async fn an_id_is_taken_only_by_another_definition_and_lists_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store
            .create(&fingerprint("r1", b"1"), spec(Some("t1"), "kiwi"))
            .await
            .unwrap();
        let same = store
            .create(&fingerprint("r2", b"2"), spec(Some("t1"), "kiwi"))
            .await
            .unwrap();
        assert_eq!(same.value.transfer_id, "t1");
        let other = store
            .create(&fingerprint("r3", b"3"), spec(Some("t1"), "citrus"))
            .await;
        assert!(matches!(
            other,
            Err(WriteError::Rejected(Refused::Transfer(
                TransferError::AlreadyExists(_)
            )))
        ));
        let assigned = store
            .create(&fingerprint("r4", b"4"), spec(None, "citrus"))
            .await
            .unwrap();
        assert!(assigned.value.transfer_id.starts_with("tr-"));

        let all = store.list(&ListFilter::default(), None, 10).unwrap();
        assert_eq!(all.transfers.len(), 2);
        assert!(all.last_key.is_none());
        let first = store.list(&ListFilter::default(), None, 1).unwrap();
        assert_eq!(first.transfers.len(), 1);
        let key = first.last_key.expect("more");
        let second = store.list(&ListFilter::default(), Some(&key), 1).unwrap();
        assert_eq!(second.transfers.len(), 1);
        assert_ne!(
            first.transfers[0].transfer_id,
            second.transfers[0].transfer_id
        );
        assert!(second.last_key.is_none());
        let filtered = store
            .list(
                &ListFilter {
                    states: vec![TransferState::Completed],
                    ..ListFilter::default()
                },
                None,
                10,
            )
            .unwrap();
        assert!(filtered.transfers.is_empty());
    }
}
