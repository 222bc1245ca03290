//! The error type of `ponder-gate`.

/// Errors from building or running a gating policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The budget ρ (fraction of chunks that may be updated) is outside [0, 1] or not finite.
    #[error("gate: budget ρ = {0} is outside [0, 1]")]
    Budget(f64),
    /// A policy parameter is out of range; names the parameter and what was expected.
    #[error("gate: {0}")]
    Config(String),
    /// The stream is too short for the policy (e.g. shorter than its calibration window).
    #[error("gate: {0}")]
    Stream(String),
    /// A statistic refused its input.
    #[error("gate: {0}")]
    Metrics(#[from] ponder_metrics::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
