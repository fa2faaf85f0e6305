//! Request validation: collect every bad field, then answer once with all of them.

use crate::error::{Code, FieldViolation, ServiceError};

/// The longest id, in bytes of UTF-8 (sku, lot, zone, booking, sensor, order, customer, …):
/// the identifier rule of `coldchain/common/v1/common.proto`.
pub const MAX_ID_LEN: usize = 128;
/// The longest request_id, in bytes (UUIDs and ULIDs fit with room to spare).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// The page size when a list request leaves it 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The longest free text (reasons, notes, origins), in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 512;
/// The control characters free text may hold: newline and tab.
pub const TEXT_CONTROLS: &[char] = &['\n', '\t'];

/// Collects field violations of one request.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records a violation unless `ok`.
    pub fn check(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        description: impl FnOnce() -> String,
    ) {
        if !ok {
            self.add(field, description());
        }
    }

    /// A required identifier: 1..=128 bytes of UTF-8, no control characters, no leading or
    /// trailing whitespace.
    pub fn id(&mut self, field: &str, value: &str) {
        if let Err(problem) = check_id(value, MAX_ID_LEN) {
            self.add(field, problem);
        }
    }

    /// An optional identifier: empty, or a valid id.
    pub fn optional_id(&mut self, field: &str, value: &str) {
        if !value.is_empty() {
            self.id(field, value);
        }
    }

    /// The `request_id` every mutating call carries.
    pub fn request_id(&mut self, value: &str) {
        if let Err(problem) = check_id(value, MAX_REQUEST_ID_LEN) {
            self.add("request_id", problem);
        }
    }

    /// The optional `actor` of a mutating request (see `coldchain_audit::check_actor`).
    pub fn actor(&mut self, value: &str) {
        if let Err(problem) = coldchain_audit::check_actor(value) {
            self.add("actor", problem);
        }
    }

    /// Free text up to 512 bytes of UTF-8 (the protos' limit counts bytes, not characters:
    /// 512 bytes is what a client can budget for whatever script it writes in), without
    /// control characters other than newline and tab.
    pub fn text(&mut self, field: &str, value: &str, required: bool) {
        self.text_within(field, value, required, MAX_TEXT_LEN, TEXT_CONTROLS);
    }

    /// Free text of at most `max` bytes of UTF-8 (the first problem found is reported):
    /// required and blank, too long, or with a control character other than the
    /// `allowed` ones ([`TEXT_CONTROLS`] for multi-line text, none for a single line).
    pub fn text_within(
        &mut self,
        field: &str,
        value: &str,
        required: bool,
        max: usize,
        allowed: &[char],
    ) {
        if required && value.trim().is_empty() {
            self.add(field, "is required");
        } else if value.len() > max {
            self.add(
                field,
                format!("must be at most {max} bytes, got {}", value.len()),
            );
        } else if value
            .chars()
            .any(|c| c.is_control() && !allowed.contains(&c))
        {
            self.add(field, "must not contain control characters");
        }
    }

    /// A page size as common.proto defines it: 0 means the default (100), values above
    /// 1,000 are clamped, negative is a violation. Returns the size to use.
    pub fn page_size(&mut self, value: i32) -> usize {
        match usize::try_from(value) {
            Err(_) => {
                self.add("page_size", format!("must not be negative, got {value}"));
                DEFAULT_PAGE_SIZE
            }
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
        }
    }

    /// The page token of a list request whose filters encode to `query`: the position it
    /// holds, or `None` for the first page. A token that was altered, truncated or issued
    /// for other filters is a violation of `page_token`, reported with every other bad
    /// field (and `None`).
    pub fn page_token(&mut self, query: &[u8], token: &str) -> Option<Vec<u8>> {
        match crate::page_token::decode(query, token) {
            Ok(position) => position,
            Err(error) => {
                self.0.extend(error.field_violations);
                None
            }
        }
    }

    /// Prefixes the field of every violation recorded from here, e.g. `movements[2].`.
    pub fn nested(&mut self, prefix: &str, f: impl FnOnce(&mut Violations)) {
        let mut inner = Violations::new();
        f(&mut inner);
        for v in inner.0 {
            self.0.push(FieldViolation {
                field: format!("{prefix}.{}", v.field),
                description: v.description,
            });
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, otherwise one `INVALID_ARGUMENT` with every violation.
    pub fn finish(self) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let message = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ServiceError {
            code: Code::InvalidArgument,
            message,
            field_violations: self.0,
            precondition_violations: Vec::new(),
        })
    }
}

/// Checks an identifier's length and characters.
pub fn check_id(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() > max {
        return Err(format!("must be at most {max} bytes, got {}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{value:?} contains a control character"));
    }
    if value.trim() != value {
        return Err(format!("{value:?} has leading or trailing whitespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_reported_at_once() {
        let mut v = Violations::new();
        v.request_id("");
        v.id("sku", " padded");
        v.nested("movements[1]", |v| v.id("lot_id", &"x".repeat(129)));
        v.page_size(-1);
        let error = v.finish().unwrap_err();
        let fields: Vec<_> = error
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["request_id", "sku", "movements[1].lot_id", "page_size"]
        );
        assert!(error.message.contains("leading or trailing whitespace"));
    }

    #[test]
    fn valid_ids_pass() {
        let mut v = Violations::new();
        v.id("sku", "CITRUS-NAVEL.10kg:2026");
        v.id("lot_id", "LOT 2026/11 #4");
        v.optional_id("zone_id", "");
        v.text("reason", "damaged in transit", true);
        assert!(v.finish().is_ok());
    }

    #[test]
    fn page_sizes_default_and_clamp() {
        let mut v = Violations::new();
        assert_eq!(v.page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(v.page_size(7), 7);
        assert_eq!(v.page_size(5000), MAX_PAGE_SIZE);
        assert!(v.finish().is_ok());
    }

    #[test]
    fn ids_are_opaque_utf8_without_control_characters() {
        assert!(check_id("Mayang-navel/橙子 10kg", MAX_ID_LEN).is_ok());
        assert!(check_id("a\u{7}b", MAX_ID_LEN).is_err());
        assert!(check_id(&"é".repeat(65), MAX_ID_LEN).is_err(), "130 bytes");
    }

    #[test]
    fn text_rules() {
        let mut v = Violations::new();
        v.text("reason", "  ", true);
        v.text("note", "a\u{0}b", false);
        v.text("origin", &"x".repeat(513), false);
        assert_eq!(v.finish().unwrap_err().field_violations.len(), 3);
    }

    #[test]
    fn a_bad_page_token_is_reported_with_the_other_fields() {
        let token = crate::page_token::encode(b"sku=a", b"key");
        let mut v = Violations::new();
        assert_eq!(v.page_token(b"sku=a", &token), Some(b"key".to_vec()));
        assert_eq!(v.page_token(b"sku=a", ""), None);
        assert!(v.is_empty());
        v.page_size(-1);
        assert_eq!(v.page_token(b"sku=b", &token), None);
        let fields: Vec<_> = v
            .finish()
            .unwrap_err()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }

    #[test]
    fn text_within_its_own_limit_and_control_characters() {
        let mut v = Violations::new();
        v.text_within("note", "two\nlines", true, 16, TEXT_CONTROLS);
        v.text_within("route", &"x".repeat(16), true, 16, &[]);
        assert!(v.is_empty());
        v.text_within("route", "a\tb", true, 16, &[]);
        v.text_within("note", &"x".repeat(17), false, 16, TEXT_CONTROLS);
        v.text_within("reason", " ", true, 16, &[]);
        v.text_within("origin", "", false, 16, &[]);
        let descriptions: Vec<_> = v
            .finish()
            .unwrap_err()
            .field_violations
            .into_iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        assert_eq!(
            descriptions,
            [
                "route: must not contain control characters",
                "note: must be at most 16 bytes, got 17",
                "reason: is required",
            ]
        );
    }

    #[test]
    fn text_length_counts_bytes_not_characters() {
        // 256 two-byte characters are 512 bytes: the limit exactly.
        let mut v = Violations::new();
        v.text("reason", &"é".repeat(256), true);
        assert!(v.finish().is_ok());
        // 257 of them are 514 bytes but only 257 characters: over the limit.
        let mut v = Violations::new();
        v.text("reason", &"é".repeat(257), true);
        let error = v.finish().unwrap_err();
        assert_eq!(error.field_violations[0].field, "reason");
        assert!(error.message.contains("514"), "{}", error.message);
    }
}
