//! Floating-point operations of one chunk, counted from the shapes (2 per multiply-add of every
//! matrix product; element-wise work, norms and softmaxes left out): the cost of SKIP and
//! UPDATE_k in FLOPs beside the original's units (1 + 2k) and the measured seconds.

use ponder_model::{FastLayer, FastModelKind, PonderLm};
use serde::{Deserialize, Serialize};

/// FLOPs of the parts of one chunk's forward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

    /// What the one-pass comparison computes per chunk-batch: both paths sharing the backbone
    /// and the fast layer, with two heads.
    pub fn comparison(&self) -> f64 {
        self.backbone + self.fast + 2.0 * self.head
    }
}

/// Counts the FLOPs of one chunk-batch of `rows × tokens` under `lm`.
pub fn chunk_flops(lm: &PonderLm, rows: usize, tokens: usize) -> ChunkFlops {
    let c = lm.backbone_model().config();
    let (t, d, l, v) = (
        tokens as f64,
        c.n_embd as f64,
        c.n_layer as f64,
        c.vocab_size as f64,
    );
    let inner = c.n_inner.unwrap_or(4 * c.n_embd) as f64;
    // Per block: QKV (3d²), output (d²), MLP (2·d·inner) per token; QKᵀ and AV (t·d each).
    let per_block = 2.0 * t * (4.0 * d * d + 2.0 * d * inner) + 2.0 * 2.0 * t * t * d;
    let backbone = l * per_block;
    let head = 2.0 * t * d * v;
    let fast = match lm.fast_layer() {
        FastLayer::TttLinear { config, .. } => {
            let (d, nh, hd, b) = (
                config.hidden_dim as f64,
                config.num_heads as f64,
                config.head_dim as f64,
                config.mini_batch_size as f64,
            );
            // Q, K, V, gate and output projections.
            let proj = 2.0 * t * d * (4.0 * nh * hd) + 2.0 * t * nh * hd * d;
            // Per head and token: K·W and its gradient Kᵀ·G (hd² each), the b×b attention of the
            // dual form and its product with G (b·hd each), and Q·W (hd²); MLP doubles the weights
            // with a 4× hidden layer.
            let width = match config.fast_model {
                FastModelKind::Linear => 1.0,
                FastModelKind::Mlp => 8.0,
            };
            let inner = 2.0 * t * nh * (3.0 * hd * hd * width + 2.0 * b * hd);
            proj + inner
        }
        FastLayer::Lora { layer, .. } => {
            let cfg = layer.config();
            // Two rank-r factors of a d×d map, forward and backward, per token.
            3.0 * 2.0 * t * 2.0 * (cfg.hidden_dim * cfg.r) as f64
        }
    };
    let r = rows as f64;
    ChunkFlops {
        tokens,
        rows,
        backbone: r * backbone,
        head: r * head,
        fast: r * fast,
    }
}
