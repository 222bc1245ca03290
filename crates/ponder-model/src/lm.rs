//! The PonderTTT language model (`docs/original.md` §2.1): a frozen GPT-2 backbone, `fast_norm`,
//! a fast-weight layer added to the final hidden state as a residual, and the tied head with the
//! pad logit masked.
//!
//! One backbone pass serves every gating method: [`PonderLm::chunk`] returns the backbone's
//! hidden states, the SKIP loss, the UPDATE_k loss and the reconstruction statistics, with the
//! SKIP head running beside the fast layer on the CPU; the SKIP and UPDATE paths can also be
//! called separately on saved hidden states.

use candle::{DType, Result, Tensor};
use ponder_gpt2::Gpt2;
use ponder_ttt::TttStats;

use crate::fast::{FastLayer, FastNorm, FastState};
use crate::lora::mean_stats;
use ponder_lora::{update_sequence, LoraState};

/// Most logits [`PonderLm::next_token_loss`] materializes at once: 32 M f32 values, 128 MB.
pub const LOGITS_BUDGET: usize = 1 << 25;

/// The PonderTTT LM.
#[derive(Clone)]
pub struct PonderLm {
    backbone: Gpt2,
    fast_norm: FastNorm,
    fast: FastLayer,
}

/// The UPDATE path over a chunk.
pub struct UpdateOutput {
    /// `h + y`, the features the tied head reads, `(b, t, d)`.
    pub features: Tensor,
    /// Reconstruction statistics of the fast layer.
    pub stats: TttStats,
    /// The fast state after the chunk.
    pub state: FastState,
}

/// Floating-point operations of the parts of a forward ([`PonderLm::flops`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PartFlops {
    /// The backbone's blocks.
    pub backbone: f64,
    /// The tied LM head.
    pub head: f64,
    /// The fast layer's UPDATE_k, by k.
    pub fast: Vec<(usize, f64)>,
}

/// The gate's signal for one sequence ([`PonderLm::sequence_signals`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequenceSignal {
    /// Mean reconstruction loss before each mini-batch's update (`ttt_loss_step_0`).
    pub recon: f64,
    /// Mean reconstruction loss under the weights entering the chunk (`ttt_loss_init`).
    pub recon_init: f64,
}

/// Everything the gates and metrics need from one chunk.
pub struct ChunkResult {
    /// Backbone hidden states after `ln_f` (no gradient), `(b, t, d)`: reusable.
    pub hidden: Tensor,
    /// Mean next-token loss of each sequence on the SKIP path, `(b)`.
    pub skip_loss: Tensor,
    /// Mean next-token loss of each sequence on the UPDATE_k path, `(b)`.
    pub update_loss: Tensor,
    /// Reconstruction statistics of the update.
    pub stats: TttStats,
    /// The fast state after the update.
    pub state: FastState,
}

impl PonderLm {
    /// Puts `fast_norm` and a fast layer on `backbone`. The backbone is copied with its weights
    /// detached, so no gradient can reach it or the tied embedding, whatever the caller does.
    pub fn new(backbone: &Gpt2, fast_norm: FastNorm, fast: FastLayer) -> Result<Self> {
        let d = backbone.config().n_embd;
        if fast.hidden_dim() != d || fast_norm.weight.dims() != [d] || fast_norm.bias.dims() != [d]
        {
            candle::bail!(
                "ponder-model: the fast layer (width {}) and fast_norm ({:?}) must match the backbone width {d}",
                fast.hidden_dim(),
                fast_norm.weight.dims()
            );
        }
        let frozen = backbone
            .weights()?
            .into_iter()
            .map(|(k, t)| (k, t.detach()))
            .collect();
        let backbone = Gpt2::from_weights(backbone.config().clone(), frozen, backbone.pad_token())?;
        Ok(Self {
            backbone,
            fast_norm,
            fast,
        })
    }

    /// The frozen backbone.
    pub fn backbone_model(&self) -> &Gpt2 {
        &self.backbone
    }

    /// The fast layer.
    pub fn fast_layer(&self) -> &FastLayer {
        &self.fast
    }

    /// `fast_norm`.
    pub fn fast_norm(&self) -> &FastNorm {
        &self.fast_norm
    }

    /// The state every chunk starts from unless the caller carries one.
    pub fn initial_state(&self, bs: usize) -> Result<FastState> {
        self.fast.initial_state(bs)
    }

    /// The backbone's hidden states after `ln_f`, detached.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32; returns `(b, t, d)`.
    pub fn backbone(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.backbone.forward(ids)?.detach())
    }

    /// Logits through the tied embedding with the pad logit masked.
    ///
    /// # Shapes
    /// - `features`: `(b, t, d)`; returns `(b, t, n_logits)`.
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        self.backbone.logits(features)
    }

    /// UPDATE_k on hidden states: `h + fast_layer(fast_norm(h))`, its statistics and the new
    /// state. `steps` = 0 is SKIP: the features are `hidden` and the state is unchanged. TTT adapts on the hidden states
    /// alone; LoRA also reads `ids` for its next-token loss (`docs/design/lora-update.md`).
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`; `features`: `(b, t, d)`.
    pub fn update(
        &self,
        hidden: &Tensor,
        ids: &Tensor,
        state: &FastState,
        steps: usize,
    ) -> Result<UpdateOutput> {
        if steps == 0 {
            // SKIP: the backbone's features, the state untouched; the statistics are the
            // signal with no update taken (step_1 = step_0).
            let signal = self.signal(hidden, ids, state, 1)?;
            let stats = TttStats {
                step_1: signal.step_0.clone(),
                ..signal
            };
            return Ok(UpdateOutput {
                features: hidden.clone(),
                stats,
                state: state.clone(),
            });
        }
        let normed = self.fast_norm.forward(hidden)?;
        match (&self.fast, state) {
            (FastLayer::Ttt { config, params }, FastState::Ttt(s)) => {
                let out = params.forward(config, &normed, s, steps)?;
                Ok(UpdateOutput {
                    features: (hidden + out.y)?,
                    stats: out.stats,
                    state: FastState::Ttt(out.state),
                })
            }
            (FastLayer::Lora { layer }, FastState::Lora(s)) => {
                self.lora_update(layer, hidden, &normed, ids, s, steps)
            }
            _ => candle::bail!("ponder-model: the fast state does not belong to this fast layer"),
        }
    }

    /// SKIP on a carried state (stream mode): `h + fast_layer(fast_norm(h))` read with the fast
    /// weights of `state` and no update, their statistics (the gate's signal under that state)
    /// and `state` unchanged. Unlike [`Self::update`] with `steps` = 0, which is the backbone
    /// alone, a read keeps what earlier updates of the stream taught the fast layer
    /// (`docs/design/stream.md`).
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`; `features`: `(b, t, d)`.
    pub fn read(&self, hidden: &Tensor, ids: &Tensor, state: &FastState) -> Result<UpdateOutput> {
        let normed = self.fast_norm.forward(hidden)?;
        match (&self.fast, state) {
            (FastLayer::Ttt { config, params }, FastState::Ttt(s)) => {
                let out = params.read(config, &normed, s)?;
                Ok(UpdateOutput {
                    features: (hidden + out.y)?,
                    stats: out.stats,
                    state: state.clone(),
                })
            }
            (FastLayer::Lora { .. }, FastState::Lora(_)) => {
                let signal = self.signal(hidden, ids, state, 1)?;
                Ok(UpdateOutput {
                    features: self.read_features(hidden, ids, state)?,
                    stats: TttStats {
                        step_1: signal.step_0.clone(),
                        ..signal
                    },
                    state: state.clone(),
                })
            }
            _ => candle::bail!("ponder-model: the fast state does not belong to this fast layer"),
        }
    }

    /// The features of [`Self::read`] alone, without the statistics (which LoRA cannot form on
    /// a chunk of one token): what decoding reads.
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`; returns `(b, t, d)`.
    pub fn read_features(
        &self,
        hidden: &Tensor,
        ids: &Tensor,
        state: &FastState,
    ) -> Result<Tensor> {
        let normed = self.fast_norm.forward(hidden)?;
        let y = match (&self.fast, state) {
            (FastLayer::Ttt { config, params }, FastState::Ttt(s)) => {
                params.read(config, &normed, s)?.y
            }
            (FastLayer::Lora { layer }, FastState::Lora(s)) => {
                let (b, _) = ids.dims2()?;
                if s.per_seq.len() != b {
                    candle::bail!(
                        "ponder-model: LoRA state for {} sequences, ids {:?}",
                        s.per_seq.len(),
                        ids.dims()
                    );
                }
                let ys = (0..b)
                    .map(|i| {
                        ponder_lora::LoraFastLayer::from_trainable(
                            layer.config().clone(),
                            &s.per_seq[i],
                        )?
                        .forward(&normed.narrow(0, i, 1)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&ys, 0)?
            }
            _ => candle::bail!("ponder-model: the fast state does not belong to this fast layer"),
        };
        hidden + y
    }

    /// Where a [`Self::read`] of tokens `s..=i` of a chunk must start for token `i`'s features
    /// to equal those of a read of the whole chunk (decoding reads each new token from there):
    /// a few tokens back for TTT ([`ponder_ttt::TttParams::read_start`]), the chunk's start for
    /// LoRA, whose readout attends to every earlier token.
    pub fn read_start(&self, i: usize) -> Result<usize> {
        match &self.fast {
            FastLayer::Ttt { config, params } => params.read_start(config, i),
            FastLayer::Lora { .. } => Ok(0),
        }
    }

    /// The statistics of UPDATE_k alone: what a gate reads before it decides. For TTT this skips
    /// the query path and the readout; for LoRA it is the full update.
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`.
    pub fn signal(
        &self,
        hidden: &Tensor,
        ids: &Tensor,
        state: &FastState,
        steps: usize,
    ) -> Result<TttStats> {
        match (&self.fast, state) {
            (FastLayer::Ttt { config, params }, FastState::Ttt(s)) => {
                params.signal(config, &self.fast_norm.forward(hidden)?, s, steps)
            }
            _ => Ok(self.update(hidden, ids, state, steps)?.stats),
        }
    }

    /// The gate's signal for each sequence on its own, under `state`: the means over the chunk's
    /// mini-batches (LoRA: blocks) of the UPDATE_1 statistics `step_0` (`recon`) and `init`
    /// (`recon_init`), what a gate deciding per stream reads before it decides
    /// (`docs/design/stream.md`).
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`; returns `b` signals.
    pub fn sequence_signals(
        &self,
        hidden: &Tensor,
        ids: &Tensor,
        state: &FastState,
    ) -> Result<Vec<SequenceSignal>> {
        let to_vec =
            |t: &Tensor| -> Result<Vec<f64>> { ponder_nn::to_f64(&t.mean(0)?)?.to_vec1::<f64>() };
        match (&self.fast, state) {
            (FastLayer::Ttt { config, params }, FastState::Ttt(s)) => {
                let normed = self.fast_norm.forward(hidden)?;
                let stats = params.signal_per_sequence(config, &normed, s, 1)?;
                let (recon, init) = (to_vec(&stats.step_0)?, to_vec(&stats.init)?);
                Ok(recon
                    .into_iter()
                    .zip(init)
                    .map(|(recon, recon_init)| SequenceSignal { recon, recon_init })
                    .collect())
            }
            _ => (0..ids.dim(0)?)
                .map(|i| {
                    let stats = self.signal(
                        &hidden.narrow(0, i, 1)?,
                        &ids.narrow(0, i, 1)?,
                        &state.row(i)?,
                        1,
                    )?;
                    let (recon_init, recon, _) = stats.chunk_means()?;
                    Ok(SequenceSignal { recon, recon_init })
                })
                .collect(),
        }
    }

    /// UPDATE_k of the LoRA fast layer, one sequence at a time (each adapts its own factors).
    #[allow(clippy::too_many_arguments)]
    fn lora_update(
        &self,
        layer: &ponder_lora::LoraFastLayer,
        hidden: &Tensor,
        normed: &Tensor,
        ids: &Tensor,
        state: &LoraState,
        steps: usize,
    ) -> Result<UpdateOutput> {
        let (b, t) = ids.dims2()?;
        if state.per_seq.len() != b || hidden.dims()[..2] != [b, t] {
            candle::bail!(
                "ponder-model: LoRA state for {} sequences, hidden {:?} and ids {:?} disagree",
                state.per_seq.len(),
                hidden.dims(),
                ids.dims()
            );
        }
        let initial = layer.trainable();
        let (mut ys, mut stats, mut next) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..b {
            let h = hidden.narrow(0, s, 1)?; // (1, t, d)
            let targets = ids.narrow(0, s, 1)?.squeeze(0)?; // (t)
            let loss = |y: &Tensor, start: usize, n: usize| -> Result<Tensor> {
                let features = (h.narrow(1, start, n)?.detach() + y)?; // (1, n, d)
                let logits = self.backbone.logits(&features)?.squeeze(0)?; // (n, V)
                ponder_nn::cross_entropy(&logits, &targets.narrow(0, start + 1, n)?)?.mean_all()
            };
            let out = update_sequence(
                layer.config(),
                &initial,
                &state.per_seq[s],
                &normed.narrow(0, s, 1)?,
                steps,
                &loss,
            )?;
            ys.push(out.y);
            stats.push(out.stats);
            next.push(out.factors);
        }
        let features = (hidden + Tensor::cat(&ys, 0)?)?;
        Ok(UpdateOutput {
            features,
            stats: mean_stats(&stats)?,
            state: FastState::Lora(LoraState { per_seq: next }),
        })
    }

    /// Mean next-token negative log-likelihood of each sequence: position `i` predicts token
    /// `i + 1`, so a chunk of `t` tokens has `t − 1` predictions. The head and its
    /// cross-entropy run fused where nothing needs a gradient ([`Gpt2::head_nll`]); otherwise
    /// the logits (cast to f32 from a half type) are built for as many sequences at a time as
    /// fit in [`LOGITS_BUDGET`] elements, so memory stays bounded.
    ///
    /// # Shapes
    /// - `features`: `(b, t, d)`; `ids`: `(b, t)` with `t >= 2`; returns `(b)`, f64 for f64
    ///   features and f32 otherwise.
    pub fn next_token_loss(&self, features: &Tensor, ids: &Tensor) -> Result<Tensor> {
        self.token_nll(features, ids)?.mean(1)
    }

    /// The per-token losses behind [`Self::next_token_loss`]: position `i` of the result is
    /// the loss of token `i + 1` given the features of token `i`.
    ///
    /// # Shapes
    /// - `features`: `(b, t, d)`; `ids`: `(b, t)` with `t >= 2`; returns `(b, t − 1)`.
    pub fn token_nll(&self, features: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t < 2 || features.dims()[..2] != [b, t] {
            candle::bail!(
                "ponder-model: need features (b, t, d) and ids (b, t) with t >= 2, got {:?} and {:?}",
                features.dims(),
                ids.dims()
            );
        }
        let per_pass = (LOGITS_BUDGET / ((t - 1) * self.backbone.n_logits())).max(1);
        let mut rows = Vec::with_capacity(b.div_ceil(per_pass));
        for start in (0..b).step_by(per_pass) {
            let n = per_pass.min(b - start);
            let f = features.narrow(0, start, n)?.narrow(1, 0, t - 1)?; // (n, t−1, d)
            let f = f.reshape((n * (t - 1), f.dim(2)?))?; // (n·(t−1), d)
            let targets = ids
                .narrow(0, start, n)?
                .narrow(1, 1, t - 1)?
                .flatten_all()?;
            let nll = self.backbone.head_nll(&f, &targets)?; // (n·(t−1))
            rows.push(nll.reshape((n, t - 1))?); // (n, t−1)
        }
        Tensor::cat(&rows, 0)
    }

    /// [`Self::update`] and the SKIP loss of the same hidden states, the two independent halves
    /// of a comparison pass. On the CPU they run side by side (`rayon::join`): the fast layer's
    /// small products and single-threaded element-wise ops leave a core idle much of the time,
    /// and the SKIP head's vocabulary tiles fill it. Elsewhere they run one after the other.
    /// Either way the results are the same bits, since no kernel's result depends on the thread
    /// that runs it.
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, d)`; `ids`: `(b, t)` with `t >= 2`; the SKIP loss is `(b)`.
    pub fn update_beside_skip_loss(
        &self,
        hidden: &Tensor,
        ids: &Tensor,
        state: &FastState,
        steps: usize,
    ) -> Result<(UpdateOutput, Tensor)> {
        if !hidden.device().is_cpu() {
            let skip_loss = self.next_token_loss(hidden, ids)?;
            return Ok((self.update(hidden, ids, state, steps)?, skip_loss));
        }
        let (up, skip_loss) = rayon::join(
            || self.update(hidden, ids, state, steps),
            || self.next_token_loss(hidden, ids),
        );
        Ok((up?, skip_loss?))
    }

    /// One chunk through both paths with a single backbone pass; the SKIP head runs beside the
    /// fast layer ([`Self::update_beside_skip_loss`]).
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32 with `t >= 2`.
    pub fn chunk(&self, ids: &Tensor, state: &FastState, steps: usize) -> Result<ChunkResult> {
        let hidden = self.backbone(ids)?;
        let (up, skip_loss) = self.update_beside_skip_loss(&hidden, ids, state, steps)?;
        let update_loss = self.next_token_loss(&up.features, ids)?;
        Ok(ChunkResult {
            hidden,
            skip_loss,
            update_loss,
            stats: up.stats,
            state: up.state,
        })
    }

    /// The same model with the fast layer and `fast_norm` trainable: the vars by checkpoint
    /// name (`fast_norm.weight`, `fast_layer.wq`, …), the only parameters that can learn.
    pub fn into_trainable(self) -> Result<(Self, Vec<(String, candle::Var)>)> {
        let (fast_norm, norm_vars) = self.fast_norm.into_trainable()?;
        let (fast, layer_vars) = self.fast.into_trainable()?;
        let vars = norm_vars
            .into_iter()
            .map(|(k, v)| (format!("fast_norm.{k}"), v))
            .chain(
                layer_vars
                    .into_iter()
                    .map(|(k, v)| (format!("fast_layer.{k}"), v)),
            )
            .collect();
        Ok((
            Self {
                backbone: self.backbone,
                fast_norm,
                fast,
            },
            vars,
        ))
    }

    /// Floating-point operations of one sequence of `tokens` tokens on each part of a forward:
    /// the backbone's blocks, the tied head, and the fast layer's UPDATE_`k` for each `k` of
    /// `steps` (2 per multiply-add of every matrix product, counted from the shapes).
    pub fn flops(&self, tokens: usize, steps: &[usize]) -> PartFlops {
        let c = self.backbone.config();
        let head = c.head_flops(tokens);
        let per_token = c.head_flops(1);
        PartFlops {
            backbone: c.blocks_flops(tokens),
            head,
            fast: steps
                .iter()
                .map(|&k| (k, self.fast.update_flops(tokens, k, per_token)))
                .collect(),
        }
    }

    /// The dtype of the backbone.
    pub fn dtype(&self) -> DType {
        self.backbone.dtype()
    }
}
