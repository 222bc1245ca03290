//! Reference compositions of primitive Candle ops for every fused op in this crate.
//!
//! They are differentiable through Candle's own autograd, run on every device and dtype, and
//! serve two purposes: the fused CPU kernels are tested against them, and non-CPU devices (or
//! dtypes the kernels do not cover, such as bf16) use them directly.

use candle::{DType, Device, Result, Tensor, D};

/// LayerNorm over the last dimension with biased variance.
///
/// # Shapes
/// - `x`: `(..., d)`; `gamma`, `beta`: `(d)`; returns `(..., d)`.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?; // (..., 1)
    let centered = x.broadcast_sub(&mean)?; // (..., d)
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
    let xhat = centered.broadcast_div(&(var + eps)?.sqrt()?)?; // (..., d)
    xhat.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Softmax over the last dimension.
///
/// # Shapes
/// - `x`: `(..., n)`; returns `(..., n)`.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// Additive causal mask: 0 where key `j <= i + (t_k - t_q)`, `-inf` elsewhere.
///
/// # Shapes
/// - returns `(t_q, t_k)`.
pub fn causal_mask(t_q: usize, t_k: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let offset = t_k as i64 - t_q as i64;
    let mask: Vec<f32> = (0..t_q as i64)
        .flat_map(|i| {
            (0..t_k as i64).map(move |j| {
                if j <= i + offset {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t_q, t_k), device)?.to_dtype(dtype)
}

/// Causal softmax of `scale · x` over the last dimension.
///
/// # Shapes
/// - `x`: `(..., t_q, t_k)` with `t_k >= t_q`; returns the same shape.
pub fn causal_softmax(x: &Tensor, scale: f64) -> Result<Tensor> {
    let dims = x.dims();
    let (t_q, t_k) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mask = causal_mask(t_q, t_k, x.dtype(), x.device())?; // (t_q, t_k)
    softmax_last_dim(&(x * scale)?.broadcast_add(&mask)?)
}

/// GPT-2's GELU, the tanh approximation (`gelu_new` in Hugging Face transformers).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let inner = ((x + x.powf(3.0)?.affine(0.044715, 0.0)?)? * (2.0 / std::f64::consts::PI).sqrt())?;
    (x * 0.5)?.mul(&(inner.tanh()? + 1.0)?)
}

/// The exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (`gelu` in Hugging Face transformers).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// Per-row negative log-likelihood of `targets` under `softmax(logits)`.
///
/// # Shapes
/// - `logits`: `(n, v)`; `targets`: `(n)` u32; returns `(n)`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?; // (n, v)
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?; // (n, 1)
    picked.squeeze(1)?.neg()
}
