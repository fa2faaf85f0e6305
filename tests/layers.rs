//! The shape inside the code (CODE_STYLE.md), checked on the sources as text:
//!
//! - a service's `domain` uses no runtime, store, protobuf, tonic, sled or tokio;
//! - the layers of a service only point down: `api` → `app` → `wire`/`store` → `domain`,
//!   with `error` mapping refusals for `api` (a module that names a layer above it fails);
//! - `tonic::Status` is constructed only in error modules (a service's `error`, the runtime's
//!   `error` mapping): everything else returns refusals and lets `?` convert;
//! - no source file holds more than 600 lines of code, tests aside, unless its header says
//!   why ("longer than 600 lines because").
//!
//! Test code is left out: files named `tests.rs`, files under a `tests/` directory, and
//! everything from a file's `#[cfg(test)]` module on.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The most lines of code in one file.
const MAX_LINES: usize = 600;

/// The words a file's header uses to say why it is longer.
const LONG_FILE_REASON: &str = "longer than 600 lines because";

/// A source file: its path relative to the root, and its code without tests.
struct Source {
    path: PathBuf,
    code: String,
}

/// Every `.rs` file under `dir` (relative to the root), tests left out.
fn sources(dir: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(ROOT).join(dir)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(|e| e.expect("a directory entry")) {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "tests" && name != "target" {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                let code = match text.find("\n#[cfg(test)]") {
                    Some(end) => text[..end].to_string(),
                    None => text,
                };
                let path = path
                    .strip_prefix(ROOT)
                    .expect("under the root")
                    .to_path_buf();
                out.push(Source { path, code });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Every source of every service, the binary and the crates.
fn all_sources() -> Vec<Source> {
    let mut all = sources("src");
    for parent in ["crates", "services"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(parent)).expect(parent) {
            let entry = entry.expect("a directory entry");
            let dir = Path::new(parent).join(entry.file_name()).join("src");
            all.extend(sources(dir.to_str().expect("utf-8 path")));
        }
    }
    all
}

/// The lines of code of a source: what is not blank and not only a comment.
fn code_lines(code: &str) -> impl Iterator<Item = (usize, &str)> {
    code.lines().enumerate().filter(|(_, line)| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with("//")
    })
}

/// Panics with every violation, one a line.
fn report(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule}: {} violation(s):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

/// The layer of a service's source file: the first module under `src/`.
fn layer(path: &Path) -> Option<&str> {
    let mut parts = path
        .components()
        .map(|c| c.as_os_str().to_str().unwrap_or(""));
    if parts.next()? != "services" {
        return None;
    }
    parts.next()?;
    if parts.next()? != "src" {
        return None;
    }
    let first = parts.next()?;
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

#[test]
fn domains_are_pure() {
    const FORBIDDEN: [&str; 8] = [
        "coldchain_runtime",
        "coldchain_store",
        "coldchain_proto",
        "tonic",
        "prost",
        "sled",
        "tokio",
        "std::fs",
    ];
    let mut violations = Vec::new();
    let mut checked = 0;
    for source in all_sources() {
        if layer(&source.path) != Some("domain") {
            continue;
        }
        checked += 1;
        for (n, line) in code_lines(&source.code) {
            for word in FORBIDDEN {
                if line.contains(&format!("{word}::")) || line.contains(&format!("use {word}")) {
                    violations.push(format!(
                        "{}:{}: the domain uses {word}: {}",
                        source.path.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(checked >= 4, "found only {checked} domain files");
    report("a domain is pure", violations);
}

#[test]
fn the_layers_of_a_service_point_down() {
    // layer → the layers it must not name.
    const ABOVE: [(&str, &[&str]); 5] = [
        ("domain", &["store", "app", "wire", "api", "error"]),
        ("store", &["app", "wire", "api", "error"]),
        ("wire", &["app", "api"]),
        ("app", &["api"]),
        ("error", &["app", "api"]),
    ];
    let mut violations = Vec::new();
    for source in all_sources() {
        let Some(layer) = layer(&source.path) else {
            continue;
        };
        let Some((_, above)) = ABOVE.iter().find(|(l, _)| *l == layer) else {
            continue;
        };
        for (n, line) in code_lines(&source.code) {
            for upper in *above {
                let named = [
                    format!("crate::{upper}::"),
                    format!("crate::{upper}}}"),
                    format!("crate::{upper};"),
                    format!("crate::{upper},"),
                    format!("crate::{{{upper}"),
                ];
                if named.iter().any(|n| line.contains(n.as_str())) {
                    violations.push(format!(
                        "{}:{}: {layer} names {upper}: {}",
                        source.path.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    report("the layers point down", violations);
}

#[test]
fn statuses_are_made_only_in_error_modules() {
    const CONSTRUCTORS: [&str; 20] = [
        "Status::new(",
        "Status::with_details(",
        "Status::with_error_details(",
        "Status::with_metadata(",
        "Status::ok(",
        "Status::cancelled(",
        "Status::unknown(",
        "Status::invalid_argument(",
        "Status::deadline_exceeded(",
        "Status::not_found(",
        "Status::already_exists(",
        "Status::permission_denied(",
        "Status::resource_exhausted(",
        "Status::failed_precondition(",
        "Status::aborted(",
        "Status::out_of_range(",
        "Status::unimplemented(",
        "Status::internal(",
        "Status::unavailable(",
        "Status::data_loss(",
    ];
    let is_error_module = |path: &Path| {
        path.file_name().is_some_and(|n| n == "error.rs")
            || path.components().any(|c| c.as_os_str() == "error")
    };
    let mut violations = Vec::new();
    for source in all_sources() {
        if is_error_module(&source.path) {
            continue;
        }
        for (n, line) in code_lines(&source.code) {
            if let Some(constructor) = CONSTRUCTORS.iter().find(|c| line.contains(*c)) {
                violations.push(format!(
                    "{}:{}: {constructor}…) outside an error module",
                    source.path.display(),
                    n + 1
                ));
            }
        }
    }
    report("statuses are made in error modules", violations);
}

#[test]
fn no_source_file_passes_600_lines_of_code_unless_it_says_why() {
    let mut violations = Vec::new();
    for source in all_sources() {
        let lines = code_lines(&source.code).count();
        if lines > MAX_LINES && !source.code.contains(LONG_FILE_REASON) {
            violations.push(format!(
                "{}: {lines} lines of code (tests aside)",
                source.path.display()
            ));
        }
    }
    report("source files stay under 600 lines of code", violations);
}
