//! The configuration's layering and every rule of its values.

use super::*;
use proptest::prelude::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_str(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    Config::from_layers(file.map(|t| ("config.toml", t)), &env(vars))
}

#[test]
fn defaults() {
    let c = load_str(None, &[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert_eq!(c.network_file, PathBuf::from("deploy/network.toml"));
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.listen_host, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.rpc_timeout, Duration::from_secs(10));
    assert_eq!(c.concurrency_limit, 1024);
    assert_eq!(c.max_message_bytes, 4 * 1024 * 1024);
    assert_eq!(c.shutdown_grace, Duration::from_secs(3));
    assert_eq!(c.idempotency_retention, Duration::from_secs(48 * 3600));
    assert_eq!(c.sled_cache_bytes, 8 * 1024 * 1024);
    assert_eq!(c.row_cache_bytes, 2 * 1024 * 1024);
    assert_eq!(c.request_filter_bytes, 1024 * 1024);
    assert_eq!(c.overlay_bytes, 8 * 1024 * 1024);
    // 25 databases' caches stay under the 300 MiB budget.
    assert!(25 * (c.sled_cache_bytes + c.row_cache_bytes + c.request_filter_bytes) < 300 * MIB);
}

const FULL_FILE: &str = r#"
    data_dir = "/var/lib/coldchain"
    network_file = "/etc/coldchain/network.toml"
    log_format = "json"
    log_level = "info,coldchain_store=debug"
    listen_host = "0.0.0.0"
    rpc_timeout = "3s"
    concurrency_limit = 256
    max_message_bytes = "8MiB"
    shutdown_grace = "2500ms"
    idempotency_retention = "72h"
    sled_cache_bytes = 16777216
    row_cache_bytes = "0"
    request_filter_bytes = "4MiB"
"#;

#[test]
fn file_overrides_defaults() {
    let c = load_str(Some(FULL_FILE), &[]).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/coldchain"));
    assert_eq!(c.network_file, PathBuf::from("/etc/coldchain/network.toml"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_level, "info,coldchain_store=debug");
    assert_eq!(c.listen_host, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(c.rpc_timeout, Duration::from_secs(3));
    assert_eq!(c.concurrency_limit, 256);
    assert_eq!(c.max_message_bytes, 8 * 1024 * 1024);
    assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
    assert_eq!(c.idempotency_retention, Duration::from_secs(72 * 3600));
    assert_eq!(c.sled_cache_bytes, 16 * 1024 * 1024);
    assert_eq!(c.row_cache_bytes, 0);
    assert_eq!(c.request_filter_bytes, 4 * 1024 * 1024);
}

#[test]
fn partial_file_keeps_other_defaults() {
    let c = load_str(Some("rpc_timeout = \"1m\"\n"), &[]).unwrap();
    assert_eq!(
        c,
        Config {
            rpc_timeout: Duration::from_secs(60),
            ..Config::default()
        }
    );
}

#[test]
fn env_overrides_file() {
    let c = load_str(
        Some(FULL_FILE),
        &[
            ("COLDCHAIN_DATA_DIR", "/data"),
            ("COLDCHAIN_LOG_FORMAT", "human"),
            ("COLDCHAIN_RPC_TIMEOUT", "500ms"),
            ("COLDCHAIN_CONCURRENCY_LIMIT", "64"),
            ("COLDCHAIN_SLED_CACHE_BYTES", "4 MiB"),
            ("COLDCHAIN_IDEMPOTENCY_RETENTION", "1d"),
            // Not ours: ignored.
            ("PATH", "/usr/bin"),
            ("coldchain_data_dir", "/ignored"),
            ("COLDCHAIN_CONFIG", "/etc/coldchain/config.toml"),
        ],
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/data"));
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.rpc_timeout, Duration::from_millis(500));
    assert_eq!(c.concurrency_limit, 64);
    assert_eq!(c.sled_cache_bytes, 4 * 1024 * 1024);
    assert_eq!(c.idempotency_retention, Duration::from_secs(24 * 3600));
    // From the file, not overridden.
    assert_eq!(c.network_file, PathBuf::from("/etc/coldchain/network.toml"));
    assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
}

#[test]
fn every_field_has_an_env_var() {
    let vars: Vec<(String, &str)> = vec![
        ("COLDCHAIN_DATA_DIR".into(), "/d"),
        ("COLDCHAIN_NETWORK_FILE".into(), "/n.toml"),
        ("COLDCHAIN_LOG_FORMAT".into(), "JSON"),
        ("COLDCHAIN_LOG_LEVEL".into(), "debug"),
        ("COLDCHAIN_LISTEN_HOST".into(), "::"),
        ("COLDCHAIN_RPC_TIMEOUT".into(), "1s"),
        ("COLDCHAIN_CONCURRENCY_LIMIT".into(), "8"),
        ("COLDCHAIN_MAX_MESSAGE_BYTES".into(), "1048576"),
        ("COLDCHAIN_SHUTDOWN_GRACE".into(), "0s"),
        ("COLDCHAIN_IDEMPOTENCY_RETENTION".into(), "30h"),
        ("COLDCHAIN_SLED_CACHE_BYTES".into(), "2MB"),
        ("COLDCHAIN_ROW_CACHE_BYTES".into(), "1MiB"),
        ("COLDCHAIN_REQUEST_FILTER_BYTES".into(), "512KiB"),
        ("COLDCHAIN_OVERLAY_BYTES".into(), "256KiB"),
        ("COLDCHAIN_AUTH_FILE".into(), "/c.toml"),
        ("COLDCHAIN_INSECURE_NO_AUTH".into(), "false"),
        ("COLDCHAIN_CLIENT_KEY_FILE".into(), "/k"),
        ("COLDCHAIN_TLS_CERT".into(), "/cert.pem"),
        ("COLDCHAIN_TLS_KEY".into(), "/key.pem"),
        ("COLDCHAIN_TLS_CA".into(), "/ca.pem"),
        ("COLDCHAIN_TLS_CLIENT_CA".into(), "/client-ca.pem"),
        ("COLDCHAIN_RATE_LIMIT".into(), "10"),
        ("COLDCHAIN_RATE_BURST".into(), "20"),
        ("COLDCHAIN_STREAM_IDLE_TIMEOUT".into(), "5s"),
        ("COLDCHAIN_FEED_BUFFER".into(), "4"),
        ("COLDCHAIN_FEED_STALL".into(), "500ms"),
        ("COLDCHAIN_FEED_KEEPALIVE".into(), "2s"),
        ("COLDCHAIN_HEALTH_PORT".into(), "8086"),
        ("COLDCHAIN_METRICS_LISTEN".into(), "0.0.0.0:9999"),
        ("COLDCHAIN_METRICS_SAMPLE_INTERVAL".into(), "250ms"),
        ("COLDCHAIN_CONSOLE_SESSION_KEY_FILE".into(), "/session.key"),
        ("COLDCHAIN_CONSOLE_SESSION_TTL".into(), "2h"),
        ("COLDCHAIN_WAL_ARCHIVE_DIR".into(), "/archive"),
    ];
    assert_eq!(
        vars.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        Config::env_vars()
    );
    let map = vars
        .iter()
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect();
    let c = Config::from_layers(None, &map).unwrap();
    assert_eq!(
        c,
        Config {
            data_dir: "/d".into(),
            wal_archive_dir: Some("/archive".into()),
            network_file: "/n.toml".into(),
            log_format: LogFormat::Json,
            log_level: "debug".into(),
            listen_host: "::".parse().unwrap(),
            rpc_timeout: Duration::from_secs(1),
            concurrency_limit: 8,
            max_message_bytes: 1 << 20,
            shutdown_grace: Duration::ZERO,
            idempotency_retention: Duration::from_secs(30 * 3600),
            sled_cache_bytes: 2_000_000,
            row_cache_bytes: 1 << 20,
            request_filter_bytes: 1 << 19,
            overlay_bytes: 1 << 18,
            auth_file: Some("/c.toml".into()),
            insecure_no_auth: false,
            client_key_file: Some("/k".into()),
            tls_cert: Some("/cert.pem".into()),
            tls_key: Some("/key.pem".into()),
            tls_ca: Some("/ca.pem".into()),
            tls_client_ca: Some("/client-ca.pem".into()),
            rate_limit: 10,
            rate_burst: 20,
            stream_idle_timeout: Duration::from_secs(5),
            feed_buffer: 4,
            feed_stall: Duration::from_millis(500),
            feed_keepalive: Duration::from_secs(2),
            health_port: Some(8086),
            metrics_listen: Some("0.0.0.0:9999".parse().unwrap()),
            metrics_sample_interval: Duration::from_millis(250),
            console_session_key_file: Some("/session.key".into()),
            console_session_ttl: Duration::from_secs(2 * 3600),
        }
    );
}

#[test]
fn health_port_is_a_port_or_nothing() {
    let c = load_str(Some("health_port = 8086\n"), &[]).unwrap();
    assert_eq!(c.health_port, Some(8086));
    let c = load_str(
        Some("health_port = 8086\n"),
        &[("COLDCHAIN_HEALTH_PORT", "")],
    )
    .unwrap();
    assert_eq!(c.health_port, None, "an empty variable clears it");
    for bad in ["0", "65536", "http"] {
        let err = load_str(None, &[("COLDCHAIN_HEALTH_PORT", bad)]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("expected a port from 1 to 65535, got {bad:?}")),
            "{err}"
        );
    }
}

#[test]
fn metrics_listen_defaults_to_9464_and_turns_off() {
    assert_eq!(
        load_str(None, &[]).unwrap().metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    for off in ["", "off", " OFF "] {
        let c = load_str(None, &[("COLDCHAIN_METRICS_LISTEN", off)]).unwrap();
        assert_eq!(c.metrics_listen, None, "{off:?}");
    }
    let c = load_str(Some("metrics_listen = \"off\"\n"), &[]).unwrap();
    assert_eq!(c.metrics_listen, None);
    let c = load_str(
        Some("metrics_listen = \"off\"\n"),
        &[("COLDCHAIN_METRICS_LISTEN", "127.0.0.1:0")],
    )
    .unwrap();
    assert_eq!(c.metrics_listen, Some("127.0.0.1:0".parse().unwrap()));
}

#[test]
fn a_bad_metrics_listen_is_reported_with_the_other_problems() {
    let err = load_str(
        Some("metrics_listen = 9464\n"),
        &[
            ("COLDCHAIN_METRICS_LISTEN", "localhost"),
            ("COLDCHAIN_RPC_TIMEOUT", "0s"),
        ],
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "config.toml: metrics_listen: expected an address string like \"127.0.0.1:9464\", or \"off\", got integer 9464",
        "COLDCHAIN_METRICS_LISTEN: expected an address with a port like 127.0.0.1:9464",
        "got \"localhost\"",
        "COLDCHAIN_RPC_TIMEOUT: must be more than 0s",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn contradictory_security_settings_are_all_reported() {
    let err = load_str(
        None,
        &[
            ("COLDCHAIN_TLS_KEY", "/key.pem"),
            ("COLDCHAIN_TLS_CLIENT_CA", "/ca.pem"),
            ("COLDCHAIN_INSECURE_NO_AUTH", "true"),
            ("COLDCHAIN_AUTH_FILE", "/c.toml"),
            ("COLDCHAIN_RATE_LIMIT", "100"),
            ("COLDCHAIN_RATE_BURST", "10"),
            ("COLDCHAIN_STREAM_IDLE_TIMEOUT", "0s"),
        ],
    )
    .unwrap_err();
    for needle in [
        "tls_cert and tls_key must be set together",
        "tls_client_ca (mutual TLS) needs tls_cert",
        "insecure_no_auth and auth_file contradict",
        "rate_burst (10) must be at least rate_limit (100)",
        "COLDCHAIN_STREAM_IDLE_TIMEOUT: must be at least 1s",
    ] {
        assert!(err.mentions(needle), "{needle:?} missing from {err}");
    }
    let err = load_str(None, &[("COLDCHAIN_INSECURE_NO_AUTH", "yes")]).unwrap_err();
    assert!(err.mentions("expected true or false"), "{err}");
    let err = load_str(
        None,
        &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "10000000000000000s")],
    )
    .unwrap_err();
    assert!(err.mentions("must be at most 3650d"), "{err}");
}

#[test]
fn unknown_env_var_rejected() {
    let err = load_str(None, &[("COLDCHAIN_RPC_TIMOUT", "1s")]).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    let p = &err.problems[0];
    assert!(
        p.starts_with("unknown environment variable COLDCHAIN_RPC_TIMOUT (did you mean \"COLDCHAIN_RPC_TIMEOUT\"?); known variables: COLDCHAIN_DATA_DIR, "),
        "{p}"
    );
    assert!(p.contains("COLDCHAIN_CONFIG"), "{p}");
}

#[test]
fn known_extra_env_is_allowed() {
    assert!(Config::KNOWN_EXTRA_ENV.contains(&"COLDCHAIN_CONFIG"));
    let vars = env(&[("COLDCHAIN_CONFIG", "/etc/c.toml")]);
    assert!(Config::from_layers(None, &vars).is_ok());
    assert_eq!(
        Config::file_from_env(&vars),
        Some(PathBuf::from("/etc/c.toml"))
    );
    assert_eq!(
        Config::file_from_env(&env(&[("COLDCHAIN_CONFIG", " ")])),
        None
    );
    assert_eq!(Config::file_from_env(&env(&[])), None);
}

#[test]
fn several_bad_env_values_reported_together() {
    let err = load_str(
        None,
        &[
            ("COLDCHAIN_LOG_FORMAT", "xml"),
            ("COLDCHAIN_RPC_TIMEOUT", "ten seconds"),
            ("COLDCHAIN_CONCURRENCY_LIMIT", "0"),
            ("COLDCHAIN_LISTEN_HOST", "localhost"),
            ("COLDCHAIN_MAX_MESSAGE_BYTES", "4 parsecs"),
            ("COLDCHAIN_IDEMPOTENCY_RETENTION", "12h"),
            ("COLDCHAIN_LOG_LEVEL", "loud"),
            ("COLDCHAIN_DATA_DIR", ""),
            ("COLDCHAIN_BOGUS", "1"),
        ],
    )
    .unwrap_err();
    // Sorted by variable name (the map's order).
    assert_eq!(
        err.problems,
        vec![
            format!(
                "unknown environment variable COLDCHAIN_BOGUS; known variables: {}, COLDCHAIN_CONFIG, COLDCHAIN_KEYRING",
                Config::env_vars().join(", ")
            ),
            "COLDCHAIN_CONCURRENCY_LIMIT: must be at least 1, got 0".to_owned(),
            "COLDCHAIN_DATA_DIR: must not be empty".to_owned(),
            "COLDCHAIN_IDEMPOTENCY_RETENTION: must be at least 24h, got \"12h\"".to_owned(),
            "COLDCHAIN_LISTEN_HOST: expected an ip address like 127.0.0.1 or 0.0.0.0, got \"localhost\"".to_owned(),
            "COLDCHAIN_LOG_FORMAT: expected \"human\" or \"json\", got \"xml\"".to_owned(),
            "COLDCHAIN_LOG_LEVEL: expected a level (trace, debug, info, warn, error, off) or directives like \"info,coldchain_store=debug\", got \"loud\"".to_owned(),
            "COLDCHAIN_MAX_MESSAGE_BYTES: unknown unit \"parsecs\": expected a number of bytes or a size like \"8MiB\", got \"4 parsecs\"".to_owned(),
            "COLDCHAIN_RPC_TIMEOUT: expected a number: expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got \"ten seconds\"".to_owned(),
        ]
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with(
            "invalid configuration:\n  - unknown environment variable COLDCHAIN_BOGUS"
        )
    );
    assert_eq!(shown.lines().count(), 10);
}

#[test]
fn retention_below_24h_rejected_in_file_and_env() {
    let err = load_str(
        Some("idempotency_retention = \"23h59m\"\n"),
        &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "3600s")],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "config.toml: idempotency_retention: must be at least 24h, got \"23h59m\"",
            "COLDCHAIN_IDEMPOTENCY_RETENTION: must be at least 24h, got \"3600s\"",
        ]
    );
    let ok = load_str(None, &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "24h")]).unwrap();
    assert_eq!(ok.idempotency_retention, MIN_IDEMPOTENCY_RETENTION);
}

#[test]
fn unknown_file_keys_rejected_all_at_once() {
    let err = load_str(
        Some("rpc_timout = \"1s\"\nbooking_no_show_grace = \"2h\"\n[server]\nport = 1\n"),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.len(), 3, "{err}");
    assert!(err.problems[0].starts_with(
        "config.toml: unknown key \"booking_no_show_grace\"; known keys: data_dir, network_file,"
    ));
    assert!(err.problems[1].starts_with(
        "config.toml: unknown key \"rpc_timout\" (did you mean \"rpc_timeout\"?); known keys:"
    ));
    assert!(err.problems[2].starts_with("config.toml: unknown key \"server\";"));
}

#[test]
fn bad_file_values_and_types_reported_together_with_env() {
    let err = load_str(
        Some(
            "rpc_timeout = 10\nconcurrency_limit = \"many\"\nlog_format = true\n\
             max_message_bytes = 12\nsled_cache_bytes = -1\nshutdown_grace = \"5 sec\"\n\
             row_cache_bytes = \"2GiB\"\nrequest_filter_bytes = \"3GiB\"\n\
             overlay_bytes = \"1KiB\"\n",
        ),
        &[("COLDCHAIN_LISTEN_HOST", "999.0.0.1")],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "config.toml: concurrency_limit: expected a positive integer, got \"many\"",
            "config.toml: log_format: expected \"human\" or \"json\", got boolean true",
            "config.toml: max_message_bytes: must be between 1KiB and 1GiB, got \"12\"",
            "config.toml: overlay_bytes: must be between 64KiB and 1GiB, got \"1KiB\"",
            "config.toml: request_filter_bytes: must be at most 1GiB, got \"3GiB\"",
            "config.toml: row_cache_bytes: must be at most 1GiB, got \"2GiB\"",
            "config.toml: rpc_timeout: expected a duration string like \"10s\", got integer 10",
            "config.toml: shutdown_grace: unknown unit \"sec\": expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got \"5 sec\"",
            "config.toml: sled_cache_bytes: expected a number: expected a number of bytes or a size like \"8MiB\", got \"-1\"",
            "COLDCHAIN_LISTEN_HOST: expected an ip address like 127.0.0.1 or 0.0.0.0, got \"999.0.0.1\"",
        ]
    );
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    let err = load_str(Some("data_dir = \"/x\"\nrpc_timeout = \n"), &[]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.problems[0].starts_with("config.toml: line 2, column "),
        "{err}"
    );
}

#[test]
fn load_reads_a_file_and_reports_a_missing_one_with_env_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coldchain.toml");
    std::fs::write(&path, "log_format = \"json\"\nbogus = 1\n").unwrap();
    let err = Config::load(Some(&path), &env(&[])).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err.problems[0].starts_with(&format!("{}: unknown key \"bogus\"", path.display())));

    std::fs::write(&path, "log_format = \"json\"\n").unwrap();
    let c = Config::load(Some(&path), &env(&[("COLDCHAIN_LOG_LEVEL", "warn")])).unwrap();
    assert_eq!(
        (c.log_format, c.log_level.as_str()),
        (LogFormat::Json, "warn")
    );

    let missing = dir.path().join("missing.toml");
    let err = Config::load(Some(&missing), &env(&[("COLDCHAIN_RPC_TIMEOUT", "x")])).unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
    assert!(err.problems[0].starts_with("cannot read config file"));
    assert!(err.problems[1].starts_with("COLDCHAIN_RPC_TIMEOUT: "));
}

#[test]
fn log_filters() {
    for ok in [
        "info",
        "WARN",
        "off",
        "info,coldchain_store=debug",
        "tower::buffer=trace, h2=warn",
    ] {
        assert!(check_log_filter(ok).is_ok(), "{ok}");
    }
    for bad in ["", "loud", "info,", "=debug", "a b=info", "info=loud"] {
        assert!(check_log_filter(bad).is_err(), "{bad}");
    }
}

#[test]
fn durations() {
    let cases = [
        ("10s", Duration::from_secs(10)),
        ("500ms", Duration::from_millis(500)),
        ("48h", Duration::from_secs(48 * 3600)),
        ("15m", Duration::from_secs(15 * 60)),
        ("2d", Duration::from_secs(2 * 86_400)),
        ("1h30m", Duration::from_secs(5400)),
        (" 1h 30m 5s ", Duration::from_secs(5405)),
        ("0s", Duration::ZERO),
        ("250us", Duration::from_micros(250)),
        ("7ns", Duration::from_nanos(7)),
        ("1m1ms", Duration::from_millis(60_001)),
        ("10 s", Duration::from_secs(10)),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        " ",
        "10",
        "s",
        "1 30m",
        "1.5s",
        "-1s",
        "10sec",
        "10S",
        "1h-",
        "h1",
        "10s!",
        "٣s",
        "99999999999999999999999999999999999999999999d",
        "18446744073709551616s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
    }
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    assert_eq!(format_duration(Duration::from_secs(48 * 3600)), "2d");
    assert_eq!(
        format_duration(Duration::new(90_061, 1_001_001)),
        "1d1h1m1s1ms1us1ns"
    );
    assert_eq!(
        parse_duration(&format_duration(Duration::MAX)),
        Ok(Duration::MAX)
    );
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("4194304"), Ok(4 * MIB));
    assert_eq!(parse_byte_size("8MiB"), Ok(8 * MIB));
    assert_eq!(parse_byte_size("8 mib"), Ok(8 * MIB));
    assert_eq!(parse_byte_size("512KiB"), Ok(512 * KIB));
    assert_eq!(parse_byte_size("1GiB"), Ok(GIB));
    assert_eq!(parse_byte_size("3MB"), Ok(3_000_000));
    assert_eq!(parse_byte_size("10B"), Ok(10));
    for bad in [
        "",
        "MiB",
        "-1",
        "1.5MiB",
        "8 parsecs",
        "99999999999999999999",
        "18446744073709551615KiB",
    ] {
        assert!(parse_byte_size(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn config_errors_display_and_merge() {
    let mut a = ConfigErrors::single("first problem");
    assert_eq!(a.to_string(), "invalid configuration:\n  - first problem");
    a.extend(ConfigErrors {
        problems: vec!["second".into()],
    });
    a.push("third");
    assert_eq!(a.len(), 3);
    assert!(a.mentions("second"));
    assert_eq!(
        a.to_string(),
        "invalid configuration:\n  - first problem\n  - second\n  - third"
    );
    assert_eq!(ConfigErrors::new().into_result(7), Ok(7));
    let boxed: Box<dyn std::error::Error> = Box::new(a);
    assert!(boxed.to_string().contains("third"));
}

proptest! {
    #[test]
    fn duration_round_trips(secs in 0u64..=u64::MAX, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn duration_round_trips_small(ms in 0u64..10_000_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn duration_parser_never_panics(s in ".*") {
        let _ = parse_duration(&s);
    }

    #[test]
    fn duration_parser_never_panics_on_near_misses(s in "[0-9 hmsdnu.µ-]{0,24}") {
        let _ = parse_duration(&s);
    }

    #[test]
    fn byte_size_parser_never_panics(s in ".*") {
        let _ = parse_byte_size(&s);
    }

    #[test]
    fn config_never_panics(file in ".*", key in "COLDCHAIN_[A-Z_]{0,12}", value in ".*") {
        let vars: BTreeMap<String, String> = [(key, value)].into_iter().collect();
        let _ = Config::from_layers(Some(("f", &file)), &vars);
    }
}

#[test]
fn feed_limits_are_one_set_for_every_feed_and_bounded() {
    let c = load_str(
        Some("feed_buffer = 32\nfeed_stall = \"2s\"\nfeed_keepalive = \"30s\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.feed_buffer, 32);
    assert_eq!(c.feed_stall, Duration::from_secs(2));
    assert_eq!(c.feed_keepalive, Duration::from_secs(30));
    let err = load_str(
        None,
        &[
            ("COLDCHAIN_FEED_BUFFER", "0"),
            ("COLDCHAIN_FEED_STALL", "10ms"),
            ("COLDCHAIN_FEED_KEEPALIVE", "0s"),
        ],
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "COLDCHAIN_FEED_BUFFER: must be at least 1, got 0",
        "COLDCHAIN_FEED_STALL: must be at least 100ms, got \"10ms\"",
        "COLDCHAIN_FEED_KEEPALIVE: must be at least 1s, got \"0s\"",
    ] {
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn the_metrics_sample_interval_is_at_least_100ms() {
    assert_eq!(
        load_str(None, &[]).unwrap().metrics_sample_interval,
        Duration::from_secs(15)
    );
    let err = load_str(None, &[("COLDCHAIN_METRICS_SAMPLE_INTERVAL", "10ms")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("COLDCHAIN_METRICS_SAMPLE_INTERVAL"),
        "{err}"
    );
}

#[test]
fn console_session_ttl_is_bounded() {
    assert_eq!(
        load_str(None, &[]).unwrap().console_session_ttl,
        Duration::from_secs(8 * 3600)
    );
    for bad in ["59s", "8d"] {
        let err = load_str(None, &[("COLDCHAIN_CONSOLE_SESSION_TTL", bad)]).unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!(
                "COLDCHAIN_CONSOLE_SESSION_TTL: must be between 1m and 7d, got {bad:?}"
            )]
        );
    }
    let c = load_str(Some("console_session_ttl = \"7d\"\n"), &[]).unwrap();
    assert_eq!(c.console_session_ttl, Duration::from_secs(7 * 24 * 3600));
}
