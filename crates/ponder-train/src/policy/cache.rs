//! The learned gate's streams with the frozen backbone's view computed once ([`StreamCache`]):
//! each chunk's hidden states, its model statistics and its backbone-alone loss, kept in memory
//! across iterations, so that a rollout pays only for the fast layer, the signal and the heads.

use std::time::Instant;

use candle::{Device, Tensor};
use ponder_eval::file_stream::{file_streams, StreamBatch};
use ponder_eval::learned::ChunkProbe;
use ponder_experiment::PolicyConfig;
use ponder_gate::features::ModelStats;
use ponder_model::PonderLm;

use crate::error::Result;

/// Streams probed together when the cache is built.
const PROBE_BATCH: usize = 16;

/// One chunk of a cached stream.
pub struct CachedChunk {
    /// Its token ids.
    pub ids: Vec<u32>,
    /// The backbone's hidden states, `(t, d)`.
    pub hidden: Tensor,
    /// Its model statistics (`recon` unset: it depends on the state).
    pub stats: ModelStats,
    /// The backbone alone's mean next-token loss, nats/token.
    pub none_loss: f64,
}

/// Streams of one split, each a file's chunks in order, with their backbone passes.
pub struct StreamCache {
    /// Per stream, its chunks.
    pub streams: Vec<Vec<CachedChunk>>,
    /// Seconds the backbone and the probe took.
    pub seconds: f64,
}

impl StreamCache {
    /// The first `wanted` streams of `tokens` (documents joined by `eot`) under `policy`'s
    /// chunking, probed on `lm`'s backbone; `on_stream(done, total)` reports progress.
    pub fn new(
        lm: &PonderLm,
        tokens: &[u32],
        eot: u32,
        policy: &PolicyConfig,
        wanted: usize,
        device: &Device,
        mut on_stream: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let t0 = Instant::now();
        let streams = file_streams(
            tokens,
            eot,
            policy.chunk_len,
            policy.chunks_per_stream,
            wanted,
        )
        .map_err(crate::error::eval_err)?;
        let mut out: Vec<Vec<CachedChunk>> = Vec::with_capacity(streams.len());
        for group in streams.chunks(PROBE_BATCH) {
            let batch = StreamBatch {
                streams: group.to_vec(),
            };
            let mut chunks: Vec<Vec<CachedChunk>> = group.iter().map(|_| Vec::new()).collect();
            for c in 0..batch.max_chunks() {
                let rows = batch.alive(c);
                let ids =
                    Tensor::from_vec(batch.ids(c, &rows), (rows.len(), policy.chunk_len), device)?;
                let hidden = lm.backbone(&ids)?.contiguous()?; // (rows, t, d)
                let probe = ChunkProbe::new(lm, &ids).map_err(crate::error::eval_err)?;
                for (j, &r) in rows.iter().enumerate() {
                    chunks[r].push(CachedChunk {
                        ids: batch.streams[r].chunks[c].clone(),
                        hidden: hidden.get(j)?,
                        stats: probe.stats[j],
                        none_loss: probe.none_loss[j],
                    });
                }
            }
            out.extend(chunks);
            on_stream(out.len(), streams.len());
        }
        Ok(Self {
            streams: out,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// The number of chunks over every stream.
    pub fn chunks(&self) -> usize {
        self.streams.iter().map(Vec::len).sum()
    }
}
