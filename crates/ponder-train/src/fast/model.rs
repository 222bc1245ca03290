//! The fast layer under training, one training step on a chunk-batch, and the hidden-state cache.
//!
//! [`FastModel`] holds the TTT layer and `fast_norm` as f32 [`Var`]s on top of the frozen
//! backbone, which is kept in the step's compute precision (it never learns, so it needs no f32
//! master copy). [`fast_step`] runs UPDATE_k's k Adam steps on one chunk-batch given the
//! backbone's hidden states, which [`HiddenCache`] computes once per chunk: they never change,
//! so every later step on the same chunk skips the backbone pass.

use std::collections::HashMap;

use candle::{DType, Device, Tensor, Var};
use ponder_experiment::FastConfig;
use ponder_gpt2::Gpt2;
use ponder_model::{FastLayer, FastNorm, PonderLm};
use ponder_nn::optim::{clip_grad_norm, AdamW, AdamWConfig};

use ponder_base::derive_seed;

use crate::backbone::windows_tensor;
use ponder_nn::precision::{to_f32, Precision};

use crate::error::Result;

/// The TTT layer and `fast_norm` under training on a frozen backbone.
pub struct FastModel {
    /// The master model: its fast layer and `fast_norm` are the vars' f32 tensors, its backbone
    /// the frozen one in the compute precision.
    lm: PonderLm,
    vars: Vec<(String, Var)>,
    precision: Precision,
}

/// What one chunk-batch step reports: the values of its last Adam step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastStepStats {
    /// Next-token loss of the UPDATE path, nats/token.
    pub loss: f64,
    /// Chunk means of the reconstruction losses `(init, step_0, step_1)`.
    pub recon: [f64; 3],
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The fast-layer objective on one chunk-batch.
pub struct Objective {
    /// The scalar to differentiate (f32).
    pub loss: Tensor,
    /// Its next-token part, nats/token.
    pub ce: f64,
    /// Chunk means of the reconstruction losses `(init, step_0, step_1)`.
    pub recon: [f64; 3],
}

/// Hidden states of chunks, computed once by the frozen backbone, up to a memory budget.
pub struct HiddenCache {
    map: HashMap<usize, Tensor>,
    hits: u64,
    bytes: usize,
    budget: usize,
}

impl FastModel {
    /// A freshly initialized fast layer (`f.layer` with its section, seeded from the run
    /// `seed`) and `fast_norm` on `backbone`, in `f.precision`, on the backbone's device.
    pub fn new(backbone: &Gpt2, f: &FastConfig, seed: u64) -> Result<Self> {
        let device = backbone.device();
        let fast = FastLayer::init(
            f.layer,
            f.ttt.as_ref(),
            f.lora.as_ref(),
            derive_seed(seed, "fast-init", 0),
            DType::F32,
            device,
        )?;
        let norm = FastNorm::init(backbone.config().n_embd, DType::F32, device)?;
        let frozen = frozen_backbone(backbone, f.precision)?;
        let (lm, vars) = PonderLm::new(&frozen, norm, fast)?.into_trainable()?;
        Ok(Self {
            lm,
            vars,
            precision: f.precision,
        })
    }

    /// The trainable vars by checkpoint name (`fast_norm.weight`, `fast_layer.wq`, …), f32.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The master model (f32 fast layer and `fast_norm`): what a fast-weight checkpoint saves.
    pub fn master(&self) -> &PonderLm {
        &self.lm
    }

    /// The device everything lives on.
    pub fn device(&self) -> &Device {
        self.lm.backbone_model().device()
    }

    /// The compute precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Adam as the original trains the fast layer (β 0.9 / 0.999, ε 1e-8, no weight decay),
    /// over [`FastModel::vars`].
    pub fn optimizer(&self) -> Result<AdamW> {
        let adam = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        Ok(AdamW::new(self.vars.clone(), adam)?)
    }

    /// The model a step computes with: the master itself for f32; for bf16 a copy whose fast
    /// layer and `fast_norm` are casts of the vars, through which gradients reach them.
    pub fn compute_lm(&self) -> Result<PonderLm> {
        if self.precision == Precision::F32 {
            return Ok(self.lm.clone());
        }
        let cast = |name: &str| -> candle::Result<Tensor> {
            let (_, var) = self.vars.iter().find(|(k, _)| k == name).ok_or_else(|| {
                candle::Error::Msg(format!("fast layer: no trainable var `{name}`"))
            })?;
            self.precision.cast(var.as_tensor())
        };
        let norm = FastNorm {
            weight: cast("fast_norm.weight")?,
            bias: cast("fast_norm.bias")?,
            eps: self.lm.fast_norm().eps,
        };
        let fast = self
            .lm
            .fast_layer()
            .with_tensors(|name| cast(&format!("fast_layer.{name}")))?;
        Ok(PonderLm::new(self.lm.backbone_model(), norm, fast)?)
    }

    /// The frozen backbone's hidden states, detached, in the compute dtype.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32; returns `(b, t, d)`.
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.lm.backbone(ids)?)
    }

    /// The largest dropout probability of the frozen backbone's config (`embd_pdrop`,
    /// `attn_pdrop`, `resid_pdrop`): 0.1 in the GPT-2 presets, 0 in the embedded default.
    pub fn backbone_dropout(&self) -> f64 {
        let c = self.lm.backbone_model().config();
        c.embd_pdrop.max(c.attn_pdrop).max(c.resid_pdrop)
    }

    /// The frozen backbone's hidden states in training mode: with its config's dropout, drawn
    /// from `dropout`, as the original's fast-layer training ran it. Detached: the backbone
    /// never learns.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32; returns `(b, t, d)`.
    pub fn hidden_train(&self, ids: &Tensor, dropout: &mut ponder_nn::Dropout) -> Result<Tensor> {
        Ok(self
            .lm
            .backbone_model()
            .forward_train(ids, dropout)?
            .detach())
    }
}

/// One batch of fast-layer training: `f.k` Adam steps at `f.lr / f.k` on the [`objective`]
/// (`CE(UPDATE_1) + f.ssl_weight · mean(init, step_0, step_1)` over the window's chunks), each
/// with the global gradient norm clipped at `f.grad_clip`. `hidden` comes from
/// [`FastModel::hidden`] (or a [`HiddenCache`]).
///
/// # Shapes
/// - `hidden[c]`: `(b, t, d)`; `ids[c]`: `(b, t)` u32, chunk `c` of every window (one chunk in
///   reset mode).
pub fn fast_step(
    model: &FastModel,
    opt: &mut AdamW,
    hidden: &[Tensor],
    ids: &[Tensor],
    f: &FastConfig,
) -> Result<FastStepStats> {
    let lr = f.lr / f.k as f64;
    let mut last = FastStepStats {
        loss: 0.0,
        recon: [0.0; 3],
        grad_norm: 0.0,
    };
    for _ in 0..f.k {
        let lm = model.compute_lm()?;
        let obj = objective(&lm, hidden, ids, f.ssl_weight)?;
        let mut grads = obj.loss.backward()?;
        let grad_norm = clip_grad_norm(&mut grads, &model.vars, f.grad_clip)?;
        opt.step(&grads, lr)?;
        last = FastStepStats {
            loss: obj.ce,
            recon: obj.recon,
            grad_norm,
        };
    }
    Ok(last)
}

impl HiddenCache {
    /// An empty cache that holds at most `budget_bytes` of hidden states (0 holds none).
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            map: HashMap::new(),
            hits: 0,
            bytes: 0,
            budget: budget_bytes,
        }
    }

    /// Chunks served from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Hidden states of the chunks `idx` of `stream` (chunk `i` is `stream[i·len..(i + 1)·len]`):
    /// cached rows as they are, the others from one batched backbone pass of `model`.
    ///
    /// # Shapes
    /// - returns `(idx.len(), len, d)`.
    pub fn get(
        &mut self,
        model: &FastModel,
        stream: &[u32],
        idx: &[usize],
        len: usize,
    ) -> Result<Tensor> {
        // One batched backbone pass for the chunks not cached yet.
        let missing: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|i| !self.map.contains_key(i))
            .collect();
        let mut fresh = HashMap::new();
        if !missing.is_empty() {
            let ids = windows_tensor(stream, &missing, len, model.device())?;
            let hidden = model.hidden(&ids)?; // (m, t, d), detached
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
        Ok(Tensor::cat(&rows, 0)?) // (b, t, d)
    }
}

/// The training objective of `lm` on one batch of windows of consecutive chunks, the mean over
/// the chunks of `CE(UPDATE_1) + ssl_weight · mean(init, step_0, step_1)`, an f32 scalar
/// whatever `lm`'s dtype (f64 for an f64 model), with its parts (means over the chunks). The first chunk starts from
/// the learned initial state; each later one from the state the update of the one before left,
/// not detached, so the gradient runs through the whole window and is cut only at its start
/// (`docs/design/stream.md`). One chunk is reset mode's objective.
///
/// # Shapes
/// - `hidden[c]`: `(b, t, d)`; `ids[c]`: `(b, t)`, chunk `c` of every window.
pub fn objective(
    lm: &PonderLm,
    hidden: &[Tensor],
    ids: &[Tensor],
    ssl_weight: f64,
) -> Result<Objective> {
    if hidden.is_empty() || hidden.len() != ids.len() {
        return Err(crate::error::Error::Run(format!(
            "a training window needs as many hidden states as chunks of ids, and one at least; \
             got {} and {}",
            hidden.len(),
            ids.len()
        )));
    }
    let mut state = lm.initial_state(ids[0].dim(0)?)?;
    let (mut loss, mut ce_sum, mut recon) = (None::<Tensor>, 0.0, [0.0; 3]);
    for (h, x) in hidden.iter().zip(ids) {
        let up = lm.update(h, x, &state, 1)?;
        let ce = lm.next_token_loss(&up.features, x)?.mean_all()?;
        let s = &up.stats;
        let mean = |t: &Tensor| loss_dtype(t)?.mean_all();
        let aux = (((mean(&s.init)? + mean(&s.step_0)?)? + mean(&s.step_1)?)? / 3.0)?;
        let chunk = (&ce + (aux * ssl_weight)?)?;
        loss = Some(match loss {
            None => chunk,
            Some(l) => (l + chunk)?,
        });
        ce_sum += ponder_nn::to_f64(&ce)?.to_scalar::<f64>()?;
        let means = s.chunk_means()?;
        for (r, m) in recon.iter_mut().zip([means.0, means.1, means.2]) {
            *r += m;
        }
        state = up.state;
    }
    let n = hidden.len() as f64;
    let loss = loss.expect("one chunk at least");
    Ok(Objective {
        loss: if hidden.len() == 1 { loss } else { (loss / n)? },
        ce: ce_sum / n,
        recon: recon.map(|r| r / n),
    })
}

/// `t` in the dtype the objective sums in: f64 stays f64, anything else becomes f32.
fn loss_dtype(t: &Tensor) -> candle::Result<Tensor> {
    if t.dtype() == DType::F64 {
        Ok(t.clone())
    } else {
        to_f32(t)
    }
}

/// `backbone` in the compute precision, detached: as it is for f32, else every weight cast once.
fn frozen_backbone(backbone: &Gpt2, precision: Precision) -> Result<Gpt2> {
    if precision == Precision::F32 && backbone.dtype() == DType::F32 {
        return Ok(backbone.clone());
    }
    let weights = backbone
        .weights()?
        .into_iter()
        .map(|(k, t)| Ok((k, precision.cast(&to_f32(&t)?)?.detach())))
        .collect::<Result<_>>()?;
    Ok(Gpt2::from_weights(
        backbone.config().clone(),
        weights,
        backbone.pad_token(),
    )?)
}
