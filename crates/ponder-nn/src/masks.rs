//! Masks applied in place: writing a constant into one column of a matrix without copying it.

use candle::backend::BackendStorage;
use candle::{CpuStorage, InplaceOp1, Layout, Result, Tensor};

/// Returns `x` with column `col` of its last dimension set to `value`.
///
/// On the CPU the write happens in place on `x`'s storage (no copy of a large logits matrix),
/// so `x` must not be shared; elsewhere a masked copy is returned. Gradients through the column
/// are the caller's concern: for a pad logit set to −1e9, the softmax gradient there is 0.
///
/// # Shapes
/// - `x`: `(..., n)` with `col < n`; returns the same shape.
pub fn fill_column(x: &Tensor, col: usize, value: f64) -> Result<Tensor> {
    let n = x.dim(candle::D::Minus1)?;
    if col >= n {
        candle::bail!(
            "fill_column: column {col} is outside the last dimension of {:?}",
            x.dims()
        );
    }
    if x.device().is_cpu() && x.is_contiguous() {
        x.inplace_op1(&FillColumn { col, value })?;
        Ok(x.clone())
    } else {
        let mut mask = vec![0f32; n];
        mask[col] = 1.0;
        let mask = Tensor::from_vec(mask, n, x.device())?.to_dtype(x.dtype())?; // (n)
        let keep = mask.affine(-1.0, 1.0)?; // (n)
        x.broadcast_mul(&keep)?.broadcast_add(&(mask * value)?)
    }
}

struct FillColumn {
    col: usize,
    value: f64,
}

impl InplaceOp1 for FillColumn {
    fn name(&self) -> &'static str {
        "ponder-fill-column"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let n = layout.dims()[layout.dims().len() - 1];
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle::bail!("{}: the input must be contiguous", self.name());
        };
        fn fill<T: Copy>(data: &mut [T], n: usize, col: usize, v: T) {
            data.chunks_mut(n).for_each(|row| row[col] = v);
        }
        match storage {
            CpuStorage::F32(d) => fill(&mut d[start..end], n, self.col, self.value as f32),
            CpuStorage::F64(d) => fill(&mut d[start..end], n, self.col, self.value),
            CpuStorage::BF16(d) => fill(
                &mut d[start..end],
                n,
                self.col,
                half::bf16::from_f64(self.value),
            ),
            CpuStorage::F16(d) => fill(
                &mut d[start..end],
                n,
                self.col,
                half::f16::from_f64(self.value),
            ),
            other => candle::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{DType, Device};

    #[test]
    fn fills_one_column() -> Result<()> {
        let x = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
        let y = fill_column(&x, 2, -1e9)?.to_vec2::<f32>()?;
        for row in y {
            assert_eq!(row, vec![0.0, 0.0, -1e9, 0.0]);
        }
        assert!(fill_column(&x, 4, 0.0).is_err());
        Ok(())
    }
}
