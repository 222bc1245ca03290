//! The error type of `ponder-eval`.

use std::path::PathBuf;

/// Errors from an evaluation.
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
    /// A bad `[eval]` value or command-line option; names the key and what was expected.
    #[error("eval config: {0}")]
    Config(String),
    /// The evaluation data cannot give what was asked (too few tokens, too few chunks).
    #[error("eval data: {0}")]
    Data(String),
    /// A number came out non-finite; names the chunk and the quantity.
    #[error("eval: {0}")]
    NonFinite(String),
    /// A file of an earlier run does not fit this one.
    #[error("{path}: {reason}")]
    Resume {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The experiment's config or run folder refused.
    #[error(transparent)]
    Experiment(#[from] ponder_experiment::Error),
    /// Data preparation failed.
    #[error(transparent)]
    Prepare(#[from] ponder_data::Error),
    /// A gating policy failed.
    #[error(transparent)]
    Gate(#[from] ponder_gate::Error),
    /// A statistic failed.
    #[error(transparent)]
    Metrics(#[from] ponder_metrics::Error),
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
