//! Method comparison over a chunk stream: one backbone pass and one fast-layer pass per chunk,
//! shared by every gating method; the report.
//!
//! - [`experiment`]: a whole comparison of an experiment in one call ([`run_comparison`]),
//!   opened as either mode's is (`open`);
//! - [`stream`]: the evaluation stream cut into chunk-batches as the original does;
//! - [`records`]: the one model pass, resumable, giving a [`ChunkRecord`] per chunk-batch;
//! - [`compare`]: every method's decisions and statistics from those records ([`summary`]);
//! - [`selection`]: `ours_lh` chosen on the validation split's records;
//! - stream mode (`[eval] mode = "stream"`): [`file_stream`] (one stream per file), [`carry`]
//!   (each method's pass with per-stream states, its actions in [`act`]), [`stream_compare`] (every method, the greedy
//!   oracle), [`stream_records`] (resumable, batch by batch), [`stream_summary`] (the
//!   statistics) and [`stream_experiment`] (the whole call, [`run_stream_comparison`]);
//!   [`learned`] is the learned gate (`ppo`) there: its features, its file and its decisions;
//! - [`sweep`]: a sweep's points aggregated over seeds (`ponder sweep aggregate`);
//! - [`output`]: `chunks.csv`, `summary.json`, `correlation.json`, `cost.json`;
//! - [`flops`] and [`latency`]: cost counted from shapes and measured;
//! - [`report`] (its result tables in `tables`, stream mode's in `stream_report` and the learned
//!   gate's in `policy_report`), [`plots`], [`plot`], [`paper`]: `report.md` with SVG plots and
//!   the paper's numbers beside ours.

pub mod act;
pub mod canonical;
pub mod carry;
mod codegen_report;
pub mod compare;
pub mod deciles;
pub mod error;
pub mod experiment;
pub mod file_stream;
pub mod flops;
pub mod latency;
pub mod learned;
mod open;
pub mod output;
pub mod paper;
pub mod plot;
pub mod plots;
mod policy_report;
pub mod records;
pub mod report;
pub mod selection;
pub mod stream;
pub mod stream_compare;
pub mod stream_experiment;
pub mod stream_records;
mod stream_report;
pub mod stream_summary;
pub mod summary;
pub mod sweep;
mod tables;

pub use error::{Error, Result};
pub use experiment::{run_comparison, CompareOutcome, CompareRequest, StreamChoice};
pub use records::{ChunkRecord, PassTimes};
pub use stream::{chunk_batches, ChunkBatch};
pub use stream_experiment::{run_stream_comparison, StreamOutcome};
