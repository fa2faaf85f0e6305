//! The credentials file: per id, the role, its scope and the SHA-256 of the secret, every
//! bad entry reported at once; and checking a presented key against it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use coldchain_network::{ConfigErrors, did_you_mean, toml_error_message};
use sha2::{Digest, Sha256};

use super::{ApiKey, Principal, Role, check_id};
use crate::network::{NetworkConfig, ServiceKind};

/// One line of the credentials file, checked.
#[derive(Debug, Clone)]
struct Entry {
    role: Role,
    secret_sha256: [u8; 32],
}

/// Every credential a server accepts, from the credentials file.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_id: HashMap<String, Entry>,
}

/// Why a call is refused before it reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key, a malformed key, an unknown id or a wrong secret (never said which).
    Unauthenticated,
    /// A valid caller whose role may not make this call here.
    Denied(String),
    /// Over the credential's rate; retry after the duration.
    RateLimited(Duration),
}

impl Credentials {
    /// Reads and checks the credentials file; every bad entry is reported at once. Sites
    /// must exist in `network`.
    pub fn load(path: &Path, network: &NetworkConfig) -> Result<Credentials, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            ))
        })?;
        Credentials::parse(&path.display().to_string(), &text, network)
    }

    /// Parses a credentials file:
    ///
    /// ```toml
    /// [[credential]]
    /// id = "th-bangkok-wms"
    /// role = "warehouse"          # warehouse, booking_client, sensor_gateway, operations, service
    /// site = "th-bangkok"         # warehouse and sensor_gateway
    /// # customer = "acme-foods"   # booking_client
    /// # service = "gateway"       # service: gateway, telemetry or inventory
    /// secret_sha256 = "<64 hex digits>"
    /// ```
    pub fn parse(
        origin: &str,
        text: &str,
        network: &NetworkConfig,
    ) -> Result<Credentials, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(err) => {
                return Err(ConfigErrors::single(format!(
                    "{origin}: {}",
                    toml_error_message(text, &err)
                )));
            }
        };
        for key in table.keys().filter(|k| k.as_str() != "credential") {
            errors.push(format!(
                "{origin}: unknown key {key:?}; the file holds [[credential]] entries"
            ));
        }
        let entries = match table.get("credential") {
            None => &Vec::new(),
            Some(toml::Value::Array(entries)) => entries,
            Some(_) => {
                errors.push(format!(
                    "{origin}: credential must be an array of tables ([[credential]])"
                ));
                return Err(errors);
            }
        };
        let mut credentials = Credentials::default();
        for (index, entry) in entries.iter().enumerate() {
            let at = format!("{origin}: credential[{index}]");
            match parse_entry(&at, entry, network) {
                Ok((id, entry)) => {
                    if credentials.by_id.insert(id.clone(), entry).is_some() {
                        errors.push(format!("{at}: duplicate id {id:?}"));
                    }
                }
                Err(problems) => errors.extend(problems),
            }
        }
        errors.into_result(credentials)
    }

    /// The number of credentials.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no credential is configured (every call is then refused).
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds a credential (for tests and for `coldchain dev`, which makes its own).
    pub fn insert(&mut self, key: &ApiKey, role: Role) {
        self.by_id.insert(
            key.id.clone(),
            Entry {
                role,
                secret_sha256: Sha256::digest(key.secret.as_bytes()).into(),
            },
        );
    }

    /// Who sent this `authorization` header.
    pub fn authenticate(&self, header: Option<&http::HeaderValue>) -> Result<Principal, Refusal> {
        let text = header
            .and_then(|h| h.to_str().ok())
            .ok_or(Refusal::Unauthenticated)?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or(Refusal::Unauthenticated)?;
        let key = ApiKey::parse(token).map_err(|_| Refusal::Unauthenticated)?;
        // Hash before the lookup, so an unknown id costs the same time as a wrong secret.
        let presented: [u8; 32] = Sha256::digest(key.secret.as_bytes()).into();
        let entry = self.by_id.get(&key.id).ok_or(Refusal::Unauthenticated)?;
        // Compare every byte whatever the first difference, so timing does not tell how
        // much of a guess was right.
        let difference = presented
            .iter()
            .zip(entry.secret_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(Refusal::Unauthenticated);
        }
        Ok(Principal {
            id: key.id,
            role: entry.role.clone(),
        })
    }
}

fn parse_entry(
    at: &str,
    value: &toml::Value,
    network: &NetworkConfig,
) -> Result<(String, Entry), ConfigErrors> {
    const KEYS: [&str; 6] = ["id", "role", "site", "customer", "service", "secret_sha256"];
    let mut errors = ConfigErrors::new();
    let Some(table) = value.as_table() else {
        return Err(ConfigErrors::single(format!("{at}: must be a table")));
    };
    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "{at}: unknown key {key:?}{}; known keys: {}",
                did_you_mean(key, &KEYS),
                KEYS.join(", ")
            ));
        }
    }
    let text = |key: &str, errors: &mut ConfigErrors| -> Option<String> {
        match table.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(format!(
                    "{at}: {key}: expected a string, got {}",
                    other.type_str()
                ));
                None
            }
        }
    };
    let id = text("id", &mut errors);
    let role = text("role", &mut errors);
    let site = text("site", &mut errors);
    let customer = text("customer", &mut errors);
    let service = text("service", &mut errors);
    let hash = text("secret_sha256", &mut errors);

    match &id {
        None => errors.push(format!("{at}: id is required")),
        Some(id) => {
            if let Err(problem) = check_id(id) {
                errors.push(format!("{at}: id: {problem}"));
            }
        }
    }
    let secret_sha256 = match hash.as_deref().map(parse_sha256) {
        None => {
            errors.push(format!("{at}: secret_sha256 is required"));
            None
        }
        Some(Err(problem)) => {
            errors.push(format!("{at}: secret_sha256: {problem}"));
            None
        }
        Some(Ok(hash)) => Some(hash),
    };
    let unexpected = |key: &str, given: &Option<String>, role: &str, errors: &mut ConfigErrors| {
        if given.is_some() {
            errors.push(format!("{at}: {key} does not apply to role {role:?}"));
        }
    };
    let need_site = |errors: &mut ConfigErrors| -> Option<String> {
        match &site {
            None => {
                errors.push(format!(
                    "{at}: site is required for role {:?}",
                    role.as_deref().unwrap_or("")
                ));
                None
            }
            Some(site) if network.site(site).is_none() => {
                errors.push(format!("{at}: site: no site {site:?} in the network file"));
                None
            }
            Some(site) => Some(site.clone()),
        }
    };
    let role = match role.as_deref() {
        None => {
            errors.push(format!("{at}: role is required"));
            None
        }
        Some(name @ ("warehouse" | "sensor_gateway")) => {
            unexpected("customer", &customer, name, &mut errors);
            unexpected("service", &service, name, &mut errors);
            need_site(&mut errors).map(|site| {
                if name == "warehouse" {
                    Role::Warehouse { site }
                } else {
                    Role::SensorGateway { site }
                }
            })
        }
        Some(name @ "booking_client") => {
            unexpected("site", &site, name, &mut errors);
            unexpected("service", &service, name, &mut errors);
            match customer {
                Some(customer)
                    if crate::validate::check_id(&customer, crate::validate::MAX_ID_LEN)
                        .is_ok() =>
                {
                    Some(Role::BookingClient { customer })
                }
                Some(customer) => {
                    errors.push(format!(
                        "{at}: customer: not a valid customer id: {customer:?}"
                    ));
                    None
                }
                None => {
                    errors.push(format!(
                        "{at}: customer is required for role \"booking_client\""
                    ));
                    None
                }
            }
        }
        Some(name @ "operations") => {
            unexpected("site", &site, name, &mut errors);
            unexpected("customer", &customer, name, &mut errors);
            unexpected("service", &service, name, &mut errors);
            Some(Role::Operations)
        }
        Some(name @ "service") => {
            unexpected("site", &site, name, &mut errors);
            unexpected("customer", &customer, name, &mut errors);
            match service.as_deref().map(str::parse::<ServiceKind>) {
                Some(Ok(kind)) if kind != ServiceKind::Booking => Some(Role::Service(kind)),
                Some(_) => {
                    errors.push(format!(
                        "{at}: service: expected gateway, telemetry or inventory (the services that call others), got {:?}",
                        service.unwrap_or_default()
                    ));
                    None
                }
                None => {
                    errors.push(format!("{at}: service is required for role \"service\""));
                    None
                }
            }
        }
        Some(other) => {
            let roles = [
                "warehouse",
                "booking_client",
                "sensor_gateway",
                "operations",
                "service",
            ];
            errors.push(format!(
                "{at}: role: unknown role {other:?}{}; roles: {}",
                did_you_mean(other, &roles),
                roles.join(", ")
            ));
            None
        }
    };
    match (id, role, secret_sha256) {
        (Some(id), Some(role), Some(secret_sha256)) if errors.is_empty() => Ok((
            id,
            Entry {
                role,
                secret_sha256,
            },
        )),
        _ => Err(errors),
    }
}

fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 64 hex digits (the SHA-256 of the secret)".to_owned());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| "expected 64 hex digits".to_owned())?;
    }
    Ok(out)
}
