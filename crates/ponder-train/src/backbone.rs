//! Backbone pretraining from scratch: GPT-2's architecture and initialization, AdamW with warmup
//! and cosine decay, global gradient clipping, seeded dropout and data order, periodic validation
//! against a unigram baseline, atomic checkpoints and bit-identical resume, on any device, in
//! f32 or bf16 mixed precision (f32 master weights, see [`crate::precision`]).

use std::time::Instant;

use candle::{DType, Device, Tensor, Var};
use ponder_base::derive_seed;
use ponder_data::pack::batches;
use ponder_data::ExperimentData;
use ponder_experiment::records::{BackboneStep, BackboneValidation, Done, Metric, Timing};
use ponder_experiment::{ExperimentConfig, RunDir};
use ponder_gpt2::{weights, Gpt2};
use ponder_nn::optim::{clip_grad_norm, warmup_cosine, AdamW, AdamWConfig};
use ponder_nn::precision::{cast_vars, to_f32, Precision};
use ponder_nn::Dropout;

use crate::error::{Error, Result};

/// What a finished backbone run reports.
#[derive(Debug, Clone)]
pub struct BackboneReport {
    /// Final validation loss (nats/token).
    pub val_loss: f64,
    /// Unigram baseline on the same validation tokens (nats/token).
    pub unigram_val_loss: f64,
    /// Steps run in this process (after a resume, fewer than configured).
    pub steps_run: u64,
    /// Training tokens per second in this process.
    pub tokens_per_s: f64,
}

/// The window indices of training step `step`: batch `step % per_epoch` of epoch
/// `step / per_epoch`, whose order is shuffled by the run's random stream `stream`, where an
/// epoch holds `per_epoch = n_windows / batch_size` full batches.
pub(crate) fn step_windows(
    n_windows: usize,
    batch_size: usize,
    seed: u64,
    stream: &str,
    step: u64,
) -> Result<Vec<usize>> {
    let per_epoch = (n_windows / batch_size) as u64;
    let epoch = step / per_epoch;
    let mut order = batches(
        n_windows,
        batch_size,
        Some(derive_seed(seed, stream, epoch)),
    )?;
    Ok(order.swap_remove((step % per_epoch) as usize))
}

/// Mean next-token loss over a batch of windows, with dropout when training. The logits are
/// cast to f32 before the cross-entropy, so the loss is an f32 scalar whatever `model`'s dtype.
///
/// # Shapes
/// - `ids`: `(b, t + 1)` u32; returns a scalar.
pub fn batch_loss(model: &Gpt2, ids: &Tensor, dropout: Option<&mut Dropout>) -> Result<Tensor> {
    let (b, t1) = ids.dims2()?;
    let t = t1 - 1;
    let inputs = ids.narrow(1, 0, t)?; // (b, t)
    let hidden = match dropout {
        Some(d) => model.forward_train(&inputs, d)?,
        None => model.forward(&inputs)?,
    };
    let logits = model.logits(&hidden)?.reshape((b * t, model.n_logits()))?; // (b·t, V)
    let targets = ids.narrow(1, 1, t)?.flatten_all()?; // (b·t)
    Ok(ponder_nn::cross_entropy(&to_f32(&logits)?, &targets)?.mean_all()?)
}

/// The model a step runs: `master` itself for f32; for bf16 a copy built from the bf16 casts of
/// `vars` (the master weights), through which gradients reach the vars.
pub fn compute_model(master: &Gpt2, vars: &[(String, Var)], precision: Precision) -> Result<Gpt2> {
    if precision == Precision::F32 {
        return Ok(master.clone());
    }
    let cast = cast_vars(vars, precision)?.into_iter().collect();
    Ok(Gpt2::from_weights(
        master.config().clone(),
        cast,
        master.pad_token(),
    )?)
}

/// The windows `idx` of `stream` (window `i` is `stream[i·len..(i + 1)·len]`) as a batch.
///
/// # Shapes
/// - returns `(idx.len(), len)` u32.
pub fn windows_tensor(
    stream: &[u32],
    idx: &[usize],
    len: usize,
    device: &Device,
) -> Result<Tensor> {
    let flat = ponder_data::pack::gather_windows(stream, idx, len)?;
    Ok(Tensor::from_vec(flat, (idx.len(), len), device)?)
}

/// Unigram model of the training tokens (add-one smoothing), scored on `targets`.
pub fn unigram_loss(train: &[u32], vocab: usize, targets: &[u32]) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for &t in train {
        counts[t as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    targets
        .iter()
        .map(|&t| -(counts[t as usize] / total).ln())
        .sum::<f64>()
        / targets.len() as f64
}

/// Trains the backbone of `config` on `data` in `run` on `device`, resuming from its checkpoint
/// if it has one (a checkpoint written on any device resumes on any other). Returns the final
/// report; the weights are in `run/checkpoint` and `run/model` (f32 master weights).
pub fn train_backbone(
    config: &ExperimentConfig,
    data: &ExperimentData,
    run: &RunDir,
    device: &Device,
    progress: bool,
) -> Result<BackboneReport> {
    let o = config.backbone()?;
    o.precision.warn_if_slow(device, "backbone");
    let seed = config.run.seed;
    let win = config.data.seq_len + 1;
    let n_train = data.train.len() / win;
    let n_val = (data.validation.len() / win).min(o.eval_windows);
    if n_train < o.batch_size {
        return Err(Error::Run(format!(
            "the training split has {} windows of {win} tokens, fewer than one batch of {}",
            n_train, o.batch_size
        )));
    }
    if n_val == 0 {
        return Err(Error::Run(format!(
            "the validation split has no window of {win} tokens: raise data.validation"
        )));
    }

    let init = weights::random(
        &config.model,
        derive_seed(seed, "backbone-init", 0),
        DType::F32,
        device,
    )?;
    let vars: Vec<(String, Var)> = init
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let adam = AdamWConfig {
        beta1: 0.9,
        beta2: o.beta2,
        eps: 1e-8,
        weight_decay: o.weight_decay,
    };
    let mut opt = AdamW::new(vars.clone(), adam)?;
    let start = run.resume_training(&vars, &mut opt, device)?;
    let tracked = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    // The master model: its tensors are the vars, so it always holds the current weights.
    let master = Gpt2::from_weights(config.model.clone(), tracked, None)?;

    let val_idx: Vec<usize> = (0..n_val).collect();
    let val_targets: Vec<u32> = val_idx
        .iter()
        .flat_map(|&i| data.validation[i * win + 1..(i + 1) * win].to_vec())
        .collect();
    let unigram = unigram_loss(&data.train, config.model.vocab_size, &val_targets);
    let dropout_p = config
        .model
        .resid_pdrop
        .max(config.model.embd_pdrop)
        .max(config.model.attn_pdrop);
    let bar = progress_bar("backbone", progress, o.steps, start);
    let t0 = Instant::now();
    let mut val_loss = f64::NAN;
    for step in start..o.steps {
        let idx = step_windows(n_train, o.batch_size, seed, "backbone-data", step)?;
        let ids = windows_tensor(&data.train, &idx, win, device)?;
        let mut dropout = Dropout::new(dropout_p, derive_seed(seed, "backbone-dropout", step))?;
        let model = compute_model(&master, &vars, o.precision)?;
        let loss = batch_loss(&model, &ids, (dropout_p > 0.0).then_some(&mut dropout))?;
        let mut grads = loss.backward()?;
        let grad_norm = clip_grad_norm(&mut grads, &vars, o.grad_clip)?;
        let lr = warmup_cosine(step, o.warmup, o.steps, o.lr, o.min_lr);
        opt.step(&grads, lr)?;
        let loss_v = loss.to_scalar::<f32>()? as f64;
        if !loss_v.is_finite() {
            return Err(Error::Run(format!(
                "training loss is {loss_v} at step {step}: lower backbone.lr"
            )));
        }
        run.metric(&Metric::BackboneStep(BackboneStep {
            step: step + 1,
            loss: loss_v,
            lr,
            grad_norm,
        }))?;
        let done = step + 1 == o.steps;
        if (step + 1) % o.eval_every == 0 || done {
            val_loss = evaluate(
                &compute_model(&master, &vars, o.precision)?,
                &data.validation,
                &val_idx,
                win,
                o.batch_size,
            )?;
            run.metric(&Metric::BackboneValidation(BackboneValidation {
                step: step + 1,
                val_loss,
                unigram_val_loss: unigram,
            }))?;
            bar.set_message(format!("val {val_loss:.3} (unigram {unigram:.3})"));
        }
        let tokens = ((step + 1 - start) as usize * o.batch_size * (win - 1)) as f64;
        if (step + 1) % o.checkpoint_every == 0 || done {
            run.checkpoint_training(&vars, &opt, step + 1)?;
            run.timing(&Timing {
                step: step + 1,
                elapsed_s: t0.elapsed().as_secs_f64(),
                tokens_per_s: tokens / t0.elapsed().as_secs_f64(),
                cache_hits: None,
            })?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let steps_run = o.steps - start;
    let tokens_per_s =
        (steps_run as usize * o.batch_size * (win - 1)) as f64 / t0.elapsed().as_secs_f64();
    if val_loss.is_nan() {
        val_loss = evaluate(
            &compute_model(&master, &vars, o.precision)?,
            &data.validation,
            &val_idx,
            win,
            o.batch_size,
        )?;
    }
    let model_dir = run.folder().model();
    ponder_gpt2::save(&master, &model_dir)?;
    if let Some(p) = &data.tokenizer_path {
        std::fs::copy(p, model_dir.join(ponder_data::tokenizer::TOKENIZER_FILE)).map_err(
            |source| Error::Io {
                path: p.clone(),
                source,
            },
        )?;
    }
    run.finish(Done {
        val_loss: Some(val_loss),
        unigram_val_loss: Some(unigram),
        ..Done::empty()
    })?;
    Ok(BackboneReport {
        val_loss,
        unigram_val_loss: unigram,
        steps_run,
        tokens_per_s,
    })
}

/// Mean validation loss of `model` over the windows `idx` of `stream`, on `model`'s device.
fn evaluate(model: &Gpt2, stream: &[u32], idx: &[usize], win: usize, batch: usize) -> Result<f64> {
    let mut total = 0.0;
    for chunk in idx.chunks(batch) {
        let ids = windows_tensor(stream, chunk, win, model.device())?;
        total += batch_loss(model, &ids, None)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(total / idx.len() as f64)
}

pub(crate) fn progress_bar(
    label: &str,
    show: bool,
    total: u64,
    start: u64,
) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(start);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {label} [{{bar:30}}] {{pos}}/{{len}} steps, eta {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
