//! `LoraFactors`: the low-rank pair `A (r, in)`, `B (out, r)` and the scale of one adapted
//! module, with the update `Δ(x) = scale · (x Aᵀ) Bᵀ` and its weight `scale · B A`.
//!
//! The factors are plain tensors. To train them, wrap each in a `candle::Var`, build the factors
//! from `var.as_tensor().clone()` with [`LoraFactors::new`], and hand the vars to the optimizer:
//! the optimizer's in-place `Var::set` is then visible through these factors.
//! From "LoRA: Low-Rank Adaptation of Large Language Models" (Hu et al., 2021) and PEFT's
//! `tuners/lora/layer.py` (<https://github.com/huggingface/peft>).

use candle::{DType, Device, Result, Tensor};
use ponder_nn::Dropout;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::Init;

/// The input and output widths of an adapted module (`in → out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleDims {
    /// Input width `in`.
    pub in_dim: usize,
    /// Output width `out`.
    pub out_dim: usize,
}

/// The factors `A (r, in)` and `B (out, r)` of one adapted module and its scale.
#[derive(Debug, Clone)]
pub struct LoraFactors {
    a: Tensor,
    b: Tensor,
    scale: f64,
}

impl LoraFactors {
    /// Factors from given tensors: `a` is `(r, in)`, `b` is `(out, r)`, both of one dtype and on
    /// one device; `scale` is usually `lora_alpha / r`.
    pub fn new(a: Tensor, b: Tensor, scale: f64) -> Result<Self> {
        let (r, _in_dim) = match a.dims() {
            &[r, in_dim] => (r, in_dim),
            dims => candle::bail!("lora: A has shape {dims:?}, expected (r, in)"),
        };
        match b.dims() {
            &[_out_dim, rb] if rb == r => {}
            dims => candle::bail!(
                "lora: B has shape {dims:?}, expected (out, {r}) for A of shape {:?}",
                a.dims()
            ),
        }
        if r == 0 {
            candle::bail!("lora: A has shape {:?}, expected r > 0", a.dims());
        }
        if a.dtype() != b.dtype() {
            candle::bail!(
                "lora: A has dtype {:?} but B has dtype {:?}",
                a.dtype(),
                b.dtype()
            );
        }
        if !a.device().same_device(b.device()) {
            candle::bail!(
                "lora: A is on {:?} but B is on {:?}",
                a.device(),
                b.device()
            );
        }
        if !scale.is_finite() {
            candle::bail!("lora: scale must be finite, got {scale}");
        }
        Ok(Self { a, b, scale })
    }

    /// Fresh factors for an `in_dim → out_dim` module: `A` from `init` drawn from `rng`, `B`
    /// zeros, so that the update starts at exactly zero.
    pub fn init(
        dims: ModuleDims,
        r: usize,
        scale: f64,
        init: Init,
        rng: &mut ChaCha8Rng,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let ModuleDims { in_dim, out_dim } = dims;
        let a = match init {
            Init::Normal { std } => ponder_nn::init::normal((r, in_dim), std, rng, dtype, device)?,
            Init::KaimingUniform => {
                // kaiming_uniform_(a = √5): gain √(2/6), bound gain·√(3/fan_in) = 1/√fan_in.
                let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
                let data: Vec<f64> = (0..r * in_dim)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                Tensor::from_vec(data, (r, in_dim), device)?.to_dtype(dtype)?
            }
        };
        let b = Tensor::zeros((out_dim, r), dtype, device)?;
        Self::new(a, b, scale)
    }

    /// `A`, `(r, in)`.
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// `B`, `(out, r)`.
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    /// The scale applied to the update.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.a.dims()[0]
    }

    /// The module's widths `in → out`.
    pub fn dims(&self) -> ModuleDims {
        ModuleDims {
            in_dim: self.in_dim(),
            out_dim: self.out_dim(),
        }
    }

    /// The input width `in`.
    pub fn in_dim(&self) -> usize {
        self.a.dims()[1]
    }

    /// The output width `out`.
    pub fn out_dim(&self) -> usize {
        self.b.dims()[0]
    }

    /// The update without dropout: `scale · (x Aᵀ) Bᵀ`.
    ///
    /// # Shapes
    /// - `x`: `(..., in)`; returns `(..., out)`.
    pub fn delta(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self.down(x)?;
        self.up(&hidden, x.dims())
    }

    /// The update with PEFT's dropout on the input: `scale · (dropout(x) Aᵀ) Bᵀ`.
    ///
    /// # Shapes
    /// - `x`: `(..., in)`; returns `(..., out)`.
    pub fn delta_train(&self, x: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        let hidden = self.down(&dropout.apply(x)?)?;
        self.up(&hidden, x.dims())
    }

    /// The update with the original PonderTTT layer's dropout on the rank-`r` hidden:
    /// `scale · dropout(x Aᵀ) Bᵀ`.
    ///
    /// # Shapes
    /// - `x`: `(..., in)`; returns `(..., out)`.
    pub fn delta_train_hidden(&self, x: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        let hidden = dropout.apply(&self.down(x)?)?;
        self.up(&hidden, x.dims())
    }

    /// The dense update `scale · B A`, which merging adds to the base weight.
    ///
    /// # Shapes
    /// Returns `(out, in)`.
    pub fn delta_weight(&self) -> Result<Tensor> {
        self.b.affine(self.scale, 0.0)?.matmul(&self.a) // (out, in)
    }

    /// `x Aᵀ` over the flattened leading dimensions.
    fn down(&self, x: &Tensor) -> Result<Tensor> {
        let in_dim = self.in_dim();
        match x.dims().last() {
            Some(&last) if last == in_dim => {}
            _ => candle::bail!(
                "lora: x has shape {:?}, expected (..., {in_dim}) for A of shape {:?}",
                x.dims(),
                self.a.dims()
            ),
        }
        let n = x.elem_count() / in_dim;
        x.reshape((n, in_dim))? // (n, in)
            .matmul(&self.a.t()?) // (n, r)
    }

    /// `(scale · hidden) Bᵀ`, reshaped back to the leading dimensions of `x_dims`.
    fn up(&self, hidden: &Tensor, x_dims: &[usize]) -> Result<Tensor> {
        let mut out_dims = x_dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_dim();
        }
        // Scaling the rank-r hidden is cheaper than scaling the output.
        hidden
            .affine(self.scale, 0.0)? // (n, r)
            .matmul(&self.b.t()?)? // (n, out)
            .reshape(out_dims) // (..., out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_shapes_dtypes_and_rank() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::zeros((3, 5), DType::F32, &dev)?;
        let b = Tensor::zeros((4, 3), DType::F32, &dev)?;
        let f = LoraFactors::new(a.clone(), b.clone(), 2.0)?;
        assert_eq!((f.rank(), f.in_dim(), f.out_dim()), (3, 5, 4));

        let bad_b = Tensor::zeros((4, 2), DType::F32, &dev)?;
        let err = LoraFactors::new(a.clone(), bad_b, 1.0).expect_err("rank mismatch accepted");
        assert!(err.to_string().contains("[4, 2]"), "{err}");
        assert!(err.to_string().contains("[3, 5]"), "{err}");
        let b64 = b.to_dtype(DType::F64)?;
        assert!(LoraFactors::new(a.clone(), b64, 1.0).is_err());
        let a1 = Tensor::zeros(5, DType::F32, &dev)?;
        assert!(LoraFactors::new(a1, b.clone(), 1.0).is_err());
        let x = Tensor::zeros((2, 6), DType::F32, &dev)?;
        let err = f.delta(&x).expect_err("wrong input width accepted");
        assert!(err.to_string().contains("[2, 6]"), "{err}");
        Ok(())
    }

    #[test]
    fn kaiming_uniform_is_bounded_and_b_starts_at_zero() -> Result<()> {
        let mut rng = ponder_nn::init::rng_for(0, "kaiming");
        let f = LoraFactors::init(
            ModuleDims {
                in_dim: 16,
                out_dim: 8,
            },
            4,
            1.0,
            Init::KaimingUniform,
            &mut rng,
            DType::F64,
            &Device::Cpu,
        )?;
        let a = f.a().flatten_all()?.to_vec1::<f64>()?;
        assert!(a.iter().all(|v| v.abs() < 0.25), "bound 1/√16 exceeded");
        assert!(
            a.iter().any(|v| v.abs() > 0.1),
            "samples suspiciously small"
        );
        assert_eq!(f.b().abs()?.sum_all()?.to_scalar::<f64>()?, 0.0);
        Ok(())
    }
}
