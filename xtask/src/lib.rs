//! Project automation for ponder, run as `cargo xtask <command>`.
//!
//! - [`tidy`]: the crate map (which internal crate may depend on which, and which crates must
//!   build without Candle) and a `//!` doc comment at the top of every Rust file.

pub mod tidy;
