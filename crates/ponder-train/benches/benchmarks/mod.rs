//! Benchmark groups of `ponder-train`.

pub mod fast_step;
