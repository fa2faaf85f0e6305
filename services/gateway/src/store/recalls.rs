//! Recalls in the gateway's store.
//!
//! | table | key | value |
//! |---|---|---|
//! | `recall` | recall_id | the [`Recall`] |
//! | `recall-created` | (−created_ms, recall_id) | () — ListRecalls, newest first |
//! | `recall-pending` | recall_id | () — recalls with a hold to place or release, for the drainer |
//!
//! Like a transfer, every change of a recall is one atomic write that keeps the indexes in
//! step and appends the recall as it now is to the ledger, marked [`RECALL_LEDGER_MARK`]
//! (a transfer's record never starts so: its first bytes are the length of an id of at
//! most 128 bytes).

use coldchain_store::{Idempotent, StoreError, Table, Value, WriteError, WriteTx, Written};

use super::stored::StoredRecall;
use super::{GatewayStore, Refused};
use crate::domain::genealogy::Link;
use crate::domain::{Recall, RecallError, RecallRef, RecallSpec, assigned_recall_id};
use coldchain_audit::Author;

const RECALLS: Table<String, StoredRecall> = Table::new("recall");
const RECALLS_BY_CREATED: Table<(i64, String), ()> = Table::new("recall-created");
const RECALLS_PENDING: Table<String, ()> = Table::new("recall-pending");

/// The first bytes of a recall's ledger record.
pub const RECALL_LEDGER_MARK: [u8; 2] = [0xFF, b'R'];

impl From<RecallError> for Refused {
    fn from(error: RecallError) -> Self {
        Refused::Recall(error)
    }
}

impl GatewayStore {
    /// Records a new ACTIVE recall with a pending hold at each of `sites`, idempotently by
    /// the request. A recall_id that exists with the same definition answers that recall;
    /// with another it is [`RecallError::AlreadyExists`].
    pub async fn create_recall(
        &self,
        idempotent: Idempotent<'_, RecallRef, Refused>,
        spec: RecallSpec,
        sites: Vec<String>,
        derived: Vec<Link>,
        by: Author,
    ) -> Result<Written<RecallRef>, WriteError<Refused>> {
        let digest = idempotent.request.digest;
        self.store
            .write(Some(idempotent), move |tx| {
                let now = tx.now_millis();
                let recall_id = match &spec.recall_id {
                    Some(id) => id.clone(),
                    None => {
                        let mut id = assigned_recall_id(&digest, now);
                        let mut n = 1;
                        while tx.get(&RECALLS, &id)?.is_some() {
                            n += 1;
                            id = format!("{}-{n}", assigned_recall_id(&digest, now));
                        }
                        id
                    }
                };
                if let Some(StoredRecall(existing)) = tx.get(&RECALLS, &recall_id)? {
                    if existing.same_definition(&spec) {
                        return Ok(RecallRef { recall_id });
                    }
                    return Err(RecallError::AlreadyExists(recall_id).into());
                }
                let recall = Recall::new(recall_id.clone(), spec, &sites, derived, by, now);
                put_recall(tx, true, &recall)?;
                Ok(RecallRef { recall_id })
            })
            .await
    }

    /// ReleaseRecall's write, idempotently by the request: ACTIVE → RELEASING (a recall
    /// already releasing or released stays as it is).
    pub async fn release_recall(
        &self,
        idempotent: Idempotent<'_, RecallRef, Refused>,
        recall_id: &str,
        by: Author,
        reason: String,
    ) -> Result<Written<RecallRef>, WriteError<Refused>> {
        self.store
            .write(Some(idempotent), move |tx| {
                let now = tx.now_millis();
                let StoredRecall(mut recall) = tx
                    .get(&RECALLS, &recall_id.to_string())?
                    .ok_or_else(|| RecallError::NotFound(recall_id.to_string()))?;
                if recall.release(by, reason, now) {
                    put_recall(tx, false, &recall)?;
                }
                Ok(RecallRef {
                    recall_id: recall_id.to_string(),
                })
            })
            .await
    }

    /// Applies `change` to a recall in one write (nothing is written when it reports no
    /// change) and answers the recall as it is afterwards.
    pub async fn update_recall(
        &self,
        recall_id: &str,
        change: impl FnOnce(&mut Recall, i64) -> Result<bool, RecallError>,
    ) -> Result<Recall, WriteError<Refused>> {
        let mut after: Option<Recall> = None;
        let slot = &mut after;
        self.store
            .write(None, move |tx| {
                let now = tx.now_millis();
                let StoredRecall(mut recall) = tx
                    .get(&RECALLS, &recall_id.to_string())?
                    .ok_or_else(|| RecallError::NotFound(recall_id.to_string()))?;
                if change(&mut recall, now)? {
                    put_recall(tx, false, &recall)?;
                }
                *slot = Some(recall);
                Ok::<(), Refused>(())
            })
            .await?;
        after.ok_or_else(|| {
            WriteError::Store(StoreError::Corrupt("update produced no recall".into()))
        })
    }

    /// One recall.
    pub fn get_recall(&self, recall_id: &str) -> Result<Option<Recall>, StoreError> {
        Ok(self
            .store
            .get(&RECALLS, &recall_id.to_string())?
            .map(|StoredRecall(recall)| recall))
    }

    /// Recalls newest first, after the relative key `after`, passing `keep`; at most
    /// `limit`, and the relative key of the last when more may follow.
    pub fn list_recalls(
        &self,
        keep: impl Fn(&Recall) -> bool,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Recall>, Option<Vec<u8>>), StoreError> {
        let mut recalls = Vec::new();
        let mut last_key = None;
        for entry in self.store.scan_after(&RECALLS_BY_CREATED, &[], after) {
            let (key, ()) = entry?;
            let Some(StoredRecall(recall)) = self.store.get(&RECALLS, &key.1)? else {
                continue;
            };
            if !keep(&recall) {
                continue;
            }
            if recalls.len() == limit {
                return Ok((recalls, last_key));
            }
            last_key = Some(coldchain_store::KeyCodec::encode(&key));
            recalls.push(recall);
        }
        Ok((recalls, None))
    }

    /// The ids of the recalls with a hold to place or release.
    pub fn pending_recalls(&self) -> Result<Vec<String>, StoreError> {
        self.store
            .scan_prefix(&RECALLS_PENDING, &[])
            .map(|entry| entry.map(|(id, ())| id))
            .collect()
    }
}

/// Stages a recall with its indexes; appends it, marked, to the ledger.
fn put_recall(tx: &mut WriteTx<'_>, new: bool, recall: &Recall) -> Result<(), StoreError> {
    let stored = StoredRecall(recall.clone());
    tx.put(&RECALLS, &recall.recall_id, &stored)?;
    if new {
        tx.put(
            &RECALLS_BY_CREATED,
            &(-recall.created_ms, recall.recall_id.clone()),
            &(),
        )?;
    }
    if recall.needs_work() {
        tx.put(&RECALLS_PENDING, &recall.recall_id, &())?;
    } else {
        tx.delete(&RECALLS_PENDING, &recall.recall_id);
    }
    let mut bytes = RECALL_LEDGER_MARK.to_vec();
    bytes.extend(stored.to_bytes()?);
    tx.append_ledger(|_| bytes);
    Ok(())
}
