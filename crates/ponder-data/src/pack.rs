//! Packing token streams: documents joined by `<|endoftext|>`, cut into non-overlapping windows
//! of `seq_len` (the tail is dropped), each window cut into chunks, windows grouped into batches
//! in a seeded order (as the original: 1024-token windows of two 512-token chunks).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Documents in order, with one `eot` between consecutive documents.
pub fn join_documents(docs: &[Vec<u32>], eot: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(docs.iter().map(|d| d.len() + 1).sum());
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push(eot);
        }
        out.extend_from_slice(d);
    }
    out
}

/// Windows of a packed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Tokens per window (1024 in the original).
    pub seq_len: usize,
    /// Tokens per chunk (512 in the original); must divide `seq_len`.
    pub chunk_len: usize,
}

impl Packing {
    /// Checks `0 < chunk_len`, `chunk_len` divides `seq_len`.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_len == 0 || self.seq_len == 0 || self.seq_len % self.chunk_len != 0 {
            return Err(Error::Windows(format!(
                "chunk_len {} must be positive and divide seq_len {}",
                self.chunk_len, self.seq_len
            )));
        }
        Ok(())
    }

    /// Number of whole windows in a stream of `n_tokens` (the tail is dropped).
    pub fn n_windows(&self, n_tokens: usize) -> usize {
        n_tokens / self.seq_len
    }

    /// Chunks per window.
    pub fn chunks_per_window(&self) -> usize {
        self.seq_len / self.chunk_len
    }

    /// Window `i` of `stream`.
    pub fn window<'a>(&self, stream: &'a [u32], i: usize) -> &'a [u32] {
        &stream[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// Chunk `c` of window `i`.
    pub fn chunk<'a>(&self, stream: &'a [u32], i: usize, c: usize) -> &'a [u32] {
        let w = self.window(stream, i);
        &w[c * self.chunk_len..(c + 1) * self.chunk_len]
    }
}

/// Window indices grouped into batches: in stream order, or shuffled by `seed` (one epoch).
/// The last batch may be smaller.
pub fn batches(
    n_windows: usize,
    batch_size: usize,
    shuffle_seed: Option<u64>,
) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(Error::Windows("batch_size must be positive".into()));
    }
    let mut order: Vec<usize> = (0..n_windows).collect();
    if let Some(seed) = shuffle_seed {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_window_chunk_batch() {
        let docs = vec![vec![1, 2, 3], vec![4], vec![5, 6]];
        let s = join_documents(&docs, 0);
        assert_eq!(s, [1, 2, 3, 0, 4, 0, 5, 6]);
        let p = Packing {
            seq_len: 4,
            chunk_len: 2,
        };
        p.validate().unwrap();
        assert_eq!(p.n_windows(s.len()), 2);
        assert_eq!(p.window(&s, 1), [4, 0, 5, 6]);
        assert_eq!(p.chunk(&s, 1, 1), [5, 6]);
        assert!(Packing {
            seq_len: 5,
            chunk_len: 2
        }
        .validate()
        .is_err());
        let b = batches(5, 2, None).unwrap();
        assert_eq!(b, vec![vec![0, 1], vec![2, 3], vec![4]]);
        let shuffled = batches(100, 16, Some(7)).unwrap();
        assert_eq!(shuffled, batches(100, 16, Some(7)).unwrap());
        assert_ne!(shuffled, batches(100, 16, Some(8)).unwrap());
        let mut all: Vec<usize> = shuffled.concat();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }
}
