//! Benchmark groups of `ponder-data`.

pub mod shard;
