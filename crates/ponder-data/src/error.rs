//! The error type of `ponder-data`.

use std::path::PathBuf;

/// Errors from tokenizers, corpora and windowing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `tokenizer.json` (or vocab/merges pair) could not be loaded.
    #[error("{path}: not a usable tokenizer ({message})")]
    TokenizerFile {
        /// The file.
        path: PathBuf,
        /// What the tokenizers crate reported.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A Hub lookup failed.
    #[error(transparent)]
    Hub(#[from] ponder_hub::HubError),
    /// A text input is empty or not text.
    #[error("{path}: {reason}")]
    BadText {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A dataset file (JSON Lines or Parquet) is malformed, lacks a configured column, or cannot
    /// be read by this build.
    #[error("{path}: {reason}")]
    BadDataset {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the line or row, or the column.
        reason: String,
    },
    /// No file of the language is left after filtering.
    #[error(
        "corpus {name}: no {language} files left under {root} after filtering (skipped: {skipped})"
    )]
    EmptyCorpus {
        /// The corpus.
        name: String,
        /// The language.
        language: crate::lang::Language,
        /// The folder or archive.
        root: PathBuf,
        /// Skip counts by reason.
        skipped: String,
    },
    /// A named source of code is not on this machine.
    #[error("source {name}: {reason}; {hint}")]
    SourceMissing {
        /// The source name.
        name: String,
        /// What was looked for.
        reason: String,
        /// How to get it.
        hint: String,
    },
    /// A token shard cache is corrupt or stale.
    #[error("{path}: {reason}")]
    BadShard {
        /// The shard file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bad `[data]` value; names the key and what was expected.
    #[error("config: {0}")]
    Config(String),
    /// Invalid windowing parameters.
    #[error("windows: {0}")]
    Windows(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
