//! Property tests of the runtime's decoders of outside text, through the public API: page
//! tokens (what a client sends back), `network.toml` and the config file with its
//! environment.
//!
//! The modules' unit tests already feed them random strings; these add structure, so that
//! the inputs get past the first syntax check: tokens one edit away from real ones, network
//! files that are the shipped one with one value changed or one key removed, config files
//! with values of every TOML type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, HashSet};

use coldchain_runtime::Code;
use coldchain_runtime::config::{Config, ConfigErrors};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::page_token;
use proptest::prelude::*;

const SHIPPED_NETWORK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/network.toml"
));

/// Asserts `decode` refused `token` as INVALID_ARGUMENT on `page_token`.
fn assert_refused(query: &[u8], token: &str) -> Result<(), TestCaseError> {
    match page_token::decode(query, token) {
        Ok(decoded) => Err(TestCaseError::fail(format!(
            "{token:?} was accepted as {decoded:?}"
        ))),
        Err(error) => {
            prop_assert_eq!(error.code, Code::InvalidArgument);
            prop_assert_eq!(error.field_violations.len(), 1);
            prop_assert_eq!(&error.field_violations[0].field, "page_token");
            Ok(())
        }
    }
}

/// The rules an accepted network keeps (what its users rely on without checking again).
fn assert_valid_network(network: &NetworkConfig) -> Result<(), TestCaseError> {
    prop_assert!(!network.sites.is_empty());
    let mut ports = HashSet::from([network.gateway.port()]);
    prop_assert_ne!(network.gateway.port(), 0);
    let mut site_ids = HashSet::new();
    for site in &network.sites {
        prop_assert!(site_ids.insert(&site.id), "duplicate site {}", site.id);
        for kind in ServiceKind::SITE_SERVICES {
            let port = site.port(kind).unwrap_or(0);
            prop_assert_ne!(port, 0);
            prop_assert!(ports.insert(port), "port {} used twice", port);
        }
        prop_assert!(!site.zones.is_empty());
        let mut zone_ids = HashSet::new();
        for zone in &site.zones {
            prop_assert!(zone_ids.insert(&zone.id), "duplicate zone {}", zone.id);
            prop_assert!(zone.min_celsius <= zone.max_celsius);
            prop_assert!(
                zone.class.admits(zone.min_celsius) && zone.class.admits(zone.max_celsius)
            );
            prop_assert!(zone.capacity_pallets >= 1);
        }
    }
    Ok(())
}

/// Every leaf of a TOML document, as a path of keys and array indices.
fn leaves(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                path.push(key.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// The parent of the leaf at `path`, and the leaf's own key.
fn parent_of<'a>(
    root: &'a mut toml::Value,
    path: &[String],
) -> Option<(&'a mut toml::Table, String)> {
    let (last, parents) = path.split_last()?;
    let mut node = root;
    for step in parents {
        node = match node {
            toml::Value::Table(table) => table.get_mut(step)?,
            toml::Value::Array(items) => items.get_mut(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some((node.as_table_mut()?, last.clone()))
}

/// A TOML value of any type, with numbers and strings near the edges validation checks.
fn any_toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(65_535), Just(65_536)]
            .prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        "\\PC{0,12}".prop_map(toml::Value::String),
        prop_oneof![
            Just("FROZEN"),
            Just("Asia/Shanghai"),
            Just("127.0.0.1:50051"),
            Just("http://x:1"),
            Just("a-b"),
            Just("-a"),
            Just(""),
        ]
        .prop_map(|s| toml::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(toml::Value::Array)
    })
}

fn shipped_leaves() -> (toml::Value, Vec<Vec<String>>) {
    let document: toml::Value = toml::from_str(SHIPPED_NETWORK).expect("the shipped file is TOML");
    let mut out = Vec::new();
    leaves(&document, &mut Vec::new(), &mut out);
    (document, out)
}

/// The top-level fields of a config as `name → Debug text`, read from its pretty Debug
/// output, so that new fields are compared without this test knowing them.
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

fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("10s".to_owned()),
        Just("0s".to_owned()),
        Just("72h".to_owned()),
        Just("1h30m".to_owned()),
        Just("8MiB".to_owned()),
        Just("1048576".to_owned()),
        Just("0".to_owned()),
        Just("json".to_owned()),
        Just("info,coldchain_store=debug".to_owned()),
        Just("0.0.0.0".to_owned()),
        Just("::1".to_owned()),
        Just("/tmp/x".to_owned()),
        Just("true".to_owned()),
        Just(" ".to_owned()),
        "\\PC{0,10}",
        "[0-9]{1,22} ?[a-zA-Z]{0,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_token_decodes_for_its_own_query_only(
        query in prop::collection::vec(any::<u8>(), 0..40),
        other in prop::collection::vec(any::<u8>(), 0..40),
        key in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = page_token::encode(&query, &key);
        prop_assert_eq!(page_token::decode(&query, &token), Ok(Some(key)));
        if other != query {
            assert_refused(&other, &token)?;
        }
    }

    #[test]
    fn a_token_with_any_one_character_changed_is_refused(
        query in prop::collection::vec(any::<u8>(), 0..16),
        key in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        replacement in prop_oneof![prop::char::range('0', '9'), prop::char::range('a', 'f'), any::<char>()],
    ) {
        let token = page_token::encode(&query, &key);
        let at = at.index(token.len());
        prop_assume!(token.as_bytes()[at] as char != replacement);
        let mut tampered = token[..at].to_owned();
        tampered.push(replacement);
        tampered.push_str(&token[at + 1..]);
        assert_refused(&query, &tampered)?;
    }

    #[test]
    fn a_token_cut_short_or_extended_is_refused(
        query in prop::collection::vec(any::<u8>(), 0..16),
        key in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
        extra in "[0-9a-f]{1,8}",
    ) {
        let token = page_token::encode(&query, &key);
        let cut = cut.index(token.len());
        if cut > 0 {
            assert_refused(&query, &token[..cut])?;
        }
        assert_refused(&query, &format!("{token}{extra}"))?;
        assert_refused(&query, &token.to_uppercase())?;
    }

    /// Any text is refused, or is exactly the token `encode` makes for what it decodes to.
    #[test]
    fn only_our_own_tokens_are_accepted(
        query in prop::collection::vec(any::<u8>(), 0..8),
        token in prop_oneof!["[0-9a-f]{0,64}", "01[0-9a-f]{16,40}", "\\PC{0,40}"],
    ) {
        match page_token::decode(&query, &token) {
            Ok(None) => prop_assert!(token.is_empty()),
            Ok(Some(key)) => prop_assert_eq!(page_token::encode(&query, &key), token),
            Err(_) => assert_refused(&query, &token)?,
        }
    }

    /// The shipped network with one value replaced by anything: parsed into a network that
    /// keeps every rule, or refused with problems; never a panic.
    #[test]
    fn a_network_with_any_value_changed_is_valid_or_refused(
        which in any::<prop::sample::Index>(),
        value in any_toml_value(),
    ) {
        let (mut document, paths) = shipped_leaves();
        let path = which.get(&paths).clone();
        let (parent, key) = parent_of(&mut document, &path).expect("a leaf has a parent table");
        parent.insert(key, value);
        let text = toml::to_string(&document).expect("a TOML value prints");
        match NetworkConfig::parse(&text) {
            Ok(network) => assert_valid_network(&network)?,
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }

    /// The shipped network with one key removed: still valid only if the key is optional;
    /// otherwise refused with a problem that names the key.
    #[test]
    fn a_network_missing_a_key_names_it(which in any::<prop::sample::Index>()) {
        let (mut document, paths) = shipped_leaves();
        let path = which.get(&paths).clone();
        let (parent, key) = parent_of(&mut document, &path).expect("a leaf has a parent table");
        parent.remove(&key);
        let text = toml::to_string(&document).expect("a TOML value prints");
        match NetworkConfig::parse(&text) {
            Ok(network) => {
                assert_valid_network(&network)?;
                prop_assert!(
                    path.iter().any(|step| {
                        step == "endpoints" || step == "endpoint" || step == "gln"
                    }),
                    "removing {:?} was accepted", path
                );
            }
            Err(errors) => prop_assert!(
                errors.mentions(&key),
                "removing {:?}: {:?}", path, errors.problems()
            ),
        }
    }

    /// A config file with any TOML value for a known key, and an environment with odd
    /// values: a config within its bounds whose every field is the environment's value if
    /// set there and the file's otherwise, or a report naming what is wrong.
    #[test]
    fn config_layers_are_valid_or_refused_and_the_environment_wins(
        file_values in prop::collection::vec((any::<prop::sample::Index>(), any_toml_value()), 0..4),
        env_values in prop::collection::vec((any::<prop::sample::Index>(), config_value()), 0..4),
        unknown in prop::option::of("COLDCHAIN_[A-Z_]{1,12}"),
    ) {
        let keys: Vec<&str> = Config::keys().collect();
        let mut table = toml::Table::new();
        for (which, value) in file_values {
            table.insert(which.get(&keys).to_string(), value);
        }
        let file = toml::to_string(&table).expect("a TOML table prints");
        let mut env: BTreeMap<String, String> = env_values
            .into_iter()
            .map(|(which, value)| (Config::env_var_name(which.get::<&str>(&keys)), value))
            .collect();
        let known: Vec<String> = Config::env_vars();
        let unknown = unknown.filter(|name| {
            !known.contains(name) && !Config::KNOWN_EXTRA_ENV.contains(&name.as_str())
        });
        if let Some(name) = &unknown {
            env.insert(name.clone(), "1".to_owned());
        }

        let layered = Config::from_layers(Some(("test.toml", &file)), &env);
        let config = match layered {
            Ok(config) => config,
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                if let Some(name) = &unknown {
                    prop_assert!(errors.mentions(name), "{:?}", errors.problems());
                }
                return Ok(());
            }
        };
        prop_assert!(unknown.is_none());
        prop_assert!(!config.rpc_timeout.is_zero());
        prop_assert!(config.concurrency_limit >= 1);
        let from_file = Config::from_layers(Some(("test.toml", &file)), &BTreeMap::new());
        let from_env = Config::from_layers(None, &env);
        // A layer alone can break a rule that spans settings (tls_cert without the tls_key
        // the other layer gives): then there is nothing to compare with.
        let (Ok(from_file), Ok(from_env)) = (from_file, from_env) else {
            return Ok(());
        };
        let (from_file, from_env) = (fields(&from_file), fields(&from_env));
        let combined = fields(&config);
        for key in Config::keys() {
            let expected = if env.contains_key(&Config::env_var_name(key)) {
                from_env.get(key)
            } else {
                from_file.get(key)
            };
            prop_assert_eq!(combined.get(key), expected, "{}", key);
        }
    }

    /// Arbitrary bytes as a config file and as environment values never panic, and a
    /// refusal always has problems to show.
    #[test]
    fn config_from_arbitrary_bytes_never_panics(
        file in prop::collection::vec(any::<u8>(), 0..200),
        value in prop::collection::vec(any::<u8>(), 0..40),
        which in any::<prop::sample::Index>(),
    ) {
        let keys: Vec<&str> = Config::keys().collect();
        let env = BTreeMap::from([(
            Config::env_var_name(which.get::<&str>(&keys)),
            String::from_utf8_lossy(&value).into_owned(),
        )]);
        let file = String::from_utf8_lossy(&file);
        if let Err(errors) = Config::from_layers(Some(("test.toml", &file)), &env) {
            prop_assert!(errors.problems().iter().all(|p: &String| !p.trim().is_empty()));
            let _: &ConfigErrors = &errors;
        }
    }
}

#[test]
fn the_field_reader_sees_every_key() {
    // Guards the Debug-based comparison above: if it could not find the fields, the
    // environment-wins property would pass vacuously.
    let fields = fields(&Config::default());
    for key in ["data_dir", "rpc_timeout", "listen_host", "sled_cache_bytes"] {
        assert!(fields.contains_key(key), "{key} missing from {fields:?}");
    }
    assert_eq!(fields["rpc_timeout"], "10s,");
}
