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

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coldchain_proto::{BOOKING_SERVICE, INVENTORY_SERVICE, NETWORK_SERVICE, TELEMETRY_SERVICE};
use sha2::{Digest, Sha256};

use crate::network::{NetworkConfig, ServiceKind};
use coldchain_network::{ConfigErrors, did_you_mean, toml_error_message};

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
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a credential id is 1 to {MAX_ID_BYTES} characters of a-z, 0-9, '-' and '_', got {id:?}"
        ))
    }
}

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

impl Refusal {
    /// The gRPC status of the refusal. Neither message reveals whether what the call names
    /// exists.
    pub fn status(&self) -> tonic::Status {
        match self {
            Refusal::Unauthenticated => tonic::Status::unauthenticated(
                "missing or invalid credentials: send authorization: Bearer cc1.<id>.<secret>",
            ),
            Refusal::Denied(why) => tonic::Status::permission_denied(why.clone()),
            Refusal::RateLimited(after) => tonic::Status::resource_exhausted(format!(
                "rate limit of this credential exceeded: retry in {} ms",
                after.as_millis().max(1)
            )),
        }
    }
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

/// Who may call a method: roles, the site-scoped ones only on their own site's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The warehouse system of the server's site.
    Warehouse,
    /// The sensor gateway of the server's site.
    SensorGateway,
    /// Any booking client (the handler then keeps it to its own customer).
    BookingClient,
    /// Operations.
    Operations,
    /// The named service calling as itself.
    Service(ServiceKind),
}

/// Methods every caller may use without credentials: health (for orchestrators) and
/// reflection (the schema is public; the data is not).
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// The policy table: who may call each RPC of our contracts. `None` for a path that is not
/// one of ours (the router answers UNIMPLEMENTED).
pub fn grants(path: &str) -> Option<&'static [Grant]> {
    use Grant::*;
    use ServiceKind::{Gateway as Gw, Inventory as Inv, Telemetry as Tel};
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let grants: &'static [Grant] = match (service, method) {
        (INVENTORY_SERVICE, "RecordMovements") => &[Warehouse, Service(Gw)],
        (INVENTORY_SERVICE, "GetStock" | "ListStock" | "WatchLedger") => {
            &[Warehouse, Operations, Service(Gw)]
        }
        (INVENTORY_SERVICE, "AllocateStock" | "ReleaseAllocation") => &[Warehouse],
        (INVENTORY_SERVICE, "PlaceHold" | "ReleaseHold") => &[Warehouse, Operations, Service(Tel)],
        (TELEMETRY_SERVICE, "StreamReadings" | "PushReadings") => &[SensorGateway],
        (TELEMETRY_SERVICE, "RegisterSensor") => &[Operations, Service(Gw)],
        (
            TELEMETRY_SERVICE,
            "ListSensors"
            | "QueryReadings"
            | "GetMeanKineticTemperature"
            | "ListAlarms"
            | "WatchAlarms",
        ) => &[Warehouse, Operations, Service(Gw)],
        (TELEMETRY_SERVICE, "AcknowledgeAlarm") => &[Operations],
        (BOOKING_SERVICE, "GetAvailability") => {
            &[BookingClient, Warehouse, Operations, Service(Gw)]
        }
        (BOOKING_SERVICE, "HoldSpace" | "ConfirmBooking") => &[BookingClient],
        (BOOKING_SERVICE, "CancelBooking") => &[BookingClient, Operations],
        (BOOKING_SERVICE, "CheckIn") => &[Service(Inv), Operations],
        (BOOKING_SERVICE, "CompleteBooking") => &[Warehouse, Operations],
        (BOOKING_SERVICE, "GetBooking" | "ListBookings") => &[BookingClient, Warehouse, Operations],
        (NETWORK_SERVICE, "ListSites") => &[Warehouse, BookingClient, SensorGateway, Operations],
        (NETWORK_SERVICE, "FindSpace") => &[BookingClient, Operations],
        // Telemetry reads a transfer to find the lots a reefer's excursion must hold.
        (NETWORK_SERVICE, "GetTransfer") => &[Operations, Service(Tel)],
        (
            NETWORK_SERVICE,
            "FindStock" | "ListAlarms" | "WatchAlarms" | "StartTransfer" | "ReceiveTransfer"
            | "ListTransfers",
        ) => &[Operations],
        _ => return None,
    };
    Some(grants)
}

/// What a server is, for the policy: its service and, for site services, its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScope {
    /// The service it serves.
    pub kind: ServiceKind,
    /// Its site (`None` for the gateway).
    pub site: Option<String>,
}

/// May `principal` call `path` on this server?
pub fn authorize(principal: &Principal, server: &ServerScope, path: &str) -> Result<(), Refusal> {
    if is_open(path) {
        return Ok(());
    }
    let Some(grants) = grants(path) else {
        // Not one of our methods: nothing to protect, the router answers UNIMPLEMENTED.
        return Ok(());
    };
    let on_own_site = |site: &str| server.site.as_deref() == Some(site);
    let allowed = grants.iter().any(|grant| match (grant, &principal.role) {
        (Grant::Warehouse, Role::Warehouse { site }) => {
            server.kind == ServiceKind::Gateway || on_own_site(site)
        }
        (Grant::SensorGateway, Role::SensorGateway { site }) => {
            server.kind == ServiceKind::Gateway || on_own_site(site)
        }
        (Grant::BookingClient, Role::BookingClient { .. }) => true,
        (Grant::Operations, Role::Operations) => true,
        (Grant::Service(kind), Role::Service(caller)) => kind == caller,
        _ => false,
    });
    if allowed {
        Ok(())
    } else {
        let method = path.rsplit('/').next().unwrap_or(path);
        let place = match &server.site {
            Some(site) => format!("{} of {site}", server.kind.as_str()),
            None => server.kind.as_str().to_owned(),
        };
        Err(Refusal::Denied(format!(
            "credential {:?} ({}) may not call {method} on {place}",
            principal.id, principal.role
        )))
    }
}

/// Authentication, authorization and rate limiting for one server.
#[derive(Debug)]
pub struct Gatekeeper {
    credentials: std::sync::Arc<Credentials>,
    scope: ServerScope,
    limiter: RateLimiter,
}

impl Gatekeeper {
    /// A gatekeeper for the server `scope`, allowing `rate` calls per second and `burst` at
    /// once per credential.
    pub fn new(
        credentials: std::sync::Arc<Credentials>,
        scope: ServerScope,
        rate: usize,
        burst: usize,
    ) -> Self {
        Self {
            credentials,
            scope,
            limiter: RateLimiter::new(rate as f64, burst as f64),
        }
    }

    /// Checks one call: who, may they, and not too often.
    pub fn admit(
        &self,
        path: &str,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Principal>, Refusal> {
        if is_open(path) {
            return Ok(None);
        }
        let principal = self.credentials.authenticate(authorization)?;
        authorize(&principal, &self.scope, path)?;
        self.limiter.take(&principal.id, Instant::now())?;
        Ok(Some(principal))
    }
}

/// A token bucket per credential, shared by every connection to one server (tower's
/// `RateLimit` counts per connection, so a client could multiply its rate by connecting
/// again).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `id` at `now`, or says how long until one is there.
    pub fn take(&self, id: &str, now: Instant) -> Result<(), Refusal> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(id) {
            Some(bucket) => bucket,
            None => buckets.entry(id.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(Refusal::RateLimited(Duration::from_secs_f64(wait)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> NetworkConfig {
        NetworkConfig::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/network.toml"
        ))
        .expect("the shipped network file is valid")
    }

    fn header(key: &ApiKey) -> http::HeaderValue {
        key.header_value()
    }

    #[test]
    fn a_key_round_trips_and_its_secret_is_never_printed() {
        let key = ApiKey::generate("th-bangkok-wms").unwrap();
        let parsed = ApiKey::parse(&key.expose()).unwrap();
        assert_eq!(parsed, key);
        assert!(!format!("{key:?}").contains(&key.secret));
        assert!(ApiKey::parse("cc2.x.y").is_err());
        assert!(ApiKey::parse("cc1.UPPER.y").is_err());
        assert!(ApiKey::parse("cc1.x.").is_err());
        assert!(ApiKey::generate("").is_err());
    }

    #[test]
    fn only_the_right_secret_authenticates() {
        let key = ApiKey::generate("ops").unwrap();
        let mut credentials = Credentials::default();
        credentials.insert(&key, Role::Operations);
        assert_eq!(
            credentials.authenticate(Some(&header(&key))).unwrap().role,
            Role::Operations
        );

        let wrong = ApiKey::parse(&format!("cc1.ops.{}", "0".repeat(64))).unwrap();
        let unknown = ApiKey::generate("nobody").unwrap();
        for bad in [
            None,
            Some(http::HeaderValue::from_static("Bearer")),
            Some(http::HeaderValue::from_static("Basic b3BzOng=")),
            Some(header(&wrong)),
            Some(header(&unknown)),
        ] {
            assert_eq!(
                credentials.authenticate(bad.as_ref()),
                Err(Refusal::Unauthenticated)
            );
        }
    }

    #[test]
    fn the_credentials_file_is_parsed_and_every_problem_reported() {
        let key = ApiKey::generate("bkk").unwrap();
        let hash = key.secret_sha256();
        let text = format!(
            r#"
[[credential]]
id = "bkk"
role = "warehouse"
site = "th-bangkok"
secret_sha256 = "{hash}"

[[credential]]
id = "acme"
role = "booking_client"
customer = "acme-foods"
secret_sha256 = "{hash}"

[[credential]]
id = "gw"
role = "service"
service = "gateway"
secret_sha256 = "{hash}"
"#
        );
        let credentials = Credentials::parse("creds.toml", &text, &network()).unwrap();
        assert_eq!(credentials.len(), 3);
        assert_eq!(
            credentials.authenticate(Some(&header(&key))).unwrap().role,
            Role::Warehouse {
                site: "th-bangkok".into()
            }
        );

        let bad = r#"
color = "red"
[[credential]]
id = "Bad Id"
role = "warehouse"
site = "atlantis"
customer = "x"
secret_sha256 = "abc"
[[credential]]
id = "x"
role = "wharehouse"
secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[credential]]
id = "y"
role = "service"
service = "booking"
secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[credential]]
id = "y"
role = "operations"
sekret = "z"
"#;
        let errors = Credentials::parse("creds.toml", bad, &network()).unwrap_err();
        for needle in [
            "unknown key \"color\"",
            "credential[0]: id:",
            "no site \"atlantis\"",
            "customer does not apply",
            "secret_sha256: expected 64 hex digits",
            "unknown role \"wharehouse\" (did you mean \"warehouse\"?)",
            "service: expected gateway, telemetry or inventory",
            "unknown key \"sekret\"",
            "credential[3]: secret_sha256 is required",
        ] {
            assert!(errors.mentions(needle), "{needle:?} missing from {errors}");
        }
    }

    #[test]
    fn every_rpc_of_the_contracts_has_a_policy() {
        use prost::Message;
        let set =
            prost_types::FileDescriptorSet::decode(coldchain_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut count = 0;
        for file in set
            .file
            .iter()
            .filter(|f| f.package().starts_with("coldchain."))
        {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    if file.package() == "coldchain.bench.v1" {
                        continue;
                    }
                    assert!(grants(&path).is_some(), "{path} has no policy");
                    count += 1;
                }
            }
        }
        assert!(count >= 30, "only {count} methods found");
    }

    #[test]
    fn site_roles_stay_on_their_site() {
        let bangkok = ServerScope {
            kind: ServiceKind::Inventory,
            site: Some("th-bangkok".into()),
        };
        let vientiane = ServerScope {
            kind: ServiceKind::Inventory,
            site: Some("la-vientiane".into()),
        };
        let wms = Principal {
            id: "bkk".into(),
            role: Role::Warehouse {
                site: "th-bangkok".into(),
            },
        };
        let path = format!("/{INVENTORY_SERVICE}/RecordMovements");
        assert_eq!(authorize(&wms, &bangkok, &path), Ok(()));
        assert!(matches!(
            authorize(&wms, &vientiane, &path),
            Err(Refusal::Denied(_))
        ));
        assert_eq!(
            authorize(&wms, &vientiane, "/grpc.health.v1.Health/Check"),
            Ok(())
        );
    }

    #[test]
    fn the_rate_limit_refills_at_its_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.take("a", start).unwrap();
        }
        assert!(matches!(
            limiter.take("a", start),
            Err(Refusal::RateLimited(_))
        ));
        // Another credential has its own bucket.
        limiter.take("b", start).unwrap();
        // 100 ms later one token is back, and only one.
        let later = start + Duration::from_millis(100);
        limiter.take("a", later).unwrap();
        assert!(limiter.take("a", later).is_err());
    }
}
