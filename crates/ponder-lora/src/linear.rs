//! `LoraLinear`: a frozen linear layer `y = x Wᵀ + b` plus a trainable low-rank update,
//! `y = x Wᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ`, and merging the update into `W` for inference.
//!
//! `W` is `(out, in)` as torch and PEFT store it (`fan_in_fan_out = false`); GPT-2's Conv1D
//! weights are `(in, out)` and must be transposed first. Merging returns a plain
//! `candle_nn::Linear` with weight `W + scale · B A`, and [`LoraLinear::unmerge`] recovers the
//! frozen weight from it. From "LoRA: Low-Rank Adaptation of Large Language Models"
//! (Hu et al., 2021) and PEFT's `tuners/lora/layer.py` (`Linear.merge` / `unmerge`).

use candle::{Result, Tensor};
use candle_nn::{Linear, Module};
use ponder_nn::Dropout;
use rand_chacha::ChaCha8Rng;

use crate::config::{Init, LoraConfig};
use crate::factors::{LoraFactors, ModuleDims};

/// A frozen linear layer with a LoRA update on top.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: Linear,
    factors: LoraFactors,
}

impl LoraLinear {
    /// The layer `base + factors`; `base`'s weight must be `(out, in)` with an optional `(out)`
    /// bias, matching the factors' widths, dtype and device.
    pub fn new(base: Linear, factors: LoraFactors) -> Result<Self> {
        let ModuleDims { in_dim, out_dim } = factors.dims();
        let weight = base.weight();
        if weight.dims() != [out_dim, in_dim] {
            candle::bail!(
                "lora linear: base weight has shape {:?}, expected (out, in) = ({out_dim}, {in_dim}) from A {:?} and B {:?}",
                weight.dims(),
                factors.a().dims(),
                factors.b().dims()
            );
        }
        if let Some(bias) = base.bias() {
            if bias.dims() != [out_dim] {
                candle::bail!(
                    "lora linear: base bias has shape {:?}, expected ({out_dim})",
                    bias.dims()
                );
            }
        }
        if weight.dtype() != factors.a().dtype() {
            candle::bail!(
                "lora linear: base weight has dtype {:?} but the factors have {:?}",
                weight.dtype(),
                factors.a().dtype()
            );
        }
        if !weight.device().same_device(factors.a().device()) {
            candle::bail!(
                "lora linear: base weight is on {:?} but the factors are on {:?}",
                weight.device(),
                factors.a().device()
            );
        }
        Ok(Self { base, factors })
    }

    /// `base` with fresh factors from `config` (rank `r`, scale `lora_alpha / r`): `A` from
    /// `init`, drawn from `rng`, and `B` zeros, so that the layer starts equal to `base`.
    pub fn init(
        base: Linear,
        config: &LoraConfig,
        init: Init,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        config.validate()?;
        let weight = base.weight();
        let (out_dim, in_dim) = match weight.dims() {
            &[out_dim, in_dim] => (out_dim, in_dim),
            dims => {
                candle::bail!("lora linear: base weight has shape {dims:?}, expected (out, in)")
            }
        };
        let dims = ModuleDims { in_dim, out_dim };
        let (dtype, device) = (weight.dtype(), weight.device().clone());
        let factors = LoraFactors::init(dims, config.r, config.scale(), init, rng, dtype, &device)?;
        Self::new(base, factors)
    }

    /// Undoes [`LoraLinear::merge`]: the frozen weight `merged − scale · B A` with the merged
    /// layer's bias. Exact up to rounding.
    pub fn unmerge(merged: &Linear, factors: LoraFactors) -> Result<Self> {
        let delta = factors.delta_weight()?; // (out, in)
        if merged.weight().dims() != delta.dims() {
            candle::bail!(
                "lora linear: merged weight has shape {:?}, expected {:?} from the factors",
                merged.weight().dims(),
                delta.dims()
            );
        }
        let weight = (merged.weight() - delta)?;
        Self::new(Linear::new(weight, merged.bias().cloned()), factors)
    }

    /// The frozen base layer.
    pub fn base(&self) -> &Linear {
        &self.base
    }

    /// The LoRA factors.
    pub fn factors(&self) -> &LoraFactors {
        &self.factors
    }

    /// `A`, `(r, in)`.
    pub fn a(&self) -> &Tensor {
        self.factors.a()
    }

    /// `B`, `(out, r)`.
    pub fn b(&self) -> &Tensor {
        self.factors.b()
    }

    /// The layer with its factors replaced (e.g. by tensors from `candle::Var`s for training).
    pub fn with_factors(&self, factors: LoraFactors) -> Result<Self> {
        Self::new(self.base.clone(), factors)
    }

    /// Inference forward, no dropout: `x Wᵀ + b + scale · (x Aᵀ) Bᵀ`.
    ///
    /// # Shapes
    /// - `x`: `(..., in)` with 1 to 4 dimensions; returns `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base_forward(x)?; // (..., out)
        y + self.factors.delta(x)?
    }

    /// Training forward with PEFT's dropout on the adapter's input:
    /// `x Wᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ`, using `dropout`'s own probability.
    ///
    /// # Shapes
    /// - `x`: `(..., in)` with 1 to 4 dimensions; returns `(..., out)`.
    pub fn forward_train(&self, x: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        let y = self.base_forward(x)?; // (..., out)
        y + self.factors.delta_train(x, dropout)?
    }

    /// The merged plain layer `x (W + scale · B A)ᵀ + b`, for inference without the extra
    /// matmuls; its forward equals [`LoraLinear::forward`] up to rounding.
    pub fn merge(&self) -> Result<Linear> {
        let weight = (self.base.weight() + self.factors.delta_weight()?)?; // (out, in)
        Ok(Linear::new(weight, self.base.bias().cloned()))
    }

    /// `x Wᵀ + b` after checking the input width (Candle's own error would not name the layer).
    fn base_forward(&self, x: &Tensor) -> Result<Tensor> {
        let in_dim = self.factors.in_dim();
        if x.dims().last() != Some(&in_dim) || x.rank() > 4 {
            candle::bail!(
                "lora linear: x has shape {:?}, expected (..., {in_dim}) with at most 4 dims",
                x.dims()
            );
        }
        if x.rank() == 1 {
            // candle_nn::Linear needs a matrix: (in) → (1, in) → (1, out) → (out).
            return self.base.forward(&x.unsqueeze(0)?)?.squeeze(0);
        }
        self.base.forward(x) // (..., out)
    }
}

#[cfg(test)]
mod tests {
    use candle::{DType, Device};

    use super::*;

    #[test]
    fn new_rejects_mismatched_base() -> Result<()> {
        let dev = Device::Cpu;
        let factors = LoraFactors::new(
            Tensor::zeros((2, 5), DType::F32, &dev)?,
            Tensor::zeros((4, 2), DType::F32, &dev)?,
            1.0,
        )?;
        let wrong = Linear::new(Tensor::zeros((5, 4), DType::F32, &dev)?, None);
        let err = LoraLinear::new(wrong, factors.clone()).expect_err("transposed weight accepted");
        assert!(err.to_string().contains("[5, 4]"), "{err}");
        assert!(err.to_string().contains("(4, 5)"), "{err}");
        let bad_bias = Linear::new(
            Tensor::zeros((4, 5), DType::F32, &dev)?,
            Some(Tensor::zeros(5, DType::F32, &dev)?),
        );
        assert!(LoraLinear::new(bad_bias, factors.clone()).is_err());
        let f64_base = Linear::new(Tensor::zeros((4, 5), DType::F64, &dev)?, None);
        assert!(LoraLinear::new(f64_base, factors).is_err());
        Ok(())
    }

    #[test]
    fn rank_one_input_matches_batched() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = ponder_nn::init::rng_for(1, "w");
        let w = ponder_nn::init::normal((3, 4), 1.0, &mut rng, DType::F64, &dev)?;
        let a = ponder_nn::init::normal((2, 4), 1.0, &mut rng, DType::F64, &dev)?;
        let b = ponder_nn::init::normal((3, 2), 1.0, &mut rng, DType::F64, &dev)?;
        let layer = LoraLinear::new(Linear::new(w, None), LoraFactors::new(a, b, 0.5)?)?;
        let x = ponder_nn::init::normal(4, 1.0, &mut rng, DType::F64, &dev)?;
        let single = layer.forward(&x)?;
        let batched = layer.forward(&x.unsqueeze(0)?)?.squeeze(0)?;
        ponder_nn::assert_close(&single, &batched, 1e-12, 0.0)
    }
}
