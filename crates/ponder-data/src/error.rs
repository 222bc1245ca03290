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
    /// Invalid windowing parameters.
    #[error("windows: {0}")]
    Windows(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
