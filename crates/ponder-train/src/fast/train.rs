//! The fast-layer training loop over a run's data: seeded chunk-batch order, validation of the
//! SKIP and UPDATE losses, the hidden-state cache (split between training and validation
//! chunks), checkpoints with bit-identical resume, and the trained layer saved as a fast-weight
//! checkpoint.
//!
//! Where the frozen backbone's config has dropout (0.1 in the GPT-2 presets), training runs the
//! backbone with it, a fresh draw per step seeded from the run seed and the step, as the
//! original's training did; its hidden states then change from step to step, so the cache
//! serves only validation, where dropout is off.

use std::time::Instant;

use ponder_base::derive_seed;
use ponder_data::ExperimentData;
use ponder_experiment::records::{Done, FastStep, FastValidation, Metric, Timing};
use ponder_experiment::{ExperimentConfig, RunDir};
use ponder_gpt2::Gpt2;
use ponder_model::FastLayerKind;

use super::model::{fast_step, FastModel, HiddenCache};
use crate::backbone::{progress_bar, step_windows, windows_tensor};
use crate::error::{Error, Result};

/// What a finished fast-layer run reports.
#[derive(Debug, Clone)]
pub struct FastReport {
    /// Validation SKIP loss (the frozen backbone), nats/token.
    pub val_skip_loss: f64,
    /// Validation UPDATE_1 loss with the trained layer, nats/token.
    pub val_update_loss: f64,
    /// Steps run in this process.
    pub steps_run: u64,
    /// Backbone passes saved by the hidden-state cache in this process.
    pub cache_hits: u64,
}

/// Trains the fast layer of `config.fast` on `backbone` (frozen) in `run`, resuming from its
/// checkpoint if it has one. The trained layer is saved as a fast-weight checkpoint in
/// `run/fast_layer`.
pub fn train_fast(
    config: &ExperimentConfig,
    backbone: &Gpt2,
    data: &ExperimentData,
    run: &RunDir,
    progress: bool,
) -> Result<FastReport> {
    let f = config.fast()?;
    f.validate(&config.model)?;
    if let (FastLayerKind::Lora, Some(lora)) = (f.layer, &f.lora) {
        if lora.lora_dropout > 0.0 {
            return Err(Error::Config(format!(
                "fast.lora.lora_dropout = {}: training does not apply dropout inside the LoRA fast layer; set it to 0",
                lora.lora_dropout
            )));
        }
    }
    if f.chunk_len > backbone.config().n_positions {
        return Err(Error::Config(format!(
            "fast.chunk_len {} exceeds the backbone's n_positions {}",
            f.chunk_len,
            backbone.config().n_positions
        )));
    }
    f.precision.warn_if_slow(backbone.device(), "fast layer");
    let seed = config.run.seed;
    let model = FastModel::new(backbone, f, seed)?;
    let device = model.device().clone();
    let mut opt = model.optimizer()?;
    let start = run.resume_training(model.vars(), &mut opt, &device)?;

    let len = f.chunk_len;
    // Windows of `w` consecutive chunks (one in reset mode): chunk `c` of window `i` is chunk
    // `i·w + c` of the training stream.
    let w = f.window_chunks();
    let n_train = data.train.len() / (len * w);
    let n_val = (data.validation.len() / len).min(f.eval_chunks);
    if n_train < f.batch_size || n_val == 0 {
        return Err(Error::Run(format!(
            "not enough data: {n_train} training windows of {w} chunks and {n_val} validation chunks of {len} tokens"
        )));
    }
    let val_idx: Vec<usize> = (0..n_val).collect();
    // Half the budget each: validation chunks recur at every evaluation, training chunks once
    // per epoch.
    let budget = (f.hidden_cache_mb << 20) / 2;
    let mut val_cache = HiddenCache::new(budget);
    let mut train_cache = HiddenCache::new(budget);
    let lr = f.lr / f.k as f64;
    let dropout_p = model.backbone_dropout();
    let bar = progress_bar("fast layer", progress, f.steps, start);
    let t0 = Instant::now();
    let (mut val_skip, mut val_update) = (f64::NAN, f64::NAN);
    for step in start..f.steps {
        let windows = step_windows(n_train, f.batch_size, seed, "fast-data", step)?;
        let mut dropout = match dropout_p > 0.0 {
            true => Some(ponder_nn::Dropout::new(
                dropout_p,
                derive_seed(seed, "fast-backbone-dropout", step),
            )?),
            false => None,
        };
        let (mut hidden, mut ids) = (Vec::with_capacity(w), Vec::with_capacity(w));
        for c in 0..w {
            let idx: Vec<usize> = windows.iter().map(|i| i * w + c).collect();
            let x = windows_tensor(&data.train, &idx, len, &device)?;
            hidden.push(match &mut dropout {
                Some(d) => model.hidden_train(&x, d)?,
                None => train_cache.get(&model, &data.train, &idx, len)?,
            });
            ids.push(x);
        }
        let s = fast_step(&model, &mut opt, &hidden, &ids, f)?;
        let (ce, recon, norm) = (s.loss, s.recon, s.grad_norm);
        if !ce.is_finite() {
            return Err(Error::Run(format!(
                "fast-layer loss is {ce} at step {step}"
            )));
        }
        run.metric(&Metric::FastStep(FastStep {
            step: step + 1,
            loss: ce,
            ttt_loss_init: recon[0],
            ttt_loss_step_0: recon[1],
            ttt_loss_step_1: recon[2],
            lr,
            grad_norm: norm,
        }))?;
        let done = step + 1 == f.steps;
        if (step + 1) % f.eval_every == 0 || done {
            (val_skip, val_update) =
                evaluate(&model, data, &val_idx, len, f.batch_size, &mut val_cache)?;
            run.metric(&Metric::FastValidation(FastValidation {
                step: step + 1,
                val_skip_loss: val_skip,
                val_update_loss: val_update,
            }))?;
            bar.set_message(format!("val skip {val_skip:.3} update {val_update:.3}"));
        }
        if (step + 1) % f.checkpoint_every == 0 || done {
            run.checkpoint_training(model.vars(), &opt, step + 1)?;
            let tokens = ((step + 1 - start) as usize * f.batch_size * len * w) as f64;
            run.timing(&Timing {
                step: step + 1,
                elapsed_s: t0.elapsed().as_secs_f64(),
                tokens_per_s: tokens / t0.elapsed().as_secs_f64(),
                cache_hits: Some(train_cache.hits()),
            })?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if val_update.is_nan() {
        (val_skip, val_update) =
            evaluate(&model, data, &val_idx, len, f.batch_size, &mut val_cache)?;
    }
    ponder_model::checkpoint::save(model.master(), &run.folder().fast_layer())?;
    run.finish(Done {
        val_skip_loss: Some(val_skip),
        val_update_loss: Some(val_update),
        ..Done::empty()
    })?;
    Ok(FastReport {
        val_skip_loss: val_skip,
        val_update_loss: val_update,
        steps_run: f.steps - start,
        cache_hits: train_cache.hits() + val_cache.hits(),
    })
}

/// Mean validation SKIP and UPDATE_1 losses over the chunks `idx` of the validation stream, in
/// the model's compute precision (losses in f32).
fn evaluate(
    model: &FastModel,
    data: &ExperimentData,
    idx: &[usize],
    len: usize,
    batch: usize,
    cache: &mut HiddenCache,
) -> Result<(f64, f64)> {
    let lm = model.compute_lm()?;
    let (mut skip, mut update) = (0.0, 0.0);
    for chunk in idx.chunks(batch) {
        let ids = windows_tensor(&data.validation, chunk, len, model.device())?;
        let hidden = cache.get(model, &data.validation, chunk, len)?;
        let n = chunk.len() as f64;
        let state = lm.initial_state(chunk.len())?;
        let (up, skip_loss) = lm.update_beside_skip_loss(&hidden, &ids, &state, 1)?;
        skip += skip_loss.mean_all()?.to_scalar::<f32>()? as f64 * n;
        update += lm
            .next_token_loss(&up.features.detach(), &ids)?
            .mean_all()?
            .to_scalar::<f32>()? as f64
            * n;
    }
    Ok((skip / idx.len() as f64, update / idx.len() as f64))
}
