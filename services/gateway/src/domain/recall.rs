//! Recalls: a lot (or every lot of a sku) held at every site of the network in one call,
//! and released in one call.
//!
//! A recall is one hold per (site, lot) — the whole sku's when no lot is named — placed by
//! the gateway at the site's inventory, durably: the recall is recorded first, then each
//! hold is driven to its end by the handler and the drainer, like a transfer's steps. A
//! site that has never had the lot refuses the hold (NOT_FOUND); while a transfer carrying
//! the lot travels to it, its hold waits for the arrival and is tried again (under a new
//! request id, since a refusal is remembered under its id), else the site is done: the lot
//! is not there. Holds are scoped to the lot, so stock of the lot that reaches a held site
//! later is held too.
//!
//! RELEASING releases every hold placed, then the recall is RELEASED. Holds not placed by
//! then are cancelled.
//!
//! With `include_derived`, the lots made from the recalled lots by transformations (the
//! downstream genealogy, as it stands when the recall starts) get holds of their own: one
//! per (site, sku, lot), driven exactly like the recalled lots' holds.

use coldchain_audit::Author;
use serde::{Deserialize, Serialize};

use super::genealogy::{Link, LotRef};
use super::rules::MAX_STEP_REQUEST_ID_BYTES;

/// The state of a recall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecallState {
    /// Its holds are placed, or being placed.
    Active,
    /// ReleaseRecall was asked: its holds are being released.
    Releasing,
    /// Every hold it placed is released. Final.
    Released,
}

impl RecallState {
    /// The proto name without prefix.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecallState::Active => "ACTIVE",
            RecallState::Releasing => "RELEASING",
            RecallState::Released => "RELEASED",
        }
    }
}

/// Where one (site, lot) hold of a recall stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStep {
    /// To be placed (the site did not answer yet, or refused for a reason that may clear).
    Pending,
    /// The site has not had the lot yet, and a transfer carrying it travels there: tried
    /// again after the arrival.
    AwaitingArrival,
    /// Placed (see `hold_id`).
    Held,
    /// The site has never had the lot and nothing carrying it travels there. Final.
    NotPresent,
    /// Placed, then released by ReleaseRecall. Final.
    Released,
    /// Never placed: the recall was released first. Final.
    Cancelled,
}

impl HoldStep {
    /// The proto name without prefix.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldStep::Pending => "PENDING",
            HoldStep::AwaitingArrival => "AWAITING_ARRIVAL",
            HoldStep::Held => "HELD",
            HoldStep::NotPresent => "NOT_PRESENT",
            HoldStep::Released => "RELEASED",
            HoldStep::Cancelled => "CANCELLED",
        }
    }
}

/// One (site, sku, lot) hold of a recall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallHold {
    /// The site.
    pub site_id: String,
    /// The sku: the recall's own, or a derived lot's. Stored after the recall's other
    /// fields (see `store::stored`), so a recall of an earlier build still decodes.
    #[serde(skip)]
    pub sku: String,
    /// The lot; empty: every lot of the sku.
    pub lot_id: String,
    /// Where it stands.
    pub step: HoldStep,
    /// The site's hold, once placed.
    pub hold_id: String,
    /// NOT_FOUND answers so far: each retry after one uses a new request id.
    pub refusals: u32,
    /// The latest error of an attempt ("CODE: message"); empty when none.
    pub last_error: String,
}

/// What a client asks to recall, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallSpec {
    /// The id the client chose, if any.
    pub recall_id: Option<String>,
    /// The sku.
    pub sku: String,
    /// The lots; empty: every lot of the sku.
    pub lot_ids: Vec<String>,
    /// Why.
    pub reason: String,
    /// Also hold the lots made from these (downstream genealogy).
    pub include_derived: bool,
}

/// A recall as the gateway stores it.
///
/// The fields serde skips (`include_derived`, `derived`, each hold's `sku`) are stored
/// after the others by `store::stored`: records of earlier builds end before them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recall {
    /// Its id.
    pub recall_id: String,
    /// The sku.
    pub sku: String,
    /// The lots; empty: every lot of the sku.
    pub lot_ids: Vec<String>,
    /// Why it was recalled.
    pub reason: String,
    /// The state now.
    pub state: RecallState,
    /// One per (site, lot), in network order.
    pub holds: Vec<RecallHold>,
    /// Who started it.
    pub started_by: Author,
    /// When RecallLot recorded it (UTC ms).
    pub created_ms: i64,
    /// Who asked for the release.
    pub released_by: Option<Author>,
    /// Why it was released.
    pub release_reason: String,
    /// When ReleaseRecall was recorded.
    pub release_requested_ms: Option<i64>,
    /// When the last hold was released.
    pub released_ms: Option<i64>,
    /// When it last changed.
    pub updated_ms: i64,
    /// Asked with include_derived.
    #[serde(skip)]
    pub include_derived: bool,
    /// The links through which the derived lots were found, when it started.
    #[serde(skip)]
    pub derived: Vec<Link>,
}

/// Why a recall operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecallError {
    /// No recall with this id.
    #[error("recall_id {0:?} not found")]
    NotFound(String),
    /// The id is taken by a recall of something else.
    #[error("recall_id {0:?} is already taken by a different recall")]
    AlreadyExists(String),
    /// No such hold in the recall (a driver's bug, never a client's).
    #[error("recall {recall_id:?} has no hold at {site_id:?} for lot {lot_id:?} of {sku:?}")]
    NoSuchHold {
        /// The recall.
        recall_id: String,
        /// The site.
        site_id: String,
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
    },
}

/// The recall id the gateway assigns: `rc-<ms>-<12 hex of the request digest>`.
pub fn assigned_recall_id(request_digest: &[u8; 32], now_ms: i64) -> String {
    let hex: String = request_digest
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("rc-{now_ms}-{hex}")
}

impl Recall {
    /// A new ACTIVE recall with a pending hold per site and lot: its own lots', then (with
    /// include_derived) each lot the `derived` links produced, other than its own.
    pub fn new(
        recall_id: String,
        spec: RecallSpec,
        sites: &[String],
        derived: Vec<Link>,
        by: Author,
        now_ms: i64,
    ) -> Self {
        let mut lots: Vec<LotRef> = if spec.lot_ids.is_empty() {
            vec![LotRef::new(spec.sku.clone(), String::new())]
        } else {
            spec.lot_ids
                .iter()
                .map(|lot| LotRef::new(spec.sku.clone(), lot.clone()))
                .collect()
        };
        let derived = if spec.include_derived {
            derived
        } else {
            Vec::new()
        };
        for link in &derived {
            let lot = link.output.lot();
            let own = lot.sku == spec.sku && (spec.lot_ids.is_empty() || lots.contains(&lot));
            if !own && !lots.contains(&lot) {
                lots.push(lot);
            }
        }
        let holds = sites
            .iter()
            .flat_map(|site| {
                lots.iter().map(move |lot| RecallHold {
                    site_id: site.clone(),
                    sku: lot.sku.clone(),
                    lot_id: lot.lot_id.clone(),
                    step: HoldStep::Pending,
                    hold_id: String::new(),
                    refusals: 0,
                    last_error: String::new(),
                })
            })
            .collect();
        Self {
            recall_id,
            sku: spec.sku,
            lot_ids: spec.lot_ids,
            reason: spec.reason,
            state: RecallState::Active,
            holds,
            started_by: by,
            created_ms: now_ms,
            released_by: None,
            release_reason: String::new(),
            release_requested_ms: None,
            released_ms: None,
            updated_ms: now_ms,
            include_derived: spec.include_derived,
            derived,
        }
    }

    /// True when `spec` asks for this recall (a RecallLot repeating it is not "a different
    /// recall").
    pub fn same_definition(&self, spec: &RecallSpec) -> bool {
        self.sku == spec.sku
            && self.lot_ids == spec.lot_ids
            && self.reason == spec.reason
            && self.include_derived == spec.include_derived
    }

    /// The holds a driver has to work on now: to place while ACTIVE, to release while
    /// RELEASING.
    pub fn open_holds(&self) -> Vec<RecallHold> {
        self.holds
            .iter()
            .filter(|h| match self.state {
                RecallState::Active => {
                    matches!(h.step, HoldStep::Pending | HoldStep::AwaitingArrival)
                }
                RecallState::Releasing => h.step == HoldStep::Held,
                RecallState::Released => false,
            })
            .cloned()
            .collect()
    }

    /// True while a driver has work to do.
    pub fn needs_work(&self) -> bool {
        !self.open_holds().is_empty()
    }

    fn hold_mut(&mut self, key: &HoldKey) -> Result<&mut RecallHold, RecallError> {
        let recall_id = self.recall_id.clone();
        self.holds
            .iter_mut()
            .find(|h| h.site_id == key.site_id && h.sku == key.sku && h.lot_id == key.lot_id)
            .ok_or_else(|| RecallError::NoSuchHold {
                recall_id,
                site_id: key.site_id.clone(),
                sku: key.sku.clone(),
                lot_id: key.lot_id.clone(),
            })
    }

    /// The site placed the hold. False (nothing to record) unless it was still to place.
    pub fn hold_placed(
        &mut self,
        key: &HoldKey,
        hold_id: &str,
        now_ms: i64,
    ) -> Result<bool, RecallError> {
        let placing = self.state == RecallState::Active;
        let hold = self.hold_mut(key)?;
        if !placing || !matches!(hold.step, HoldStep::Pending | HoldStep::AwaitingArrival) {
            return Ok(false);
        }
        hold.step = HoldStep::Held;
        hold.hold_id = hold_id.to_string();
        hold.last_error.clear();
        self.updated_ms = now_ms;
        Ok(true)
    }

    /// The site has never had the lot: done, unless `travelling_there` (a transfer carrying
    /// it is on its way), then it waits for the arrival under a new request id.
    pub fn not_present(
        &mut self,
        key: &HoldKey,
        travelling_there: bool,
        error: String,
        now_ms: i64,
    ) -> Result<bool, RecallError> {
        let placing = self.state == RecallState::Active;
        let hold = self.hold_mut(key)?;
        if !placing || !matches!(hold.step, HoldStep::Pending | HoldStep::AwaitingArrival) {
            return Ok(false);
        }
        hold.refusals = hold.refusals.saturating_add(1);
        if travelling_there {
            hold.step = HoldStep::AwaitingArrival;
            hold.last_error = error;
        } else {
            hold.step = HoldStep::NotPresent;
            hold.last_error.clear();
        }
        self.updated_ms = now_ms;
        Ok(true)
    }

    /// An attempt failed in a way that may clear (the site is down, or refused otherwise):
    /// the hold stays to do, with the error.
    pub fn attempt_failed(
        &mut self,
        key: &HoldKey,
        error: String,
        now_ms: i64,
    ) -> Result<bool, RecallError> {
        let hold = self.hold_mut(key)?;
        if hold.last_error == error {
            return Ok(false);
        }
        hold.last_error = error;
        self.updated_ms = now_ms;
        Ok(true)
    }

    /// ReleaseRecall: ACTIVE → RELEASING (holds not placed yet are cancelled); RELEASED at
    /// once when nothing was placed. Repeating it changes nothing.
    pub fn release(&mut self, by: Author, reason: String, now_ms: i64) -> bool {
        if self.state != RecallState::Active {
            return false;
        }
        for hold in &mut self.holds {
            if matches!(hold.step, HoldStep::Pending | HoldStep::AwaitingArrival) {
                hold.step = HoldStep::Cancelled;
            }
        }
        self.state = RecallState::Releasing;
        self.released_by = Some(by);
        self.release_reason = reason;
        self.release_requested_ms = Some(now_ms);
        self.updated_ms = now_ms;
        self.finish_release(now_ms);
        true
    }

    /// The site released the hold.
    pub fn hold_released(&mut self, key: &HoldKey, now_ms: i64) -> Result<bool, RecallError> {
        let releasing = self.state == RecallState::Releasing;
        let hold = self.hold_mut(key)?;
        if !releasing || hold.step != HoldStep::Held {
            return Ok(false);
        }
        hold.step = HoldStep::Released;
        hold.last_error.clear();
        self.updated_ms = now_ms;
        self.finish_release(now_ms);
        Ok(true)
    }

    fn finish_release(&mut self, now_ms: i64) {
        if self.state == RecallState::Releasing
            && !self.holds.iter().any(|h| h.step == HoldStep::Held)
        {
            self.state = RecallState::Released;
            self.released_ms = Some(now_ms);
        }
    }

    /// The request id of placing `hold` at its site (a new one after each NOT_FOUND). A
    /// derived lot's names its sku; the recall's own lots' are those earlier builds used.
    pub fn place_request_id(&self, hold: &RecallHold) -> String {
        if hold.sku == self.sku {
            self.step_request_id(&format!(
                "hold:{}:{}:{}",
                hold.site_id, hold.lot_id, hold.refusals
            ))
        } else {
            self.step_request_id(&format!(
                "hold:{}:{}:{}:{}",
                hold.site_id, hold.sku, hold.lot_id, hold.refusals
            ))
        }
    }

    /// The lots made from the recalled ones that it holds: (sku, lot), in hold order.
    pub fn derived_lots(&self) -> Vec<LotRef> {
        let mut lots: Vec<LotRef> = Vec::new();
        for hold in self
            .holds
            .iter()
            .filter(|h| h.sku != self.sku || !self.is_own_lot(&h.lot_id))
        {
            let lot = LotRef::new(hold.sku.clone(), hold.lot_id.clone());
            if !lots.contains(&lot) {
                lots.push(lot);
            }
        }
        lots
    }

    fn is_own_lot(&self, lot_id: &str) -> bool {
        self.lot_ids.is_empty() || self.lot_ids.iter().any(|l| l == lot_id)
    }

    /// The request id of releasing `hold`.
    pub fn release_request_id(&self, hold: &RecallHold) -> String {
        self.step_request_id(&format!("release:{}:{}", hold.site_id, hold.hold_id))
    }

    /// `gateway:recall:<recall_id>:<step>`, or a digest of it when longer than a request id
    /// may be.
    fn step_request_id(&self, step: &str) -> String {
        let plain = format!("gateway:recall:{}:{step}", self.recall_id);
        if plain.len() <= MAX_STEP_REQUEST_ID_BYTES {
            return plain;
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(plain.as_bytes());
        let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        format!("gateway:recall:sha256-{hex}")
    }

    /// The reason written on each hold: the recall's id and reason.
    pub fn hold_reason(&self) -> String {
        let text = format!("recall {}: {}", self.recall_id, self.reason);
        // Hold reasons are at most 512 bytes (common text rules); cut on a char boundary.
        let mut end = text.len().min(512);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    }
}

/// Which hold of a recall: (site, sku, lot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldKey {
    /// The site.
    pub site_id: String,
    /// The sku.
    pub sku: String,
    /// The lot; empty: every lot of the sku.
    pub lot_id: String,
}

impl RecallHold {
    /// Its key.
    pub fn key(&self) -> HoldKey {
        HoldKey {
            site_id: self.site_id.clone(),
            sku: self.sku.clone(),
            lot_id: self.lot_id.clone(),
        }
    }
}

/// The answer an idempotent recall call keeps for its replays: the recall it concerns. A
/// replay answers the recall's current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecallRef {
    /// The recall's id.
    pub recall_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(site: &str, lot: &str) -> HoldKey {
        HoldKey {
            site_id: site.into(),
            sku: "citrus".into(),
            lot_id: lot.into(),
        }
    }

    fn recall(lots: &[&str]) -> Recall {
        Recall::new(
            "R-1".into(),
            RecallSpec {
                recall_id: Some("R-1".into()),
                sku: "citrus".into(),
                lot_ids: lots.iter().map(|l| l.to_string()).collect(),
                reason: "listeria found".into(),
                include_derived: false,
            },
            &["park".to_string(), "vte".to_string()],
            Vec::new(),
            Author::new("ops-1", "Anna"),
            100,
        )
    }

    #[test]
    fn a_recall_has_one_pending_hold_per_site_and_lot() {
        let r = recall(&["L1", "L2"]);
        let holds: Vec<_> = r
            .holds
            .iter()
            .map(|h| (h.site_id.as_str(), h.lot_id.as_str()))
            .collect();
        assert_eq!(
            holds,
            vec![("park", "L1"), ("park", "L2"), ("vte", "L1"), ("vte", "L2")]
        );
        assert!(r.holds.iter().all(|h| h.step == HoldStep::Pending));
        assert!(r.needs_work());
        let every_lot = recall(&[]);
        assert_eq!(every_lot.holds.len(), 2);
        assert!(every_lot.holds.iter().all(|h| h.lot_id.is_empty()));
    }

    fn made(input: &str, output: (&str, &str)) -> Link {
        use crate::domain::genealogy::{Direction, LotQuantity};
        let lot = |sku: &str, lot: &str| LotQuantity {
            sku: sku.into(),
            lot_id: lot.into(),
            quantity: 1,
            unit: "kg".into(),
        };
        Link {
            site_id: "park".into(),
            transformation_id: "PR-1".into(),
            at_ms: 50,
            input: lot("citrus", input),
            output: lot(output.0, output.1),
            direction: Direction::Downstream,
            depth: 1,
        }
    }

    #[test]
    fn derived_lots_get_a_hold_per_site_with_their_own_sku() {
        let links = vec![
            made("L1", ("segment", "S1")),
            made("L1", ("juice", "J1")),
            // Two inputs make the same output: one hold per site.
            made("L2", ("segment", "S1")),
            // A recalled lot among the outputs (rework) is not held twice.
            made("L1", ("citrus", "L2")),
        ];
        let spec = |include_derived| RecallSpec {
            recall_id: Some("R-2".into()),
            sku: "citrus".into(),
            lot_ids: vec!["L1".into(), "L2".into()],
            reason: "listeria".into(),
            include_derived,
        };
        let sites = ["park".to_string(), "vte".to_string()];
        let by = Author::new("ops-1", "");
        let r = Recall::new(
            "R-2".into(),
            spec(true),
            &sites,
            links.clone(),
            by.clone(),
            100,
        );
        let holds: Vec<_> = r
            .holds
            .iter()
            .map(|h| (h.site_id.as_str(), h.sku.as_str(), h.lot_id.as_str()))
            .collect();
        assert_eq!(
            holds,
            vec![
                ("park", "citrus", "L1"),
                ("park", "citrus", "L2"),
                ("park", "segment", "S1"),
                ("park", "juice", "J1"),
                ("vte", "citrus", "L1"),
                ("vte", "citrus", "L2"),
                ("vte", "segment", "S1"),
                ("vte", "juice", "J1"),
            ]
        );
        assert_eq!(
            r.derived_lots(),
            vec![LotRef::new("segment", "S1"), LotRef::new("juice", "J1")]
        );
        assert_eq!(r.derived.len(), 4);
        // A derived hold's request id names its sku; the recall's own keep their old form.
        assert_eq!(
            r.place_request_id(&r.holds[2]),
            "gateway:recall:R-2:hold:park:segment:S1:0"
        );
        assert_eq!(
            r.place_request_id(&r.holds[0]),
            "gateway:recall:R-2:hold:park:L1:0"
        );
        let mut r = r;
        let segment_at_park = r.holds[2].key();
        assert!(r.hold_placed(&segment_at_park, "hold-9", 200).unwrap());
        assert_eq!(r.holds[2].step, HoldStep::Held);
        assert_eq!(
            r.holds[0].step,
            HoldStep::Pending,
            "the same lot id of another sku is another hold"
        );

        // Without include_derived the links are ignored, and it is another definition.
        let plain = Recall::new("R-2".into(), spec(false), &sites, links, by, 100);
        assert_eq!(plain.holds.len(), 4);
        assert!(plain.derived.is_empty());
        assert!(!plain.same_definition(&spec(true)));
    }

    #[test]
    fn holds_placed_or_absent_end_the_work() {
        let mut r = recall(&["L1"]);
        assert!(r.hold_placed(&key("park", "L1"), "hold-7", 200).unwrap());
        assert!(
            !r.hold_placed(&key("park", "L1"), "hold-8", 201).unwrap(),
            "placed once"
        );
        assert_eq!(r.holds[0].hold_id, "hold-7");
        assert!(r.needs_work());
        assert!(
            r.not_present(&key("vte", "L1"), false, "NOT_FOUND: x".into(), 300)
                .unwrap()
        );
        assert_eq!(r.holds[1].step, HoldStep::NotPresent);
        assert!(!r.needs_work());
        assert!(r.hold_placed(&key("nowhere", "L1"), "h", 1).is_err());
    }

    #[test]
    fn a_site_awaiting_an_arrival_is_tried_again_under_a_new_request_id() {
        let mut r = recall(&["L1"]);
        let first = r.place_request_id(&r.holds[1].clone());
        r.not_present(&key("vte", "L1"), true, "NOT_FOUND: lot".into(), 200)
            .unwrap();
        assert_eq!(r.holds[1].step, HoldStep::AwaitingArrival);
        assert!(r.needs_work());
        let second = r.place_request_id(&r.holds[1].clone());
        assert_ne!(first, second);
        // A site that fails otherwise keeps its request id: the retry replays the same call.
        r.attempt_failed(&key("park", "L1"), "UNAVAILABLE: down".into(), 210)
            .unwrap();
        assert_eq!(
            r.place_request_id(&r.holds[0].clone()),
            "gateway:recall:R-1:hold:park:L1:0"
        );
        assert!(r.hold_placed(&key("vte", "L1"), "hold-3", 300).unwrap());
    }

    #[test]
    fn release_releases_what_was_placed_and_cancels_the_rest() {
        let mut r = recall(&["L1"]);
        r.hold_placed(&key("park", "L1"), "hold-7", 200).unwrap();
        assert!(r.release(Author::new("ops-2", ""), "lab clear".into(), 300));
        assert!(
            !r.release(Author::new("ops-3", ""), "again".into(), 301),
            "once"
        );
        assert_eq!(r.state, RecallState::Releasing);
        assert_eq!(r.holds[1].step, HoldStep::Cancelled);
        assert_eq!(r.open_holds().len(), 1);
        assert!(
            !r.hold_placed(&key("vte", "L1"), "late", 302).unwrap(),
            "nothing placed after a release"
        );
        assert!(r.hold_released(&key("park", "L1"), 400).unwrap());
        assert_eq!(r.state, RecallState::Released);
        assert_eq!(r.released_ms, Some(400));
        assert!(!r.needs_work());
    }

    #[test]
    fn a_recall_with_nothing_placed_is_released_at_once() {
        let mut r = recall(&["L1"]);
        r.release(Author::new("ops-2", ""), "mistake".into(), 300);
        assert_eq!(r.state, RecallState::Released);
    }

    #[test]
    fn request_ids_stay_within_the_limit() {
        let mut r = recall(&["L1"]);
        r.recall_id = "r".repeat(128);
        let id = r.place_request_id(&r.holds[0].clone());
        assert!(id.len() <= MAX_STEP_REQUEST_ID_BYTES, "{id}");
        assert_ne!(id, r.release_request_id(&r.holds[0].clone()));
        assert!(r.hold_reason().starts_with("recall rrr"));
    }
}
