//! The learned gate's feature vectors of one chunk position of a batch of streams: the
//! backbone's probe of the chunks ([`ChunkProbe`]), state-free and computed once, and the
//! vectors under each row's carried state and history ([`chunk_features`]), which training
//! rollouts and evaluation share.

use candle::Tensor;
use ponder_gate::features::{self, History, ModelStats};
use ponder_model::{FastState, PonderLm, SequenceSignal};

use crate::error::Result;

/// The backbone's view of one chunk position that the learned gate reads: per row, the model
/// statistics of the SKIP path (their `recon` filled in per state by [`chunk_features`]) and
/// the backbone-alone loss, which is the chunk's difficulty in the history features.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkProbe {
    /// Per row.
    pub stats: Vec<ModelStats>,
    /// Per row, nats/token.
    pub none_loss: Vec<f64>,
}

impl ChunkProbe {
    /// Probes `ids`.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)`.
    pub fn new(lm: &PonderLm, ids: &Tensor) -> Result<Self> {
        let b = ids.dim(0)?;
        let (_, stats, none_loss) = lm.probe(ids, &vec![f64::NAN; b])?;
        Ok(Self { stats, none_loss })
    }
}

/// How the feature vectors are computed (the [`PolicyMeta`] fields they depend on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureShape {
    /// Tokens per chunk.
    pub chunk_len: usize,
    /// The vocabulary size.
    pub vocab: usize,
    /// See [`PolicyMeta::length_norm`].
    pub length_norm: usize,
}

/// One chunk position of a batch of streams, as the learned gate reads it.
pub struct Position<'a> {
    /// The backbone's hidden states, `(rows, t, d)`.
    pub hidden: &'a Tensor,
    /// The token ids, `(rows, t)`.
    pub ids: &'a Tensor,
    /// Each row's token ids.
    pub ids_rows: Vec<&'a [u32]>,
    /// The rows' probe.
    pub probe: &'a ChunkProbe,
}

/// The feature vectors of chunk position `at`, row-major `(rows, WIDTH)`, and each row's signal
/// under its current state (`row_states[r]`, with history `histories[r]`).
pub fn chunk_features(
    lm: &PonderLm,
    at: &Position<'_>,
    row_states: &[&FastState],
    histories: &[History],
    shape: FeatureShape,
) -> Result<(Vec<f32>, Vec<SequenceSignal>)> {
    let signals = lm.sequence_signals(at.hidden, at.ids, &FastState::cat(row_states)?)?;
    let mut obs = Vec::with_capacity(signals.len() * features::WIDTH);
    for (r, s) in signals.iter().enumerate() {
        let stats = ModelStats {
            recon: s.recon,
            ..at.probe.stats[r]
        };
        obs.extend(features::vector(
            &stats,
            at.ids_rows[r],
            shape.chunk_len,
            shape.vocab,
            shape.length_norm,
            &histories[r],
        )?);
    }
    Ok((obs, signals))
}
