//! The error type of `ponder-metrics`.

/// Errors from computing a statistic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The inputs cannot give the statistic (empty, different lengths, zero variance, ...);
    /// names the statistic and what was wrong.
    #[error("metrics: {0}")]
    Input(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
