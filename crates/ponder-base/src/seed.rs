//! Seeds of named random streams: every random source of a run (data order, dropout, the
//! shuffled-input ablation) draws from a stream named after its purpose and indexed by its step,
//! derived from the run's one seed, so adding a stream never shifts another and a resumed run
//! draws what an uninterrupted one would.

use crate::hash::{Fnv1a, FNV_OFFSET};

/// The seed of stream `stream`, element `index`, of a run seeded with `seed`: FNV-1a over the
/// stream's name and the index's little-endian bytes, from a basis mixed with `seed`.
///
/// ```
/// use ponder_base::derive_seed;
/// assert_eq!(derive_seed(0, "data", 3), derive_seed(0, "data", 3));
/// assert_ne!(derive_seed(0, "data", 3), derive_seed(0, "data", 4));
/// assert_ne!(derive_seed(0, "data", 3), derive_seed(1, "data", 3));
/// assert_ne!(derive_seed(0, "data", 3), derive_seed(0, "dropout", 3));
/// ```
pub fn derive_seed(seed: u64, stream: &str, index: u64) -> u64 {
    Fnv1a::with_basis(FNV_OFFSET ^ seed.rotate_left(29))
        .write(stream.as_bytes())
        .write(&index.to_le_bytes())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop this function replaced in the training crate, kept as the reference: the seeds
    /// of every run made so far depend on it.
    fn reference(seed: u64, stream: &str, index: u64) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.rotate_left(29);
        for b in stream.bytes().chain(index.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    #[test]
    fn equals_the_reference_loop() {
        for seed in [0, 1, 42, u64::MAX] {
            for (stream, index) in [("fast-data", 0), ("dropout", 7), ("", u64::MAX)] {
                assert_eq!(
                    derive_seed(seed, stream, index),
                    reference(seed, stream, index)
                );
            }
        }
    }
}
