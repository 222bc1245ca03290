//! Project automation for ponder, run as `cargo xtask <command>`.
//!
//! - [`data`]: installs the optional out-of-distribution corpora into `data/ood/`;
//! - [`tidy`]: the crate map (which internal crate may depend on which, and which crates must
//!   build without Candle) and a `//!` doc comment at the top of every Rust file.

pub mod data;
pub mod tidy;
