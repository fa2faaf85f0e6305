//! The messages of WatchLedger. Every stored ledger value is an encoded `LedgerEntry` (see
//! [`super::codec::EntryCodec`]), so a batch goes out as the stored bytes
//! ([`RawLedgerBatch`]) without decoding and re-encoding each entry.

use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::ServiceError;
use coldchain_runtime::feed::FeedBatch;
use prost::Message;

/// A `WatchLedgerResponse` whose entries are kept as the stored bytes: a repeated message
/// field is a repeated length-delimited field on the wire, so this encodes to exactly the
/// bytes of the equivalent `WatchLedgerResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct RawLedgerBatch {
    /// Encoded `LedgerEntry` messages, consecutive sequences.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub entries: Vec<Vec<u8>>,
    /// As `WatchLedgerResponse.head_sequence`.
    #[prost(uint64, tag = "2")]
    pub head_sequence: u64,
}

impl RawLedgerBatch {
    /// The message of a feed batch: its stored bytes as they are.
    pub fn of(batch: FeedBatch) -> Self {
        Self {
            entries: batch.records.into_iter().map(|r| r.bytes).collect(),
            head_sequence: batch.head_sequence,
        }
    }

    /// Decodes the entries (for in-process callers of the typed trait method).
    pub fn decode_entries(self) -> Result<pb::WatchLedgerResponse, ServiceError> {
        let entries = self
            .entries
            .iter()
            .map(|bytes| pb::LedgerEntry::decode(bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::internal(format!("corrupt ledger entry: {e}")))?;
        Ok(pb::WatchLedgerResponse {
            entries,
            head_sequence: self.head_sequence,
        })
    }
}

/// The raw message of a feed batch.
pub fn raw_batch(batch: FeedBatch) -> Result<RawLedgerBatch, ServiceError> {
    Ok(RawLedgerBatch::of(batch))
}

/// The decoded message of a feed batch.
pub fn decoded_batch(batch: FeedBatch) -> Result<pb::WatchLedgerResponse, ServiceError> {
    RawLedgerBatch::of(batch).decode_entries()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A raw batch of encoded entries is byte-for-byte the WatchLedgerResponse of the
        /// same entries, so clients decode it with the generated type.
        #[test]
        fn raw_batches_are_wire_identical(
            entries in proptest::collection::vec((1u64..u64::MAX, "[a-z0-9-]{0,12}", -1000i64..1000, "[ -~]{0,40}"), 0..20),
            head in any::<u64>(),
        ) {
            let typed = pb::WatchLedgerResponse {
                entries: entries
                    .iter()
                    .map(|(sequence, sku, delta, reason)| pb::LedgerEntry {
                        sequence: *sequence,
                        sku: sku.clone(),
                        delta: *delta,
                        reason: reason.clone(),
                        lot: Some(pb::LotInfo { lot_id: sku.clone(), ..Default::default() }),
                        ..Default::default()
                    })
                    .collect(),
                head_sequence: head,
            };
            let raw = RawLedgerBatch {
                entries: typed.entries.iter().map(Message::encode_to_vec).collect(),
                head_sequence: head,
            };
            prop_assert_eq!(raw.encode_to_vec(), typed.encode_to_vec());
            prop_assert_eq!(raw.clone().decode_entries().unwrap(), typed.clone());
            prop_assert_eq!(pb::WatchLedgerResponse::decode(raw.encode_to_vec().as_slice()).unwrap(), typed);
        }
    }
}
