//! Fast-layer training, the original's Phase 1 (upstream-spec §4): on a frozen backbone, only the
//! TTT layer and `fast_norm` learn, with the objective `CE(UPDATE) + w · mean(init, step_0,
//! step_1)`, Adam at `lr / k` for UPDATE_k (k Adam steps on each chunk-batch) and global clipping.
//! The backbone's hidden states of a chunk never change, so they are computed once per chunk
//! and cached for every later step on it.

use std::collections::HashMap;
use std::time::Instant;

use candle::{DType, Device, Tensor};
use ponder_data::pack::batches;
use ponder_gpt2::Gpt2;
use ponder_model::{FastLayer, FastNorm, PonderLm, TttParams};
use ponder_nn::optim::{clip_grad_norm, AdamW, AdamWConfig};
use serde_json::json;

use crate::backbone::{derive_seed, progress_bar, windows_tensor};
use crate::config::{FastTrainConfig, TrainConfig};
use crate::data::TrainData;
use crate::error::{Error, Result};
use crate::run::RunDir;

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

/// Hidden states of chunks, computed once by the frozen backbone, up to a memory budget.
struct HiddenCache {
    map: HashMap<usize, Tensor>,
    hits: u64,
    bytes: usize,
    budget: usize,
}

impl HiddenCache {
    /// `(b, t, d)` hidden states of the chunks `idx` of `stream`.
    fn get(
        &mut self,
        lm: &PonderLm,
        stream: &[u32],
        idx: &[usize],
        len: usize,
        device: &Device,
    ) -> Result<Tensor> {
        // One batched backbone pass for the chunks not cached yet.
        let missing: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|i| !self.map.contains_key(i))
            .collect();
        let mut fresh = HashMap::new();
        if !missing.is_empty() {
            let ids = windows_tensor(stream, &missing, len, device)?;
            let hidden = lm.backbone(&ids)?; // (m, t, d), detached
            for (row, &i) in missing.iter().enumerate() {
                let h = hidden.narrow(0, row, 1)?.contiguous()?; // (1, t, d)
                let size = h.elem_count() * h.dtype().size_in_bytes();
                if self.bytes + size <= self.budget {
                    self.bytes += size;
                    self.map.insert(i, h.clone());
                }
                fresh.insert(i, h);
            }
        }
        self.hits += (idx.len() - missing.len()) as u64;
        let rows: Vec<Tensor> = idx
            .iter()
            .map(|i| {
                fresh
                    .get(i)
                    .or_else(|| self.map.get(i))
                    .cloned()
                    .expect("computed or cached")
            })
            .collect();
        Ok(Tensor::cat(&rows, 0)?)
    }
}

fn objective(
    lm: &PonderLm,
    hidden: &Tensor,
    ids: &Tensor,
    ssl_weight: f64,
) -> Result<(Tensor, f64, [f64; 3])> {
    let state = lm.initial_state(ids.dim(0)?)?;
    let up = lm.update(hidden, ids, &state, 1)?;
    let ce = lm.next_token_loss(&up.features, ids)?.mean_all()?;
    let s = &up.stats;
    let aux = (((s.init.mean_all()? + s.step_0.mean_all()?)? + s.step_1.mean_all()?)? / 3.0)?;
    let loss = (&ce + (aux * ssl_weight)?)?;
    let means = s.chunk_means()?;
    Ok((
        loss,
        ce.to_scalar::<f32>()? as f64,
        [means.0, means.1, means.2],
    ))
}

/// Trains the fast layer of `config.fast` on `backbone` (frozen) in `run`, resuming from its
/// checkpoint if it has one. The trained layer is saved as a fast-weight checkpoint in
/// `run/fast_layer`.
pub fn train_fast(
    config: &TrainConfig,
    backbone: &Gpt2,
    data: &TrainData,
    run: &RunDir,
    progress: bool,
) -> Result<FastReport> {
    let f: &FastTrainConfig = config
        .fast
        .as_ref()
        .ok_or_else(|| Error::Config("the config has no [fast] section".into()))?;
    if f.k == 0
        || f.batch_size == 0
        || f.steps == 0
        || f.chunk_len < 2
        || f.eval_every == 0
        || f.checkpoint_every == 0
        || f.eval_chunks == 0
    {
        return Err(Error::Config("fast: k, batch_size, steps, eval_every, eval_chunks and checkpoint_every must be positive, chunk_len at least 2".into()));
    }
    if f.chunk_len > backbone.config().n_positions {
        return Err(Error::Config(format!(
            "fast.chunk_len {} exceeds the backbone's n_positions {}",
            f.chunk_len,
            backbone.config().n_positions
        )));
    }
    let device = Device::Cpu;
    let seed = config.run.seed;
    let d = backbone.config().n_embd;
    let params = TttParams::init(
        &f.ttt,
        derive_seed(seed, "fast-init", 0),
        DType::F32,
        &device,
    )?;
    let fast = FastLayer::TttLinear {
        config: f.ttt.clone(),
        params,
    };
    let lm = PonderLm::new(backbone, FastNorm::init(d, DType::F32, &device)?, fast)?;
    let (lm, vars) = lm.into_trainable()?;
    let adam = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AdamW::new(vars.clone(), adam)?;
    let start = run.resume_training(&vars, &mut opt, &device)?;

    let len = f.chunk_len;
    let n_train = data.train.len() / len;
    let n_val = (data.validation.len() / len).min(f.eval_chunks);
    if n_train < f.batch_size || n_val == 0 {
        return Err(Error::Run(format!(
            "not enough data: {n_train} training and {n_val} validation chunks of {len} tokens"
        )));
    }
    let val_idx: Vec<usize> = (0..n_val).collect();
    // Half the budget each: validation chunks recur at every evaluation, training chunks once
    // per epoch.
    let budget = (f.hidden_cache_mb << 20) / 2;
    let mut val_cache = HiddenCache {
        map: HashMap::new(),
        hits: 0,
        bytes: 0,
        budget,
    };
    let mut train_cache = HiddenCache {
        map: HashMap::new(),
        hits: 0,
        bytes: 0,
        budget,
    };
    let batches_per_epoch = (n_train / f.batch_size) as u64;
    let lr = f.lr / f.k as f64;
    let bar = progress_bar("fast layer", progress, f.steps, start);
    let t0 = Instant::now();
    let (mut val_skip, mut val_update) = (f64::NAN, f64::NAN);
    for step in start..f.steps {
        let epoch = step / batches_per_epoch;
        let order = batches(
            n_train,
            f.batch_size,
            Some(derive_seed(seed, "fast-data", epoch)),
        )?;
        let idx = &order[(step % batches_per_epoch) as usize];
        let ids = windows_tensor(&data.train, idx, len, &device)?;
        let hidden = train_cache.get(&lm, &data.train, idx, len, &device)?;
        let mut last = (0.0, [0.0; 3], 0.0);
        for _ in 0..f.k {
            let (loss, ce, recon) = objective(&lm, &hidden, &ids, f.ssl_weight)?;
            let mut grads = loss.backward()?;
            let norm = clip_grad_norm(&mut grads, &vars, f.grad_clip)?;
            opt.step(&grads, lr)?;
            last = (ce, recon, norm);
        }
        let (ce, recon, norm) = last;
        if !ce.is_finite() {
            return Err(Error::Run(format!(
                "fast-layer loss is {ce} at step {step}"
            )));
        }
        run.metric(&json!({"step": step + 1, "loss": ce, "ppl": ce.exp(), "ttt_loss_init": recon[0], "ttt_loss_step_0": recon[1], "ttt_loss_step_1": recon[2], "lr": lr, "grad_norm": norm}))?;
        let done = step + 1 == f.steps;
        if (step + 1) % f.eval_every == 0 || done {
            (val_skip, val_update) = evaluate(
                &lm,
                data,
                &val_idx,
                len,
                f.batch_size,
                &mut val_cache,
                &device,
            )?;
            run.metric(&json!({"step": step + 1, "val_skip_loss": val_skip, "val_update_loss": val_update}))?;
            bar.set_message(format!("val skip {val_skip:.3} update {val_update:.3}"));
        }
        if (step + 1) % f.checkpoint_every == 0 || done {
            run.checkpoint_training(&vars, &opt, step + 1)?;
            let tokens = ((step + 1 - start) as usize * f.batch_size * len) as f64;
            run.timing(&json!({"step": step + 1, "elapsed_s": t0.elapsed().as_secs_f64(), "tokens_per_s": tokens / t0.elapsed().as_secs_f64(), "cache_hits": train_cache.hits}))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if val_update.is_nan() {
        (val_skip, val_update) = evaluate(
            &lm,
            data,
            &val_idx,
            len,
            f.batch_size,
            &mut val_cache,
            &device,
        )?;
    }
    ponder_model::checkpoint::save(&lm, &run.path().join("fast_layer"))?;
    run.metric(&json!({"done": true, "val_skip_loss": val_skip, "val_update_loss": val_update}))?;
    Ok(FastReport {
        val_skip_loss: val_skip,
        val_update_loss: val_update,
        steps_run: f.steps - start,
        cache_hits: train_cache.hits + val_cache.hits,
    })
}

fn evaluate(
    lm: &PonderLm,
    data: &TrainData,
    idx: &[usize],
    len: usize,
    batch: usize,
    cache: &mut HiddenCache,
    device: &Device,
) -> Result<(f64, f64)> {
    let (mut skip, mut update) = (0.0, 0.0);
    for chunk in idx.chunks(batch) {
        let ids = windows_tensor(&data.validation, chunk, len, device)?;
        let hidden = cache.get(lm, &data.validation, chunk, len, device)?;
        let n = chunk.len() as f64;
        skip += lm
            .next_token_loss(&hidden, &ids)?
            .mean_all()?
            .to_scalar::<f32>()? as f64
            * n;
        let up = lm.update(&hidden, &ids, &lm.initial_state(chunk.len())?, 1)?;
        update += lm
            .next_token_loss(&up.features.detach(), &ids)?
            .mean_all()?
            .to_scalar::<f32>()? as f64
            * n;
    }
    Ok((skip / idx.len() as f64, update / idx.len() as f64))
}
