//! Helpers shared by the Hugging Face dataset tests: committed fixtures, and an offline Hub
//! whose cache holds one of them.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use ponder_data::{Hub, HubOptions};
use ponder_hub::{insert_repo_file, RepoKind};

/// The committed fixture `name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An offline Hub over `cache`, where the dataset `repo` has the fixture `fixture_name` at
/// `file` (revision `abc`).
pub fn offline_hub_with(cache: &Path, repo: &str, file: &str, fixture_name: &str) -> Hub {
    let bytes = std::fs::read(fixture(fixture_name)).unwrap();
    insert_repo_file(cache, RepoKind::Dataset, repo, "abc", file, &bytes).unwrap();
    Hub::new(HubOptions {
        offline: true,
        ..HubOptions::new(cache)
    })
}
