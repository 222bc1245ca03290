//! The tidy check: it passes on this workspace (this is how `cargo test --workspace` enforces the
//! crate map), and its pure parts catch forbidden edges, unknown crates, Candle in Candle-free
//! crates and Rust files without a `//!` doc comment.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use xtask::tidy::{
    check_edges, check_file_docs, parse_metadata, run_tidy, starts_with_doc_comment,
    workspace_root, WorkspacePackage, CRATE_MAP,
};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("xtask-tidy-{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create dirs");
        fs::write(path, text).expect("write file");
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tidy_passes_on_this_workspace() {
    if let Err(e) = run_tidy(&workspace_root()) {
        panic!("{e:#}");
    }
}

#[test]
fn allowed_edges_pass() {
    let packages = [
        WorkspacePackage::new("ponder-gpt2", &["candle-core", "ponder-hub", "ponder-nn"]),
        WorkspacePackage::new("ponder-data", &["ponder-hub", "tokenizers"]),
        WorkspacePackage::new("xtask", &["anyhow", "serde_json"]),
    ];
    assert_eq!(check_edges(&packages), Vec::<String>::new());
}

#[test]
fn forbidden_edge_is_reported() {
    let packages = [
        WorkspacePackage::new("ponder-gate", &["ponder-gpt2", "ponder-metrics"]),
        WorkspacePackage::new("ponder-nn", &["ponder-hub", "xtask"]),
    ];
    let violations = check_edges(&packages);
    assert_eq!(violations.len(), 3, "{violations:#?}");
    assert!(violations[0].starts_with("crate edge ponder-gate -> ponder-gpt2 is not in"));
    assert!(violations[0].contains("docs/ARCHITECTURE.md"));
    assert!(violations[1].starts_with("crate edge ponder-nn -> ponder-hub is not in"));
    assert!(violations[2].starts_with("crate edge ponder-nn -> xtask is not in"));
}

#[test]
fn unknown_crate_is_reported() {
    let packages = [WorkspacePackage::new("ponder-mystery", &["ponder-nn"])];
    let violations = check_edges(&packages);
    assert_eq!(
        violations,
        [
            "crate ponder-mystery is not in the crate map in xtask/src/tidy.rs; \
          add it and describe it in docs/ARCHITECTURE.md"
        ]
    );
}

#[test]
fn candle_in_candle_free_crate_is_reported() {
    let packages = [
        WorkspacePackage::new("ponder-hub", &["candle-core"]),
        WorkspacePackage::new("ponder-metrics", &["candle-nn", "serde"]),
    ];
    let violations = check_edges(&packages);
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].contains("ponder-hub depends on candle-core"));
    assert!(violations[1].contains("ponder-metrics depends on candle-nn"));
}

#[test]
fn crate_map_names_only_known_crates() {
    for (name, deps) in CRATE_MAP {
        for dep in *deps {
            assert!(
                CRATE_MAP.iter().any(|(n, _)| n == dep),
                "{name} may depend on {dep}, which is not in the crate map"
            );
            assert_ne!(name, dep, "{name} may depend on itself");
        }
    }
}

#[test]
fn metadata_dependencies_use_package_names_of_every_kind() {
    let metadata = json!({
        "packages": [{
            "name": "ponder-cli",
            "dependencies": [
                { "name": "candle-core", "rename": "candle", "kind": null },
                { "name": "ponder-nn", "kind": null },
                { "name": "tempfile", "kind": "dev" },
                { "name": "ponder-nn", "kind": "dev" },
                { "name": "cc", "kind": "build" },
            ],
        }],
    });
    let packages = parse_metadata(&metadata).expect("parse metadata");
    assert_eq!(
        packages,
        [WorkspacePackage::new(
            "ponder-cli",
            &["candle-core", "cc", "ponder-nn", "tempfile"]
        )]
    );
}

#[test]
fn file_without_doc_comment_is_reported() {
    let root = TempDir::new("docs");
    root.write(
        "crates/ponder-a/src/lib.rs",
        "\n\n//! Fine.\n\npub mod b;\n",
    );
    root.write(
        "crates/ponder-a/src/b.rs",
        "// Not an inner doc comment.\nfn f() {}\n",
    );
    root.write("crates/ponder-a/src/empty.rs", "");
    root.write(
        "crates/ponder-a/target/debug/build/gen.rs",
        "fn skipped() {}\n",
    );
    root.write("crates/ponder-a/.hidden/skipped.rs", "fn skipped() {}\n");
    root.write("crates/ponder-a/README.md", "not rust\n");
    root.write(
        "xtask/src/main.rs",
        "#![allow(clippy::print_stdout)]\n//! Too late.\n",
    );
    let violations = check_file_docs(root.path()).expect("check file docs");
    let expected = [
        "crates/ponder-a/src/b.rs",
        "crates/ponder-a/src/empty.rs",
        "xtask/src/main.rs",
    ];
    assert_eq!(violations.len(), expected.len(), "{violations:#?}");
    for (violation, path) in violations.iter().zip(expected) {
        assert!(
            violation.starts_with(&format!("{path} does not start with a `//!`")),
            "{violation}"
        );
    }
}

#[test]
fn doc_comment_detection() {
    assert!(starts_with_doc_comment("//! Doc.\n"));
    assert!(starts_with_doc_comment(
        "\n   \n//! Doc after blank lines.\n"
    ));
    assert!(!starts_with_doc_comment("/// Outer doc.\n"));
    assert!(!starts_with_doc_comment("use std::fs;\n//! Doc.\n"));
    assert!(!starts_with_doc_comment("\n\n"));
}

#[test]
fn the_architecture_table_must_equal_the_crate_map() {
    let text = std::fs::read_to_string(workspace_root().join(xtask::tidy::ARCHITECTURE)).unwrap();
    assert_eq!(
        xtask::tidy::check_architecture_table(&text),
        Vec::<String>::new()
    );
    // A row that drifted, and one that is missing.
    let drifted = text.replace(
        "| `ponder-gate` | base, metrics |",
        "| `ponder-gate` | base |",
    );
    let v = xtask::tidy::check_architecture_table(&drifted);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].contains("the row of ponder-gate"), "{v:#?}");
    let missing = text.replace("| `ponder-hub` | base |\n", "");
    let v = xtask::tidy::check_architecture_table(&missing);
    assert!(v[0].contains("no row for ponder-hub"), "{v:#?}");
}

#[test]
fn run_folder_literals_are_reported_outside_their_home() {
    let dir = TempDir::new("literals");
    dir.write(
        "crates/ponder-x/src/lib.rs",
        "//! x\nfn f(d: &Path) { d.join(\"summary.json\"); }\n#[cfg(test)]\nmod tests { const A: &str = \"metrics.jsonl\"; }\n",
    );
    dir.write(
        "crates/ponder-experiment/src/layout.rs",
        "//! home\nconst B: &str = \"metrics.jsonl\";\n",
    );
    let v = xtask::literals::check_literals(dir.path()).unwrap();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with("crates/ponder-x/src/lib.rs:2: \"summary.json\""),
        "{v:#?}"
    );
}
