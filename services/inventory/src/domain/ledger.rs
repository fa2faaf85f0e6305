//! The ledger: one append-only entry per change, with a per-site sequence number.

use coldchain_audit::Author;

use super::{LotInfo, MovementKind, Reference, RelocationInfo, TransformationSpec};

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A movement of that kind.
    Movement(MovementKind),
    /// Stock of a position allocated to an order (one entry per pick).
    Allocate,
    /// An allocation's remainder on a position released (one entry per pick).
    Deallocate,
    /// A hold placed.
    HoldPlaced,
    /// A hold released.
    HoldReleased,
    /// A relocation leaving its zone (the entry of a RELOCATION movement).
    RelocationOut,
    /// A relocation arriving at its zone (one sequence after its RELOCATION_OUT).
    RelocationIn,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its position in the site's ledger (1, 2, 3, …); 0 until appended.
    pub sequence: u64,
    /// When it was committed (UTC ms).
    pub recorded_ms: i64,
    /// The request_id of the call that recorded it.
    pub request_id: String,
    /// What it records.
    pub kind: EntryKind,
    /// The sku of the position, or the hold's sku scope.
    pub sku: String,
    /// The lot with its stored attributes (hold entries: only when scoped to a lot).
    pub lot: Option<LotInfo>,
    /// The zone of the position, or the hold's zone scope.
    pub zone_id: String,
    /// The sku's base unit (empty for hold entries).
    pub unit: String,
    /// The change of on hand.
    pub delta: i64,
    /// On hand afterwards.
    pub balance_after: i64,
    /// The change of allocated.
    pub allocated_delta: i64,
    /// The position's version afterwards.
    pub version: u64,
    /// The movement's or hold's reason.
    pub reason: String,
    /// The movement's or hold's reference.
    pub reference: Option<Reference>,
    /// Transfers: the other site.
    pub other_site_id: String,
    /// Transfers: the transfer id.
    pub transfer_id: String,
    /// Receipts: the booking checked in.
    pub booking_id: String,
    /// The order (issues citing one, allocation entries).
    pub order_id: String,
    /// The allocation (allocation entries).
    pub allocation_id: String,
    /// The hold (hold entries).
    pub hold_id: String,
    /// Who recorded it (entries of earlier builds: [`Author::unknown`]).
    pub recorded_by: Author,
    /// Transformation entries: the transformation.
    pub transformation: Option<TransformationSpec>,
    /// Relocation entries: both zones and their classes.
    pub relocation: Option<RelocationInfo>,
}

impl LedgerEntry {
    /// An entry of `kind` with every other field empty.
    pub fn new(kind: EntryKind, recorded_ms: i64, request_id: &str) -> Self {
        Self {
            sequence: 0,
            recorded_ms,
            request_id: request_id.to_string(),
            kind,
            sku: String::new(),
            lot: None,
            zone_id: String::new(),
            unit: String::new(),
            delta: 0,
            balance_after: 0,
            allocated_delta: 0,
            version: 0,
            reason: String::new(),
            reference: None,
            other_site_id: String::new(),
            transfer_id: String::new(),
            booking_id: String::new(),
            order_id: String::new(),
            allocation_id: String::new(),
            hold_id: String::new(),
            recorded_by: Author::unknown(),
            transformation: None,
            relocation: None,
        }
    }
}

/// Where a stored entry belongs, read from its bytes without decoding the rest (the lot
/// index reads millions of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPlace<'a> {
    /// What it records.
    pub kind: EntryKind,
    /// Its sku (a hold's sku scope).
    pub sku: &'a str,
    /// Its lot's id, when it names a lot.
    pub lot_id: Option<&'a str>,
    /// Its zone (a hold's zone scope).
    pub zone_id: &'a str,
}

impl EntryPlace<'_> {
    /// The (sku, lot) the entry is indexed under: every entry that names a lot, but holds'
    /// (a hold's scope may cover lots it does not name; holds are found apart).
    pub fn lot(&self) -> Option<(&str, &str)> {
        if matches!(self.kind, EntryKind::HoldPlaced | EntryKind::HoldReleased)
            || self.sku.is_empty()
        {
            return None;
        }
        self.lot_id.map(|lot_id| (self.sku, lot_id))
    }
}

/// What RecordMovements recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMovements {
    /// One entry per movement (a relocation's departure).
    pub entries: Vec<LedgerEntry>,
    /// The arrival entry of each relocation, in the order of the movements.
    pub arrivals: Vec<LedgerEntry>,
}

/// RecordMovements' answer as the idempotency record keeps it.
///
/// The answer's entries are ledger entries, and the ledger keeps them for good: so a record
/// keeps only their sequences, and a replay reads them back from the ledger (tens of bytes
/// per request instead of a copy of every entry). Records of earlier builds hold the entries
/// themselves and still replay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedAnswer {
    /// The entries themselves: a fresh answer, or a record of an earlier build.
    Entries(Vec<LedgerEntry>),
    /// The sequences of the answer's entries, in the answer's order (a TRANSFER_IN already
    /// received answers the earlier entry, so they need not ascend).
    Sequences(Vec<u64>),
}

impl RecordedAnswer {
    /// The sequences of the answer's entries, in order.
    pub fn sequences(&self) -> Vec<u64> {
        match self {
            Self::Entries(entries) => entries.iter().map(|entry| entry.sequence).collect(),
            Self::Sequences(sequences) => sequences.clone(),
        }
    }

    /// The runs of consecutive sequences, `(first, length)`, in the answer's order.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for sequence in self.sequences() {
            match runs.last_mut() {
                Some((first, length)) if first.checked_add(*length) == Some(sequence) => {
                    *length += 1;
                }
                _ => runs.push((sequence, 1)),
            }
        }
        runs
    }
}
