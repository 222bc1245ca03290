//! The errors of loading benchmarks and running samples. Each names the file, the problem or the
//! step it is about.

use std::path::PathBuf;

/// What can go wrong in `ponder-codegen`.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A benchmark file could not be read.
    #[error("cannot read benchmark file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A benchmark file was read but its content is not what its format says.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was expected and where (line, key).
        what: String,
    },
    /// A problem cannot be tested.
    #[error("problem {task_id}: {what}")]
    Problem {
        /// The problem's id.
        task_id: String,
        /// What is wrong with it.
        what: String,
    },
    /// No Python interpreter to run samples with.
    #[error("python3 not found: {what}")]
    PythonMissing {
        /// Where it was looked for.
        what: String,
    },
    /// The sandbox cannot isolate samples here, and running them unisolated was not asked for.
    #[error("the sandbox cannot isolate samples on this machine: {why}. Run ponder as root on a kernel that allows namespaces, or pass --allow-unisolated to run samples under resource limits only (never do that with code you do not trust)")]
    Isolation {
        /// Which step was refused, and by whom.
        why: String,
    },
    /// A limit of the sandbox is out of range.
    #[error("sandbox limit `{key}`: {what}")]
    Limit {
        /// The limit's name, as in the config.
        key: &'static str,
        /// What was expected.
        what: String,
    },
    /// Starting or watching a sample's process failed on the host's side.
    #[error("running a sample: {what}: {source}")]
    Spawn {
        /// The step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CodegenError>;
