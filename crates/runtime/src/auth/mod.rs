//! Who is calling, and may they: API keys checked against a credentials file of hashes, one
//! policy table of which role may call which RPC, and a rate limit per credential.
//!
//! A key looks like `cc1.<id>.<secret>` and travels as `authorization: Bearer <key>`. The
//! credentials file stores, per id, the role, its scope (a site, a customer or a service) and
//! the SHA-256 of the secret; never the secret itself. Why keys and not signed tokens, and how
//! to rotate them: SECURITY.md.
//!
//! The server bootstrap ([`crate::server`]) authenticates and authorizes every call before it
//! reaches a handler and puts the [`Principal`] into the request's extensions. Handlers that
//! own finer rules (a booking client sees only its own bookings) read it with [`principal`].

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::network::ServiceKind;

/// The version tag every key starts with, so a future format can be told apart.
const KEY_PREFIX: &str = "cc1";
/// Bytes of randomness in a generated secret (written as hex).
const SECRET_BYTES: usize = 32;
/// The longest credential id.
const MAX_ID_BYTES: usize = 64;

/// What a caller is allowed to be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A site's warehouse management system: reads and writes only that site's inventory,
    /// reads its site's bookings and telemetry, completes its bookings.
    Warehouse { site: String },
    /// A booking client bound to one customer: only that customer's bookings.
    BookingClient { customer: String },
    /// A site's sensor gateway: only pushes readings, only to that site.
    SensorGateway { site: String },
    /// Operations staff: read everything, acknowledge alarms, place and release holds,
    /// move goods between sites.
    Operations,
    /// Another service of this network calling as itself.
    Service(ServiceKind),
}

impl Role {
    /// The name used in the credentials file.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Warehouse { .. } => "warehouse",
            Role::BookingClient { .. } => "booking_client",
            Role::SensorGateway { .. } => "sensor_gateway",
            Role::Operations => "operations",
            Role::Service(_) => "service",
        }
    }

    /// The site a site-scoped role is bound to.
    pub fn site(&self) -> Option<&str> {
        match self {
            Role::Warehouse { site } | Role::SensorGateway { site } => Some(site),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Warehouse { site } => write!(f, "warehouse of {site}"),
            Role::BookingClient { customer } => write!(f, "booking client of {customer}"),
            Role::SensorGateway { site } => write!(f, "sensor gateway of {site}"),
            Role::Operations => f.write_str("operations"),
            Role::Service(kind) => write!(f, "{} service", kind.as_str()),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential id (never the secret).
    pub id: String,
    /// What it may do.
    pub role: Role,
}

impl Principal {
    /// The customer a booking client is bound to.
    pub fn customer(&self) -> Option<&str> {
        match &self.role {
            Role::BookingClient { customer } => Some(customer),
            _ => None,
        }
    }
}

/// The caller of a request, when the server authenticates (absent when it runs without
/// authentication).
pub fn principal<T>(request: &tonic::Request<T>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

/// Who makes the change a request asks for, as the audit trail records it: the
/// authenticated principal ([`coldchain_audit::ANONYMOUS`] on a server without
/// authentication) and the `actor` the request names (checked by the request's wire
/// validation, see [`crate::validate::Violations::actor`]).
pub fn author<T>(request: &tonic::Request<T>, actor: &str) -> coldchain_audit::Author {
    let principal = principal(request).map_or(coldchain_audit::ANONYMOUS, |p| p.id.as_str());
    coldchain_audit::Author::new(principal, actor)
}

/// An API key: the id says which credential, the secret proves it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: String,
    secret: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, <secret>)", self.id)
    }
}

impl ApiKey {
    /// A new key with a fresh random secret. `id` must be a valid credential id.
    pub fn generate(id: &str) -> Result<ApiKey, String> {
        check_id(id)?;
        let bytes: [u8; SECRET_BYTES] = rand::random();
        Ok(ApiKey {
            id: id.to_owned(),
            secret: hex(&bytes),
        })
    }

    /// Parses `cc1.<id>.<secret>`.
    pub fn parse(text: &str) -> Result<ApiKey, String> {
        let mut parts = text.trim().splitn(3, '.');
        let (Some(KEY_PREFIX), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("an api key looks like cc1.<id>.<secret>".to_owned());
        };
        check_id(id)?;
        if secret.is_empty() || secret.len() > 256 || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(
                "the secret of an api key must be 1 to 256 visible ascii characters".into(),
            );
        }
        Ok(ApiKey {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Reads a key from a file (its first non-empty line).
    pub fn from_file(path: &Path) -> Result<ApiKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read api key file {}: {e}", path.display()))?;
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        ApiKey::parse(line.unwrap_or_default())
            .map_err(|e| format!("api key file {}: {e}", path.display()))
    }

    /// The credential id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole key, `cc1.<id>.<secret>`: show it once, store it like a password.
    pub fn expose(&self) -> String {
        format!("{KEY_PREFIX}.{}.{}", self.id, self.secret)
    }

    /// The SHA-256 of the secret, in hex, as the credentials file stores it.
    pub fn secret_sha256(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
    }

    /// The `authorization` header value that carries this key.
    pub fn header_value(&self) -> http::HeaderValue {
        // A key is parsed or generated from visible ASCII only (`check_id`, hex secrets).
        #[allow(clippy::expect_used)]
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", self.expose()))
            .expect("a parsed key is visible ascii");
        value.set_sensitive(true);
        value
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        Err(format!(
            "a credential id is 1 to {MAX_ID_BYTES} characters of a-z, 0-9, '-' and '_', got {id:?}"
        ))
    } else if coldchain_audit::RESERVED_PRINCIPALS.contains(&id) {
        // The audit trail names these for changes no credential made.
        Err(format!(
            "{id:?} is reserved for the audit trail, not a credential id"
        ))
    } else {
        Ok(())
    }
}

mod credentials;
mod gatekeeper;
mod policy;

pub use credentials::{Credentials, Refusal};
pub use gatekeeper::{Gatekeeper, RateLimiter};
pub use policy::{Grant, ServerScope, authorize, grants};

#[cfg(test)]
mod tests;
