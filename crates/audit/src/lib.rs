//! Who made a change, as every service records it with the change: the principal the server
//! authenticated (a credential id, never a secret) and the actor the client named (a person
//! at the warehouse system, or the principal a service acted for).
//!
//! Pure: no I/O, no protobuf, so every service's `domain` may hold it.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// The principal of changes recorded before a store kept who made them.
pub const UNKNOWN: &str = "unknown";
/// The principal of changes made on a server that runs without authentication.
pub const ANONYMOUS: &str = "anonymous";
/// The principal of changes a service makes by itself (a hold lapsing, a no-show).
pub const SYSTEM: &str = "system";
/// The principal names above: never credential ids, so a record cannot be mistaken for
/// the work of a credential of that name.
pub const RESERVED_PRINCIPALS: [&str; 3] = [UNKNOWN, ANONYMOUS, SYSTEM];
/// The longest actor a request may name, in bytes of UTF-8.
pub const MAX_ACTOR_BYTES: usize = 128;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Author {
    /// The credential id the server authenticated, or one of the reserved names.
    pub principal: String,
    /// The actor the client named; empty when none.
    pub actor: String,
}

impl Author {
    /// `principal`, with the `actor` a request named.
    pub fn new(principal: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            actor: actor.into(),
        }
    }

    /// The author of a change recorded before the store kept authors.
    pub fn unknown() -> Self {
        Self::new(UNKNOWN, "")
    }

    /// The author of a change the service made by itself.
    pub fn system() -> Self {
        Self::new(SYSTEM, "")
    }

    /// The actor a service names when it calls another service on this author's behalf
    /// (the gateway's transfer steps, telemetry's holds): the principal, and the actor
    /// after a slash when there is one, cut to [`MAX_ACTOR_BYTES`] on a character boundary.
    pub fn on_behalf(&self) -> String {
        let mut text = if self.actor.is_empty() {
            self.principal.clone()
        } else {
            format!("{}/{}", self.principal, self.actor)
        };
        if text.len() > MAX_ACTOR_BYTES {
            let mut end = MAX_ACTOR_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

impl std::fmt::Display for Author {
    /// `principal`, or `principal (actor)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.actor.is_empty() {
            f.write_str(&self.principal)
        } else {
            write!(f, "{} ({})", self.principal, self.actor)
        }
    }
}

/// Why an actor is refused, if it is: at most [`MAX_ACTOR_BYTES`] of UTF-8 with no control
/// characters (it is shown in tables and exports on one line). Empty is allowed.
pub fn check_actor(actor: &str) -> Result<(), String> {
    if actor.len() > MAX_ACTOR_BYTES {
        Err(format!(
            "must be at most {MAX_ACTOR_BYTES} bytes, got {}",
            actor.len()
        ))
    } else if actor.chars().any(char::is_control) {
        Err("must not contain control characters".to_string())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_behalf_names_the_principal_and_the_actor() {
        assert_eq!(Author::new("ops-1", "").on_behalf(), "ops-1");
        assert_eq!(Author::new("ops-1", "Anna").on_behalf(), "ops-1/Anna");
    }

    #[test]
    fn on_behalf_is_cut_on_a_character_boundary() {
        let long = Author::new("ops-1", "é".repeat(200));
        let text = long.on_behalf();
        assert!(text.len() <= MAX_ACTOR_BYTES);
        assert!(check_actor(&text).is_ok());
        assert!(text.starts_with("ops-1/é"));
    }

    #[test]
    fn actors_are_one_line_of_at_most_128_bytes() {
        assert!(check_actor("").is_ok());
        assert!(check_actor("Nguyễn Văn An, badge 4471").is_ok());
        assert!(check_actor(&"a".repeat(128)).is_ok());
        assert!(check_actor(&"a".repeat(129)).is_err());
        assert!(check_actor("line\nbreak").is_err());
    }

    #[test]
    fn display_shows_the_actor_in_parentheses() {
        assert_eq!(Author::new("wh-1", "Anna").to_string(), "wh-1 (Anna)");
        assert_eq!(Author::unknown().to_string(), "unknown");
    }
}
