//! The experiment layer: what a run is, where it writes, and what it writes.
//!
//! - [`config`]: [`ExperimentConfig`], every section of an experiment's TOML file typed
//!   (`[run] [data] [model] [backbone] [fast] [eval] [policy]`, unknown keys refused), with dotted
//!   `--set` overrides checked against the types ([`overrides`]), and the sections each stage of
//!   an experiment is made from ([`Stage`]);
//! - [`sections`]: the `[backbone]`, `[fast]`, `[eval]` and `[policy]` sections;
//! - [`layout`]: [`Layout`] and [`RunFolder`], the one place that names a run folder's paths;
//! - [`records`]: the typed lines of `metrics.jsonl` and `timing.jsonl`, written and read by the
//!   same structs;
//! - [`run_dir`]: [`RunDir`], a run folder opened for one resolved config: its identity written
//!   first, records appended, checkpoints swapped in atomically, and a finished run recognised;
//! - [`sweep`]: [`sweep::SweepConfig`], a sweep file's points over a base config.

pub mod config;
pub mod error;
pub mod layout;
pub mod overrides;
pub mod records;
pub mod run_dir;
pub mod sections;
pub mod sweep;

pub use config::{ExperimentConfig, RunConfig, Stage};
pub use error::{Error, Result};
pub use layout::{Ablation, Layout, RunFolder, SweepLayout};
pub use records::{Metric, Timing};
pub use run_dir::{OpenOptions, RunDir};
pub use sections::{
    BackboneConfig, CorrectionForm, EvalConfig, FastConfig, Inference, PolicyConfig, StateMode,
};
