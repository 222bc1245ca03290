//! Benchmark groups of `ponder-gate`.

pub mod gates;
