//! Statistics for comparing gating methods, on plain `f64`s (no Candle): average loss and
//! perplexity, Oracle Recovery, update rate, decision accuracy, Pearson and Spearman correlation,
//! McNemar's test, bootstrap confidence intervals and cost.

pub mod error;

pub use error::{Error, Result};
