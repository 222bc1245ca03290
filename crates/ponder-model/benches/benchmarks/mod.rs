//! Benchmark groups of `ponder-model`.

pub mod update_vs_skip;
