//! The error type of `ponder-experiment`.

use std::path::PathBuf;

/// Errors from reading an experiment's config or using its run folders.
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
    /// A bad config value or override; names the key and what was expected.
    #[error("config: {0}")]
    Config(String),
    /// A run folder or checkpoint does not fit this run.
    #[error("{0}")]
    Run(String),
    /// A record file holds a line that is not one of its records.
    #[error("{path}: line {line}: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Maps an I/O error on `path`.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
