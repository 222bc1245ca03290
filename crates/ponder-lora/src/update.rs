//! UPDATE_k of the LoRA fast layer: k plain gradient steps on the LoRA factors with the
//! self-supervised next-token loss, taken block by block along the chunk so that every
//! prediction depends only on tokens at or before it (`docs/design/lora-update.md`). The loss
//! comes from the caller (the model's tied head), so this crate needs no language model.
//!
//! Block `m` covers positions `[m·B, (m+1)·B)`. Its outputs are read with the factors left by
//! blocks `< m`; then the factors take k steps on the next-token loss of block `m`'s positions,
//! whose targets are tokens up to `(m+1)·B`, all at or before every position of block `m + 1`.
//! Each sequence of a batch adapts its own copy of the factors.

use std::collections::BTreeMap;

use candle::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::fast_layer::{LoraFastConfig, LoraFastLayer};

/// How the LoRA fast layer adapts during UPDATE_k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraUpdate {
    /// Learning rate of the plain gradient steps on the factors.
    pub lr: f64,
    /// Positions per block: the factors step after each block.
    pub block_size: usize,
    /// Optional clip of each step's gradient, over all four factors together, to this norm (as
    /// TTT's `max_grad_norm`); left out, no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
}

/// The LoRA factors of each sequence, by trainable name (`q_lora.lora_A.weight`, …).
#[derive(Debug, Clone)]
pub struct LoraState {
    /// One map per sequence.
    pub per_seq: Vec<BTreeMap<String, Tensor>>,
}

/// The next-token loss of the positions `start..start + n` of one sequence, given the fast
/// layer's output there: the caller's tied head and cross-entropy.
pub type BlockLoss<'a> = dyn Fn(&Tensor, usize, usize) -> Result<Tensor> + 'a;

/// What UPDATE_k on one sequence produces.
pub struct SeqUpdate {
    /// The fast layer's output `(1, t, d)`.
    pub y: Tensor,
    /// Per-block losses under the factors entering the chunk, the factors entering the block, and
    /// the factors after the block's steps.
    pub stats: [Vec<Tensor>; 3],
    /// The factors after the chunk.
    pub factors: BTreeMap<String, Tensor>,
}

/// UPDATE_k of one sequence with the steps of `config.update`. `normed` is `fast_norm(h)` of the
/// sequence, `(1, t, d)`; `initial` are the layer's own factors (trainable, through which outer
/// gradients flow first-order), `entering` the sequence's state.
///
/// # Shapes
/// - `normed`: `(1, t, d)`; the output `y`: `(1, t, d)`. The blocks run along `t`.
pub fn update_sequence(
    config: &LoraFastConfig,
    initial: &BTreeMap<String, Tensor>,
    entering: &BTreeMap<String, Tensor>,
    normed: &Tensor,
    steps: usize,
    block_loss: &BlockLoss<'_>,
) -> Result<SeqUpdate> {
    let t = normed.dim(1)?;
    // Factors in use = initial + a detached offset: outer gradients reach the initial factors
    // with identity (first-order), inner steps move only the offset.
    let mut offset: BTreeMap<String, Tensor> = initial
        .iter()
        .map(|(k, v)| Ok((k.clone(), (&entering[k] - v)?.detach())))
        .collect::<Result<_>>()?;
    let in_use = |offset: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
        initial
            .iter()
            .map(|(k, v)| Ok((k.clone(), (v + &offset[k])?)))
            .collect()
    };
    let detached = normed.detach();
    // Under fixed factors the causal readout of a prefix is the prefix of the full readout.
    let y_entering = LoraFastLayer::from_trainable(config.clone(), entering)?.forward(&detached)?;
    let mut outputs = Vec::new();
    let (mut init, mut step0, mut step1) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    while start < t {
        let end = (start + config.update.block_size).min(t);
        let layer = LoraFastLayer::from_trainable(config.clone(), &in_use(&offset)?)?;
        let y = layer.forward(&normed.narrow(1, 0, end)?)?; // (1, end, d)
        outputs.push(y.narrow(1, start, end - start)?);
        // Positions of this block that have a target inside the chunk.
        let n = end.min(t - 1).saturating_sub(start);
        if n > 0 {
            init.push(block_loss(&y_entering.narrow(1, start, n)?, start, n)?);
            step0.push(block_loss(&y.narrow(1, start, n)?.detach(), start, n)?);
            for _ in 0..steps {
                let vars: BTreeMap<String, Var> = in_use(&offset)?
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.detach())?)))
                    .collect::<Result<_>>()?;
                let tracked = vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                    .collect();
                let layer = LoraFastLayer::from_trainable(config.clone(), &tracked)?;
                let y = layer.forward(&detached.narrow(1, 0, end)?)?;
                let grads = block_loss(&y.narrow(1, start, n)?, start, n)?.backward()?;
                let step: Vec<(&String, Tensor)> = vars
                    .iter()
                    .filter_map(|(k, var)| grads.get(var.as_tensor()).map(|g| (k, g.clone())))
                    .collect();
                let lr = config.update.lr * clip_factor(&step, config.update.max_grad_norm)?;
                for (k, g) in step {
                    let next = (&offset[k] - (g * lr)?)?.detach();
                    offset.insert(k.clone(), next);
                }
            }
            let after = LoraFastLayer::from_trainable(config.clone(), &in_use(&offset)?)?;
            let y_after = after.forward(&detached.narrow(1, 0, end)?)?;
            step1.push(block_loss(
                &y_after.narrow(1, start, n)?.detach(),
                start,
                n,
            )?);
        }
        start = end;
    }
    let factors = in_use(&offset)?
        .into_iter()
        .map(|(k, v)| (k, v.detach()))
        .collect();
    Ok(SeqUpdate {
        y: Tensor::cat(&outputs, 1)?,
        stats: [init, step0, step1],
        factors,
    })
}

/// The factor that scales a step's gradients `grads` down to norm `max` (1 when no clip is set
/// or the norm is within it).
fn clip_factor(grads: &[(&String, Tensor)], max: Option<f64>) -> Result<f64> {
    let Some(max) = max else {
        return Ok(1.0);
    };
    let mut sq = 0.0;
    for (_, g) in grads {
        sq += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    Ok(if norm > max { max / norm } else { 1.0 })
}

/// Floating-point operations of UPDATE_`k` on one sequence of `tokens` tokens, counted from the
/// shapes of [`update_sequence`]: the readout under the entering factors over the chunk; then per
/// block ending at `end`, `3k + 2` readouts over the prefix `0..end` (one to read, one after the
/// steps, and `k` steps of forward and backward, a backward counted as two forwards) and `3k + 3`
/// passes of the head over the block's positions (the `init`, `step_0` and `step_1` losses and
/// the `k` steps). `head_flops_per_token` is the tied head's cost per position.
pub fn update_flops(
    config: &LoraFastConfig,
    tokens: usize,
    k: usize,
    head_flops_per_token: f64,
) -> f64 {
    let mut total = config.forward_flops(tokens);
    let k = k as f64;
    let mut start = 0;
    let block = config.update.block_size;
    while start < tokens && block > 0 {
        let end = (start + block).min(tokens);
        let n = end.min(tokens - 1).saturating_sub(start) as f64;
        total += (3.0 * k + 2.0) * config.forward_flops(end)
            + (3.0 * k + 3.0) * n * head_flops_per_token;
        start = end;
    }
    total
}
