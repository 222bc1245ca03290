//! Benchmark groups of `ponder-model`.

pub mod decode;
pub mod update_vs_skip;
