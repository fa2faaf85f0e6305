//! The stored bytes of a transfer: the fields earlier builds stored (postcard of
//! [`Transfer`], whose authors serde skips), then the authors. A record an earlier build
//! wrote ends after the first part; it decodes with [`Author::unknown`] as the starter, and
//! as the arrival's reporter when it had already arrived. No store format bump: the old
//! bytes are read as they are, and the new ones only by this build and later.

use coldchain_audit::Author;
use coldchain_store::{StoreError, Value};
use serde::{Deserialize, Serialize};

use crate::domain::Transfer;

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
