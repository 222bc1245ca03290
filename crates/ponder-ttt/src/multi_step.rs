//! The outputs of one mini-batch under UPDATE_k with k > 1 (`docs/design/update-k.md`): every
//! token `i` carries its own copy of the fast model, takes k gradient steps on the keys it sees
//! (each at its own current weights), then reads its query.
//!
//! The `b` copies of a mini-batch are laid out so that the work runs as a few large products
//! rather than `n · b` small ones (Candle runs a batched product one small matrix at a time, at
//! a few microseconds each). The first layer reads the keys, which every copy shares, so its
//! weights sit side by side as `(n, in, b·out)`: one product `(n, j, in)·(n, in, b·out)` gives
//! every key's pre-activation under every token's weights, and one `(n, in, j)·(n, j, b·out)`
//! every token's update. Later layers (TTT-MLP's second) read activations that differ per token
//! and keep one `(in, out)` matrix per token, `(n, b, in, out)`.

use candle::{Result, Tensor, D};

use crate::inner::{clip, gelu_grad, ln_and_grad, ln_parts, FastModel, InnerOptions};

/// The `b` per-token copies of the fast model of one mini-batch.
struct PerToken {
    /// First-layer weights of every token, side by side: `(n, in, b·out)`.
    first_w: Tensor,
    /// Weights of the later layers, `(n, b, in, out)` each.
    rest_w: Vec<Tensor>,
    /// Biases of every layer, `(n, b, 1, out)` each.
    b: Vec<Tensor>,
    /// Tokens (copies) per mini-batch.
    tokens: usize,
}

/// Per-layer inputs of the later layers and the gradients at every layer's output.
struct Grads {
    /// Inputs of layers 1.., `(n, b, j, in)` each (layer 0's input is the keys).
    inputs: Vec<Tensor>,
    /// Gradients of the reconstruction loss at each layer's pre-activation, `(n, b, j, out)`.
    grads: Vec<Tensor>,
}

/// `t` with a new axis of `b` copies at `axis`, materialized.
fn copies(t: &Tensor, axis: usize, b: usize) -> Result<Tensor> {
    let mut dims = t.dims().to_vec();
    dims.insert(axis, b);
    t.unsqueeze(axis)?.broadcast_as(dims)?.contiguous()
}

impl PerToken {
    /// `b` copies of `fast` (weights `(n, in, out)`, biases `(n, 1, out)`).
    fn new(fast: &FastModel, b: usize) -> Result<Self> {
        let (n, input, out) = fast.w[0].dims3()?;
        Ok(Self {
            first_w: copies(&fast.w[0], 2, b)?.reshape((n, input, b * out))?,
            rest_w: fast.w[1..]
                .iter()
                .map(|w| copies(w, 1, b))
                .collect::<Result<_>>()?,
            b: fast
                .b
                .iter()
                .map(|c| copies(c, 1, b))
                .collect::<Result<_>>()?,
            tokens: b,
        })
    }

    /// Pre-activations of the first layer for `x` under every token's weights.
    ///
    /// # Shapes
    /// - `x`: `(n, r, in)`; returns `(n, b, r, out)`: row `r` under token `i`'s weights.
    fn first_layer(&self, x: &Tensor) -> Result<Tensor> {
        let (n, r, _) = x.dims3()?;
        let out = self.first_w.dim(2)? / self.tokens;
        x.matmul(&self.first_w)? // (n, r, b·out)
            .reshape((n, r, self.tokens, out))?
            .transpose(1, 2)?
            .broadcast_add(&self.b[0])
    }

    /// Every token's fast model applied to every key, with the per-layer inputs and
    /// pre-activations.
    ///
    /// # Shapes
    /// - `keys`: `(n, j, in)`; returns `(n, b, j, out)` and, per layer, `(n, b, j, ·)`.
    fn forward(&self, keys: &Tensor) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let mut z = self.first_layer(keys)?;
        let (mut inputs, mut pre) = (Vec::new(), vec![z.clone()]);
        for (w, c) in self.rest_w.iter().zip(&self.b[1..]) {
            let a = ponder_nn::gelu_tanh(&z)?;
            inputs.push(a.clone());
            z = a.matmul(w)?.broadcast_add(c)?;
            pre.push(z.clone());
        }
        Ok((z, inputs, pre))
    }

    /// Closed-form gradients of `½‖LN(f_i(k_j)) − y_j‖²` for every token `i` and key `j`: the
    /// last layer's from the LayerNorm VJP (clipped per token if asked), earlier ones back
    /// through `W_lᵀ` and `gelu'`.
    ///
    /// # Shapes
    /// - `keys`: `(n, j, in)`; `targets`: `(n, b, j, out)`; `norm`: `(n, 1, 1, out)` each.
    fn grads(
        &self,
        keys: &Tensor,
        targets: &Tensor,
        norm: (&Tensor, &Tensor),
        opt: &InnerOptions,
    ) -> Result<Grads> {
        let (z, inputs, pre) = self.forward(keys)?;
        let (_, g) = ln_and_grad(&z, targets, norm.0, norm.1, opt.eps)?;
        let mut grads = vec![clip(g, opt.max_grad_norm)?];
        for l in (0..self.rest_w.len()).rev() {
            let back = grads[0].matmul(&self.rest_w[l].transpose(D::Minus2, D::Minus1)?)?;
            grads.insert(0, (back * gelu_grad(&pre[l])?)?);
        }
        Ok(Grads { inputs, grads })
    }

    /// One gradient step of every token: `W_l −= x_lᵀ (w ⊙ g_l)` and `b_l −= Σ_j w ⊙ g_l`, with
    /// token `i`'s rate for key `j` in `rates`.
    ///
    /// # Shapes
    /// - `keys`: `(n, j, in)`; `rates`: `(n, b, j, 1)`.
    fn step(&self, keys: &Tensor, g: &Grads, rates: &Tensor) -> Result<Self> {
        let eg: Vec<Tensor> = g
            .grads
            .iter()
            .map(|g| g.broadcast_mul(rates))
            .collect::<Result<_>>()?;
        let (n, b, j, out) = eg[0].dims4()?;
        let side_by_side = eg[0]
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, j, b * out))?;
        let first_w = (&self.first_w - keys.t()?.matmul(&side_by_side)?)?;
        let rest_w = self
            .rest_w
            .iter()
            .zip(&g.inputs)
            .zip(&eg[1..])
            .map(|((w, x), eg)| w - x.transpose(D::Minus2, D::Minus1)?.matmul(eg)?)
            .collect::<Result<_>>()?;
        let b_next = self
            .b
            .iter()
            .zip(&eg)
            .map(|(c, eg)| c - eg.sum_keepdim(D::Minus2)?)
            .collect::<Result<_>>()?;
        Ok(Self {
            first_w,
            rest_w,
            b: b_next,
            tokens: self.tokens,
        })
    }

    /// Token `i`'s query through token `i`'s own model.
    ///
    /// # Shapes
    /// - `q`: `(n, b, in)`; returns `(n, b, out)`.
    fn read(&self, q: &Tensor) -> Result<Tensor> {
        // Every query under every token's first layer, then the diagonal (query i, token i).
        let (n, b, _) = q.dims3()?;
        let all = q.matmul(&self.first_w)?; // (n, query, token·out)
        let out = all.dim(2)? / b;
        let mut z = diagonal_blocks(&all)?.broadcast_add(&self.b[0].reshape((n, b, out))?)?;
        for (w, c) in self.rest_w.iter().zip(&self.b[1..]) {
            let a = ponder_nn::gelu_tanh(&z)?;
            // Row-times-matrix as a broadcast product: a batched (1 × in) matmul trips
            // Candle's stride checks in the backward pass.
            z = (a.unsqueeze(3)?.broadcast_mul(w)?.sum(2)? + c.squeeze(2)?)?;
        }
        Ok(z)
    }
}

/// One mini-batch of UPDATE_k with k > 1: every token `i` carries its own fast model, takes k
/// gradient steps on the keys it sees (weighted by row `i` of `weights`), then reads out
/// `q_i + LN(f_i(q_i))`. A linear fast model runs in the kernel form ([`linear_outputs`]),
/// deeper ones with per-token copies of their weights ([`per_token_outputs`]).
///
/// # Shapes
/// - `qm`, `km`, `ym`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, hd)`.
pub(crate) fn multi_step_outputs(
    qm: &Tensor,
    km: &Tensor,
    ym: &Tensor,
    weights: &Tensor,
    fast: &FastModel,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let z = if fast.w.len() == 1 {
        linear_outputs(qm, km, ym, weights, fast, norm, opt)?
    } else {
        per_token_outputs(qm, km, ym, weights, fast, norm, opt)?
    };
    let (ln, _, _) = ln_parts(&z, norm.0, norm.1, opt.eps)?;
    qm + ln
}

/// [`multi_step_outputs`] before the LayerNorm, for a linear fast model `f(x) = x W + c`, with
/// no per-token weights: every update is a sum of `k_jᵀ a` over the mini-batch's keys, so token
/// `i`'s weights after `s` steps are `W − Kᵀ A_iˢ` and `c − 1ᵀ A_iˢ` for a `(b, out)` matrix
/// `A_iˢ` of accumulated, rate-weighted gradients (`A_i⁰ = 0`). Key `j'` under them reads
/// `k_j' W + c − Σ_j (k_j' · k_j + 1) A_iˢ[j]`, one product with the mini-batch's kernel
/// `K Kᵀ + 1` for all tokens at once, and the step is `A_iˢ⁺¹[j] = A_iˢ[j] + w_ij g_j(W_iˢ, c_iˢ)`.
/// The readout is `q_i W + c − Σ_j (q_i · k_j + 1) A_iᵏ[j]`.
///
/// # Shapes
/// - `qm`, `km`, `ym`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, out)`.
fn linear_outputs(
    qm: &Tensor,
    km: &Tensor,
    ym: &Tensor,
    weights: &Tensor,
    fast: &FastModel,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let (n, b, _) = km.dims3()?;
    let (w, c) = (&fast.w[0], &fast.b[0]); // (n, in, out), (n, 1, out)
    let out = w.dim(2)?;
    // Rows of the step: group (n, j'), one row per token i; per group the key's base output
    // `k_j' W + c`, its target and the norm's parameters, per row token i's rate for key j'.
    let groups = n * b;
    let base = km.matmul(w)?.broadcast_add(c)?.reshape((groups, out))?;
    let target = ym.reshape((groups, out))?;
    let per_group =
        |t: &Tensor| -> Result<Tensor> { t.broadcast_as((n, b, out))?.reshape((groups, out)) };
    let (gamma, beta) = (per_group(norm.0)?, per_group(norm.1)?);
    let rates = weights.t()?.contiguous()?.reshape((groups, b))?; // token i's rate for key j
    let kernel = (km.matmul(&km.t()?)? + 1.0)?; // (n, j', j)
    let row = |t: &Tensor| t.unsqueeze(1); // (n·j', 1, out)
    let (target, gamma, beta) = (row(&target)?, row(&gamma)?, row(&beta)?);
    // acc + rates ⊙ g(base − r): the rows' LayerNorm gradients at token i's weights.
    let step = |acc: &Tensor, r: &Tensor, rates: &Tensor| -> Result<Tensor> {
        let z = row(&base)?.broadcast_sub(r)?; // (n·j', i, out)
        let (_, g) = ln_and_grad(&z, &target.broadcast_as(z.shape())?, &gamma, &beta, opt.eps)?;
        acc + g.broadcast_mul(&rates.unsqueeze(2)?)?
    };
    // A, key-major: (n, j, i·out), row j holding every token's A_i[j] side by side.
    let zeros = Tensor::zeros((n, b, b * out), qm.dtype(), qm.device())?;
    let mut acc = zeros.clone();
    for _ in 0..opt.steps {
        let rows = (groups, b, out);
        let r = kernel.matmul(&acc)?.reshape(rows)?; // (n·j', i, out)
        acc = match opt.max_grad_norm {
            None => step(&acc.reshape(rows)?, &r, &rates)?,
            Some(_) => {
                // The gradients alone (zero accumulator, unit rates), clipped per token.
                let g = step(&zeros.reshape(rows)?, &r, &rates.ones_like()?)?;
                let g = clip_per_token(g.reshape((n, b, b, out))?, opt.max_grad_norm)?;
                (acc.reshape((n, b, b, out))? + g.broadcast_mul(&rates.reshape((n, b, b, 1))?)?)?
            }
        }
        .reshape((n, b, b * out))?;
    }
    // Every query against every token's A, then the diagonal (query i, token i).
    let all = (qm.matmul(&km.t()?)? + 1.0)?.matmul(&acc)?; // (n, query, token·out)
    qm.matmul(w)?.broadcast_add(c)? - diagonal_blocks(&all)?
}

/// Block `(i, i)` of every row: `x[:, i, i·out..(i+1)·out]`. Flattened, block `(i, i)` starts
/// at `i · (b + 1) · out`, so padding by one row of blocks and reading rows of `(b + 1) · out`
/// lines the diagonal up in the first `out` columns (a few copies, where masking the whole
/// tensor with the identity and summing costs a strided pass over it).
///
/// # Shapes
/// - `x`: `(n, b, b·out)`; returns `(n, b, out)`.
fn diagonal_blocks(x: &Tensor) -> Result<Tensor> {
    let (n, b, row) = x.dims3()?;
    let out = row / b;
    let pad = Tensor::zeros((n, row), x.dtype(), x.device())?;
    Tensor::cat(&[&x.reshape((n, b * row))?, &pad], 1)?
        .reshape((n, b, (b + 1) * out))?
        .narrow(2, 0, out)
}

/// `g · min(1, max / ‖g_i‖_F)` with the norm of each token's gradient over its keys.
///
/// # Shapes
/// - `g`: `(n, j, i, out)`; returns the same.
fn clip_per_token(g: Tensor, max_norm: Option<f64>) -> Result<Tensor> {
    if max_norm.is_none() {
        return Ok(g);
    }
    clip(g.transpose(1, 2)?, max_norm)?.transpose(1, 2)
}

/// [`multi_step_outputs`] before the LayerNorm, with `b` per-token copies of the fast model.
///
/// # Shapes
/// - `qm`, `km`, `ym`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, out)`.
fn per_token_outputs(
    qm: &Tensor,
    km: &Tensor,
    ym: &Tensor,
    weights: &Tensor,
    fast: &FastModel,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let b = qm.dim(1)?;
    let mut per_token = PerToken::new(fast, b)?;
    let targets = copies(ym, 1, b)?; // (n, i, j, hd)
    let norm4 = (&norm.0.unsqueeze(1)?, &norm.1.unsqueeze(1)?); // (n, 1, 1, hd)
    let rates = weights.unsqueeze(3)?; // (n, i, j, 1)
    for _ in 0..opt.steps {
        let g = per_token.grads(km, &targets, norm4, opt)?;
        per_token = per_token.step(km, &g, &rates)?;
    }
    per_token.read(qm)
}
