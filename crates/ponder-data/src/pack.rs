//! Packing token streams: documents joined by `<|endoftext|>` (and split again), cut into
//! non-overlapping windows (the tail is dropped; the one cutter of the workspace, used by
//! training and evaluation), and windows grouped into batches in a seeded order.

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

/// The documents of a stream [`join_documents`] made, in order: `stream` split at every `eot`
/// (the inverse of joining, for documents that hold no `eot` of their own).
pub fn split_documents(stream: &[u32], eot: u32) -> impl Iterator<Item = &[u32]> {
    stream.split(move |&t| t == eot)
}

/// Window `i` of `stream` cut into consecutive, non-overlapping windows of `len` tokens:
/// `stream[i·len..(i + 1)·len]`; `None` past the last whole window (the tail is dropped).
pub fn window(stream: &[u32], i: usize, len: usize) -> Option<&[u32]> {
    let start = i.checked_mul(len)?;
    stream.get(start..start.checked_add(len)?)
}

/// The number of whole windows of `len` tokens in `stream` (0 when `len` is 0).
pub fn n_windows(stream: &[u32], len: usize) -> usize {
    stream.len().checked_div(len).unwrap_or(0)
}

/// Windows `idx` of `stream` (see [`window`]) one after another, row-major `(idx.len(), len)`;
/// an error naming the first index past the last whole window.
pub fn gather_windows(stream: &[u32], idx: &[usize], len: usize) -> Result<Vec<u32>> {
    let mut flat = Vec::with_capacity(idx.len() * len);
    for &i in idx {
        let w = window(stream, i, len).ok_or_else(|| {
            Error::Windows(format!(
                "window {i} of {len} tokens is past the end of a {}-token stream",
                stream.len()
            ))
        })?;
        flat.extend_from_slice(w);
    }
    Ok(flat)
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
        let back: Vec<Vec<u32>> = split_documents(&s, 0).map(<[u32]>::to_vec).collect();
        assert_eq!(back, docs);
        assert_eq!(n_windows(&s, 4), 2);
        assert_eq!(window(&s, 1, 4), Some(&[4, 0, 5, 6][..]));
        assert_eq!(window(&s, 2, 4), None);
        assert_eq!(gather_windows(&s, &[1, 0], 3).unwrap(), [0, 4, 0, 1, 2, 3]);
        let err = gather_windows(&s, &[0, 2], 3).unwrap_err().to_string();
        assert!(err.contains("window 2 of 3 tokens"), "{err}");
        assert_eq!(n_windows(&s, 0), 0);
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
