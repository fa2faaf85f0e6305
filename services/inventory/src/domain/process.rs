//! Processing and moves inside a site: transformations (lots consumed, lots produced, the
//! link between them kept) and relocations between zones, with the rules a batch of them
//! must follow before any stock moves.

use std::collections::BTreeMap;

use coldchain_network::TemperatureClass;

use super::{HoldScope, LedgerEntry, MAX_QUANTITY, Movement, MovementKind};

/// Longest work order reference, in bytes.
pub const MAX_WORK_ORDER_LEN: usize = 128;

/// A transformation as its request states it (and its ledger entries repeat it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransformationSpec {
    /// The id at this site, chosen by the client.
    pub transformation_id: String,
    /// The work order behind it (may be empty).
    pub work_order: String,
    /// Mass in, grams (> 0).
    pub input_mass_g: i64,
    /// Mass out, grams (≥ 0).
    pub output_mass_g: i64,
    /// Mass discarded, grams (≥ 0).
    pub waste_mass_g: i64,
    /// Expired inputs are written off instead of refused.
    pub write_off: bool,
}

impl TransformationSpec {
    /// The problems of its form, as (field, problem) pairs relative to the message.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(problem) = super::check_text(&self.work_order, MAX_WORK_ORDER_LEN, false) {
            problems.push(("work_order", problem));
        }
        if self.work_order.contains('\n') || self.work_order.contains('\t') {
            problems.push(("work_order", "must be one line".to_string()));
        }
        let mass =
            |name: &'static str, grams: i64, positive: bool| -> Option<(&'static str, String)> {
                if grams > MAX_QUANTITY {
                    Some((name, format!("{grams} g is beyond {MAX_QUANTITY} g")))
                } else if positive && grams <= 0 {
                    Some((name, format!("must be above 0 g, got {grams}")))
                } else if grams < 0 {
                    Some((name, format!("must not be negative, got {grams}")))
                } else {
                    None
                }
            };
        problems.extend(mass("input_mass_g", self.input_mass_g, true));
        problems.extend(mass("output_mass_g", self.output_mass_g, false));
        problems.extend(mass("waste_mass_g", self.waste_mass_g, false));
        problems
    }
}

/// A transformation as recorded: what was stated, its inputs' and outputs' entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTransformation {
    /// What its request stated.
    pub spec: TransformationSpec,
    /// Its TRANSFORMATION_INPUT entries, in sequence order.
    pub inputs: Vec<LedgerEntry>,
    /// Its TRANSFORMATION_OUTPUT entries, in sequence order.
    pub outputs: Vec<LedgerEntry>,
}

/// Where a relocation went, as both of its ledger entries record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocationInfo {
    /// The zone the stock left.
    pub from_zone_id: String,
    /// The zone it went to.
    pub to_zone_id: String,
    /// The class of `from_zone_id`.
    pub from_class: TemperatureClass,
    /// The class of `to_zone_id`.
    pub to_class: TemperatureClass,
}

/// Why the transformations of a batch are malformed (checked with the request's form,
/// before anything is read): `(movement index, field, problem)`.
pub type FormProblem = (usize, &'static str, String);

/// Checks how the transformation lines of a batch group: every line of one
/// `transformation_id` states the same transformation, each has at least one input and one
/// output, and no lot is both an input and an output of the same transformation.
pub fn transformation_problems(movements: &[Movement]) -> Vec<FormProblem> {
    struct Group<'a> {
        first: usize,
        spec: &'a TransformationSpec,
        inputs: Vec<(&'a str, &'a str)>,
        outputs: Vec<(usize, &'a str, &'a str)>,
    }
    let mut problems = Vec::new();
    let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
    for (index, m) in movements.iter().enumerate() {
        let Some(spec) = m.transformation.as_ref() else {
            continue;
        };
        let group = groups
            .entry(spec.transformation_id.as_str())
            .or_insert_with(|| Group {
                first: index,
                spec,
                inputs: Vec::new(),
                outputs: Vec::new(),
            });
        if group.spec != spec {
            problems.push((
                index,
                "transformation",
                format!(
                    "differs from movements[{}], which states transformation {:?}: every line of a transformation states the same message",
                    group.first, spec.transformation_id
                ),
            ));
        }
        match m.kind {
            MovementKind::TransformationInput => group.inputs.push((&m.sku, &m.lot.lot_id)),
            MovementKind::TransformationOutput => {
                group.outputs.push((index, &m.sku, &m.lot.lot_id));
            }
            _ => {}
        }
    }
    for (id, group) in &groups {
        if group.inputs.is_empty() || group.outputs.is_empty() {
            let missing = if group.inputs.is_empty() {
                "input (TRANSFORMATION_INPUT)"
            } else {
                "output (TRANSFORMATION_OUTPUT)"
            };
            problems.push((
                group.first,
                "transformation",
                format!("transformation {id:?} has no {missing}; it needs at least one of each"),
            ));
        }
        for &(index, sku, lot_id) in &group.outputs {
            if group.inputs.contains(&(sku, lot_id)) {
                problems.push((
                    index,
                    "lot.lot_id",
                    format!(
                        "lot {lot_id:?} of sku {sku:?} is also an input of transformation {id:?}; an output is a lot of its own"
                    ),
                ));
            }
        }
    }
    problems
}

/// Why held stock may not be relocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelocationHeld {
    /// A hold covering the stock was placed without `allow_relocation`.
    NotAllowed {
        /// The hold.
        hold_id: String,
    },
    /// A hold allows relocation but would not cover the stock where it goes (a hold on
    /// the source zone does not follow the stock).
    WouldEscape {
        /// The hold.
        hold_id: String,
        /// The zone the stock would go to.
        to_zone_id: String,
    },
}

/// An active hold as a relocation needs it: its id, scope and whether it lets stock move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    /// The hold.
    pub hold_id: String,
    /// What it covers.
    pub scope: HoldScope,
    /// Stock it covers may be relocated where it still covers it.
    pub allow_relocation: bool,
}

/// Whether stock of (sku, lot) at `from_zone` may move to `to_zone` under the active
/// holds: `Ok(true)` when holds cover it and all of them allow the move and follow it
/// (the held stock then moves), `Ok(false)` when no hold covers it, `Err` otherwise.
pub fn relocation_under_holds(
    holds: &[ActiveHold],
    sku: &str,
    lot_id: &str,
    from_zone: &str,
    to_zone: &str,
) -> Result<bool, RelocationHeld> {
    let mut covered = false;
    for hold in holds
        .iter()
        .filter(|h| h.scope.covers(sku, lot_id, from_zone))
    {
        covered = true;
        if !hold.allow_relocation {
            return Err(RelocationHeld::NotAllowed {
                hold_id: hold.hold_id.clone(),
            });
        }
        if !hold.scope.covers(sku, lot_id, to_zone) {
            return Err(RelocationHeld::WouldEscape {
                hold_id: hold.hold_id.clone(),
                to_zone_id: to_zone.to_string(),
            });
        }
    }
    Ok(covered)
}
