//! Lots: the attributes fixed by a lot's first receipt, the lot as a movement states it,
//! and the lot as reported.

use chrono::NaiveDate;

/// The attributes of a lot as stored: fixed by its first receipt or transfer in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotAttributes {
    /// Last usable day (site-local).
    pub expiry: NaiveDate,
    /// Production day, if known.
    pub production: Option<NaiveDate>,
    /// Free-text origin; empty when unknown.
    pub origin: String,
}

/// The lot as a movement states it: only `lot_id` is always present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatedLot {
    /// The lot id.
    pub lot_id: String,
    /// The stated expiry.
    pub expiry: Option<NaiveDate>,
    /// The stated production date.
    pub production: Option<NaiveDate>,
    /// The stated origin; empty means "not stated".
    pub origin: String,
}

/// A stated attribute that contradicts the stored lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotConflict {
    /// `expiry`, `production` or `origin`.
    pub attribute: &'static str,
    /// The stored value.
    pub stored: String,
    /// The stated value.
    pub given: String,
}

impl StatedLot {
    /// The attributes of a new lot; `None` when the expiry (required on the first
    /// receipt) is missing.
    pub fn new_attributes(&self) -> Option<LotAttributes> {
        Some(LotAttributes {
            expiry: self.expiry?,
            production: self.production,
            origin: self.origin.clone(),
        })
    }

    /// Checks every stated attribute against the stored lot: attributes not stated are not
    /// checked; a stated attribute must equal the stored one.
    pub fn check_against(&self, stored: &LotAttributes) -> Result<(), LotConflict> {
        if let Some(expiry) = self.expiry
            && expiry != stored.expiry
        {
            return Err(LotConflict {
                attribute: "expiry",
                stored: stored.expiry.to_string(),
                given: expiry.to_string(),
            });
        }
        if let Some(production) = self.production
            && Some(production) != stored.production
        {
            return Err(LotConflict {
                attribute: "production",
                stored: stored
                    .production
                    .map_or_else(|| "none".to_string(), |d| d.to_string()),
                given: production.to_string(),
            });
        }
        if !self.origin.is_empty() && self.origin != stored.origin {
            return Err(LotConflict {
                attribute: "origin",
                stored: format!("{:?}", stored.origin),
                given: format!("{:?}", self.origin),
            });
        }
        Ok(())
    }
}

/// A lot as reported: its id and stored attributes (a date is `None` only when the stored
/// value is unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LotInfo {
    /// The lot id.
    pub lot_id: String,
    /// Last usable day.
    pub expiry: Option<NaiveDate>,
    /// Production day, if known.
    pub production: Option<NaiveDate>,
    /// Free-text origin; empty when unknown.
    pub origin: String,
}
