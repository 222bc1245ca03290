//! Benchmark groups of `ponder-lora`.

pub mod merge;
