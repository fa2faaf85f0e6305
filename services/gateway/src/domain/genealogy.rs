//! A lot's genealogy, pure: the transformations (processing at a site) that made a lot and
//! those it went into, followed breadth-first from the traced lots.
//!
//! Upstream, from a lot that is an output, the walk reads its transformation and goes on to
//! the inputs, then to the transformations that made those (inputs only). Downstream, from a
//! lot that is an input, it goes on to the outputs, then to what those went into (outputs
//! only). Each lot is followed once and each transformation read once per direction, so a
//! cycle (impossible in a ledger, guarded anyway) ends the walk; at most `limit` lots are
//! linked, the nearest first (breadth-first), and the walk says when it stopped short.
//!
//! The walk does no I/O: the caller reads each lot's ledger entries and each transformation
//! at its site, and hands them in ([`Genealogy::transformations_of`], [`Genealogy::add`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The most lots a trace (and a recall) links through transformations.
pub const MAX_LINKED_LOTS: usize = 100;

/// A lot, network-wide: lot ids are the same at every site (transfers keep them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LotRef {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
}

impl LotRef {
    /// The lot `lot_id` of `sku`.
    pub fn new(sku: impl Into<String>, lot_id: impl Into<String>) -> Self {
        Self {
            sku: sku.into(),
            lot_id: lot_id.into(),
        }
    }
}

/// Which way from the traced lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Back to what the lot was made from.
    Upstream,
    /// On to what was made from it.
    Downstream,
}

/// A lot's side in a transformation, as one of its ledger entries records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Consumed by it (TRANSFORMATION_INPUT).
    Input,
    /// Produced by it (TRANSFORMATION_OUTPUT).
    Output,
}

/// A lot's ledger entry naming a transformation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformationEntry {
    /// The site that recorded it.
    pub site_id: String,
    /// The lot's side.
    pub side: Side,
    /// The transformation.
    pub transformation_id: String,
}

/// A transformation, by the site that recorded it (ids are a site's own).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransformationRef {
    /// The site.
    pub site_id: String,
    /// Its id there.
    pub transformation_id: String,
}

/// A transformation the walk is to read, and where it stands in the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToRead {
    /// The transformation.
    pub transformation: TransformationRef,
    /// Which way it was reached.
    pub direction: Direction,
    /// Transformations between the traced lot and it, itself included (1: the traced lot's
    /// own).
    pub depth: u32,
}

/// One lot's part in a transformation: its entries of that side summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotQuantity {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
    /// Consumed (an input) or produced (an output), in the sku's base unit, > 0.
    pub quantity: i64,
    /// The sku's base unit.
    pub unit: String,
}

impl LotQuantity {
    /// The lot.
    pub fn lot(&self) -> LotRef {
        LotRef::new(self.sku.clone(), self.lot_id.clone())
    }
}

/// A transformation as its site recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformationFacts {
    /// The site.
    pub site_id: String,
    /// Its id there.
    pub transformation_id: String,
    /// When it was recorded (UTC ms).
    pub at_ms: i64,
    /// The lots consumed, in the order of their first entry.
    pub inputs: Vec<LotQuantity>,
    /// The lots produced, in the order of their first entry.
    pub outputs: Vec<LotQuantity>,
}

/// One input and one output of a transformation of the genealogy. A transformation shows
/// as a link per input × output pair: all of its inputs and outputs, though the walk
/// follows only the side it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The site of the transformation.
    pub site_id: String,
    /// The transformation.
    pub transformation_id: String,
    /// When it was recorded (UTC ms).
    pub at_ms: i64,
    /// The input.
    pub input: LotQuantity,
    /// The output.
    pub output: LotQuantity,
    /// Which way from the traced lot.
    pub direction: Direction,
    /// Transformations between the traced lot and this link, this one included.
    pub depth: u32,
}

/// A lot the walk linked, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedLot {
    /// The lot.
    pub lot: LotRef,
    /// Which way from the traced lot.
    pub direction: Direction,
    /// Transformations between the traced lot and it.
    pub depth: u32,
}

/// The walk: the lots linked so far, the transformations read, the links found.
#[derive(Debug, Clone)]
pub struct Genealogy {
    /// The traced lots and the directions followed from them.
    roots: BTreeMap<LotRef, Vec<Direction>>,
    /// The lots linked, in the order found.
    linked: Vec<LinkedLot>,
    /// Every lot seen: the roots and the linked ones.
    seen: BTreeSet<LotRef>,
    /// Transformations already asked for, per direction.
    asked: BTreeSet<(TransformationRef, Direction)>,
    links: Vec<Link>,
    limit: usize,
    truncated: bool,
}

impl Genealogy {
    /// A walk from `roots` in `directions` (both for a trace, downstream for a recall),
    /// linking at most `limit` lots.
    pub fn new(roots: &[LotRef], directions: &[Direction], limit: usize) -> Self {
        Self {
            roots: roots
                .iter()
                .map(|lot| (lot.clone(), directions.to_vec()))
                .collect(),
            linked: Vec::new(),
            seen: roots.iter().cloned().collect(),
            asked: BTreeSet::new(),
            links: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// The transformations to read next from `lot`'s entries: from a root, those of the
    /// directions followed; from a linked lot, those of its own direction (upstream: what
    /// made it, downstream: what it went into). Each once.
    pub fn transformations_of(
        &mut self,
        lot: &LotRef,
        entries: &[TransformationEntry],
    ) -> Vec<ToRead> {
        let (directions, depth) = match self.roots.get(lot) {
            Some(directions) => (directions.clone(), 0),
            None => match self.linked.iter().find(|l| &l.lot == lot) {
                Some(linked) => (vec![linked.direction], linked.depth),
                None => return Vec::new(),
            },
        };
        let mut to_read = Vec::new();
        for entry in entries {
            let direction = match entry.side {
                Side::Output => Direction::Upstream,
                Side::Input => Direction::Downstream,
            };
            if !directions.contains(&direction) {
                continue;
            }
            let transformation = TransformationRef {
                site_id: entry.site_id.clone(),
                transformation_id: entry.transformation_id.clone(),
            };
            if self.asked.insert((transformation.clone(), direction)) {
                to_read.push(ToRead {
                    transformation,
                    direction,
                    depth: depth.saturating_add(1),
                });
            }
        }
        to_read
    }

    /// A transformation read: its links, and the lots on the side the walk goes to that
    /// were not seen yet (linked now, up to the limit; the rest make the walk truncated).
    pub fn add(&mut self, read: &ToRead, facts: &TransformationFacts) -> Vec<LotRef> {
        for input in &facts.inputs {
            for output in &facts.outputs {
                self.links.push(Link {
                    site_id: facts.site_id.clone(),
                    transformation_id: facts.transformation_id.clone(),
                    at_ms: facts.at_ms,
                    input: input.clone(),
                    output: output.clone(),
                    direction: read.direction,
                    depth: read.depth,
                });
            }
        }
        let onward = match read.direction {
            Direction::Upstream => &facts.inputs,
            Direction::Downstream => &facts.outputs,
        };
        let mut new = Vec::new();
        for lot in onward.iter().map(LotQuantity::lot) {
            if self.seen.contains(&lot) {
                continue;
            }
            if self.linked.len() >= self.limit {
                self.truncated = true;
                break;
            }
            self.seen.insert(lot.clone());
            self.linked.push(LinkedLot {
                lot: lot.clone(),
                direction: read.direction,
                depth: read.depth,
            });
            new.push(lot);
        }
        new
    }

    /// The links found, in the order found (nearest first).
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The lots linked, nearest first.
    pub fn linked(&self) -> &[LinkedLot] {
        &self.linked
    }

    /// More lots were linked than the walk follows.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The links and whether the walk stopped short.
    pub fn into_links(self) -> (Vec<Link>, bool) {
        (self.links, self.truncated)
    }
}

/// A transformation's entries summed per lot and side: `(side, sku, lot, quantity, unit,
/// recorded_ms)` in sequence order. Quantities are magnitudes (an input's delta is
/// negative).
pub fn transformation_facts(
    site_id: &str,
    transformation_id: &str,
    entries: impl IntoIterator<Item = (Side, String, String, i64, String, i64)>,
) -> TransformationFacts {
    let mut facts = TransformationFacts {
        site_id: site_id.to_string(),
        transformation_id: transformation_id.to_string(),
        at_ms: i64::MAX,
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    for (side, sku, lot_id, quantity, unit, recorded_ms) in entries {
        facts.at_ms = facts.at_ms.min(recorded_ms);
        let lots = match side {
            Side::Input => &mut facts.inputs,
            Side::Output => &mut facts.outputs,
        };
        let quantity = quantity.saturating_abs();
        match lots.iter_mut().find(|l| l.sku == sku && l.lot_id == lot_id) {
            Some(lot) => lot.quantity = lot.quantity.saturating_add(quantity),
            None => lots.push(LotQuantity {
                sku,
                lot_id,
                quantity,
                unit,
            }),
        }
    }
    if facts.at_ms == i64::MAX {
        facts.at_ms = 0;
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lq(sku: &str, lot: &str, quantity: i64) -> LotQuantity {
        LotQuantity {
            sku: sku.into(),
            lot_id: lot.into(),
            quantity,
            unit: "kg".into(),
        }
    }

    fn facts(id: &str, inputs: &[LotQuantity], outputs: &[LotQuantity]) -> TransformationFacts {
        TransformationFacts {
            site_id: "park".into(),
            transformation_id: id.into(),
            at_ms: 100,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
        }
    }

    fn entry(side: Side, id: &str) -> TransformationEntry {
        TransformationEntry {
            site_id: "park".into(),
            side,
            transformation_id: id.into(),
        }
    }

    #[test]
    fn downstream_follows_outputs_and_their_outputs_only() {
        let orange = LotRef::new("orange", "O1");
        let mut walk = Genealogy::new(std::slice::from_ref(&orange), &[Direction::Downstream], 100);
        // The orange lot was also made by a grading (output side): not followed downstream.
        let first = walk.transformations_of(
            &orange,
            &[entry(Side::Input, "T1"), entry(Side::Output, "G0")],
        );
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].transformation.transformation_id, "T1");
        assert_eq!(first[0].depth, 1);
        let t1 = facts(
            "T1",
            &[lq("orange", "O1", 500), lq("orange", "O2", 100)],
            &[lq("segment", "S1", 40), lq("juice", "J1", 90)],
        );
        let new = walk.add(&first[0], &t1);
        assert_eq!(
            new,
            vec![LotRef::new("segment", "S1"), LotRef::new("juice", "J1")]
        );
        // One link per input × output: 2 × 2; O2 (another input) is not followed.
        assert_eq!(walk.links().len(), 4);
        assert!(walk.linked().iter().all(|l| l.lot.sku != "orange"));
        // The segment lot went into a packing: depth 2. Its own making (T1) is not read again.
        let next = walk.transformations_of(
            &LotRef::new("segment", "S1"),
            &[entry(Side::Output, "T1"), entry(Side::Input, "P1")],
        );
        assert_eq!(next.len(), 1);
        assert_eq!(
            (
                next[0].transformation.transformation_id.as_str(),
                next[0].depth
            ),
            ("P1", 2)
        );
        let p1 = facts("P1", &[lq("segment", "S1", 40)], &[lq("case", "C1", 4)]);
        assert_eq!(walk.add(&next[0], &p1), vec![LotRef::new("case", "C1")]);
        let c1 = walk.linked().iter().find(|l| l.lot.lot_id == "C1").unwrap();
        assert_eq!((c1.direction, c1.depth), (Direction::Downstream, 2));
        assert!(!walk.truncated());
    }

    #[test]
    fn upstream_follows_inputs_and_both_ways_start_from_the_root_only() {
        let segment = LotRef::new("segment", "S1");
        let mut walk = Genealogy::new(
            std::slice::from_ref(&segment),
            &[Direction::Upstream, Direction::Downstream],
            100,
        );
        let first = walk.transformations_of(
            &segment,
            &[entry(Side::Output, "T1"), entry(Side::Input, "P1")],
        );
        let directions: Vec<_> = first.iter().map(|r| r.direction).collect();
        assert_eq!(directions, vec![Direction::Upstream, Direction::Downstream]);
        let t1 = facts(
            "T1",
            &[lq("orange", "O1", 500)],
            &[lq("segment", "S1", 40), lq("juice", "J1", 9)],
        );
        // Upstream: the inputs only, not the sibling juice lot.
        assert_eq!(walk.add(&first[0], &t1), vec![LotRef::new("orange", "O1")]);
        // The orange lot, found upstream, follows what made it, not what it went into.
        let from_orange = walk.transformations_of(
            &LotRef::new("orange", "O1"),
            &[
                entry(Side::Output, "R0"),
                entry(Side::Input, "T1"),
                entry(Side::Input, "T9"),
            ],
        );
        let ids: Vec<_> = from_orange
            .iter()
            .map(|r| r.transformation.transformation_id.as_str())
            .collect();
        assert_eq!(ids, vec!["R0"]);
        assert!(
            walk.links()
                .iter()
                .all(|l| l.direction == Direction::Upstream)
        );
    }

    #[test]
    fn each_lot_once_and_a_cycle_ends() {
        let a = LotRef::new("x", "A");
        let mut walk = Genealogy::new(std::slice::from_ref(&a), &[Direction::Downstream], 100);
        let read = walk.transformations_of(&a, &[entry(Side::Input, "T1")]);
        // A transformation that (impossibly) makes the root again makes no new lot.
        let cyc = facts(
            "T1",
            &[lq("x", "A", 1)],
            &[lq("x", "A", 1), lq("x", "B", 1)],
        );
        assert_eq!(walk.add(&read[0], &cyc), vec![LotRef::new("x", "B")]);
        let again = walk.transformations_of(&LotRef::new("x", "B"), &[entry(Side::Input, "T1")]);
        assert!(again.is_empty(), "T1 is read once downstream");
        assert!(
            walk.transformations_of(&LotRef::new("x", "Z"), &[entry(Side::Input, "T5")])
                .is_empty()
        );
    }

    #[test]
    fn at_most_the_limit_of_lots_is_linked() {
        let a = LotRef::new("x", "A");
        let mut walk = Genealogy::new(std::slice::from_ref(&a), &[Direction::Downstream], 3);
        let read = walk.transformations_of(&a, &[entry(Side::Input, "T1")]);
        let outputs: Vec<_> = (0..5).map(|i| lq("y", &format!("L{i}"), 1)).collect();
        let new = walk.add(&read[0], &facts("T1", &[lq("x", "A", 5)], &outputs));
        assert_eq!(new.len(), 3);
        assert!(walk.truncated());
        assert_eq!(walk.linked().len(), 3);
    }

    #[test]
    fn facts_sum_each_lot_over_its_entries() {
        let f = transformation_facts(
            "park",
            "T1",
            vec![
                (
                    Side::Input,
                    "orange".into(),
                    "O1".into(),
                    -300,
                    "kg".into(),
                    20,
                ),
                (
                    Side::Input,
                    "orange".into(),
                    "O1".into(),
                    -200,
                    "kg".into(),
                    20,
                ),
                (
                    Side::Output,
                    "segment".into(),
                    "S1".into(),
                    40,
                    "case".into(),
                    21,
                ),
            ],
        );
        assert_eq!(f.inputs, vec![lq("orange", "O1", 500)]);
        assert_eq!(f.outputs[0].quantity, 40);
        assert_eq!(f.outputs[0].unit, "case");
        assert_eq!(f.at_ms, 20);
    }
}
