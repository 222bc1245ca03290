//! Code-generation benchmarks and the sandbox that runs their samples.
//!
//! [`Problem`] is one benchmark problem, whichever benchmark it comes from (HumanEval, MBPP and
//! ClassEval, each from its released file); [`Problem::program`] is the program
//! that tests a completion. [`Sandbox`] runs such programs, each in its own isolated `python3`
//! process, and says what became of them ([`Outcome`]). Candle-free: users who only need the
//! harness get it without a tensor library.

pub mod classeval;
pub mod error;
pub mod humaneval;
pub mod mbpp;
pub mod problem;
mod release;
pub mod sandbox;
pub mod stop;
pub mod summary;

pub use error::{CodegenError, Result};

/// The problems of a release file of any benchmark: HumanEval's, MBPP's or ClassEval's format,
/// whichever the file's rows are (for training-data decontamination, which needs the reference
/// solutions whatever their benchmark).
pub fn load_any(path: &std::path::Path) -> Result<Vec<Problem>> {
    humaneval::load(path)
        .or_else(|h| mbpp::load(path).map_err(|_| h))
        .or_else(|h| classeval::load(path).map_err(|_| h))
        .map_err(|e| match e {
            CodegenError::Format { path, what } => CodegenError::Format {
                path,
                what: format!("{what} (nor MBPP's or ClassEval's format)"),
            },
            other => other,
        })
}
pub use problem::{Bench, Harness, Problem};
pub use sandbox::{Execution, Limits, Outcome, Sandbox, SandboxConfig, Tally};
pub use stop::{stop_at, truncate_at_stop, STOP_SEQUENCES};
pub use summary::{check_ks, summarize, CodegenSummary, MethodResult, SampleRecord};
