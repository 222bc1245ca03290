//! Benchmark groups of `ponder-gpt2`.

pub mod forward;
