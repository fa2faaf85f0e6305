//! The stored bytes of a transfer and of a recall. A transfer: the fields earlier builds stored (postcard of
//! [`Transfer`], whose authors serde skips), then the authors. A record an earlier build
//! wrote ends after the first part; it decodes with [`Author::unknown`] as the starter, and
//! as the arrival's reporter when it had already arrived. No store format bump: the old
//! bytes are read as they are, and the new ones only by this build and later.

use coldchain_audit::Author;
use coldchain_store::{StoreError, Value};
use serde::{Deserialize, Serialize};

use crate::domain::{Recall, Transfer};

/// The authors of a transfer, stored after its other fields.
#[derive(Serialize, Deserialize)]
struct Authors {
    started_by: Author,
    arrival_reported_by: Option<Author>,
}

/// A transfer as the `transfer` table and the ledger keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTransfer(pub Transfer);

impl Value for StoredTransfer {
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let encode = |e: postcard::Error| StoreError::Encode(e.to_string());
        let mut bytes = postcard::to_allocvec(&self.0).map_err(encode)?;
        let authors = Authors {
            started_by: self.0.started_by.clone(),
            arrival_reported_by: self.0.arrival_reported_by.clone(),
        };
        bytes.extend(postcard::to_allocvec(&authors).map_err(encode)?);
        Ok(bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |e: postcard::Error| StoreError::Corrupt(e.to_string());
        let (mut transfer, rest) = postcard::take_from_bytes::<Transfer>(bytes).map_err(corrupt)?;
        if rest.is_empty() {
            // Written before transfers kept their authors.
            transfer.started_by = Author::unknown();
            transfer.arrival_reported_by = transfer.received_ms.map(|_| Author::unknown());
        } else {
            let (authors, rest) = postcard::take_from_bytes::<Authors>(rest).map_err(corrupt)?;
            if !rest.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "transfer {:?}: {} bytes after its authors",
                    transfer.transfer_id,
                    rest.len()
                )));
            }
            transfer.started_by = authors.started_by;
            transfer.arrival_reported_by = authors.arrival_reported_by;
        }
        Ok(StoredTransfer(transfer))
    }
}

/// What a recall stores after the fields earlier builds stored: each hold's sku (in hold
/// order), whether it includes derived lots and the links that found them.
#[derive(Serialize, Deserialize)]
struct RecallExtension {
    hold_skus: Vec<String>,
    include_derived: bool,
    derived: Vec<crate::domain::genealogy::Link>,
}

/// A recall as the `recall` table and the ledger keep it: postcard of [`Recall`] (whose
/// skus of holds and derived lots serde skips), then a [`RecallExtension`]. A recall an
/// earlier build wrote ends after the first part: every hold is of the recall's sku, and
/// it has no derived lots.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecall(pub Recall);

impl Value for StoredRecall {
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let encode = |e: postcard::Error| StoreError::Encode(e.to_string());
        let mut bytes = postcard::to_allocvec(&self.0).map_err(encode)?;
        let extension = RecallExtension {
            hold_skus: self.0.holds.iter().map(|h| h.sku.clone()).collect(),
            include_derived: self.0.include_derived,
            derived: self.0.derived.clone(),
        };
        bytes.extend(postcard::to_allocvec(&extension).map_err(encode)?);
        Ok(bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |e: postcard::Error| StoreError::Corrupt(e.to_string());
        let (mut recall, rest) = postcard::take_from_bytes::<Recall>(bytes).map_err(corrupt)?;
        if rest.is_empty() {
            // Written before recalls could hold derived lots: every hold is of its sku.
            for hold in &mut recall.holds {
                hold.sku = recall.sku.clone();
            }
            return Ok(StoredRecall(recall));
        }
        let (extension, rest) =
            postcard::take_from_bytes::<RecallExtension>(rest).map_err(corrupt)?;
        if !rest.is_empty() || extension.hold_skus.len() != recall.holds.len() {
            return Err(StoreError::Corrupt(format!(
                "recall {:?}: {} skus for {} holds, {} bytes after them",
                recall.recall_id,
                extension.hold_skus.len(),
                recall.holds.len(),
                rest.len()
            )));
        }
        for (hold, sku) in recall.holds.iter_mut().zip(extension.hold_skus) {
            hold.sku = sku;
        }
        recall.include_derived = extension.include_derived;
        recall.derived = extension.derived;
        Ok(StoredRecall(recall))
    }
}
