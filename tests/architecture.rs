//! The dependency rules of the workspace (DESIGN.md, "Shape of the code"), checked on the
//! manifests as cargo reads them (`cargo metadata`):
//!
//! - nothing under `crates/` depends on a service (normal, dev or build dependency);
//! - no service depends on another service (they talk over gRPC), dev-dependencies included;
//! - every member of the workspace takes the workspace's lints (`[lints] workspace = true`).
//!
//! Each test lists every violation it finds, not only the first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Where a package lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// `crates/…`: the libraries every service may use.
    Crates,
    /// `services/…`: one service each.
    Services,
    /// The root package (the binary) or anything else.
    Other,
}

/// A member of the workspace.
struct Member {
    name: String,
    /// Its directory, relative to the workspace root.
    dir: PathBuf,
    manifest: PathBuf,
    /// Its path dependencies: (package name, directory relative to the workspace root, kind).
    path_deps: Vec<(String, PathBuf, String)>,
}

struct Workspace {
    root: PathBuf,
    members: Vec<Member>,
}

fn area(dir: &Path) -> Area {
    match dir.components().next().and_then(|c| c.as_os_str().to_str()) {
        Some("crates") => Area::Crates,
        Some("services") => Area::Services,
        _ => Area::Other,
    }
}

fn metadata() -> Workspace {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let root = PathBuf::from(json["workspace_root"].as_str().expect("workspace_root"));
    let ids: Vec<&str> = json["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let relative = |path: &Path| path.strip_prefix(&root).unwrap_or(path).to_path_buf();
    let mut members = Vec::new();
    for package in json["packages"].as_array().expect("packages") {
        if !ids.contains(&package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        let dir = relative(manifest.parent().expect("a manifest has a directory"));
        let path_deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter_map(|dep| {
                let path = dep["path"].as_str()?;
                let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                let name = dep["name"].as_str().unwrap_or_default().to_owned();
                Some((name, relative(Path::new(path)), kind))
            })
            .collect();
        members.push(Member {
            name: package["name"].as_str().unwrap_or_default().to_owned(),
            dir,
            manifest,
            path_deps,
        });
    }
    Workspace { root, members }
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

/// A dependency that breaks a rule: (package, the service it depends on, kind).
type Edge = (String, String, String);

/// The dependencies of the members of `from` on packages under `services/`, except `self`.
fn service_dependencies(workspace: &Workspace, from: Area) -> Vec<Edge> {
    let mut edges = Vec::new();
    for member in workspace.members.iter().filter(|m| area(&m.dir) == from) {
        for (name, dir, kind) in &member.path_deps {
            if area(dir) == Area::Services && *dir != member.dir {
                edges.push((member.name.clone(), name.clone(), kind.clone()));
            }
        }
    }
    edges
}

fn describe((from, to, kind): &Edge) -> String {
    format!("{from} has a {kind} dependency on the service {to}")
}

#[test]
fn the_workspace_has_crates_and_services_to_check() {
    let workspace = metadata();
    let count = |a| {
        workspace
            .members
            .iter()
            .filter(|m| area(&m.dir) == a)
            .count()
    };
    assert!(count(Area::Crates) > 0, "no member under crates/");
    assert!(count(Area::Services) > 0, "no member under services/");
    // A package under crates/ or services/ left out of the workspace would escape the rules.
    let mut missing = Vec::new();
    for parent in ["crates", "services"] {
        let entries = std::fs::read_dir(workspace.root.join(parent)).expect(parent);
        for entry in entries.map(|e| e.expect("a directory entry")) {
            let dir = Path::new(parent).join(entry.file_name());
            let is_member = workspace.members.iter().any(|m| m.dir == dir);
            if entry.path().join("Cargo.toml").is_file() && !is_member {
                missing.push(format!(
                    "{} is not a member of the workspace",
                    dir.display()
                ));
            }
        }
    }
    report(
        "every package under crates/ and services/ is a member",
        missing,
    );
}

#[test]
fn nothing_under_crates_depends_on_a_service() {
    let workspace = metadata();
    let edges = service_dependencies(&workspace, Area::Crates);
    report(
        "nothing under crates/ depends on a service",
        edges.iter().map(describe).collect(),
    );
}

#[test]
fn no_service_depends_on_another_service() {
    let workspace = metadata();
    let edges = service_dependencies(&workspace, Area::Services);
    let violations: Vec<String> = edges.iter().map(describe).collect();
    report("no service depends on another service", violations);
}

#[test]
fn every_member_takes_the_workspace_lints() {
    let workspace = metadata();
    let mut violations = Vec::new();
    for member in &workspace.members {
        let text = std::fs::read_to_string(&member.manifest).expect("a readable manifest");
        let manifest: toml::Table = match text.parse() {
            Ok(manifest) => manifest,
            Err(error) => {
                violations.push(format!("{}: {error}", member.manifest.display()));
                continue;
            }
        };
        let inherits = manifest
            .get("lints")
            .and_then(|lints| lints.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if !inherits {
            violations.push(format!(
                "{} ({}) lacks `[lints] workspace = true`",
                member.name,
                member.manifest.display()
            ));
        }
    }
    report("every member takes the workspace lints", violations);
}
