//! The evaluation stream cut as the original cuts it (`docs/original.md` §7.1, §7.3): consecutive
//! windows of `chunk_len × chunks_per_window` tokens, `batch_size` windows per batch, and one
//! chunk-batch per chunk position of each batch, in stream order (batch 0 chunk 0, batch 0
//! chunk 1, batch 1 chunk 0, …). Each chunk-batch gets one decision.
//!
//! The shuffled-input ablation (`docs/original.md` §7.6) permutes the tokens of every chunk row
//! with a permutation that depends on the seed, the chunk position and the row, so the same
//! permutation applies at that position in every batch, as in the original.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use ponder_experiment::EvalConfig;

/// One chunk-batch: the chunks at one position of `rows` consecutive windows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkBatch {
    /// Position in the decision stream, from 0.
    pub index: usize,
    /// The batch of windows it belongs to.
    pub batch: usize,
    /// The chunk position within the windows.
    pub position: usize,
    /// Sequences (rows).
    pub rows: usize,
    /// Tokens per row.
    pub len: usize,
    /// The token ids, row-major `(rows, len)`.
    pub ids: Vec<u32>,
}

impl ChunkBatch {
    /// A 64-bit FNV-1a digest of the ids, to check resumed records against the data.
    pub fn digest(&self) -> u64 {
        ponder_base::Fnv1a::new().write_u32s(&self.ids).finish()
    }
}

/// The seed of the permutation of `row` at chunk `position`: the run's `shuffle` stream,
/// indexed by both.
fn shuffle_seed(seed: u64, position: usize, row: usize) -> u64 {
    ponder_base::derive_seed(seed, "shuffle", ((position as u64) << 32) | row as u64)
}

/// `chunk` with its tokens permuted as the shuffled-input ablation permutes row `row` at chunk
/// position `position`.
pub(crate) fn permute_chunk(chunk: &[u32], seed: u64, position: usize, row: usize) -> Vec<u32> {
    let mut out = chunk.to_vec();
    out.shuffle(&mut ChaCha8Rng::seed_from_u64(shuffle_seed(
        seed, position, row,
    )));
    out
}

/// The chunk-batches of `stream` under `config`; `shuffle` = `Some(seed)` permutes the tokens of
/// every chunk row (the shuffled-input ablation).
pub fn chunk_batches(
    stream: &[u32],
    config: &EvalConfig,
    shuffle: Option<u64>,
) -> Result<Vec<ChunkBatch>> {
    config.check()?;
    let window = config.window_len()?;
    let chunks_per_window = config.window_chunks()?;
    let per_batch = window * config.batch_size;
    let available = stream.len() / per_batch;
    if available == 0 {
        return Err(Error::Data(format!(
            "the evaluation stream has {} tokens; one batch of {} windows of {} tokens needs {}",
            stream.len(),
            config.batch_size,
            window,
            per_batch
        )));
    }
    let n_batches = available.min(config.max_batches);
    let t = config.chunk_len;
    let mut out = Vec::with_capacity(n_batches * chunks_per_window);
    for batch in 0..n_batches {
        for position in 0..chunks_per_window {
            let mut ids = Vec::with_capacity(config.batch_size * t);
            for row in 0..config.batch_size {
                let w = ponder_data::pack::window(stream, batch * config.batch_size + row, window)
                    .expect("the batch count fits the stream");
                let chunk = &w[position * t..(position + 1) * t];
                match shuffle {
                    Some(seed) => ids.extend(permute_chunk(chunk, seed, position, row)),
                    None => ids.extend_from_slice(chunk),
                }
            }
            out.push(ChunkBatch {
                index: out.len(),
                batch,
                position,
                rows: config.batch_size,
                len: t,
                ids,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(chunk_len: usize, cpw: usize, bs: usize, max_batches: usize) -> EvalConfig {
        EvalConfig {
            chunk_len,
            mode: Default::default(),
            chunks_per_window: Some(cpw),
            chunks_per_stream: None,
            budget_cost: None,
            greedy_oracle_batches: None,
            batch_size: bs,
            max_batches,
            budget: 0.5,
            methods: vec!["skip".parse().unwrap()],
            seed: 0,
            bootstrap_resamples: 10,
            ci_level: 0.95,
            budget_sweep: vec![],
            random_seeds: 3,
            select: None,
        }
    }

    #[test]
    fn cuts_in_stream_order() {
        let stream: Vec<u32> = (0..100).collect();
        // Windows of 2 × 3 = 6 tokens, 2 windows per batch: 12 tokens per batch, 8 batches fit.
        let b = chunk_batches(&stream, &config(3, 2, 2, 3), None).unwrap();
        assert_eq!(b.len(), 6);
        // Batch 0, chunk 0: rows are windows 0 and 1, first halves.
        assert_eq!(b[0].ids, vec![0, 1, 2, 6, 7, 8]);
        assert_eq!((b[1].batch, b[1].position), (0, 1));
        assert_eq!(b[1].ids, vec![3, 4, 5, 9, 10, 11]);
        assert_eq!(b[2].ids, vec![12, 13, 14, 18, 19, 20]);
        assert_eq!(b[5].index, 5);
    }

    #[test]
    fn too_short_stream_is_an_error() {
        let e = chunk_batches(&[1, 2, 3], &config(3, 2, 2, 3), None).unwrap_err();
        assert!(e.to_string().contains("has 3 tokens"), "{e}");
    }

    #[test]
    fn shuffle_permutes_each_row_the_same_way_at_a_position() {
        let stream: Vec<u32> = (0..480).collect();
        let plain = chunk_batches(&stream, &config(20, 2, 2, 4), None).unwrap();
        let shuffled = chunk_batches(&stream, &config(20, 2, 2, 4), Some(7)).unwrap();
        for (p, s) in plain.iter().zip(&shuffled) {
            let mut a = p.ids.clone();
            let mut b = s.ids.clone();
            assert_ne!(a, b);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "a permutation of the same tokens");
        }
        // The same permutation at a position across batches: offsets within the row agree.
        let offsets =
            |c: &ChunkBatch| -> Vec<u32> { c.ids[..20].iter().map(|&x| x % 20).collect() };
        assert_eq!(offsets(&shuffled[0]), offsets(&shuffled[2]));
        assert_ne!(offsets(&shuffled[0]), offsets(&shuffled[1]));
    }
}
