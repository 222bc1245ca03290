//! The benches of `ponder-eval`.

pub mod stream_pass;
