//! Logins: who is logged in, the signed cookie that names their session, and the form
//! tokens (CSRF) bound to it.
//!
//! The API key a person logs in with stays on the server, in the session table: the cookie
//! carries only a random session id and its expiry, signed with HMAC-SHA-256. A key inside
//! the cookie, even signed, would be readable by anyone who sees the cookie (a signature
//! hides nothing), would outlive a logout, and would travel with every request; a session id
//! is worthless once the session ends. The price: sessions end with the process unless it
//! keeps running (a restart asks people to log in again).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coldchain_runtime::auth::{ApiKey, Role};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::backend::Caller;

/// The cookie naming a session.
pub const SESSION_COOKIE: &str = "cc_session";
/// The cookie binding the login form's token before there is a session.
pub const LOGIN_COOKIE: &str = "cc_login";
/// How long a login form may be open before it is sent.
pub const LOGIN_FORM_TTL: Duration = Duration::from_secs(15 * 60);

/// The key that signs cookies and form tokens.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The least key length accepted from a file.
    pub const MIN_BYTES: usize = 32;

    /// A fresh random key (sessions then end with the process).
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key of a file: its bytes, surrounding whitespace trimmed.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("console_session_key_file {}: {e}", path.display()))?;
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < Self::MIN_BYTES {
            return Err(format!(
                "console_session_key_file {}: needs at least {} bytes, has {}",
                path.display(),
                Self::MIN_BYTES,
                trimmed.len()
            ));
        }
        Ok(Self(trimmed.to_vec()))
    }

    fn mac(&self, purpose: &str, parts: &[&str]) -> Hmac<Sha256> {
        // Hmac accepts keys of any length; `new_from_slice` fails for none.
        #[allow(clippy::expect_used)] // HMAC takes a key of any length
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(b"|");
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The hex signature of `parts` for `purpose`.
    pub fn sign(&self, purpose: &str, parts: &[&str]) -> String {
        hex(&self.mac(purpose, parts).finalize().into_bytes())
    }

    /// True when `signature` is the signature of `parts` (compared in constant time).
    pub fn verify(&self, purpose: &str, parts: &[&str], signature: &str) -> bool {
        match unhex(signature) {
            Some(bytes) => self.mac(purpose, parts).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    /// The value of a session cookie: `<id>.<expiry, unix seconds>.<signature>`.
    pub fn session_cookie(&self, id: &str, expires_unix: u64) -> String {
        let expiry = expires_unix.to_string();
        format!(
            "{id}.{expiry}.{}",
            self.sign("session", &[id, expiry.as_str()])
        )
    }

    /// The session id of a cookie value whose signature holds and whose expiry is after
    /// `now`.
    pub fn open_session_cookie(&self, value: &str, now: SystemTime) -> Result<String, Refused> {
        let mut parts = value.split('.');
        let (Some(id), Some(expiry), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
        };
        if !self.verify("session", &[id, expiry], signature) {
            return Err(Refused::BadSignature);
        }
        let expiry: u64 = expiry.parse().map_err(|_| Refused::Malformed)?;
        if unix(now) >= expiry {
            return Err(Refused::Expired);
        }
        Ok(id.to_owned())
    }

    /// The form token of a session (or of a login form's nonce).
    pub fn form_token(&self, binding: &str) -> String {
        self.sign("form", &[binding])
    }

    /// True when `token` is the form token of `binding`.
    pub fn check_form_token(&self, binding: &str, token: Option<&str>) -> bool {
        token.is_some_and(|token| self.verify("form", &[binding], token))
    }

    /// The value of the login form's cookie: `<nonce>.<expiry>.<signature>`.
    pub fn login_cookie(&self, nonce: &str, expires_unix: u64) -> String {
        let expiry = expires_unix.to_string();
        format!(
            "{nonce}.{expiry}.{}",
            self.sign("login", &[nonce, expiry.as_str()])
        )
    }

    /// The nonce of a login form's cookie that is signed and unexpired.
    pub fn open_login_cookie(&self, value: &str, now: SystemTime) -> Option<String> {
        let mut parts = value.split('.');
        let (Some(nonce), Some(expiry), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let fresh = expiry.parse::<u64>().is_ok_and(|e| unix(now) < e);
        (fresh && self.verify("login", &[nonce, expiry], signature)).then(|| nonce.to_owned())
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not `<id>.<expiry>.<signature>`.
    Malformed,
    /// Signed by another key, or changed.
    BadSignature,
    /// Past its expiry.
    Expired,
    /// Signed, but no such session (logged out, or the process restarted).
    Unknown,
}

/// One logged-in person.
#[derive(Clone)]
pub struct Session {
    /// The session id (random, 128 bits, hex).
    pub id: String,
    /// The credential id they logged in with.
    pub credential: String,
    /// Its role, when the console knows the credentials file (`None` without
    /// authentication).
    pub role: Option<Role>,
    /// How the console calls the services as them.
    pub caller: Caller,
    /// When the session ends.
    pub expires: SystemTime,
}

impl Session {
    /// True when the role may acknowledge alarms (the telemetry service decides anyway).
    pub fn may_acknowledge(&self) -> bool {
        matches!(self.role, None | Some(Role::Operations))
    }

    /// True for a role that reads the network as a whole (operations, or no authentication).
    pub fn sees_network(&self) -> bool {
        matches!(self.role, None | Some(Role::Operations))
    }

    /// The site a site-scoped role belongs to.
    pub fn own_site(&self) -> Option<&str> {
        self.role.as_ref().and_then(Role::site)
    }

    /// The customer of a booking client.
    pub fn customer(&self) -> Option<&str> {
        match &self.role {
            Some(Role::BookingClient { customer }) => Some(customer),
            _ => None,
        }
    }
}

/// Every live session.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `key`, answering it.
    pub fn start(
        &self,
        key: &ApiKey,
        role: Option<Role>,
        caller: Caller,
        ttl: Duration,
        now: SystemTime,
    ) -> Session {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let session = Session {
            id: hex(&bytes),
            credential: key.id().to_owned(),
            role,
            caller,
            expires: now + ttl,
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session of an id.
    pub fn get(&self, id: &str, now: SystemTime) -> Result<Session, Refused> {
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(session) if session.expires > now => Ok(session.clone()),
            Some(_) => {
                sessions.remove(id);
                Err(Refused::Expired)
            }
            None => Err(Refused::Unknown),
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Seconds since the epoch.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A random nonce for a login form.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_opens_only_unchanged_and_unexpired() {
        let key = SigningKey::random();
        let now = SystemTime::now();
        let cookie = key.session_cookie("abc", unix(now) + 60);
        assert_eq!(key.open_session_cookie(&cookie, now), Ok("abc".to_owned()));
        // Another id, another expiry, another key: the signature no longer holds.
        let tampered = cookie.replacen("abc", "abd", 1);
        assert_eq!(
            key.open_session_cookie(&tampered, now),
            Err(Refused::BadSignature)
        );
        let (_, rest) = cookie.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let later = format!("abc.{}.{signature}", unix(now) + 3600);
        assert_eq!(
            key.open_session_cookie(&later, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            SigningKey::random().open_session_cookie(&cookie, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            key.open_session_cookie(&cookie, now + Duration::from_secs(61)),
            Err(Refused::Expired)
        );
        for bad in ["", "abc", "a.b", "a.b.c.d", "abc.1.zz"] {
            assert!(key.open_session_cookie(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_form_token_belongs_to_one_binding() {
        let key = SigningKey::random();
        let token = key.form_token("session-1");
        assert!(key.check_form_token("session-1", Some(&token)));
        assert!(!key.check_form_token("session-2", Some(&token)));
        assert!(!key.check_form_token("session-1", None));
        assert!(!key.check_form_token("session-1", Some("")));
    }

    #[test]
    fn a_short_key_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("cc-console-key-{}", nonce()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "short\n").unwrap();
        let problem = SigningKey::from_file(&file).err().unwrap();
        assert!(
            problem.contains("needs at least 32 bytes, has 5"),
            "{problem}"
        );
        std::fs::write(&file, format!("{}\n", "k".repeat(40))).unwrap();
        assert!(SigningKey::from_file(&file).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = "a=1; cc_session=x.y.z; b=2";
        assert_eq!(cookie(header, SESSION_COOKIE), Some("x.y.z"));
        assert_eq!(cookie(header, "c"), None);
    }
}
