//! Benchmark groups of `ponder-nn`.

pub mod head;
