//! Project automation for ponder, run as `cargo xtask <command>`.
//!
//! - [`data`]: installs the optional out-of-distribution corpora into `data/ood/`;
//! - [`reproduce`]: the paper's experiment, phase by phase ([`phases`]), through the `ponder`
//!   binary ([`runner`]), and [`slurm`]: the same as Slurm job arrays;
//! - [`sweep`]: the points of a sweep file, run locally (in parallel) or as Slurm job arrays,
//!   and their aggregate;
//! - [`gpu_check`]: the CUDA build packed for a GPU machine, and the script that checks it there;
//! - [`tidy`]: the crate map (which internal crate may depend on which, and which crates must
//!   build without Candle) and its table in docs/ARCHITECTURE.md, a `//!` doc comment at the top
//!   of every Rust file, and [`literals`]: run-folder paths and record keys only in their home.

pub mod data;
pub mod gpu_check;
pub mod literals;
pub mod phases;
pub mod reproduce;
pub mod runner;
pub mod slurm;
pub mod sweep;
pub mod tidy;
