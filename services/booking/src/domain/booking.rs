//! Lifecycle states of a booking, the booking as stored, and how it lapses on its own.

use std::fmt;

use chrono::NaiveDate;
use coldchain_audit::Author;
use serde::{Deserialize, Deserializer, Serialize};

use super::capacity::{Bucket, Occupancy};

/// The lifecycle state of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BookingState {
    /// Space held until `expires_at`.
    Held,
    /// Confirmed, awaiting check-in.
    Confirmed,
    /// The goods arrived.
    CheckedIn,
    /// The goods left. Final.
    Completed,
    /// Cancelled. Final.
    Cancelled,
    /// A hold that lapsed. Final.
    Expired,
    /// A confirmed booking never checked in. Final.
    NoShow,
}

impl BookingState {
    /// Every state, in lifecycle order.
    pub const ALL: [BookingState; 7] = [
        BookingState::Held,
        BookingState::Confirmed,
        BookingState::CheckedIn,
        BookingState::Completed,
        BookingState::Cancelled,
        BookingState::Expired,
        BookingState::NoShow,
    ];

    /// The name used in messages: `HELD`, `CONFIRMED`, …
    pub const fn name(self) -> &'static str {
        match self {
            BookingState::Held => "HELD",
            BookingState::Confirmed => "CONFIRMED",
            BookingState::CheckedIn => "CHECKED_IN",
            BookingState::Completed => "COMPLETED",
            BookingState::Cancelled => "CANCELLED",
            BookingState::Expired => "EXPIRED",
            BookingState::NoShow => "NO_SHOW",
        }
    }

    /// HELD, CONFIRMED and CHECKED_IN count against capacity on every day of the range.
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            BookingState::Held | BookingState::Confirmed | BookingState::CheckedIn
        )
    }
}

impl fmt::Display for BookingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Server-assigned id.
    pub booking_id: String,
    /// Who holds it.
    pub customer_id: String,
    /// The customer's own reference (may be empty).
    pub customer_reference: String,
    /// The zone.
    pub zone_id: String,
    /// The zone's temperature class name (`FROZEN`, …).
    pub class: String,
    /// Pallets per day, > 0.
    pub pallets: u32,
    /// Pallets that arrived (0 before check-in).
    pub pallets_arrived: u32,
    /// First day, inclusive (site-local).
    pub first_day: NaiveDate,
    /// Last day, inclusive (site-local).
    pub last_day: NaiveDate,
    /// The stored state (see [`Booking::effective`] for the state at an instant).
    pub state: BookingState,
    /// When the hold lapses (kept afterwards).
    pub expires_at_ms: i64,
    /// Set at confirmation: when it becomes NO_SHOW unless checked in.
    pub check_in_deadline_ms: Option<i64>,
    /// Created (HoldSpace).
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
    /// CANCELLED: why.
    pub cancel_reason: String,
    /// COMPLETED: the last day still counted (the day of completion, at most `last_day`);
    /// `None` when completion came before `first_day`.
    pub completed_through: Option<NaiveDate>,
    /// Every change of state with who made it, oldest first. Empty in rows stored before
    /// the service kept authors (see [`Booking::history`]). Last, so that the rows and
    /// ledger entries of earlier builds (postcard, which ends where they end) still decode.
    #[serde(default, deserialize_with = "changes_or_none")]
    pub changes: Vec<BookingChange>,
}

/// One change of a booking's state: the state it entered, when, and who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingChange {
    /// The state entered.
    pub state: BookingState,
    /// When (ms since the epoch).
    pub changed_at_ms: i64,
    /// Who made it.
    pub changed_by: Author,
}

/// The changes of a stored booking, or none for a row an earlier build wrote: its bytes end
/// before the field, which a format without field tags (postcard) reports as an error here.
fn changes_or_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<BookingChange>, D::Error> {
    Ok(Vec::<BookingChange>::deserialize(deserializer).unwrap_or_default())
}

impl Booking {
    /// Every change of state, oldest first, with who made it. A booking stored before the
    /// service kept authors shows only what its row proves, by principal "unknown": HELD at
    /// `created_at`, and the state it is in at `updated_at` (the steps between are lost).
    pub fn history(&self) -> Vec<BookingChange> {
        if !self.changes.is_empty() {
            return self.changes.clone();
        }
        let mut proven = vec![BookingChange {
            state: BookingState::Held,
            changed_at_ms: self.created_at_ms,
            changed_by: Author::unknown(),
        }];
        if self.state != BookingState::Held {
            proven.push(BookingChange {
                state: self.state,
                changed_at_ms: self.updated_at_ms,
                changed_by: Author::unknown(),
            });
        }
        proven
    }

    /// The last change, as [`Booking::history`] shows it.
    pub fn last_change(&self) -> Option<BookingChange> {
        self.history().pop()
    }

    /// `after` (this booking changed into its state at its `updated_at`), with the change
    /// appended to this booking's history, made by `author`.
    pub fn with_change(&self, after: Booking, author: &Author) -> Booking {
        let mut changes = self.history();
        changes.push(BookingChange {
            state: after.state,
            changed_at_ms: after.updated_at_ms,
            changed_by: author.clone(),
        });
        Booking { changes, ..after }
    }

    /// What it holds against the counters, by its stored state.
    pub fn occupancy(&self) -> Option<Occupancy> {
        let whole = |bucket| {
            Some(Occupancy {
                bucket,
                first: self.first_day,
                last: self.last_day,
                pallets: self.pallets,
            })
        };
        match self.state {
            BookingState::Held => whole(Bucket::Held),
            BookingState::Confirmed => whole(Bucket::Confirmed),
            BookingState::CheckedIn => whole(Bucket::CheckedIn),
            BookingState::Completed => self
                .completed_through
                .filter(|through| *through >= self.first_day)
                .map(|through| Occupancy {
                    bucket: Bucket::CheckedIn,
                    first: self.first_day,
                    last: through.min(self.last_day),
                    pallets: self.pallets,
                }),
            BookingState::Cancelled | BookingState::Expired | BookingState::NoShow => None,
        }
    }

    /// The instant after which it lapses on its own (HELD: `expires_at`; CONFIRMED: the
    /// check-in deadline). This is the key of the due index.
    pub fn due_at(&self) -> Option<i64> {
        match self.state {
            BookingState::Held => Some(self.expires_at_ms),
            BookingState::Confirmed => self.check_in_deadline_ms,
            _ => None,
        }
    }

    /// True when at `now_ms` it has lapsed (strictly past its due instant) but is still
    /// stored as HELD or CONFIRMED.
    pub fn is_lapsed(&self, now_ms: i64) -> bool {
        self.due_at().is_some_and(|due| now_ms > due)
    }

    /// The lapsed version: HELD → EXPIRED, CONFIRMED → NO_SHOW, dated at the due instant.
    /// `None` for other states.
    pub fn lapsed(&self) -> Option<Booking> {
        let due = self.due_at()?;
        let state = match self.state {
            BookingState::Held => BookingState::Expired,
            BookingState::Confirmed => BookingState::NoShow,
            _ => return None,
        };
        // Nobody asked for a lapse: the service records it as its own change.
        Some(self.with_change(
            Booking {
                state,
                updated_at_ms: due.max(self.updated_at_ms),
                ..self.clone()
            },
            &Author::system(),
        ))
    }

    /// The booking as it is at `now_ms`: a lapsed hold reads as EXPIRED, a confirmed
    /// booking past its check-in deadline as NO_SHOW, whether or not the sweeper has
    /// stored that yet.
    pub fn effective(&self, now_ms: i64) -> Booking {
        if self.is_lapsed(now_ms) {
            self.lapsed().unwrap_or_else(|| self.clone())
        } else {
            self.clone()
        }
    }

    /// True when it occupies at least one day of `first..=last` (either bound open).
    pub fn overlaps(&self, first: Option<NaiveDate>, last: Option<NaiveDate>) -> bool {
        first.is_none_or(|f| self.last_day >= f) && last.is_none_or(|l| self.first_day <= l)
    }
}

/// One ledger entry: the booking as it is after the change (its state says what happened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The entry's sequence number.
    pub sequence: u64,
    /// When it was written (store clock, ms since the epoch).
    pub recorded_at_ms: i64,
    /// The booking after the change.
    pub booking: Booking,
}
