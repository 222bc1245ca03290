//! The `tidy` check: the workspace's crate graph against the crate map, and a `//!` doc comment
//! at the top of every Rust file.
//!
//! The crate map ([`CRATE_MAP`]) is the single place that says which internal crate may depend on
//! which; docs/ARCHITECTURE.md explains why. Each check collects every violation it finds rather
//! than stopping at the first, so one run shows everything that needs fixing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Each workspace crate and the internal crates it may depend on (normal, dev or build).
pub const CRATE_MAP: &[(&str, &[&str])] = &[
    ("ponder-base", &[]),
    ("ponder-nn", &["ponder-base"]),
    ("ponder-hub", &["ponder-base"]),
    ("ponder-gpt2", &["ponder-base", "ponder-nn", "ponder-hub"]),
    ("ponder-ttt", &["ponder-base", "ponder-nn"]),
    ("ponder-lora", &["ponder-base", "ponder-nn"]),
    (
        "ponder-model",
        &[
            "ponder-base",
            "ponder-nn",
            "ponder-gpt2",
            "ponder-ttt",
            "ponder-lora",
            "ponder-metrics",
            "ponder-gate",
        ],
    ),
    (
        "ponder-data",
        &["ponder-base", "ponder-hub", "ponder-codegen"],
    ),
    ("ponder-metrics", &["ponder-base"]),
    ("ponder-gate", &["ponder-base", "ponder-metrics"]),
    ("ponder-codegen", &["ponder-base", "ponder-metrics"]),
    (
        "ponder-policy",
        &["ponder-base", "ponder-nn", "ponder-metrics", "ponder-gate"],
    ),
    (
        "ponder-experiment",
        &[
            "ponder-base",
            "ponder-nn",
            "ponder-gpt2",
            "ponder-model",
            "ponder-data",
            "ponder-gate",
            "ponder-metrics",
            "ponder-policy",
        ],
    ),
    (
        "ponder-train",
        &[
            "ponder-base",
            "ponder-nn",
            "ponder-gpt2",
            "ponder-model",
            "ponder-data",
            "ponder-experiment",
            "ponder-gate",
            "ponder-policy",
            "ponder-eval",
        ],
    ),
    (
        "ponder-eval",
        &[
            "ponder-base",
            "ponder-nn",
            "ponder-gpt2",
            "ponder-model",
            "ponder-data",
            "ponder-gate",
            "ponder-metrics",
            "ponder-experiment",
            "ponder-policy",
            "ponder-codegen",
        ],
    ),
    (
        "ponder-cli",
        &[
            "ponder-base",
            "ponder-nn",
            "ponder-gpt2",
            "ponder-hub",
            "ponder-model",
            "ponder-data",
            "ponder-experiment",
            "ponder-train",
            "ponder-eval",
            "ponder-gate",
            "ponder-metrics",
            "ponder-codegen",
        ],
    ),
    ("xtask", &[]),
];

/// Crates that must build without Candle.
pub const CANDLE_FREE: &[&str] = &[
    "ponder-base",
    "ponder-data",
    "ponder-hub",
    "ponder-metrics",
    "ponder-codegen",
];

/// The Candle packages that [`CANDLE_FREE`] crates may not depend on.
const CANDLE_PACKAGES: &[&str] = &["candle-core", "candle-nn"];

/// A workspace package and the package names of all its direct dependencies, of every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePackage {
    /// The package name, e.g. `ponder-gpt2`.
    pub name: String,
    /// Package names (not renames) of its normal, dev and build dependencies.
    pub dependencies: Vec<String>,
}

impl WorkspacePackage {
    /// A package with the given name and dependency names.
    pub fn new(name: &str, dependencies: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
        }
    }
}

/// The workspace root: the parent of the xtask crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Runs every tidy check on the workspace at `root`; fails listing all violations if any.
pub fn run_tidy(root: &Path) -> Result<()> {
    let violations = tidy_violations(root)?;
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
    bail!(
        "tidy found {} violation(s):\n{}",
        violations.len(),
        list.join("\n")
    )
}

/// Every tidy violation in the workspace at `root`: crate edges, the crate table of
/// docs/ARCHITECTURE.md, file docs, and run-folder literals outside their home.
pub fn tidy_violations(root: &Path) -> Result<Vec<String>> {
    let packages = workspace_packages(root)?;
    let mut violations = check_edges(&packages);
    violations.extend(check_architecture_table(
        &fs::read_to_string(root.join(ARCHITECTURE)).context("reading docs/ARCHITECTURE.md")?,
    ));
    violations.extend(check_file_docs(root)?);
    violations.extend(crate::literals::check_literals(root)?);
    Ok(violations)
}

/// The architecture document whose crate table must equal [`CRATE_MAP`].
pub const ARCHITECTURE: &str = "docs/ARCHITECTURE.md";

/// The rows of the `| crate | may depend on |` table in `text`: each crate with the internal
/// crates of its second column (short names such as `nn` stand for `ponder-nn`; `—` for none).
pub fn parse_architecture_table(text: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("| crate | may depend on |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            if !rows.is_empty() {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 {
            continue;
        }
        let name = cells[0].trim_matches('`').to_string();
        let deps = cells[1]
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "—")
            .map(|d| {
                if d == "xtask" || d.starts_with("ponder-") {
                    d.to_string()
                } else {
                    format!("ponder-{d}")
                }
            })
            .collect();
        rows.push((name, deps));
    }
    rows
}

/// Differences between the crate table of the architecture document `text` and [`CRATE_MAP`].
pub fn check_architecture_table(text: &str) -> Vec<String> {
    let table = parse_architecture_table(text);
    let mut violations = Vec::new();
    for (name, allowed) in CRATE_MAP {
        let mut want: Vec<&str> = allowed.to_vec();
        want.sort_unstable();
        match table.iter().find(|(n, _)| n == name) {
            None => violations.push(format!(
                "{ARCHITECTURE}: the crate table has no row for {name} (the crate map in xtask/src/tidy.rs has)"
            )),
            Some((_, deps)) => {
                let mut got: Vec<&str> = deps.iter().map(String::as_str).collect();
                got.sort_unstable();
                if got != want {
                    violations.push(format!(
                        "{ARCHITECTURE}: the row of {name} says {got:?}, the crate map says {want:?}"
                    ));
                }
            }
        }
    }
    for (name, _) in &table {
        if !CRATE_MAP.iter().any(|(n, _)| n == name) {
            violations.push(format!(
                "{ARCHITECTURE}: the crate table has {name}, which the crate map does not"
            ));
        }
    }
    violations
}

/// The workspace's packages, from `cargo metadata --no-deps` run at `root`.
pub fn workspace_packages(root: &Path) -> Result<Vec<WorkspacePackage>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .with_context(|| format!("failed to run {} metadata", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid json")?;
    parse_metadata(&metadata)
}

/// The packages in `cargo metadata` JSON output, with sorted, deduplicated dependency names.
pub fn parse_metadata(metadata: &Value) -> Result<Vec<WorkspacePackage>> {
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata output has no packages array")?;
    let mut parsed = Vec::with_capacity(packages.len());
    for package in packages {
        let name = package["name"]
            .as_str()
            .context("cargo metadata package has no name")?;
        let deps = package["dependencies"]
            .as_array()
            .with_context(|| format!("package {name} has no dependencies array"))?;
        let mut dependencies = deps
            .iter()
            .map(|d| d["name"].as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("package {name} has a dependency with no name"))?;
        dependencies.sort();
        dependencies.dedup();
        parsed.push(WorkspacePackage {
            name: name.to_string(),
            dependencies,
        });
    }
    parsed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(parsed)
}

/// Whether `name` is one of this workspace's own crates, by naming convention.
fn is_internal(name: &str) -> bool {
    name.starts_with("ponder-") || name == "xtask"
}

/// Violations of the crate map and of the Candle-free rule among `packages`.
pub fn check_edges(packages: &[WorkspacePackage]) -> Vec<String> {
    let mut violations = Vec::new();
    for package in packages {
        let name = package.name.as_str();
        let allowed = CRATE_MAP
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
            .map(|(_, deps)| *deps);
        match allowed {
            None => violations.push(format!(
                "crate {name} is not in the crate map in xtask/src/tidy.rs; \
                 add it and describe it in docs/ARCHITECTURE.md"
            )),
            Some(allowed) => {
                let mut internal: Vec<&str> = package
                    .dependencies
                    .iter()
                    .map(String::as_str)
                    .filter(|d| is_internal(d) && !allowed.contains(d))
                    .collect();
                internal.sort_unstable();
                internal.dedup();
                violations.extend(internal.into_iter().map(|dep| {
                    format!(
                        "crate edge {name} -> {dep} is not in the crate map (xtask/src/tidy.rs); \
                         a new edge needs a sentence in docs/ARCHITECTURE.md"
                    )
                }));
            }
        }
        if CANDLE_FREE.contains(&name) {
            let mut candle: Vec<&str> = package
                .dependencies
                .iter()
                .map(String::as_str)
                .filter(|d| CANDLE_PACKAGES.contains(d))
                .collect();
            candle.sort_unstable();
            candle.dedup();
            violations.extend(candle.into_iter().map(|dep| {
                format!("crate {name} depends on {dep}, but it must compile without candle")
            }));
        }
    }
    violations
}

/// Every `.rs` file under `root/crates` and `root/xtask` whose first non-empty line does not
/// start with `//!`, as a violation naming the path relative to `root`.
pub fn check_file_docs(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        let dir = root.join(dir);
        if dir.is_dir() {
            collect_rust_files(&dir, &mut files)?;
        }
    }
    files.sort();
    let mut violations = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)
            .with_context(|| format!("failed to read {}", file.display()))?;
        if !starts_with_doc_comment(&text) {
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let relative = relative.to_string_lossy().replace('\\', "/");
            violations.push(format!(
                "{relative} does not start with a `//!` doc comment saying what the file is for"
            ));
        }
    }
    Ok(violations)
}

/// Whether the first non-blank line of `text` is a `//!` inner doc comment.
pub fn starts_with_doc_comment(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with("//!"))
}

/// Appends every `.rs` file under `dir` to `files`, skipping `target` and hidden directories.
fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .with_context(|| format!("failed to stat {}", path.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if file_type.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rust_files(&path, files)?;
            }
        } else if file_type.is_file() && name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}
