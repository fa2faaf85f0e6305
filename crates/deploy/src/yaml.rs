//! A small, deterministic YAML writer for the Kubernetes manifests: block style, every string
//! double-quoted (JSON string syntax is valid YAML, so nothing reads as a number, a boolean
//! or a date by accident), map keys in sorted order (the order `serde_json` keeps them in;
//! `kubectl get -o yaml` sorts them too).

use std::fmt::Write as _;

use serde_json::Value;

/// One YAML document for `value`, without the `---` separator.
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            let _ = writeln!(out, "{}", inline(scalar));
        }
    }
    out
}

/// A scalar, or an empty collection, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => false,
    }
}

/// A map key: plain when it cannot be mistaken for anything but a string.
fn key(text: &str) -> String {
    let plain = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        text.to_owned()
    } else {
        Value::String(text.to_owned()).to_string()
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        if is_block(v) {
            let _ = writeln!(out, "{pad}{}:", key(k));
            match v {
                Value::Object(inner) => write_map(out, inner, indent + 2),
                Value::Array(items) => write_seq(out, items, indent + 2),
                _ => unreachable!("is_block"),
            }
        } else {
            let _ = writeln!(out, "{pad}{}: {}", key(k), inline(v));
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The map's first key goes on the dash's line: "- name: x".
                let mut block = String::new();
                write_map(&mut block, map, indent + 2);
                let _ = write!(out, "{pad}- {}", &block[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                let _ = writeln!(out, "{pad}- {}", inline(scalar));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn block_style_with_quoted_strings() {
        let value = json!({
            "kind": "Service",
            "metadata": {"labels": {"app.kubernetes.io/name": "coldchain"}, "name": "gateway"},
            "spec": {
                "ports": [{"name": "grpc", "port": 50051}, {"name": "health", "port": 8086}],
                "selector": {},
                "empty": [],
                "args": ["serve", "true", "50051"],
                "nested": [["a"]],
                "flag": false,
                "none": null,
            },
            "on": "yes",
        });
        assert_eq!(
            document(&value),
            "kind: \"Service\"\n\
             metadata:\n  labels:\n    app.kubernetes.io/name: \"coldchain\"\n  name: \"gateway\"\n\
             \"on\": \"yes\"\n\
             spec:\n  args:\n    - \"serve\"\n    - \"true\"\n    - \"50051\"\n  empty: []\n  flag: false\n  \
             nested:\n    -\n      - \"a\"\n  none: null\n  \
             ports:\n    - name: \"grpc\"\n      port: 50051\n    - name: \"health\"\n      port: 8086\n  \
             selector: {}\n"
        );
    }

    #[test]
    fn keys_that_are_not_plain_are_quoted() {
        assert_eq!(key("app.kubernetes.io/name"), "app.kubernetes.io/name");
        assert_eq!(key("no"), "\"no\"");
        assert_eq!(key("50051"), "\"50051\"");
        assert_eq!(key("a b"), "\"a b\"");
        assert_eq!(key("network.toml"), "network.toml");
    }
}
