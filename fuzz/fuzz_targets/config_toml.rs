#![no_main]
#![forbid(unsafe_code)]
//! `Config::from_layers` of an arbitrary config file and environment, and the duration and
//! byte-size parsers behind its values.
//!
//! Input: the file's text, then optionally a NUL byte and `NAME=value` lines for the
//! environment (so plain TOML files work as seeds).
//!
//! - Never panics; a refusal lists at least one problem, none empty, and names every
//!   unknown `COLDCHAIN_*` variable.
//! - An accepted configuration keeps its documented bounds, and is the file's values
//!   overridden by the environment's, field by field.
//! - `parse_duration` and `parse_byte_size` never panic; a duration that parses is printed
//!   by `format_duration` as text that parses to the same duration.

use std::collections::BTreeMap;
use std::time::Duration;

use coldchain_runtime::config::{
    Config, MIN_IDEMPOTENCY_RETENTION, format_duration, parse_byte_size, parse_duration,
};
use libfuzzer_sys::fuzz_target;

/// The top-level fields of a config as `name → Debug text`, read from its pretty Debug
/// output, so that fields added later are compared without this target knowing them.
fn fields(config: &Config) -> BTreeMap<String, String> {
    let text = format!("{config:#?}");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().skip(1) {
        let top_level = line.starts_with("    ") && !line.starts_with("     ");
        match (top_level, line.trim().split_once(": ")) {
            (true, Some((name, value))) => {
                out.insert(name.to_owned(), value.to_owned());
                current = Some(name.to_owned());
            }
            _ => {
                if let Some(name) = &current {
                    out.entry(name.clone()).or_default().push_str(line.trim());
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, env_text) = match text.split_once('\0') {
        Some((file, env)) => (file, env),
        None => (text.as_ref(), ""),
    };
    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();

    for value in file.lines().chain(env.values().map(String::as_str)) {
        if let Ok(duration) = parse_duration(value) {
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
        let _ = parse_byte_size(value);
    }

    let config = match Config::from_layers(Some(("fuzz.toml", file)), &env) {
        Ok(config) => config,
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.problems().iter().all(|p| !p.trim().is_empty()));
            for name in env.keys() {
                let known = Config::env_vars().contains(name)
                    || Config::KNOWN_EXTRA_ENV.contains(&name.as_str());
                if name.starts_with(Config::ENV_PREFIX) && !known {
                    assert!(errors.mentions(name), "{name} not named in {errors:?}");
                }
            }
            return;
        }
    };
    assert!(config.rpc_timeout > Duration::ZERO);
    assert!(config.concurrency_limit >= 1);
    assert!((1024..=1 << 30).contains(&config.max_message_bytes));
    assert!(config.sled_cache_bytes >= 1 << 20);
    assert!(config.idempotency_retention >= MIN_IDEMPOTENCY_RETENTION);

    // The environment wins field by field. A layer alone can break a rule that spans
    // settings (tls_cert without the tls_key the other layer gives): then there is nothing
    // to compare with.
    let from_file = Config::from_layers(Some(("fuzz.toml", file)), &BTreeMap::new());
    let from_env = Config::from_layers(None, &env);
    let (Ok(from_file), Ok(from_env)) = (from_file, from_env) else {
        return;
    };
    let (from_file, from_env, combined) = (fields(&from_file), fields(&from_env), fields(&config));
    assert!(combined.contains_key("rpc_timeout"), "{combined:?}");
    for key in Config::keys() {
        let expected = if env.contains_key(&Config::env_var_name(key)) {
            from_env.get(key)
        } else {
            from_file.get(key)
        };
        assert_eq!(combined.get(key), expected, "{key}");
    }
});
