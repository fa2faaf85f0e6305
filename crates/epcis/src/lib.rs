#![forbid(unsafe_code)]
//! A lot's trace (`NetworkService.TraceLot`) as a GS1 EPCIS 2.0 JSON-LD document, for the
//! food-safety officer who must hand a lot's history to a regulator or a trading partner.
//!
//! Events (CBV 2.0 vocabulary):
//! - receipt: ObjectEvent ADD, bizStep `receiving`, disposition `in_progress`;
//! - transfer out: OBSERVE `shipping` / `in_transit`, from the site to the reefer container
//!   and the train; transfer in: OBSERVE `receiving` / `in_progress`, from them to the site;
//! - issue: OBSERVE `shipping` / `in_transit`, with the order as a business transaction;
//! - hold placed: OBSERVE `holding` / `non_sellable_other` (`recalled` for a recall); hold
//!   released: OBSERVE `inspecting` / `sellable_accessible`;
//! - relocation inside a site (its RELOCATION_IN entry): OBSERVE `storing` /
//!   `in_progress`, from the zone it left to the zone it went to;
//! - each transformation of the lot's genealogy: a TransformationEvent, bizStep
//!   `creating_class_instance` (CBV 2.0: a quantity of a class-level identifier, a lot, is
//!   produced), disposition `in_progress`, with every input lot in `inputQuantityList` and
//!   every output lot in `outputQuantityList` and the transformation as `transformationID`
//!   (`urn:coldchain:transformation:{site}:{id}`); the events of the related lots' own
//!   traces (where the lots made from this one went) follow the traced lot's;
//! - each stay (a zone, a reefer leg): OBSERVE `sensor_reporting` with one
//!   `sensorElement` per sensor: min, max and mean °C (uom `CEL`), `ALARM_CONDITION`
//!   when the readings left the limits.
//!
//! Identifiers: a lot is the class `https://id.gs1.org/01/{GTIN}/10/{lot}` (an LGTIN in GS1
//! Digital Link form) when `network.toml` maps its sku to a GTIN, else a private URN; a site
//! is `https://id.gs1.org/414/{GLN}` (a zone adds `/254/{zone}`) when it has a GLN, else a
//! private URN. Instants are UTC with the site's own offset in `eventTimeZoneOffset`.
//!
//! [`problems`] checks a document against the rules of the EPCIS 2.0 JSON schema (required
//! fields, value forms): GS1's schema file itself is not vendored here.

mod check;

use std::collections::HashMap;

use chrono::{DateTime, Offset, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use coldchain_network::NetworkConfig;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::trace_event::Event;
use serde_json::{Map, Value, json};

pub use check::problems;

/// The JSON-LD context of EPCIS 2.0.
pub const CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// The EPCIS 2.0 document of `trace`, created at `created`: the traced lot's events, the
/// events of every related lot (each event once), and a TransformationEvent per
/// transformation of the genealogy.
pub fn document(
    trace: &network::TraceLotResponse,
    network: &NetworkConfig,
    created: DateTime<Utc>,
) -> Value {
    let mut events = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for lot_trace in std::iter::once(trace).chain(trace.related.iter()) {
        for event in lot_events(lot_trace, network, created) {
            if seen.insert(event["eventID"].to_string()) {
                events.push(event);
            }
        }
    }
    let names = Names {
        network,
        sku: &trace.sku,
        lot: &trace.lot_id,
        conveyances: HashMap::new(),
    };
    events.extend(names.transformation_events(&trace.genealogy));
    events.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
    json!({
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": rfc3339(created),
        "epcisBody": { "eventList": events },
    })
}

/// One lot's own events: its ledger entries EPCIS speaks of and its stays' sensors.
fn lot_events(
    trace: &network::TraceLotResponse,
    network: &NetworkConfig,
    created: DateTime<Utc>,
) -> Vec<Value> {
    let conveyances = trace
        .events
        .iter()
        .filter_map(|event| match &event.event {
            Some(Event::TransferStep(step)) => Some((
                step.transfer_id.clone(),
                (
                    step.train_or_route.clone(),
                    step.reefer_container_id.clone(),
                ),
            )),
            _ => None,
        })
        .collect();
    let names = Names {
        network,
        sku: &trace.sku,
        lot: &trace.lot_id,
        conveyances,
    };
    let mut events: Vec<Value> = trace
        .events
        .iter()
        .filter_map(|event| match &event.event {
            Some(Event::Entry(entry)) => names.entry_event(&event.site_id, entry),
            _ => None,
        })
        .collect();
    events.extend(
        trace
            .stays
            .iter()
            .filter_map(|stay| names.stay_event(stay, created)),
    );
    events
}

/// How the document names things.
struct Names<'a> {
    network: &'a NetworkConfig,
    sku: &'a str,
    lot: &'a str,
    /// Per transfer: its train or route, and its reefer container.
    conveyances: HashMap<String, (String, String)>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so an id is one path
/// segment of a URI, whatever it holds).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn instant(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    Utc.timestamp_opt(ts.seconds, u32::try_from(ts.nanos).ok()?)
        .single()
}

/// The UN/ECE Recommendation 20 code of a measured unit; `None` for a count (cases, each).
fn uom(unit: &str) -> Option<&'static str> {
    match unit.to_ascii_lowercase().as_str() {
        "kg" => Some("KGM"),
        "g" => Some("GRM"),
        "t" | "tonne" => Some("TNE"),
        "l" | "litre" | "liter" => Some("LTR"),
        "ml" => Some("MLT"),
        _ => None,
    }
}

impl Names<'_> {
    /// The lot as an EPC class.
    fn class(&self) -> String {
        self.class_of(self.sku, self.lot)
    }

    /// A lot of a sku as an EPC class: an LGTIN when the sku has a GTIN.
    fn class_of(&self, sku: &str, lot: &str) -> String {
        match self.network.gtin14(sku) {
            Some(gtin) => format!("https://id.gs1.org/01/{gtin}/10/{}", encode(lot)),
            None => format!("urn:coldchain:class:{}:{}", encode(sku), encode(lot)),
        }
    }

    /// A site, or a zone of it.
    fn location(&self, site_id: &str, zone_id: &str) -> String {
        let gln = self.network.site(site_id).and_then(|s| s.gln.as_deref());
        match (gln, zone_id.is_empty()) {
            (Some(gln), true) => format!("https://id.gs1.org/414/{gln}"),
            (Some(gln), false) => format!("https://id.gs1.org/414/{gln}/254/{}", encode(zone_id)),
            (None, true) => format!("urn:coldchain:location:{}", encode(site_id)),
            (None, false) => format!(
                "urn:coldchain:location:{}:{}",
                encode(site_id),
                encode(zone_id)
            ),
        }
    }

    /// The offset of the site's time zone at `at`, e.g. `+08:00`.
    fn offset(&self, site_id: &str, at: DateTime<Utc>) -> String {
        let tz: Tz = self
            .network
            .site(site_id)
            .map_or(chrono_tz::UTC, |s| s.time_zone);
        let seconds = tz
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc();
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    fn quantity(&self, quantity: Option<i64>, unit: &str) -> Value {
        self.quantity_of(self.class(), quantity, unit)
    }

    fn quantity_of(&self, class: String, quantity: Option<i64>, unit: &str) -> Value {
        let mut element = Map::new();
        element.insert("epcClass".into(), json!(class));
        if let Some(quantity) = quantity {
            element.insert("quantity".into(), json!(quantity));
            if let Some(uom) = uom(unit) {
                element.insert("uom".into(), json!(uom));
            }
        }
        Value::Object(element)
    }

    /// The fields every event has.
    fn event(
        &self,
        id: String,
        site_id: &str,
        at: DateTime<Utc>,
        zone_id: &str,
    ) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("type".into(), json!("ObjectEvent"));
        event.insert("eventID".into(), json!(id));
        event.insert("eventTime".into(), json!(rfc3339(at)));
        event.insert(
            "eventTimeZoneOffset".into(),
            json!(self.offset(site_id, at)),
        );
        event.insert(
            "readPoint".into(),
            json!({ "id": self.location(site_id, zone_id) }),
        );
        event.insert(
            "bizLocation".into(),
            json!({ "id": self.location(site_id, "") }),
        );
        event
    }

    /// A ledger entry's event, for the kinds EPCIS speaks of.
    fn entry_event(&self, site_id: &str, entry: &inventory::LedgerEntry) -> Option<Value> {
        use inventory::LedgerEntryKind as K;
        let kind = K::try_from(entry.kind).ok()?;
        let recall = entry
            .reference
            .as_ref()
            .is_some_and(|r| r.kind == common::ReferenceKind::Recall as i32);
        let (action, biz_step, disposition) = match kind {
            K::Receipt => ("ADD", "receiving", "in_progress"),
            K::TransferOut | K::Issue => ("OBSERVE", "shipping", "in_transit"),
            K::TransferIn => ("OBSERVE", "receiving", "in_progress"),
            K::HoldPlaced if recall => ("OBSERVE", "holding", "recalled"),
            K::HoldPlaced => ("OBSERVE", "holding", "non_sellable_other"),
            K::HoldReleased => ("OBSERVE", "inspecting", "sellable_accessible"),
            // One event per relocation: its arrival, which names both zones.
            K::RelocationIn => ("OBSERVE", "storing", "in_progress"),
            // A transformation's entries are its TransformationEvent (from the genealogy).
            _ => return None,
        };
        let at = instant(entry.recorded_at.as_ref())?;
        let mut event = self.event(
            format!(
                "urn:coldchain:event:{}:ledger:{}",
                encode(site_id),
                entry.sequence
            ),
            site_id,
            at,
            &entry.zone_id,
        );
        event.insert("action".into(), json!(action));
        event.insert("bizStep".into(), json!(biz_step));
        event.insert("disposition".into(), json!(disposition));
        let moved = (entry.delta != 0).then(|| entry.delta.abs());
        event.insert(
            "quantityList".into(),
            json!([self.quantity(moved, &entry.unit)]),
        );
        if !entry.order_id.is_empty() {
            event.insert(
                "bizTransactionList".into(),
                json!([{
                    "type": "po",
                    "bizTransaction": format!(
                        "urn:coldchain:order:{}:{}",
                        encode(site_id),
                        encode(&entry.order_id)
                    ),
                }]),
            );
        }
        // The reefer container and the train that carried a transfer: where a transfer out
        // goes to and a transfer in comes from.
        let conveyance = || {
            let mut places = Vec::new();
            if let Some((train, container)) = self.conveyances.get(&entry.transfer_id) {
                if !container.is_empty() {
                    places.push(format!("urn:coldchain:container:{}", encode(container)));
                }
                if !train.is_empty() {
                    places.push(format!("urn:coldchain:conveyance:{}", encode(train)));
                }
            }
            if places.is_empty() && !entry.transfer_id.is_empty() {
                places.push(format!(
                    "urn:coldchain:transfer:{}",
                    encode(&entry.transfer_id)
                ));
            }
            places
        };
        match kind {
            K::TransferOut => {
                event.insert(
                    "sourceList".into(),
                    json!([{"type": "location", "source": self.location(site_id, "")}]),
                );
                let mut destinations: Vec<Value> = conveyance()
                    .into_iter()
                    .map(|d| json!({"type": "location", "destination": d}))
                    .collect();
                destinations.push(json!({
                    "type": "location",
                    "destination": self.location(&entry.other_site_id, ""),
                }));
                event.insert("destinationList".into(), Value::Array(destinations));
            }
            K::TransferIn => {
                let mut sources: Vec<Value> = vec![json!({
                    "type": "location",
                    "source": self.location(&entry.other_site_id, ""),
                })];
                sources.extend(
                    conveyance()
                        .into_iter()
                        .map(|s| json!({"type": "location", "source": s})),
                );
                event.insert("sourceList".into(), Value::Array(sources));
                event.insert(
                    "destinationList".into(),
                    json!([{"type": "location", "destination": self.location(site_id, "")}]),
                );
            }
            K::RelocationIn => {
                if let Some(relocation) = &entry.relocation {
                    event.insert(
                        "sourceList".into(),
                        json!([{
                            "type": "location",
                            "source": self.location(site_id, &relocation.from_zone_id),
                        }]),
                    );
                    event.insert(
                        "destinationList".into(),
                        json!([{
                            "type": "location",
                            "destination": self.location(site_id, &relocation.to_zone_id),
                        }]),
                    );
                }
            }
            _ => {}
        }
        Some(Value::Object(event))
    }

    /// A TransformationEvent per transformation the links name: every input and every
    /// output lot once, with its quantity, in the order the links list them.
    fn transformation_events(&self, links: &[network::LotLink]) -> Vec<Value> {
        struct Sides<'l> {
            first: &'l network::LotLink,
            inputs: Vec<&'l network::LotLink>,
            outputs: Vec<&'l network::LotLink>,
        }
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut by_transformation: HashMap<(&str, &str), Sides<'_>> = HashMap::new();
        for link in links {
            let key = (link.site_id.as_str(), link.transformation_id.as_str());
            let sides = by_transformation.entry(key).or_insert_with(|| {
                order.push(key);
                Sides {
                    first: link,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                }
            });
            if !sides
                .inputs
                .iter()
                .any(|l| (&l.input_sku, &l.input_lot_id) == (&link.input_sku, &link.input_lot_id))
            {
                sides.inputs.push(link);
            }
            if !sides.outputs.iter().any(|l| {
                (&l.output_sku, &l.output_lot_id) == (&link.output_sku, &link.output_lot_id)
            }) {
                sides.outputs.push(link);
            }
        }
        order
            .into_iter()
            .filter_map(|key| {
                let sides = by_transformation.get(&key)?;
                let (site_id, transformation_id) = key;
                let at = instant(sides.first.at.as_ref())?;
                let mut event = self.event(
                    format!(
                        "urn:coldchain:event:{}:transformation:{}",
                        encode(site_id),
                        encode(transformation_id)
                    ),
                    site_id,
                    at,
                    "",
                );
                event.insert("type".into(), json!("TransformationEvent"));
                event.insert(
                    "transformationID".into(),
                    json!(format!(
                        "urn:coldchain:transformation:{}:{}",
                        encode(site_id),
                        encode(transformation_id)
                    )),
                );
                event.insert("bizStep".into(), json!("creating_class_instance"));
                event.insert("disposition".into(), json!("in_progress"));
                let inputs: Vec<Value> = sides
                    .inputs
                    .iter()
                    .map(|l| {
                        self.quantity_of(
                            self.class_of(&l.input_sku, &l.input_lot_id),
                            Some(l.input_quantity),
                            &l.input_unit,
                        )
                    })
                    .collect();
                let outputs: Vec<Value> = sides
                    .outputs
                    .iter()
                    .map(|l| {
                        self.quantity_of(
                            self.class_of(&l.output_sku, &l.output_lot_id),
                            Some(l.output_quantity),
                            &l.output_unit,
                        )
                    })
                    .collect();
                event.insert("inputQuantityList".into(), Value::Array(inputs));
                event.insert("outputQuantityList".into(), Value::Array(outputs));
                Some(Value::Object(event))
            })
            .collect()
    }

    /// A stay's sensor event: what each sensor that covered it saw, at the stay's end (or
    /// at `now` while it goes on). `None` for a stay no sensor covered.
    fn stay_event(&self, stay: &network::LotStay, now: DateTime<Utc>) -> Option<Value> {
        if stay.exposures.iter().all(|e| e.reading_count == 0) {
            return None;
        }
        let start = instant(stay.start_time.as_ref())?;
        let end = instant(stay.end_time.as_ref()).unwrap_or(now);
        let place = if stay.transfer_id.is_empty() {
            format!("zone:{}", encode(&stay.zone_id))
        } else {
            format!("transfer:{}", encode(&stay.transfer_id))
        };
        let mut event = self.event(
            format!(
                "urn:coldchain:event:{}:stay:{place}:{}",
                encode(&stay.site_id),
                start.timestamp_millis()
            ),
            &stay.site_id,
            end,
            &stay.zone_id,
        );
        if !stay.transfer_id.is_empty() {
            let container = self
                .conveyances
                .get(&stay.transfer_id)
                .map(|(_, container)| container.as_str())
                .filter(|c| !c.is_empty());
            let read_point = match container {
                Some(container) => format!("urn:coldchain:container:{}", encode(container)),
                None => format!("urn:coldchain:transfer:{}", encode(&stay.transfer_id)),
            };
            event.insert("readPoint".into(), json!({ "id": read_point }));
        }
        event.insert("action".into(), json!("OBSERVE"));
        event.insert("bizStep".into(), json!("sensor_reporting"));
        event.insert("quantityList".into(), json!([self.quantity(None, "")]));
        let elements: Vec<Value> = stay
            .exposures
            .iter()
            .filter(|e| e.reading_count > 0)
            .map(|e| {
                let mut report = Map::new();
                report.insert("type".into(), json!("Temperature"));
                report.insert(
                    "deviceID".into(),
                    json!(format!(
                        "urn:coldchain:sensor:{}:{}",
                        encode(&stay.site_id),
                        encode(&e.sensor_id)
                    )),
                );
                for (field, value) in [
                    ("minValue", e.min_celsius),
                    ("maxValue", e.max_celsius),
                    ("meanValue", e.mean_celsius),
                ] {
                    if let Some(value) = value {
                        report.insert(field.into(), json!(value));
                    }
                }
                report.insert("uom".into(), json!("CEL"));
                let outside = e
                    .time_outside_limits
                    .as_ref()
                    .is_some_and(|d| d.seconds > 0 || d.nanos > 0);
                if outside {
                    report.insert("exception".into(), json!("ALARM_CONDITION"));
                }
                json!({
                    "sensorMetadata": {
                        "startTime": rfc3339(start),
                        "endTime": rfc3339(end),
                    },
                    "sensorReport": [Value::Object(report)],
                })
            })
            .collect();
        event.insert("sensorElementList".into(), Value::Array(elements));
        Some(Value::Object(event))
    }
}

#[cfg(test)]
mod tests;
