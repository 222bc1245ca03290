//! Mixed precision for training (`precision = "f32" | "bf16"` in `[backbone]` and `[fast]`).
//!
//! Master weights and the AdamW moments are always f32 [`Var`]s. With bf16 every step runs its
//! forward and backward on bf16 casts of the weights, made with `to_dtype`: the cast is an
//! autograd op, so each gradient flows back through it and reaches its f32 var as an f32
//! tensor. Losses are always computed in f32 (logits are cast before the cross-entropy).
//!
//! Candle 0.11's CPU matmul has no bf16 kernel (it accepts f16, f32 and f64 only), so on the CPU
//! bf16 is emulated: the weights are rounded to bf16 and cast back, and the maths runs in f32.
//! That keeps every bf16 code path (casts, gradients through them, f32 losses, checkpoints)
//! testable on a machine without a GPU, but it is slower than f32 and never faster.
//! On CUDA and Metal the weights and activations are bf16.

use candle::{DType, Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The compute precision of a training loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// f32 master weights and optimizer state, bf16 forward and backward, f32 loss.
    Bf16,
}

impl Precision {
    /// The dtype of a step's weights and activations on `device`: bf16 only for
    /// [`Precision::Bf16`] on a device whose matmul supports it (not Candle's CPU, where bf16
    /// is emulated in f32).
    pub fn compute_dtype(self, device: &Device) -> DType {
        match self {
            Self::Bf16 if !device.is_cpu() => DType::BF16,
            _ => DType::F32,
        }
    }

    /// The weight a step computes with: `w` itself for f32; its bf16 cast; on the CPU its bf16
    /// rounding in f32. Every form is differentiable in `w`.
    ///
    /// # Shapes
    /// - `w`: any shape; returns the same shape.
    pub fn cast(self, w: &Tensor) -> Result<Tensor> {
        match self {
            Self::F32 => Ok(w.clone()),
            Self::Bf16 => w
                .to_dtype(DType::BF16)?
                .to_dtype(self.compute_dtype(w.device())),
        }
    }

    /// Logs a warning when this precision is slower than f32 on `device` (bf16 on the CPU);
    /// `what` names the training loop.
    pub fn warn_if_slow(self, device: &Device, what: &str) {
        if self == Self::Bf16 && device.is_cpu() {
            tracing::warn!(
                "{what}: precision = \"bf16\" on the CPU is slower than f32: Candle has no CPU \
                 bf16 matmul, so the weights are rounded to bf16 and the maths runs in f32; \
                 use it to check the bf16 path, and f32 for speed (bf16 pays off on CUDA and \
                 Metal)"
            );
        }
    }
}

/// `(name, cast tensor)` for every var, as [`Precision::cast`] makes them.
pub fn cast_vars(vars: &[(String, Var)], precision: Precision) -> Result<Vec<(String, Tensor)>> {
    vars.iter()
        .map(|(k, v)| Ok((k.clone(), precision.cast(v.as_tensor())?)))
        .collect()
}

/// `x` in f32, where losses are computed (a no-op for f32).
///
/// # Shapes
/// - `x`: any shape; returns the same shape.
pub fn to_f32(x: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_names_and_nothing_else() {
        #[derive(Deserialize)]
        struct T {
            precision: Precision,
        }
        let p = |s: &str| toml::from_str::<T>(&format!("precision = {s:?}")).map(|t| t.precision);
        assert_eq!(p("f32").unwrap(), Precision::F32);
        assert_eq!(p("bf16").unwrap(), Precision::Bf16);
        let err = p("fp16").err().unwrap().to_string();
        assert!(err.contains("unknown variant `fp16`"), "{err}");
    }

    #[test]
    fn f32_is_the_identity_and_bf16_rounds_on_the_cpu() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[1.0f32, 1.0 + 1.0 / 512.0, -3.3], &dev)?;
        assert_eq!(
            Precision::F32.cast(&w)?.to_vec1::<f32>()?,
            w.to_vec1::<f32>()?
        );
        assert_eq!(Precision::F32.compute_dtype(&dev), DType::F32);
        assert_eq!(Precision::Bf16.compute_dtype(&dev), DType::F32);
        let r = Precision::Bf16.cast(&w)?;
        assert_eq!(r.dtype(), DType::F32);
        // bf16 keeps 8 significant bits: 1 + 2⁻⁹ rounds to 1, −3.3 to −3.296875.
        assert_eq!(r.to_vec1::<f32>()?, vec![1.0, 1.0, -3.296_875]);
        Ok(())
    }

    #[test]
    fn the_gradient_reaches_the_f32_var_through_the_cast() -> Result<()> {
        let var = Var::new(&[0.5f32, -2.0, 3.0], &Device::Cpu)?;
        let y = Precision::Bf16.cast(var.as_tensor())?.sqr()?.sum_all()?;
        let grads = y.backward()?;
        let g = grads.get(var.as_tensor()).expect("a gradient for the var");
        assert_eq!(g.dtype(), DType::F32);
        assert_eq!(g.to_vec1::<f32>()?, vec![1.0, -4.0, 6.0]);
        Ok(())
    }
}
