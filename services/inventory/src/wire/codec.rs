//! The protobuf bytes the store keeps: ledger entries (the ledger and the `transfers_in`
//! table hold encoded `LedgerEntry` messages, which WatchLedger sends as they are) and the
//! idempotent answers (the encoded response of each mutating RPC). Both are the bytes
//! earlier builds stored.
//!
//! A ledger entry is encoded straight from the domain value through borrowed views
//! ([`EntryView`]), which write exactly what the generated `LedgerEntry` writes (tested
//! below) without building an owned protobuf copy under the store's writer lock.

use coldchain_audit::Author;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::idempotency::Protobuf;
use coldchain_runtime::proto_time;
use coldchain_store::ReplyCodec;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};

use super::convert;
use crate::domain::{
    Allocation, EntryPlace, Hold, LedgerEntry, LotInfo, MAX_MOVEMENTS, RecordedAnswer, Reference,
};

/// Ledger entries as encoded `coldchain.inventory.v1.LedgerEntry` messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryCodec;

impl ReplyCodec<LedgerEntry> for EntryCodec {
    fn encode(&self, entry: &LedgerEntry) -> Vec<u8> {
        EntryView(entry).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<LedgerEntry, String> {
        convert::entry_from_pb(Protobuf.decode(bytes)?)
    }
}

/// RecordMovements' answer, kept by reference: a marker byte, then each run of consecutive
/// sequences as `zigzag(first - end of the previous run)` and `length`, both varints. A
/// 500-movement answer is a handful of bytes; a replay reads the entries back from the
/// ledger (see [`RecordedAnswer`]).
///
/// Records of earlier builds are the encoded `RecordMovementsResponse`: empty, or starting
/// with field 1's tag (0x0A). The marker (0x01, field 0, which protobuf never writes) tells
/// the two apart, and those records decode to the entries they hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordedCodec;

/// The first byte of an answer kept by reference.
const BY_REFERENCE: u8 = 0x01;

impl ReplyCodec<RecordedAnswer> for RecordedCodec {
    fn encode(&self, answer: &RecordedAnswer) -> Vec<u8> {
        let mut bytes = vec![BY_REFERENCE];
        let mut end = 0_u64;
        for (first, length) in answer.runs() {
            // Two's complement difference: a run before the previous one is negative.
            let step = first.wrapping_sub(end) as i64;
            encoding::encode_varint(((step << 1) ^ (step >> 63)) as u64, &mut bytes);
            encoding::encode_varint(length, &mut bytes);
            end = first.wrapping_add(length);
        }
        bytes
    }

    fn decode(&self, bytes: &[u8]) -> Result<RecordedAnswer, String> {
        let Some((&BY_REFERENCE, mut rest)) = bytes.split_first() else {
            let response: pb::RecordMovementsResponse = Protobuf.decode(bytes)?;
            let entries = response
                .entries
                .into_iter()
                .map(convert::entry_from_pb)
                .collect::<Result<_, _>>()?;
            return Ok(RecordedAnswer::Entries(entries));
        };
        let malformed = |what: &str| format!("malformed RecordMovements answer: {what}");
        let mut sequences = Vec::new();
        let mut end = 0_u64;
        while !rest.is_empty() {
            let zigzag =
                encoding::decode_varint(&mut rest).map_err(|e| malformed(&e.to_string()))?;
            let length =
                encoding::decode_varint(&mut rest).map_err(|e| malformed(&e.to_string()))?;
            let step = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            let first = end.wrapping_add(step as u64);
            let fits = usize::try_from(length)
                .ok()
                .filter(|n| *n >= 1 && sequences.len() + n <= MAX_MOVEMENTS);
            let (Some(length), true) = (fits, first >= 1) else {
                return Err(malformed("a run out of range"));
            };
            // A run ending at the last sequence there can be is damage, not a ledger.
            let end_of_run = first
                .checked_add(length as u64)
                .ok_or_else(|| malformed("a run past the last sequence"))?;
            sequences.extend(first..end_of_run);
            end = end_of_run;
        }
        Ok(RecordedAnswer::Sequences(sequences))
    }
}

/// AllocateStock's answer: an encoded `Allocation`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocationCodec;

impl ReplyCodec<Allocation> for AllocationCodec {
    fn encode(&self, allocation: &Allocation) -> Vec<u8> {
        convert::allocation_pb(allocation.clone()).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<Allocation, String> {
        convert::allocation_from_pb(Protobuf.decode(bytes)?)
    }
}

/// ReleaseAllocation's answer: an encoded `ReleaseAllocationResponse`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleasedCodec;

impl ReplyCodec<Vec<Allocation>> for ReleasedCodec {
    fn encode(&self, released: &Vec<Allocation>) -> Vec<u8> {
        pb::ReleaseAllocationResponse {
            released: released
                .iter()
                .cloned()
                .map(convert::allocation_pb)
                .collect(),
        }
        .encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Allocation>, String> {
        let response: pb::ReleaseAllocationResponse = Protobuf.decode(bytes)?;
        response
            .released
            .into_iter()
            .map(convert::allocation_from_pb)
            .collect()
    }
}

/// PlaceHold's and ReleaseHold's answer: an encoded `Hold` without quantities (those are
/// filled in when answering, also on a replay).
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldCodec;

impl ReplyCodec<Hold> for HoldCodec {
    fn encode(&self, hold: &Hold) -> Vec<u8> {
        convert::hold_pb(hold.clone()).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<Hold, String> {
        convert::hold_from_pb(Protobuf.decode(bytes)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Borrowed views, encoding as the generated messages do: fields in tag order, proto3
// defaults left out.

/// The decoding half of an encode-only view's `Message`: nothing is decoded into a view
/// (decoding goes through the generated types), so fields are skipped and there is
/// nothing to clear.
macro_rules! encode_only {
    () => {
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), prost::DecodeError> {
            encoding::skip_field(wire_type, tag, buf, ctx)
        }

        fn clear(&mut self) {}
    };
}

/// Where an encoded `LedgerEntry` belongs (kind, sku, lot id, zone), read field by field
/// from its bytes without decoding the rest: protobuf keeps strings as they are, so the
/// answer borrows them. Malformed bytes are an error, never a panic.
pub fn entry_place(bytes: &[u8]) -> Result<EntryPlace<'_>, String> {
    let mut reader = FieldReader(bytes);
    let (mut kind, mut sku, mut lot_id, mut zone_id) = (0i32, "", None, "");
    while let Some((field, value)) = reader.next()? {
        match (field, value) {
            (4, Field::Varint(value)) => kind = value as i32,
            (5, Field::Bytes(value)) => sku = utf8(value, "sku")?,
            (6, Field::Bytes(lot)) => {
                let mut inner = FieldReader(lot);
                let mut id = "";
                while let Some((field, value)) = inner.next()? {
                    if let (1, Field::Bytes(value)) = (field, value) {
                        id = utf8(value, "lot.lot_id")?;
                    }
                }
                lot_id = Some(id);
            }
            (7, Field::Bytes(value)) => zone_id = utf8(value, "zone_id")?,
            _ => {}
        }
    }
    Ok(EntryPlace {
        kind: convert::entry_kind(kind)?,
        sku,
        lot_id,
        zone_id,
    })
}

fn utf8<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("stored entry: {field} is not UTF-8"))
}

/// One field's value on the wire.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of an encoded message, in order.
struct FieldReader<'a>(&'a [u8]);

impl<'a> FieldReader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or("stored entry: a varint ends early")?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("stored entry: a varint is too long".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.0.len() {
            return Err("stored entry: a field runs past its end".into());
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| "stored entry: a field is too long".to_string())?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            other => return Err(format!("stored entry: wire type {other}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn string_len(tag: u32, value: &String) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::string::encoded_len(tag, value)
    }
}

fn put_string(tag: u32, value: &String, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encoding::string::encode(tag, value, buf);
    }
}

fn date_of(date: Option<chrono::NaiveDate>) -> Option<common::Date> {
    date.map(proto_time::date)
}

/// A `LedgerEntry` over a domain entry.
pub struct EntryView<'a>(pub &'a LedgerEntry);

/// A `LotInfo` over a domain lot.
struct LotView<'a>(&'a LotInfo);

/// A `Reference` over a domain reference.
struct ReferenceView<'a>(&'a Reference);

/// A `common.v1.Author` over a domain author.
struct AuthorView<'a>(&'a Author);

impl Message for AuthorView<'_> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_string(1, &self.0.principal, buf);
        put_string(2, &self.0.actor, buf);
    }

    fn encoded_len(&self) -> usize {
        string_len(1, &self.0.principal) + string_len(2, &self.0.actor)
    }

    encode_only!();
}

impl Message for ReferenceView<'_> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.0.kind != 0 {
            encoding::int32::encode(1, &self.0.kind, buf);
        }
        put_string(2, &self.0.id, buf);
    }

    fn encoded_len(&self) -> usize {
        let kind = if self.0.kind != 0 {
            encoding::int32::encoded_len(1, &self.0.kind)
        } else {
            0
        };
        kind + string_len(2, &self.0.id)
    }

    encode_only!();
}

impl Message for LotView<'_> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let lot = self.0;
        put_string(1, &lot.lot_id, buf);
        if let Some(expiry) = date_of(lot.expiry) {
            encoding::message::encode(2, &expiry, buf);
        }
        if let Some(production) = date_of(lot.production) {
            encoding::message::encode(3, &production, buf);
        }
        put_string(4, &lot.origin, buf);
    }

    fn encoded_len(&self) -> usize {
        let lot = self.0;
        string_len(1, &lot.lot_id)
            + date_of(lot.expiry).map_or(0, |d| encoding::message::encoded_len(2, &d))
            + date_of(lot.production).map_or(0, |d| encoding::message::encoded_len(3, &d))
            + string_len(4, &lot.origin)
    }

    encode_only!();
}

impl Message for EntryView<'_> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let e = self.0;
        if e.sequence != 0 {
            encoding::uint64::encode(1, &e.sequence, buf);
        }
        encoding::message::encode(2, &proto_time::timestamp(e.recorded_ms), buf);
        put_string(3, &e.request_id, buf);
        let kind = convert::entry_kind_pb(e.kind);
        if kind != 0 {
            encoding::int32::encode(4, &kind, buf);
        }
        put_string(5, &e.sku, buf);
        if let Some(lot) = &e.lot {
            encoding::message::encode(6, &LotView(lot), buf);
        }
        put_string(7, &e.zone_id, buf);
        put_string(8, &e.unit, buf);
        for (tag, value) in [(9, e.delta), (10, e.balance_after), (11, e.allocated_delta)] {
            if value != 0 {
                encoding::int64::encode(tag, &value, buf);
            }
        }
        if e.version != 0 {
            encoding::uint64::encode(12, &e.version, buf);
        }
        put_string(13, &e.reason, buf);
        if let Some(reference) = &e.reference {
            encoding::message::encode(14, &ReferenceView(reference), buf);
        }
        put_string(15, &e.other_site_id, buf);
        put_string(16, &e.transfer_id, buf);
        put_string(17, &e.booking_id, buf);
        put_string(18, &e.order_id, buf);
        put_string(19, &e.allocation_id, buf);
        put_string(20, &e.hold_id, buf);
        encoding::message::encode(21, &AuthorView(&e.recorded_by), buf);
        // Rare (processing and relocations): built as the generated messages.
        if let Some(transformation) = &e.transformation {
            encoding::message::encode(22, &convert::transformation_pb(transformation.clone()), buf);
        }
        if let Some(relocation) = &e.relocation {
            encoding::message::encode(23, &convert::relocation_pb(relocation.clone()), buf);
        }
    }

    fn encoded_len(&self) -> usize {
        let e = self.0;
        let kind = convert::entry_kind_pb(e.kind);
        let mut len = 0;
        if e.sequence != 0 {
            len += encoding::uint64::encoded_len(1, &e.sequence);
        }
        len += encoding::message::encoded_len(2, &proto_time::timestamp(e.recorded_ms));
        len += string_len(3, &e.request_id);
        if kind != 0 {
            len += encoding::int32::encoded_len(4, &kind);
        }
        len += string_len(5, &e.sku);
        if let Some(lot) = &e.lot {
            len += encoding::message::encoded_len(6, &LotView(lot));
        }
        len += string_len(7, &e.zone_id) + string_len(8, &e.unit);
        for (tag, value) in [(9, e.delta), (10, e.balance_after), (11, e.allocated_delta)] {
            if value != 0 {
                len += encoding::int64::encoded_len(tag, &value);
            }
        }
        if e.version != 0 {
            len += encoding::uint64::encoded_len(12, &e.version);
        }
        len += string_len(13, &e.reason);
        if let Some(reference) = &e.reference {
            len += encoding::message::encoded_len(14, &ReferenceView(reference));
        }
        len + string_len(15, &e.other_site_id)
            + string_len(16, &e.transfer_id)
            + string_len(17, &e.booking_id)
            + string_len(18, &e.order_id)
            + string_len(19, &e.allocation_id)
            + string_len(20, &e.hold_id)
            + encoding::message::encoded_len(21, &AuthorView(&e.recorded_by))
            + e.transformation.as_ref().map_or(0, |t| {
                encoding::message::encoded_len(22, &convert::transformation_pb(t.clone()))
            })
            + e.relocation.as_ref().map_or(0, |r| {
                encoding::message::encoded_len(23, &convert::relocation_pb(r.clone()))
            })
    }

    encode_only!();
}

#[cfg(test)]
mod tests;
