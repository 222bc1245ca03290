//! Kernels of the TTT-Linear layer fused on the CPU for inference: the inner loop's inputs
//! from the projections ([`inputs`]) and the inner loop itself ([`scan`], with each
//! mini-batch's outputs in `outputs` and the row kernels in `rows`). Where autograd
//! tracks an input, off the CPU, in a dtype other than f32 and f64, or for TTT-MLP, the layer
//! runs its composition of Candle ops instead, which is also the kernels' reference in the
//! tests.

pub(crate) mod inputs;
mod outputs;
mod rows;
pub(crate) mod scan;

use candle::{DType, Result, Storage, Tensor};
use ponder_nn::cpu;

/// The float type a fused kernel runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DTypes {
    F32,
    F64,
}

impl DTypes {
    /// The shared float type of `tensors`, where every one is on the CPU in f32 or f64 and none
    /// is tracked by autograd; else `None`.
    pub(crate) fn of(tensors: &[&Tensor]) -> Option<Self> {
        let dtype = match tensors.first()?.dtype() {
            DType::F32 => Self::F32,
            DType::F64 => Self::F64,
            _ => return None,
        };
        let same = tensors[0].dtype();
        tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == same && !t.track_op())
            .then_some(dtype)
    }
}

/// Runs `f` on the contiguous CPU data of `tensors`, all of element type `T`.
pub(crate) fn slices<T: candle::WithDType, R>(
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[T]]) -> R,
) -> Result<R> {
    let contiguous = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| t.storage_and_layout()).collect();
    let data = guards
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(storage) => cpu::contiguous::<T>(storage, layout, "ttt fused kernel"),
            _ => candle::bail!("ttt: the fused kernels run on the CPU"),
        })
        .collect::<Result<Vec<&[T]>>>()?;
    Ok(f(&data))
}

/// One output of a kernel run per head: each head's part, in head order, as one tensor of
/// `shape` on `device`.
pub(crate) fn gather<H, T: candle::WithDType>(
    heads: &[H],
    part: impl Fn(&H) -> &[T],
    shape: impl Into<candle::Shape>,
    device: &candle::Device,
) -> Result<Tensor> {
    let all: Vec<T> = heads.iter().flat_map(|h| part(h).iter().copied()).collect();
    Tensor::from_vec(all, shape, device)
}
