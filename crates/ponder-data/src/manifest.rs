//! Manifests: the exact files a prepared dataset was built from (relative path, size, SHA-256),
//! written beside it so that a run records which code it saw and a changed source is detected.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, SkipReason};
use crate::error::{Error, Result};
use crate::lang::Language;
use crate::split::Split;

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the corpus root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The file's split.
    pub split: Split,
}

/// What a prepared corpus is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The corpus name.
    pub name: String,
    /// The language.
    pub language: Language,
    /// The scanned folder or archive.
    pub root: String,
    /// Kept files in order.
    pub files: Vec<ManifestEntry>,
    /// Skipped files by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Manifest {
    /// The manifest of `corpus`, given each file's text and split.
    pub fn new(corpus: &Corpus, texts: &[String], splits: &[Split]) -> Self {
        let files = corpus
            .files
            .iter()
            .zip(texts)
            .zip(splits)
            .map(|((f, text), &split)| ManifestEntry {
                path: f.rel_path.clone(),
                size: f.size,
                sha256: sha256_hex(text.as_bytes()),
                split,
            })
            .collect();
        Self {
            name: corpus.name.clone(),
            language: corpus.language,
            root: corpus.root.display().to_string(),
            files,
            skipped: corpus.skipped.clone(),
        }
    }

    /// A digest of the whole manifest: equal digests mean the same files with the same bytes.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).expect("manifest serializes");
        sha256_hex(text.as_bytes())
    }

    /// Writes the manifest as pretty JSON, through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("manifest serializes");
        ponder_base::write_atomic(path, text.as_bytes()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a manifest.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::BadShard {
            path: path.to_path_buf(),
            reason: format!("not a manifest: {e}"),
        })
    }
}
