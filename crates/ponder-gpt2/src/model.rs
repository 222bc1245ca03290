//! The GPT-2 forward pass: token and position embeddings, pre-LN transformer blocks, the final
//! LayerNorm, and logits through the tied embedding.
//!
//! Follows "Language Models are Unsupervised Multitask Learners" (Radford et al., 2019) and the
//! layout of Hugging Face's `modeling_gpt2.py`: Conv1D weights are `[in, out]`, q|k|v are
//! concatenated along the last dim of `c_attn`. Every op on the path is differentiable (the
//! fused ops of `ponder-nn` carry their own backward), so the same forward trains from scratch.

use candle::{DType, Device, Result, Tensor};
use ponder_nn::Dropout;

use crate::config::{Activation, Gpt2Config};
use crate::kv_cache::KvCache;
use crate::weights::Weights;

/// Value written into the logit of the `<|pad|>` row, as the original implementation does.
pub const PAD_LOGIT: f64 = -1e9;

/// A GPT-2 backbone with its tied LM head.
#[derive(Clone)]
pub struct Gpt2 {
    config: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    pad_token: Option<u32>,
}

#[derive(Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

/// A Conv1D layer in HF's layout: `y = x · weight + bias` with `weight` of shape `[in, out]`.
#[derive(Clone)]
struct Conv1d {
    weight: Tensor,
    bias: Tensor,
}

#[derive(Clone)]
struct Block {
    ln_1: Norm,
    c_attn: Conv1d,
    attn_proj: Conv1d,
    ln_2: Norm,
    c_fc: Conv1d,
    mlp_proj: Conv1d,
}

/// Dropout probabilities and their random source, for training mode.
struct Train<'a> {
    dropout: &'a mut Dropout,
    embd: f64,
    attn: f64,
    resid: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ponder_nn::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

impl Conv1d {
    /// # Shapes
    /// - `x`: `(n, in)`; returns `(n, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ponder_nn::add_bias(&x.matmul(&self.weight)?, &self.bias)
    }
}

fn take(w: &mut Weights, name: &str) -> Result<Tensor> {
    w.remove(name)
        .ok_or_else(|| candle::Error::Msg(format!("gpt2: missing weight `{name}`")))
}

impl Gpt2 {
    /// Builds the model from weights keyed by HF name (see [`crate::weights::expected_shapes`]).
    ///
    /// With `pad_token = Some(id)`, `wte` gets one extra zero row at `id` (which must equal
    /// `vocab_size`), and that row's logit is always [`PAD_LOGIT`].
    pub fn from_weights(
        config: Gpt2Config,
        mut weights: Weights,
        pad_token: Option<u32>,
    ) -> Result<Self> {
        config.validate()?;
        for (name, shape) in crate::weights::expected_shapes(&config) {
            match weights.get(&name) {
                None => candle::bail!("gpt2: missing weight `{name}` (expected shape {shape:?})"),
                Some(t) if t.dims() != shape.as_slice() => {
                    candle::bail!(
                        "gpt2: weight `{name}` has shape {:?}, expected {shape:?}",
                        t.dims()
                    )
                }
                Some(_) => {}
            }
        }
        let eps = config.layer_norm_epsilon;
        let norm = |w: &mut Weights, p: &str| -> Result<Norm> {
            Ok(Norm {
                weight: take(w, &format!("{p}.weight"))?,
                bias: take(w, &format!("{p}.bias"))?,
                eps,
            })
        };
        let conv = |w: &mut Weights, p: &str| -> Result<Conv1d> {
            Ok(Conv1d {
                weight: take(w, &format!("{p}.weight"))?,
                bias: take(w, &format!("{p}.bias"))?,
            })
        };
        let mut wte = take(&mut weights, "wte.weight")?;
        if let Some(id) = pad_token {
            if id as usize != config.vocab_size {
                candle::bail!(
                    "gpt2: the pad row must come right after the vocabulary (id {}), got {id}",
                    config.vocab_size
                );
            }
            let zero = Tensor::zeros((1, config.n_embd), wte.dtype(), wte.device())?;
            wte = Tensor::cat(&[&wte, &zero], 0)?; // (vocab + 1, d)
        }
        let wpe = take(&mut weights, "wpe.weight")?;
        let blocks = (0..config.n_layer)
            .map(|i| {
                let w = &mut weights;
                Ok(Block {
                    ln_1: norm(w, &format!("h.{i}.ln_1"))?,
                    c_attn: conv(w, &format!("h.{i}.attn.c_attn"))?,
                    attn_proj: conv(w, &format!("h.{i}.attn.c_proj"))?,
                    ln_2: norm(w, &format!("h.{i}.ln_2"))?,
                    c_fc: conv(w, &format!("h.{i}.mlp.c_fc"))?,
                    mlp_proj: conv(w, &format!("h.{i}.mlp.c_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ln_f = norm(&mut weights, "ln_f")?;
        Ok(Self {
            config,
            wte,
            wpe,
            blocks,
            ln_f,
            pad_token,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The `<|pad|>` id whose logit is masked, if the model has a pad row.
    pub fn pad_token(&self) -> Option<u32> {
        self.pad_token
    }

    /// Number of logits per position: the vocabulary, plus one with a pad row.
    pub fn n_logits(&self) -> usize {
        self.config.vocab_size + usize::from(self.pad_token.is_some())
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.wte.dtype()
    }

    /// The tied token embedding, pad row included.
    ///
    /// # Shapes
    /// - returns `(n_logits, n_embd)`.
    pub fn wte(&self) -> &Tensor {
        &self.wte
    }

    /// The weights by HF name, without the pad row: what [`crate::save`] writes.
    pub fn weights(&self) -> Result<Weights> {
        let mut w = Weights::new();
        w.insert(
            "wte.weight".into(),
            self.wte.narrow(0, 0, self.config.vocab_size)?,
        );
        w.insert("wpe.weight".into(), self.wpe.clone());
        for (i, b) in self.blocks.iter().enumerate() {
            for (name, norm) in [("ln_1", &b.ln_1), ("ln_2", &b.ln_2)] {
                w.insert(format!("h.{i}.{name}.weight"), norm.weight.clone());
                w.insert(format!("h.{i}.{name}.bias"), norm.bias.clone());
            }
            for (name, conv) in [
                ("attn.c_attn", &b.c_attn),
                ("attn.c_proj", &b.attn_proj),
                ("mlp.c_fc", &b.c_fc),
                ("mlp.c_proj", &b.mlp_proj),
            ] {
                w.insert(format!("h.{i}.{name}.weight"), conv.weight.clone());
                w.insert(format!("h.{i}.{name}.bias"), conv.bias.clone());
            }
        }
        w.insert("ln_f.weight".into(), self.ln_f.weight.clone());
        w.insert("ln_f.bias".into(), self.ln_f.bias.clone());
        Ok(w)
    }

    /// Inference forward: the hidden states after `ln_f`, with positions `0..t`.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32 with `t <= n_positions`; returns `(b, t, n_embd)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.run(ids, None, false, None)?.0)
    }

    /// Decoding forward: the hidden states of `ids`, the tokens that follow the `cache.len()`
    /// tokens whose keys and values `cache` holds (positions `cache.len()..`), attending to
    /// those and to each other causally; their keys and values are appended to `cache`. Equal
    /// to the rows of [`Gpt2::forward`] on the whole sequence (a test checks it).
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32 with `cache.len() + t <= n_positions`; returns `(b, t, n_embd)`.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        Ok(self.run(ids, None, false, Some(cache))?.0)
    }

    /// [`Gpt2::forward`] that also returns the last block's attention weights (for the learned
    /// gate's attention features); the other blocks keep none.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)`; returns `(b, t, n_embd)` and `(b, n_head, t, t)`, row `i` the weights
    ///   of query `i` (zero above the diagonal).
    pub fn forward_with_attention(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let (hidden, probs) = self.run(ids, None, true, None)?;
        Ok((
            hidden,
            probs.expect("the last block's weights were asked for"),
        ))
    }

    /// Training forward: as [`Gpt2::forward`], with dropout (the config's `embd_pdrop`,
    /// `attn_pdrop` and `resid_pdrop`) drawn from `dropout`.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` u32 with `t <= n_positions`; returns `(b, t, n_embd)`.
    pub fn forward_train(&self, ids: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        let c = &self.config;
        let train = Train {
            dropout,
            embd: c.embd_pdrop,
            attn: c.attn_pdrop,
            resid: c.resid_pdrop,
        };
        Ok(self.run(ids, Some(train), false, None)?.0)
    }

    /// Logits through the tied embedding; the pad row's logit is [`PAD_LOGIT`].
    ///
    /// # Shapes
    /// - `hidden`: `(b, t, n_embd)`; returns `(b, t, n_logits)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, t, d) = hidden.dims3()?;
        let logits = hidden.reshape((b * t, d))?.matmul(&self.wte.t()?)?; // (b·t, n_logits)
        let logits = match self.pad_token {
            Some(pad) => ponder_nn::masks::fill_column(&logits, pad as usize, PAD_LOGIT)?,
            None => logits,
        };
        logits.reshape((b, t, self.n_logits()))
    }

    /// Next-token negative log-likelihood of `targets` through the tied head, with the pad
    /// logit at [`PAD_LOGIT`]: the cross-entropy of [`Gpt2::logits`] without materializing
    /// them on the CPU for inference ([`ponder_nn::linear_cross_entropy`]).
    ///
    /// # Shapes
    /// - `hidden`: `(n, n_embd)`; `targets`: `(n)` u32; returns `(n)`, f64 for f64 and f32
    ///   otherwise.
    pub fn head_nll(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let masked = self.pad_token.map(|pad| (pad as usize, PAD_LOGIT));
        ponder_nn::linear_cross_entropy(hidden, &self.wte, targets, masked)
    }

    /// [`Gpt2::head_nll`] that also keeps each row's entropy, `−log max p` and five largest
    /// probabilities ([`ponder_nn::linear_loss::linear_probe`]).
    ///
    /// # Shapes
    /// - `hidden`: `(n, n_embd)`; `targets`: `(n)` u32; returns `(n, 8)`.
    pub fn head_probe(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let masked = self.pad_token.map(|pad| (pad as usize, PAD_LOGIT));
        ponder_nn::linear_loss::linear_probe(hidden, &self.wte, targets, masked)
    }

    /// Checks `ids` for `past` earlier positions.
    fn check_ids(&self, ids: &Tensor, past: usize) -> Result<(usize, usize)> {
        let (b, t) = ids.dims2().map_err(|_| {
            candle::Error::Msg(format!(
                "gpt2: ids must have shape (batch, seq), got {:?}",
                ids.dims()
            ))
        })?;
        if ids.dtype() != DType::U32 {
            candle::bail!("gpt2: ids must be u32, got {:?}", ids.dtype());
        }
        if t == 0 {
            candle::bail!("gpt2: empty sequence (shape {:?})", ids.dims());
        }
        if past + t > self.config.n_positions {
            candle::bail!(
                "gpt2: a sequence of {} tokens needs positions up to {}, but n_positions is {}; positions at or beyond n_positions are not allowed",
                past + t,
                past + t - 1,
                self.config.n_positions
            );
        }
        let max = ids.max_all()?.to_scalar::<u32>()?;
        if max as usize >= self.n_logits() {
            candle::bail!(
                "gpt2: token id {max} is outside the embedding of {} rows",
                self.n_logits()
            );
        }
        Ok((b, t))
    }

    /// The blocks and `ln_f`, and the last block's attention weights where `keep_last`; after
    /// the tokens of `cache`, whose keys and values it extends, where given.
    fn run(
        &self,
        ids: &Tensor,
        mut train: Option<Train<'_>>,
        keep_last: bool,
        mut cache: Option<&mut KvCache>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let past = cache.as_deref().map_or(0, KvCache::len);
        let (b, t) = self.check_ids(ids, past)?;
        if let Some(c) = cache.as_deref() {
            c.check(b, self.blocks.len())?;
        }
        let d = self.config.n_embd;
        let tok = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, d))?; // (b, t, d)
        let pos = self.wpe.narrow(0, past, t)?; // (t, d)
        let mut x = ponder_nn::add_bias(&tok, &pos)?; // (b, t, d)
        if let Some(tr) = train.as_mut() {
            x = tr.dropout.apply_p(&x, tr.embd)?;
        }
        let mut kept = None;
        for (i, block) in self.blocks.iter().enumerate() {
            let keep = keep_last && i + 1 == self.blocks.len();
            let layer = cache.as_deref_mut().map(|c| c.layer(i));
            let (next, probs) = self.block(block, &x, train.as_mut(), keep, layer)?;
            x = next;
            kept = probs.or(kept);
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        Ok((self.ln_f.forward(&x)?, kept))
    }

    /// One block, and its attention weights where `keep`; after the `p` tokens whose keys and
    /// values `past` holds (and extended with this block's), where given.
    ///
    /// # Shapes
    /// - `x`: `(b, t, d)`; returns `(b, t, d)` and `(b, nh, t, p + t)`.
    fn block(
        &self,
        blk: &Block,
        x: &Tensor,
        mut train: Option<&mut Train<'_>>,
        keep: bool,
        past: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, t, d) = x.dims3()?;
        let (n_head, head_dim) = (self.config.n_head, self.config.head_dim());

        let h = blk.ln_1.forward(x)?.reshape((b * t, d))?; // (b·t, d)
        let qkv = blk.c_attn.forward(&h)?; // (b·t, 3d)
        let qkv = qkv
            .reshape((b, t, 3, n_head, head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?; // (3, b, nh, t, hd)
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?); // (b, nh, t, hd) each
        let (k, v) = match past {
            Some(entry) => {
                let kv = match entry.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                    None => (k, v),
                }; // (b, nh, p + t, hd) each
                *entry = Some(kv.clone());
                kv
            }
            None => (k, v),
        };
        let scores = q.matmul(&k.t()?)?; // (b, nh, t, p + t)
        let mut probs = ponder_nn::causal_softmax(&scores, 1.0 / (head_dim as f64).sqrt())?;
        if let Some(tr) = train.as_deref_mut() {
            probs = tr.dropout.apply_p(&probs, tr.attn)?;
        }
        let y = probs.matmul(&v)?; // (b, nh, t, hd)
        let kept = keep.then(|| probs.clone());
        let y = y.transpose(1, 2)?.reshape((b * t, d))?; // (b·t, d)
        let mut y = blk.attn_proj.forward(&y)?; // (b·t, d)
        if let Some(tr) = train.as_deref_mut() {
            y = tr.dropout.apply_p(&y, tr.resid)?;
        }
        let x = (x + y.reshape((b, t, d))?)?; // (b, t, d)

        let h = blk.ln_2.forward(&x)?.reshape((b * t, d))?; // (b·t, d)
        let h = blk.c_fc.forward(&h)?; // (b·t, 4d)
        let h = match self.config.activation()? {
            Activation::GeluTanh => ponder_nn::gelu_tanh(&h)?,
            Activation::GeluErf => h.gelu_erf()?,
        };
        let mut h = blk.mlp_proj.forward(&h)?; // (b·t, d)
        if let Some(tr) = train {
            h = tr.dropout.apply_p(&h, tr.resid)?;
        }
        Ok(((x + h.reshape((b, t, d))?)?, kept))
    }

    /// Mean next-token negative log-likelihood (nats/token) of each sequence in `ids`, and the
    /// per-token values: position `i` predicts token `i + 1`.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` with `t >= 2`; returns `(b, t − 1)`.
    pub fn token_nll(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t < 2 {
            candle::bail!("gpt2: need at least 2 tokens to score, got {t}");
        }
        let hidden = self.forward(&ids.narrow(1, 0, t - 1)?)?; // (b, t−1, d)
        let logits = self
            .logits(&hidden)?
            .reshape((b * (t - 1), self.n_logits()))?; // (b·(t−1), V)
        let targets = ids.narrow(1, 1, t - 1)?.flatten_all()?; // (b·(t−1))
        ponder_nn::cross_entropy(&logits, &targets)?.reshape((b, t - 1))
    }
}
