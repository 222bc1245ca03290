//! Stream mode's evaluation data (`docs/design/stream.md`): each held-out file's tokens cut into
//! whole chunks of `chunk_len`, in order, at most `chunks_per_stream` of them (a file shorter
//! than one chunk gives no stream); streams grouped `batch_size` at a time in file order, at most
//! `max_batches` groups. Every stream of a batch keeps its own fast weights and decisions.
//!
//! The shuffled-input ablation permutes the tokens of every chunk with the permutation reset
//! mode uses at the same chunk position and row ([`crate::stream`]).

use crate::error::{Error, Result};
use crate::stream::permute_chunk;
use ponder_experiment::EvalConfig;

/// One file's chunks, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStream {
    /// Position among the evaluated streams, from 0.
    pub index: usize,
    /// The chunks' token ids, each `chunk_len` long.
    pub chunks: Vec<Vec<u32>>,
}

/// Streams run side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamBatch {
    /// The streams, at most `batch_size`.
    pub streams: Vec<FileStream>,
}

impl StreamBatch {
    /// The number of chunks of the longest stream.
    pub fn max_chunks(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.chunks.len())
            .max()
            .unwrap_or(0)
    }

    /// The rows (positions in [`StreamBatch::streams`]) that still have a chunk at `chunk`.
    pub fn alive(&self, chunk: usize) -> Vec<usize> {
        (0..self.streams.len())
            .filter(|&r| self.streams[r].chunks.len() > chunk)
            .collect()
    }

    /// A 64-bit FNV-1a digest of every stream's index and chunks, to check resumed records
    /// against the data.
    pub fn digest(&self) -> u64 {
        let mut h = ponder_base::Fnv1a::new();
        for s in &self.streams {
            h.write_u32s(&[s.index as u32, s.chunks.len() as u32]);
            for c in &s.chunks {
                h.write_u32s(c);
            }
        }
        h.finish()
    }

    /// The ids of chunk `chunk` of `rows`, row-major `(rows.len(), chunk_len)`.
    pub fn ids(&self, chunk: usize, rows: &[usize]) -> Vec<u32> {
        rows.iter()
            .flat_map(|&r| self.streams[r].chunks[chunk].iter().copied())
            .collect()
    }
}

/// The streams of `tokens` (documents joined by `eot`): each file with a whole chunk of
/// `chunk_len` tokens, cut into at most `most` of them, in file order, at most `wanted` files.
/// An error when no file has a whole chunk.
pub fn file_streams(
    tokens: &[u32],
    eot: u32,
    chunk_len: usize,
    most: usize,
    wanted: usize,
) -> Result<Vec<FileStream>> {
    let mut streams = Vec::new();
    for doc in ponder_data::pack::split_documents(tokens, eot) {
        if streams.len() == wanted {
            break;
        }
        let n = ponder_data::pack::n_windows(doc, chunk_len).min(most);
        if n == 0 {
            continue;
        }
        let chunks = (0..n)
            .map(|c| {
                ponder_data::pack::window(doc, c, chunk_len)
                    .expect("n whole chunks")
                    .to_vec()
            })
            .collect();
        streams.push(FileStream {
            index: streams.len(),
            chunks,
        });
    }
    if streams.is_empty() {
        return Err(Error::Data(format!(
            "no file of the stream ({} tokens) has a whole chunk of {chunk_len} tokens",
            tokens.len()
        )));
    }
    Ok(streams)
}

/// The streams of `tokens` (documents joined by `eot`) under stream-mode `config`, batched
/// `batch_size` at a time; `shuffle` = `Some(seed)` permutes every chunk's tokens (the
/// shuffled-input ablation).
pub fn stream_batches(
    tokens: &[u32],
    eot: u32,
    config: &EvalConfig,
    shuffle: Option<u64>,
) -> Result<Vec<StreamBatch>> {
    config.check()?;
    let most = config.chunks_per_stream.ok_or_else(|| {
        Error::Config("stream batches need eval.chunks_per_stream (stream mode)".into())
    })?;
    let mut streams = file_streams(
        tokens,
        eot,
        config.chunk_len,
        most,
        config.batch_size * config.max_batches,
    )?;
    if let Some(seed) = shuffle {
        for s in &mut streams {
            let row = s.index % config.batch_size;
            for (c, chunk) in s.chunks.iter_mut().enumerate() {
                *chunk = permute_chunk(chunk, seed, c, row);
            }
        }
    }
    let mut batches = Vec::new();
    let mut rest = streams.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(StreamBatch {
            streams: rest.by_ref().take(config.batch_size).collect(),
        });
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(batch_size: usize, max_batches: usize, chunks: usize) -> EvalConfig {
        toml::from_str(&format!(
            r#"
            mode = "stream"
            chunk_len = 3
            chunks_per_stream = {chunks}
            batch_size = {batch_size}
            max_batches = {max_batches}
            budget = 0.5
            methods = ["skip"]
            seed = 0
            bootstrap_resamples = 10
            ci_level = 0.95
            budget_sweep = []
            random_seeds = 1
            "#
        ))
        .unwrap()
    }

    #[test]
    fn files_become_streams_of_whole_chunks() {
        // Files of 7, 2 (no whole chunk), 9 and 3 tokens; eot = 0.
        let files: Vec<Vec<u32>> = vec![
            (1..=7).collect(),
            vec![8, 9],
            (10..=18).collect(),
            vec![19, 20, 21],
        ];
        let tokens = ponder_data::pack::join_documents(&files, 0);
        let b = stream_batches(&tokens, 0, &config(2, 10, 2), None).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].streams[0].chunks, vec![vec![1, 2, 3], vec![4, 5, 6]]);
        // The third file is capped at two chunks.
        assert_eq!(
            b[0].streams[1].chunks,
            vec![vec![10, 11, 12], vec![13, 14, 15]]
        );
        assert_eq!(b[1].streams[0].chunks, vec![vec![19, 20, 21]]);
        assert_eq!(b[1].streams[0].index, 2);
        assert_eq!((b[0].max_chunks(), b[1].max_chunks()), (2, 1));
        assert_eq!(b[0].alive(1), vec![0, 1]);
        assert_eq!(b[0].ids(1, &[1]), vec![13, 14, 15]);
        // At most max_batches · batch_size streams.
        assert_eq!(
            stream_batches(&tokens, 0, &config(2, 1, 2), None)
                .unwrap()
                .len(),
            1
        );
        let shuffled = stream_batches(&tokens, 0, &config(2, 10, 2), Some(3)).unwrap();
        let mut sorted = shuffled[0].streams[0].chunks[1].clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![4, 5, 6]);
    }

    #[test]
    fn no_whole_chunk_is_an_error() {
        let e = stream_batches(&[1, 2, 0, 3], 0, &config(2, 1, 2), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no file"), "{e}");
    }
}
