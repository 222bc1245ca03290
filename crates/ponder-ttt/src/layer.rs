//! The TTT layer (TTT-Linear or TTT-MLP): a fast model per head, trained while it reads, with the
//! dual-form inner loop and the reconstruction statistics that the gates read.
//!
//! From "Learning to (Learn at Test Time): RNNs with Expressive Hidden States" (Sun et al., 2024,
//! reference code `test-time-training/ttt-lm-jax`), as modified by PonderTTT
//! (`docs/original.md` §3.10): the per-key η vector, the shifted convolution window and the
//! 768/d scale are the original's defaults.

use candle::{Result, Tensor};

use crate::config::{FastModelKind, TttConfig};
use crate::inner::{inner_loop, read_loop, FastModel, TttStats};
use crate::prepare::{conv_reach, Rates};
use crate::state::TttState;

/// The slow weights of a TTT layer.
#[derive(Clone)]
pub struct TttParams {
    /// Shared query/key projection `(d, F)`.
    pub wq: Tensor,
    /// Value projection `(d, F)`.
    pub wv: Tensor,
    /// Output gate projection `(d, F)`.
    pub wg: Tensor,
    /// Output projection `(F, d)`.
    pub wo: Tensor,
    /// Query convolution taps `(conv_width, F)` and bias `(F)`.
    pub conv_q: (Tensor, Tensor),
    /// Key convolution taps `(conv_width, F)` and bias `(F)`.
    pub conv_k: (Tensor, Tensor),
    /// η gate weights `(d, nh)`, one column per head, and biases `(nh)`.
    pub eta_gate: (Tensor, Tensor),
    /// Learned offsets of the token factor `1/(j+1)`, `(b)`.
    pub token_idx: Tensor,
    /// Per-head LayerNorm of the inner loop: scale and bias `(nh, 1, hd)`.
    pub ttt_norm: (Tensor, Tensor),
    /// LayerNorm over the concatenated heads: scale and bias `(F)`.
    pub post_norm: (Tensor, Tensor),
    /// The learned initial fast model, weights `(nh, in, out)` and biases `(nh, 1, out)` per
    /// layer (`W₀`, `c₀` for TTT-Linear).
    pub fast_init: FastModel,
}

/// The output of a TTT layer's forward.
pub struct TttOutput {
    /// `(b, t, d)`, to be added to the residual stream.
    pub y: Tensor,
    /// The reconstruction statistics.
    pub stats: TttStats,
    /// The fast weights after the chunk, for the next chunk of the same stream.
    pub state: TttState,
}

impl TttParams {
    /// The fast model these parameters hold: TTT-Linear (one layer) or TTT-MLP (two).
    pub fn kind(&self) -> FastModelKind {
        if self.fast_init.w.len() == 2 {
            FastModelKind::Mlp
        } else {
            FastModelKind::Linear
        }
    }

    /// The learned initial state `(W₀, c₀)` for `bs` sequences: where every chunk starts unless
    /// the caller carries the state of the previous chunk (stream mode).
    pub fn initial_state(&self, bs: usize) -> Result<TttState> {
        let expand = |t: &Tensor| -> Result<Tensor> {
            let dims = [vec![bs], t.dims().to_vec()].concat();
            t.unsqueeze(0)?.broadcast_as(dims)?.contiguous()
        };
        Ok(TttState {
            w: self.fast_init.w.iter().map(expand).collect::<Result<_>>()?,
            b: self.fast_init.b.iter().map(expand).collect::<Result<_>>()?,
        })
    }

    /// UPDATE_k over a chunk: the layer's output, its reconstruction statistics, and the state
    /// after the chunk. `steps` = 1 is the dual form; k > 1 follows `docs/design/update-k.md`.
    ///
    /// The inner loop runs along time in mini-batches of `mini_batch_size`, batched over
    /// sequences and heads. A chunk whose length is not a multiple of the mini-batch size is
    /// padded at the end with tokens whose learning rate is 0, and the padding is cut from the
    /// output: padded tokens never change the state or a real token's output.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)` with `t >= 1`; `state`: for `bs` sequences; `y`: `(bs, t, d)`.
    pub fn forward(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttOutput> {
        self.run(cfg, x, state, steps, Rates::Learned)
    }

    /// The layer's output under `state` with no update: every token's inner learning rate is
    /// 0, so each query reads the fast model as it entered the chunk, and the state is returned
    /// unchanged; computed directly, without the update's gradients ([`read_loop`]). This is
    /// SKIP on a carried state in stream mode (`docs/design/stream.md`).
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)` with `t >= 1`; `y`: `(bs, t, d)`.
    pub fn read(&self, cfg: &TttConfig, x: &Tensor, state: &TttState) -> Result<TttOutput> {
        let out = self.run(cfg, x, state, 1, Rates::Zero)?;
        Ok(TttOutput {
            state: state.clone(),
            ..out
        })
    }

    /// Where a [`TttParams::read`] of tokens `s..=i` of a chunk must start for token `i`'s
    /// output to equal its output in a read of the whole chunk: the start of a mini-batch (RoPE
    /// positions count within mini-batches) at or before the earliest token the convolution of
    /// token `i` reaches. Decoding reads each new token from there.
    pub fn read_start(&self, cfg: &TttConfig, i: usize) -> Result<usize> {
        let reach = conv_reach(cfg.conv_window, self.conv_q.0.dim(0)?);
        let mb = cfg.mini_batch_size;
        Ok(i.saturating_sub(reach) / mb * mb)
    }

    /// [`TttParams::forward`] with the learning rates `rates`.
    fn run(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
        rates: Rates,
    ) -> Result<TttOutput> {
        let p = self.prepare(cfg, x, state, true, rates)?;
        let (bs, t, t_pad, d) = (p.bs, p.t, p.t_pad, cfg.hidden_dim);
        let (nh, hd, f) = (cfg.num_heads, cfg.head_dim, cfg.inner_dim());
        let options = p.options(cfg, steps, false);
        let mut inner = match rates {
            Rates::Learned => inner_loop(&p.inputs(), &options)?,
            Rates::Zero => read_loop(&p.inputs(), &options)?,
        };
        inner.stats.ssl_target_variance = Some(p.target_variance.clone());
        let out = inner.out.expect("queries were given"); // (n, m, b, hd)
        let out = out
            .reshape((bs, nh, t_pad, hd))?
            .transpose(1, 2)?
            .reshape((bs * t_pad, f))?; // (bs·T, F)
        let out = ponder_nn::layer_norm(
            &out,
            &self.post_norm.0,
            &self.post_norm.1,
            cfg.layer_norm_eps,
        )?;
        let gate = ponder_nn::gelu_tanh(&p.x2.matmul(&self.wg)?)?; // (bs·T, F)
        let y = (gate * out)?
            .matmul(&self.wo)?
            .reshape((bs, t_pad, d))?
            .narrow(1, 0, t)?; // (bs, t, d)
                               // (n, in, out) → (bs, nh, in, out)
        let unbatch = |t: &Tensor| -> Result<Tensor> {
            t.reshape([vec![bs, nh], t.dims()[1..].to_vec()].concat())
        };
        let state = TttState {
            w: inner.state.w.iter().map(unbatch).collect::<Result<_>>()?,
            b: inner.state.b.iter().map(unbatch).collect::<Result<_>>()?,
        };
        Ok(TttOutput {
            y,
            stats: inner.stats,
            state,
        })
    }

    /// The reconstruction statistics of UPDATE_k alone, what a gate reads before it decides:
    /// the key/value path and the fast-weight updates, without the query path, the readout,
    /// `post_norm`, the gate `wg` or `wo`. Equal to [`TttParams::forward`]'s statistics.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)`; the statistics have `ceil(t / mini_batch_size)` entries.
    pub fn signal(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttStats> {
        let p = self.prepare(cfg, x, state, false, Rates::Learned)?;
        let mut stats = inner_loop(&p.inputs(), &p.options(cfg, steps, false))?.stats;
        stats.ssl_target_variance = Some(p.target_variance.clone());
        Ok(stats)
    }

    /// [`TttParams::signal`] for each sequence on its own: `init`, `step_0` and `step_1` are
    /// `(ceil(t / mini_batch_size), bs)`, column `i` the means over sequence `i`'s heads, what a
    /// gate deciding per stream reads (`docs/design/stream.md`); no `ssl_target_variance`.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)`; the statistics are `(ceil(t / mini_batch_size), bs)`.
    pub fn signal_per_sequence(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttStats> {
        let p = self.prepare(cfg, x, state, false, Rates::Learned)?;
        Ok(inner_loop(&p.inputs(), &p.options(cfg, steps, true))?.stats)
    }
}
