//! Floating-point operations of one chunk-batch, from the counts the model crates make from the
//! shapes ([`PonderLm::flops`]): the cost of SKIP and UPDATE_k in FLOPs beside the original's
//! units (1 + 2k) and the measured seconds.

use std::collections::BTreeMap;

use ponder_gate::Decision;
use ponder_model::PonderLm;
use serde::{Deserialize, Serialize};

/// FLOPs of the parts of one chunk-batch's forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkFlops {
    /// Tokens per sequence.
    pub tokens: usize,
    /// Sequences per chunk-batch.
    pub rows: usize,
    /// The backbone's blocks (projections, MLPs and the attention products).
    pub backbone: f64,
    /// The tied LM head.
    pub head: f64,
    /// The fast layer's UPDATE_1 forward (projections and inner loop).
    pub fast: f64,
    /// The fast layer's UPDATE_k for each k > 1 a method uses, by k.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fast_k: BTreeMap<u32, f64>,
}

impl ChunkFlops {
    /// The SKIP path: backbone and head.
    pub fn skip(&self) -> f64 {
        self.backbone + self.head
    }

    /// The UPDATE_1 path: backbone, fast layer and head.
    pub fn update(&self) -> f64 {
        self.backbone + self.fast + self.head
    }

    /// The path `decision` takes; `None` for an UPDATE_k whose fast layer was not counted.
    pub fn path(&self, decision: Decision) -> Option<f64> {
        match decision.steps() {
            0 => Some(self.skip()),
            1 => Some(self.update()),
            k => self.fast_k.get(&k).map(|f| self.backbone + f + self.head),
        }
    }

    /// What the one-pass comparison computes per chunk-batch: both paths sharing the backbone
    /// and the fast layer, with two heads.
    pub fn comparison(&self) -> f64 {
        self.backbone + self.fast + 2.0 * self.head
    }
}

/// Counts the FLOPs of one chunk-batch of `rows × tokens` under `lm`, with UPDATE_k for each k
/// of `extra_steps` beside UPDATE_1.
pub fn chunk_flops(lm: &PonderLm, rows: usize, tokens: usize, extra_steps: &[u32]) -> ChunkFlops {
    let mut steps: Vec<usize> = vec![1];
    steps.extend(extra_steps.iter().map(|&k| k as usize));
    let parts = lm.flops(tokens, &steps);
    let r = rows as f64;
    let fast_of = |k: usize| {
        parts
            .fast
            .iter()
            .find(|(s, _)| *s == k)
            .map(|(_, f)| r * f)
            .unwrap_or(0.0)
    };
    ChunkFlops {
        tokens,
        rows,
        backbone: r * parts.backbone,
        head: r * parts.head,
        fast: fast_of(1),
        fast_k: extra_steps
            .iter()
            .map(|&k| (k, fast_of(k as usize)))
            .collect(),
    }
}
