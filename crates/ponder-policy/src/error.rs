//! The error type of `ponder-policy`.

/// Errors from configuring, training or running the learned gate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range; names the setting and what was expected.
    #[error("policy: {0}")]
    Config(String),
    /// A non-finite reward, cost, loss or statistic; names where it appeared.
    #[error("policy: {0}")]
    Numeric(String),
    /// A tensor operation failed.
    #[error("policy: {0}")]
    Candle(#[from] candle::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
