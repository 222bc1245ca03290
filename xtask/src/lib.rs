//! Project automation for ponder, run as `cargo xtask <command>`.
//!
//! - [`data`]: installs the optional out-of-distribution corpora into `data/ood/`;
//! - [`reproduce`]: the paper's experiment, phase by phase, through the `ponder` binary, and
//!   [`slurm`]: the same as Slurm job arrays;
//! - [`tidy`]: the crate map (which internal crate may depend on which, and which crates must
//!   build without Candle) and a `//!` doc comment at the top of every Rust file.

pub mod data;
pub mod reproduce;
pub mod slurm;
pub mod tidy;
