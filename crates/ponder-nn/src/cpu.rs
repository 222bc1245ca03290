//! Helpers shared by the CPU kernels of the fused ops: dtype dispatch and contiguity checks.

use candle::{CpuStorage, Layout, Result};

/// The float types the fused CPU kernels run natively.
pub(crate) trait Float:
    num_traits::Float + candle::WithDType + Send + Sync + std::iter::Sum + Copy
{
}

impl Float for f32 {}
impl Float for f64 {}

/// The contiguous slice that `layout` describes inside `storage`, or an error naming `op`.
pub(crate) fn contiguous<'a, T: candle::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle::bail!("{op}: the input must be contiguous, got strides {:?}", layout.stride()),
    }
}

/// Whether the fused CPU kernel can serve a tensor: on the CPU, as f32 or f64.
pub(crate) fn fused_ok(t: &candle::Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle::DType::F32 | candle::DType::F64)
}

/// Number of rows handled per rayon task, so that small rows are batched.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}
