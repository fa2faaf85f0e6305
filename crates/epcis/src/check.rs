//! The rules of the EPCIS 2.0 JSON schema (GS1, `epcis-json-schema.json`) that a document
//! of this crate must meet, written out: required fields, the closed vocabularies it uses,
//! and the forms of values (instants with an offset, offsets, URIs, units). Each problem is
//! one line naming the path of the value.

use serde_json::Value;

/// CBV 2.0 business steps (bare words, as the JSON-LD context maps them).
const BIZ_STEPS: [&str; 41] = [
    "accepting",
    "arriving",
    "assembling",
    "collecting",
    "commissioning",
    "consigning",
    "creating_class_instance",
    "cycle_counting",
    "decommissioning",
    "departing",
    "destroying",
    "disassembling",
    "dispensing",
    "encoding",
    "entering_exiting",
    "holding",
    "inspecting",
    "installing",
    "killing",
    "loading",
    "other",
    "packing",
    "picking",
    "receiving",
    "removing",
    "repackaging",
    "repairing",
    "replacing",
    "reserving",
    "retail_selling",
    "sampling",
    "sensor_reporting",
    "shipping",
    "staging_outbound",
    "stock_taking",
    "stocking",
    "storing",
    "transporting",
    "unloading",
    "unpacking",
    "void_shipping",
];

/// CBV 2.0 dispositions.
const DISPOSITIONS: [&str; 31] = [
    "active",
    "available",
    "completeness_verified",
    "completeness_inferred",
    "conformant",
    "container_closed",
    "container_open",
    "damaged",
    "destroyed",
    "dispensed",
    "disposed",
    "encoded",
    "expired",
    "in_progress",
    "in_transit",
    "inactive",
    "mismatch_instance",
    "mismatch_class",
    "mismatch_quantity",
    "needs_replacement",
    "no_pedigree_match",
    "non_conformant",
    "non_sellable_other",
    "partially_dispensed",
    "recalled",
    "reserved",
    "retail_sold",
    "returned",
    "sellable_accessible",
    "sellable_not_accessible",
    "stolen",
];

/// CBV 2.0 source/destination types.
const SOURCE_TYPES: [&str; 3] = ["owning_party", "possessing_party", "location"];

const EVENT_TYPES: [&str; 5] = [
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// A URI as the schema's `format: uri` reads it: a scheme, a colon, and no whitespace.
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An RFC 3339 instant with an explicit offset (`Z` or `±hh:mm`).
fn is_date_time(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

/// `±hh:mm`, hours 00 to 14.
fn is_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 6
        && matches!(bytes[0], b'+' | b'-')
        && bytes[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit())
        && text[1..3].parse::<u8>().is_ok_and(|h| h <= 14)
        && text[4..6].parse::<u8>().is_ok_and(|m| m < 60)
}

/// A vocabulary value: one of `words`, or any URI (a vocabulary of one's own).
fn in_vocabulary(value: &Value, words: &[&str]) -> bool {
    value
        .as_str()
        .is_some_and(|text| words.contains(&text) || (text.contains(':') && is_uri(text)))
}

struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn require<'v>(&mut self, value: &'v Value, path: &str, field: &str) -> Option<&'v Value> {
        let found = value.get(field);
        if found.is_none() {
            self.problems
                .push(format!("{path}: missing required {field}"));
        }
        found
    }

    fn uri(&mut self, value: Option<&Value>, path: &str) {
        if let Some(value) = value
            && !value.as_str().is_some_and(is_uri)
        {
            self.problems.push(format!("{path}: {value} is not a URI"));
        }
    }

    fn location(&mut self, value: Option<&Value>, path: &str) {
        if let Some(value) = value {
            match value.get("id") {
                Some(id) => self.uri(Some(id), &format!("{path}.id")),
                None => self.problems.push(format!("{path}: missing required id")),
            }
        }
    }

    fn quantity_list(&mut self, list: &Value, path: &str) {
        let Some(items) = list.as_array() else {
            self.problems.push(format!("{path}: must be an array"));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let class = self.require(item, &at, "epcClass");
            self.uri(class, &format!("{at}.epcClass"));
            if let Some(quantity) = item.get("quantity")
                && !quantity.as_f64().is_some_and(|q| q >= 0.0)
            {
                self.problems
                    .push(format!("{at}.quantity: {quantity} is not a number ≥ 0"));
            }
            if let Some(uom) = item.get("uom") {
                if item.get("quantity").is_none() {
                    self.problems.push(format!("{at}: uom without quantity"));
                }
                self.uom(uom, &format!("{at}.uom"));
            }
        }
    }

    fn uom(&mut self, uom: &Value, path: &str) {
        let ok = uom.as_str().is_some_and(|u| {
            (2..=3).contains(&u.len())
                && u.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        });
        if !ok {
            self.problems
                .push(format!("{path}: {uom} is not a UN/ECE Rec. 20 code"));
        }
    }

    fn party_list(&mut self, list: &Value, path: &str, field: &str) {
        let Some(items) = list.as_array() else {
            self.problems.push(format!("{path}: must be an array"));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if let Some(kind) = self.require(item, &at, "type")
                && !in_vocabulary(kind, &SOURCE_TYPES)
            {
                self.problems.push(format!(
                    "{at}.type: {kind} is not a CBV source/destination type"
                ));
            }
            let value = self.require(item, &at, field);
            self.uri(value, &format!("{at}.{field}"));
        }
    }

    fn sensor_elements(&mut self, list: &Value, path: &str) {
        let Some(elements) = list.as_array() else {
            self.problems.push(format!("{path}: must be an array"));
            return;
        };
        for (i, element) in elements.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if let Some(meta) = element.get("sensorMetadata") {
                for field in ["time", "startTime", "endTime"] {
                    if let Some(time) = meta.get(field)
                        && !time.as_str().is_some_and(is_date_time)
                    {
                        self.problems.push(format!(
                            "{at}.sensorMetadata.{field}: {time} is not an instant with an offset"
                        ));
                    }
                }
            }
            let Some(reports) = self.require(element, &at, "sensorReport") else {
                continue;
            };
            match reports.as_array() {
                Some(reports) if !reports.is_empty() => {
                    for (j, report) in reports.iter().enumerate() {
                        let at = format!("{at}.sensorReport[{j}]");
                        self.sensor_report(report, &at);
                    }
                }
                _ => self
                    .problems
                    .push(format!("{at}.sensorReport: must be a non-empty array")),
            }
        }
    }

    fn sensor_report(&mut self, report: &Value, at: &str) {
        if let Some(kind) = report.get("type")
            && kind.as_str().is_none_or(str::is_empty)
        {
            self.problems
                .push(format!("{at}.type: {kind} is not a measurement type"));
        }
        for field in ["value", "minValue", "maxValue", "meanValue", "sDev"] {
            if let Some(v) = report.get(field)
                && !v.is_number()
            {
                self.problems
                    .push(format!("{at}.{field}: {v} is not a number"));
            }
        }
        let measured = ["value", "minValue", "maxValue", "meanValue"]
            .iter()
            .any(|f| report.get(*f).is_some());
        match report.get("uom") {
            Some(uom) => self.uom(uom, &format!("{at}.uom")),
            None if measured => self.problems.push(format!("{at}: a value without uom")),
            None => {}
        }
        if let Some(exception) = report.get("exception")
            && !matches!(
                exception.as_str(),
                Some("ALARM_CONDITION" | "ERROR_CONDITION")
            )
        {
            self.problems.push(format!(
                "{at}.exception: {exception} is not ALARM_CONDITION or ERROR_CONDITION"
            ));
        }
        self.uri(report.get("deviceID"), &format!("{at}.deviceID"));
    }

    /// A TransformationEvent: no action, a URI as its transformationID, and what went in
    /// and what came out (non-empty lists: this crate writes one event per transformation
    /// with both sides).
    fn transformation(&mut self, event: &Value, at: &str) {
        if event.get("action").is_some() {
            self.problems
                .push(format!("{at}.action: a TransformationEvent has no action"));
        }
        let id = self.require(event, at, "transformationID");
        self.uri(id, &format!("{at}.transformationID"));
        for field in ["inputQuantityList", "outputQuantityList"] {
            if let Some(list) = self.require(event, at, field)
                && list.as_array().is_some_and(Vec::is_empty)
            {
                self.problems
                    .push(format!("{at}.{field}: must not be empty"));
            }
        }
    }

    fn event(&mut self, event: &Value, at: &str) {
        let kind = self.require(event, at, "type").and_then(Value::as_str);
        if let Some(kind) = kind
            && !EVENT_TYPES.contains(&kind)
        {
            self.problems
                .push(format!("{at}.type: {kind:?} is not an EPCIS event type"));
        }
        if let Some(time) = self.require(event, at, "eventTime")
            && !time.as_str().is_some_and(is_date_time)
        {
            self.problems.push(format!(
                "{at}.eventTime: {time} is not an instant with an offset"
            ));
        }
        if let Some(offset) = self.require(event, at, "eventTimeZoneOffset")
            && !offset.as_str().is_some_and(is_offset)
        {
            self.problems
                .push(format!("{at}.eventTimeZoneOffset: {offset} is not ±hh:mm"));
        }
        if kind != Some("TransformationEvent")
            && let Some(action) = self.require(event, at, "action")
            && !matches!(action.as_str(), Some("ADD" | "OBSERVE" | "DELETE"))
        {
            self.problems.push(format!(
                "{at}.action: {action} is not ADD, OBSERVE or DELETE"
            ));
        }
        if kind == Some("TransformationEvent") {
            self.transformation(event, at);
        }
        self.uri(event.get("eventID"), &format!("{at}.eventID"));
        if let Some(step) = event.get("bizStep")
            && !in_vocabulary(step, &BIZ_STEPS)
        {
            self.problems
                .push(format!("{at}.bizStep: {step} is not a CBV business step"));
        }
        if let Some(disposition) = event.get("disposition")
            && !in_vocabulary(disposition, &DISPOSITIONS)
        {
            self.problems.push(format!(
                "{at}.disposition: {disposition} is not a CBV disposition"
            ));
        }
        self.location(event.get("readPoint"), &format!("{at}.readPoint"));
        self.location(event.get("bizLocation"), &format!("{at}.bizLocation"));
        for field in ["quantityList", "inputQuantityList", "outputQuantityList"] {
            if let Some(list) = event.get(field) {
                self.quantity_list(list, &format!("{at}.{field}"));
            }
        }
        if let Some(list) = event.get("sourceList") {
            self.party_list(list, &format!("{at}.sourceList"), "source");
        }
        if let Some(list) = event.get("destinationList") {
            self.party_list(list, &format!("{at}.destinationList"), "destination");
        }
        if let Some(list) = event.get("bizTransactionList") {
            match list.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("{at}.bizTransactionList[{i}]");
                        let value = self.require(item, &path, "bizTransaction");
                        self.uri(value, &format!("{path}.bizTransaction"));
                    }
                }
                None => self
                    .problems
                    .push(format!("{at}.bizTransactionList: must be an array")),
            }
        }
        if let Some(list) = event.get("sensorElementList") {
            self.sensor_elements(list, &format!("{at}.sensorElementList"));
        }
    }
}

/// Every way `document` breaks the rules of the EPCIS 2.0 JSON schema this crate follows;
/// empty when it meets them.
pub fn problems(document: &Value) -> Vec<String> {
    let mut checker = Checker {
        problems: Vec::new(),
    };
    let at = "document";
    if checker.require(document, at, "@context").is_some() {
        let context_ok = match &document["@context"] {
            Value::String(uri) => is_uri(uri),
            Value::Array(items) => {
                !items.is_empty() && items.iter().all(|i| i.is_string() || i.is_object())
            }
            _ => false,
        };
        if !context_ok {
            checker
                .problems
                .push(format!("{at}.@context: not a context"));
        }
    }
    if let Some(kind) = checker.require(document, at, "type")
        && kind != "EPCISDocument"
    {
        checker
            .problems
            .push(format!("{at}.type: {kind} is not EPCISDocument"));
    }
    if let Some(version) = checker.require(document, at, "schemaVersion")
        && !version.as_str().is_some_and(|v| v.starts_with("2."))
    {
        checker
            .problems
            .push(format!("{at}.schemaVersion: {version} is not 2.x"));
    }
    if let Some(created) = checker.require(document, at, "creationDate")
        && !created.as_str().is_some_and(is_date_time)
    {
        checker.problems.push(format!(
            "{at}.creationDate: {created} is not an instant with an offset"
        ));
    }
    let events = checker
        .require(document, at, "epcisBody")
        .and_then(|body| checker.require(body, "document.epcisBody", "eventList"));
    match events.map(Value::as_array) {
        Some(Some(events)) => {
            for (i, event) in events.iter().enumerate() {
                checker.event(event, &format!("document.epcisBody.eventList[{i}]"));
            }
        }
        Some(None) => checker
            .problems
            .push("document.epcisBody.eventList: must be an array".to_string()),
        None => {}
    }
    checker.problems
}
