//! Benchmark groups of `ponder-nn`.

pub mod bias;
pub mod head;
