//! The checks of a transfer against the network file, and the ids the gateway derives
//! for a transfer and its saga steps.

use std::collections::BTreeMap;

use coldchain_network::{NetworkConfig, TemperatureClass};
use sha2::Digest;

use super::TransferSpec;

/// A problem of a transfer against the network file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// A site id is not in the network (field, id).
    UnknownSite(&'static str, String),
    /// A zone does not exist at its site (field, site, zone).
    UnknownZone(String, String, String),
    /// A field is inconsistent with the rest (field, description).
    Invalid(String, String),
}

/// Checks a transfer against the network file: both sites exist, every source zone exists
/// at the source, every destination zone exists at the destination with the source zone's
/// class; lines of one (sku, lot) go to one destination zone with one unit and their
/// summed quantity fits (the destination receives one TRANSFER_IN per transfer, sku and
/// lot).
pub fn check_lines(network: &NetworkConfig, spec: &TransferSpec) -> Vec<LineProblem> {
    let mut problems = Vec::new();
    let source = network.site(&spec.source_site_id);
    let destination = network.site(&spec.destination_site_id);
    if source.is_none() {
        problems.push(LineProblem::UnknownSite(
            "source_site_id",
            spec.source_site_id.clone(),
        ));
    }
    if destination.is_none() {
        problems.push(LineProblem::UnknownSite(
            "destination_site_id",
            spec.destination_site_id.clone(),
        ));
    }
    let mut lots: BTreeMap<(&str, &str), (usize, &str, &str, i64)> = BTreeMap::new();
    for (i, line) in spec.lines.iter().enumerate() {
        let source_class = source.and_then(|site| {
            let zone = site.zone(&line.source_zone_id);
            if zone.is_none() {
                problems.push(LineProblem::UnknownZone(
                    format!("lines[{i}].source_zone_id"),
                    site.id.clone(),
                    line.source_zone_id.clone(),
                ));
            }
            zone.map(|z| z.class)
        });
        let destination_class = destination.and_then(|site| {
            let zone = site.zone(&line.destination_zone_id);
            if zone.is_none() {
                problems.push(LineProblem::UnknownZone(
                    format!("lines[{i}].destination_zone_id"),
                    site.id.clone(),
                    line.destination_zone_id.clone(),
                ));
            }
            zone.map(|z| z.class)
        });
        if let (Some(from), Some(to)) = (source_class, destination_class)
            && from != to
        {
            problems.push(LineProblem::Invalid(
                format!("lines[{i}].destination_zone_id"),
                format!(
                    "zone {:?} is {to} but source zone {:?} is {from}; a transfer keeps its temperature class",
                    line.destination_zone_id, line.source_zone_id
                ),
            ));
        }
        match lots.get_mut(&(line.sku.as_str(), line.lot_id.as_str())) {
            None => {
                lots.insert(
                    (&line.sku, &line.lot_id),
                    (i, &line.destination_zone_id, &line.unit, line.quantity),
                );
            }
            Some((first, zone, unit, total)) => {
                if *zone != line.destination_zone_id {
                    problems.push(LineProblem::Invalid(
                        format!("lines[{i}].destination_zone_id"),
                        format!(
                            "sku {:?} lot {:?} already goes to zone {zone:?} in lines[{first}]; one lot goes to one destination zone",
                            line.sku, line.lot_id
                        ),
                    ));
                }
                if *unit != line.unit {
                    problems.push(LineProblem::Invalid(
                        format!("lines[{i}].unit"),
                        format!("{:?} differs from {unit:?} in lines[{first}]", line.unit),
                    ));
                }
                match total.checked_add(line.quantity) {
                    Some(sum) => *total = sum,
                    None => problems.push(LineProblem::Invalid(
                        format!("lines[{i}].quantity"),
                        format!(
                            "the quantities of sku {:?} lot {:?} overflow when summed",
                            line.sku, line.lot_id
                        ),
                    )),
                }
            }
        }
    }
    problems
}

/// The reefer class when the request leaves it unset: the class of the first line's source
/// zone.
pub fn default_reefer_class(
    network: &NetworkConfig,
    spec_source: &str,
    first_source_zone: &str,
) -> Option<TemperatureClass> {
    network
        .site(spec_source)?
        .zone(first_source_zone)
        .map(|z| z.class)
}

/// The id of a transfer the gateway names: derived from the request and the instant, so
/// it is stable for one write and unique across requests.
pub fn assigned_transfer_id(request_digest: &[u8; 32], now_ms: i64) -> String {
    let mut hex = String::with_capacity(20);
    for byte in request_digest.iter().take(6) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("tr-{now_ms}-{hex}")
}

/// The longest request_id a site service accepts, in bytes (the runtime's limit, checked
/// against it in a test: the domain does not depend on the runtime).
pub const MAX_STEP_REQUEST_ID_BYTES: usize = 128;

/// The idempotency key of one saga step of a transfer, sent to a site service:
/// `gateway:<transfer_id>:<step>`, or, when that would exceed the 128 bytes a request_id
/// may have, `gateway:sha256-<digest of the id>:<step>`.
fn step_request_id(transfer_id: &str, step: &str) -> String {
    let plain = format!("gateway:{transfer_id}:{step}");
    if plain.len() <= MAX_STEP_REQUEST_ID_BYTES {
        return plain;
    }
    let digest = sha2::Sha256::digest(transfer_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("gateway:sha256-{hex}:{step}")
}

/// The idempotency key of the source's TRANSFER_OUT of a transfer.
pub fn transfer_out_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "transfer-out")
}

/// The idempotency key of the destination's TRANSFER_IN of a transfer.
pub fn transfer_in_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "transfer-in")
}

/// The idempotency key of the reefer sensor's registration for a transfer.
pub fn sensor_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "reefer-sensor")
}
