//! What every ponder crate shares and none of them owns, each in one place: atomic file writes
//! ([`write_atomic`]), one stable 64-bit hash ([`Fnv1a`]) and the seeds of named random streams
//! ([`derive_seed`]). No dependencies, so every crate of the workspace, the Candle-free leaves
//! included, can use it.

pub mod atomic;
pub mod hash;
pub mod seed;

pub use atomic::{write_atomic, write_atomic_with};
pub use hash::{fnv1a, Fnv1a};
pub use seed::derive_seed;
