//! The error type of `ponder-metrics`, and the input checks every statistic shares.
//!
//! Each check names the statistic and the argument, so a message reads like
//! `metrics: pearson: x[3] is NaN, expected finite values`.

use std::fmt::Display;

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

impl Error {
    /// An [`Error::Input`] for statistic `stat`, reading "`stat`: `message`".
    pub(crate) fn input(stat: &str, message: impl Display) -> Self {
        Error::Input(format!("{stat}: {message}"))
    }
}

/// Fails unless `values` has at least one element.
pub(crate) fn ensure_nonempty<T>(stat: &str, name: &str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::input(
            stat,
            format!("{name} is empty, expected at least one value"),
        ));
    }
    Ok(())
}

/// Fails unless the two named slices have the same length.
pub(crate) fn ensure_same_len<A, B>(
    stat: &str,
    (name_a, a): (&str, &[A]),
    (name_b, b): (&str, &[B]),
) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::input(
            stat,
            format!(
                "{name_a} has length {} but {name_b} has length {}, expected equal lengths",
                a.len(),
                b.len()
            ),
        ));
    }
    Ok(())
}

/// Fails at the first non-finite value, naming its index.
pub(crate) fn ensure_finite(stat: &str, name: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(idx) => Err(Error::input(
            stat,
            format!("{name}[{idx}] is {}, expected finite values", values[idx]),
        )),
        None => Ok(()),
    }
}

/// Fails unless the scalar `value` is finite.
pub(crate) fn ensure_finite_scalar(stat: &str, name: &str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::input(
            stat,
            format!("{name} is {value}, expected a finite value"),
        ));
    }
    Ok(())
}
