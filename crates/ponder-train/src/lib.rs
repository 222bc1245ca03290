//! Training loops for ponder.
//!
//! - [`config`]: the TOML training configuration with typed `--set` overrides;
//! - [`data`]: sources → tokenizer → cached token streams per split;
//! - [`run`]: run folders, metrics, atomic checkpoints;
//! - [`precision`]: f32 or bf16 mixed precision (f32 master weights, f32 losses);
//! - [`backbone`]: pretraining the embedded-default backbone from scratch;
//! - [`fast`]: training the fast layer on a frozen backbone (the original's Phase 1).

pub mod backbone;
pub mod config;
pub mod data;
pub mod error;
pub mod fast;
pub mod precision;
pub mod run;

pub use backbone::{train_backbone, BackboneReport};
pub use config::TrainConfig;
pub use error::{Error, Result};
pub use fast::{fast_step, train_fast, FastModel, FastReport, HiddenCache};
pub use precision::Precision;
pub use run::RunDir;
