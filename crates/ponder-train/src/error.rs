//! The error type of `ponder-train`.

use std::path::PathBuf;

/// Errors from training.
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
    /// A bad configuration or override.
    #[error("config: {0}")]
    Config(String),
    /// Data preparation failed.
    #[error(transparent)]
    Data(#[from] ponder_data::Error),
    /// The experiment's config or run folder refused.
    #[error(transparent)]
    Experiment(#[from] ponder_experiment::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle::Error),
    /// A run folder or checkpoint does not fit this run.
    #[error("{0}")]
    Run(String),
}

/// A learned-gate error, as a run error.
pub(crate) fn policy_err(e: ponder_policy::Error) -> Error {
    Error::Run(e.to_string())
}

/// An evaluation-layer error (the stream environment), as a run error.
pub(crate) fn eval_err(e: ponder_eval::Error) -> Error {
    match e {
        ponder_eval::Error::Experiment(e) => Error::Experiment(e),
        ponder_eval::Error::Candle(e) => Error::Candle(e),
        other => Error::Run(other.to_string()),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
