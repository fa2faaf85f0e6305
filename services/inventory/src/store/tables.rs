//! The tables of an inventory database and their records, with the conversions between a
//! record and the domain's values. The records' serialized forms are the stored format:
//! they do not change.

use chrono::NaiveDate;
use coldchain_audit::Author;
use coldchain_store::{StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::domain::{
    self, ActiveHold, Allocation, AllocationState, Hold, HoldScope, LotAttributes, LotInfo, Pick,
    PickState, Position, Reference, Strategy, TransformationSpec,
};

pub(super) const SKUS: Table<String, SkuRecord> = Table::new("skus");
pub(super) const LOTS: Table<(String, String), LotRecord> = Table::new("lots");
pub(super) const POSITIONS: Table<(String, String, String), PositionRecord> =
    Table::new("positions");
pub(super) const HOLDS: Table<String, HoldRecord> = Table::new("holds");
pub(super) const ACTIVE_HOLDS: Table<String, ScopeRecord> = Table::new("active_holds");
pub(super) const ALLOCATIONS: Table<String, AllocationRecord> = Table::new("allocations");
pub(super) const ORDER_ALLOCATIONS: Table<(String, u64), String> = Table::new("order_allocations");
/// The first receipt of each (transfer, sku, lot): its ledger entry, encoded as the ledger
/// keeps it.
pub(super) const TRANSFERS_IN: Table<(String, String, String), Vec<u8>> =
    Table::new("transfers_in");
/// Every transformation recorded here: what its request stated, and the sequences of its
/// ledger entries (inputs and outputs, in the order of the request).
pub(super) const TRANSFORMATIONS: Table<String, TransformationRecord> =
    Table::new("transformations");
/// Who placed and released each hold (holds of earlier builds have no row: unknown), and
/// the sequence of its release entry.
pub(super) const HOLD_AUTHORS: Table<String, HoldAuthors> = Table::new("hold_authors");

// The stored codes of allocation states and strategies (equal to the protobuf values,
// which is what earlier builds stored).
const STATE_ACTIVE: i32 = 1;
const STATE_CONSUMED: i32 = 2;
const STATE_RELEASED: i32 = 3;
const STRATEGY_FEFO: i32 = 1;
const STRATEGY_FIFO: i32 = 2;

pub(super) fn state_code(state: AllocationState) -> i32 {
    match state {
        AllocationState::Active => STATE_ACTIVE,
        AllocationState::Consumed => STATE_CONSUMED,
        AllocationState::Released => STATE_RELEASED,
    }
}

pub(super) fn strategy_code(strategy: Strategy) -> i32 {
    match strategy {
        Strategy::Fefo => STRATEGY_FEFO,
        Strategy::Fifo => STRATEGY_FIFO,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SkuRecord {
    pub unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LotRecord {
    pub expiry: i32,
    pub production: Option<i32>,
    pub origin: String,
    pub first_received_ms: i64,
}

impl LotRecord {
    pub fn new(attributes: &LotAttributes, now_ms: i64) -> Self {
        Self {
            expiry: domain::date_to_days(attributes.expiry),
            production: attributes.production.map(domain::date_to_days),
            origin: attributes.origin.clone(),
            first_received_ms: now_ms,
        }
    }

    pub fn attributes(&self) -> Result<LotAttributes, StoreError> {
        let bad = || StoreError::Corrupt("stored lot has an invalid date".into());
        Ok(LotAttributes {
            expiry: domain::date_from_days(self.expiry).ok_or_else(bad)?,
            production: match self.production {
                Some(days) => Some(domain::date_from_days(days).ok_or_else(bad)?),
                None => None,
            },
            origin: self.origin.clone(),
        })
    }

    pub fn info(&self, lot_id: &str) -> LotInfo {
        LotInfo {
            lot_id: lot_id.to_string(),
            expiry: domain::date_from_days(self.expiry),
            production: self.production.and_then(domain::date_from_days),
            origin: self.origin.clone(),
        }
    }

    pub fn expiry(&self) -> NaiveDate {
        domain::date_from_days(self.expiry).unwrap_or(NaiveDate::MIN)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TransformationRecord {
    pub request_id: String,
    pub work_order: String,
    pub input_mass_g: i64,
    pub output_mass_g: i64,
    pub waste_mass_g: i64,
    pub write_off: bool,
    pub sequences: Vec<u64>,
}

impl TransformationRecord {
    pub fn new(request_id: &str, spec: &TransformationSpec, sequences: Vec<u64>) -> Self {
        Self {
            request_id: request_id.to_string(),
            work_order: spec.work_order.clone(),
            input_mass_g: spec.input_mass_g,
            output_mass_g: spec.output_mass_g,
            waste_mass_g: spec.waste_mass_g,
            write_off: spec.write_off,
            sequences,
        }
    }

    pub fn spec(&self, transformation_id: &str) -> TransformationSpec {
        TransformationSpec {
            transformation_id: transformation_id.to_string(),
            work_order: self.work_order.clone(),
            input_mass_g: self.input_mass_g,
            output_mass_g: self.output_mass_g,
            waste_mass_g: self.waste_mass_g,
            write_off: self.write_off,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct PositionRecord {
    pub on_hand: i64,
    pub allocated: i64,
    pub version: u64,
    pub updated_ms: i64,
}

impl PositionRecord {
    pub fn position(&self) -> Position {
        Position {
            on_hand: self.on_hand,
            allocated: self.allocated,
            version: self.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ReferenceRecord {
    kind: i32,
    id: String,
}

impl ReferenceRecord {
    pub fn from_domain(reference: &Option<Reference>) -> Option<Self> {
        reference.as_ref().map(|r| Self {
            kind: r.kind,
            id: r.id.clone(),
        })
    }

    pub fn reference(&self) -> Reference {
        Reference {
            kind: self.kind,
            id: self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HoldRecord {
    pub hold_id: String,
    pub zone_id: String,
    pub sku: String,
    pub lot_id: String,
    pub reason: String,
    pub reference: Option<ReferenceRecord>,
    pub active: bool,
    pub placed_ms: i64,
    pub released_ms: Option<i64>,
    pub release_reason: String,
    /// Added after the first builds: holds they placed read as not allowing relocation.
    #[serde(default, deserialize_with = "coldchain_store::absent_as_default")]
    pub allow_relocation: bool,
}

/// Who placed and released a hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HoldAuthors {
    pub placed_by: Author,
    pub released_by: Option<Author>,
    /// The ledger sequence of the HOLD_RELEASED entry.
    pub released_sequence: Option<u64>,
}

impl HoldRecord {
    /// The hold, with its authors when they were kept (unknown for holds of earlier
    /// builds).
    pub fn hold(&self, authors: Option<&HoldAuthors>) -> Hold {
        let released_by = match authors {
            Some(a) => a.released_by.clone(),
            None if !self.active => Some(Author::unknown()),
            None => None,
        };
        Hold {
            hold_id: self.hold_id.clone(),
            scope: HoldScope {
                zone_id: self.zone_id.clone(),
                sku: self.sku.clone(),
                lot_id: self.lot_id.clone(),
            },
            reason: self.reason.clone(),
            reference: self.reference.as_ref().map(ReferenceRecord::reference),
            active: self.active,
            placed_ms: self.placed_ms,
            released_ms: self.released_ms,
            release_reason: self.release_reason.clone(),
            placed_by: authors.map_or_else(Author::unknown, |a| a.placed_by.clone()),
            released_by,
            allow_relocation: self.allow_relocation,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ScopeRecord {
    pub zone_id: String,
    pub sku: String,
    pub lot_id: String,
    /// Added after the first builds: holds they placed read as not allowing relocation.
    #[serde(default, deserialize_with = "coldchain_store::absent_as_default")]
    pub allow_relocation: bool,
}

impl ScopeRecord {
    pub fn scope(self) -> HoldScope {
        HoldScope {
            zone_id: self.zone_id,
            sku: self.sku,
            lot_id: self.lot_id,
        }
    }

    /// The active hold `hold_id` as a relocation checks it.
    pub fn active_hold(self, hold_id: String) -> ActiveHold {
        let allow_relocation = self.allow_relocation;
        ActiveHold {
            hold_id,
            scope: self.scope(),
            allow_relocation,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PickRecord {
    pub lot_id: String,
    pub zone_id: String,
    pub expiry: i32,
    pub quantity: i64,
    pub consumed: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AllocationRecord {
    pub allocation_id: String,
    pub order_id: String,
    pub sku: String,
    pub unit: String,
    pub quantity: i64,
    pub strategy: i32,
    pub picks: Vec<PickRecord>,
    pub state: i32,
    pub created_ms: i64,
    pub closed_ms: Option<i64>,
}

impl AllocationRecord {
    pub fn is_active(&self) -> bool {
        self.state == STATE_ACTIVE
    }

    pub fn state(&self) -> Result<AllocationState, StoreError> {
        match self.state {
            STATE_ACTIVE => Ok(AllocationState::Active),
            STATE_CONSUMED => Ok(AllocationState::Consumed),
            STATE_RELEASED => Ok(AllocationState::Released),
            other => Err(StoreError::Corrupt(format!(
                "allocation {:?} has unknown state {other}",
                self.allocation_id
            ))),
        }
    }

    pub fn pick_states(&self) -> Vec<PickState> {
        self.picks
            .iter()
            .map(|p| PickState {
                lot_id: p.lot_id.clone(),
                zone_id: p.zone_id.clone(),
                quantity: p.quantity,
                consumed: p.consumed,
            })
            .collect()
    }

    pub fn allocation(&self) -> Result<Allocation, StoreError> {
        let strategy = match self.strategy {
            STRATEGY_FIFO => Strategy::Fifo,
            // Earlier builds stored 1 for FEFO; 0 (unset) also means FEFO.
            0 | STRATEGY_FEFO => Strategy::Fefo,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "allocation {:?} has unknown strategy {other}",
                    self.allocation_id
                )));
            }
        };
        Ok(Allocation {
            allocation_id: self.allocation_id.clone(),
            order_id: self.order_id.clone(),
            sku: self.sku.clone(),
            unit: self.unit.clone(),
            quantity: self.quantity,
            strategy,
            picks: self
                .picks
                .iter()
                .map(|p| Pick {
                    lot_id: p.lot_id.clone(),
                    expiry: domain::date_from_days(p.expiry),
                    zone_id: p.zone_id.clone(),
                    quantity: p.quantity,
                    consumed: p.consumed,
                })
                .collect(),
            state: self.state()?,
            created_ms: self.created_ms,
            closed_ms: self.closed_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use coldchain_store::Value;
    use serde::Serialize;

    use super::*;

    /// The rows of active holds as builds before relocations wrote them.
    #[derive(Serialize)]
    struct ScopeBefore {
        zone_id: String,
        sku: String,
        lot_id: String,
    }

    #[derive(Serialize)]
    struct HoldBefore {
        hold_id: String,
        zone_id: String,
        sku: String,
        lot_id: String,
        reason: String,
        reference: Option<ReferenceRecord>,
        active: bool,
        placed_ms: i64,
        released_ms: Option<i64>,
        release_reason: String,
    }

    #[test]
    fn holds_of_earlier_builds_read_as_not_allowing_relocation() {
        let scope = ScopeBefore {
            zone_id: String::new(),
            sku: "SKU".into(),
            lot_id: "L1".into(),
        };
        let bytes = postcard::to_allocvec(&scope).unwrap();
        let read = ScopeRecord::from_bytes(&bytes).expect("an earlier row decodes");
        assert_eq!((read.sku.as_str(), read.lot_id.as_str()), ("SKU", "L1"));
        assert!(!read.allow_relocation);

        let hold = HoldBefore {
            hold_id: "hold-7".into(),
            zone_id: "chilled-a".into(),
            sku: String::new(),
            lot_id: String::new(),
            reason: "excursion".into(),
            reference: None,
            active: true,
            placed_ms: 5,
            released_ms: None,
            release_reason: String::new(),
        };
        let bytes = postcard::to_allocvec(&hold).unwrap();
        let read = HoldRecord::from_bytes(&bytes).expect("an earlier row decodes");
        assert_eq!(read.hold_id, "hold-7");
        assert!(!read.hold(None).allow_relocation);

        // And today's rows keep the flag.
        let allowed = ScopeRecord {
            allow_relocation: true,
            ..read_scope(&scope)
        };
        let again = ScopeRecord::from_bytes(&allowed.to_bytes().unwrap()).unwrap();
        assert!(again.allow_relocation);
    }

    fn read_scope(scope: &ScopeBefore) -> ScopeRecord {
        ScopeRecord {
            zone_id: scope.zone_id.clone(),
            sku: scope.sku.clone(),
            lot_id: scope.lot_id.clone(),
            allow_relocation: false,
        }
    }
}
