//! The learned gate's probe of each row's next-token distribution ([`linear_probe`]): the
//! fused head's pass that also keeps the entropy, `−log max p` and the five largest
//! probabilities, its row kernel, and the direct form of the same values.

use candle::{DType, Result, Tensor};

use super::Head;
use crate::cpu::{self, Float};

/// Values per row of [`linear_probe`].
pub const PROBE_WIDTH: usize = 8;

/// Per row of the logits `x · wᵀ` (column `masked.0` at `masked.1`, as in
/// [`linear_cross_entropy`]): the negative log-likelihood of the target, the entropy of the
/// distribution, `−log max p`, and the five largest probabilities in decreasing order. On the
/// CPU in f32 or f64 one pass over vocabulary tiles; elsewhere (or tracked) from the
/// materialized logits on the host. No gradient.
///
/// # Shapes
/// - `x`: `(n, d)`; `w`: `(v, d)` with `v >= 5`; `targets`: `(n)` u32; returns
///   `(n, PROBE_WIDTH)` in f64 for f64 inputs and f32 otherwise.
pub fn linear_probe(
    x: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    masked: Option<(usize, f64)>,
) -> Result<Tensor> {
    if w.dim(0)? < 5 {
        candle::bail!("linear_probe: need at least 5 logits, got {:?}", w.dims());
    }
    let Some(head) = Head::new(x, w, targets, masked, true)? else {
        let logits = x.matmul(&w.t()?)?.to_device(&candle::Device::Cpu)?;
        let out_dtype = if x.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let rows = logits.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let ids = targets.to_vec1::<u32>()?;
        let out: Vec<f64> = rows
            .into_iter()
            .zip(ids)
            .flat_map(|(mut row, t)| {
                if let Some((c, value)) = masked {
                    row[c] = value;
                }
                probe_row(&row, t as usize)
            })
            .collect();
        let n = out.len() / PROBE_WIDTH;
        return Tensor::from_vec(out, (n, PROBE_WIDTH), &candle::Device::Cpu)?
            .to_dtype(out_dtype)?
            .to_device(x.device());
    };
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &head)
}

/// [`linear_probe`]'s values of one row of logits, directly (the unfused path).
pub(super) fn probe_row(row: &[f64], target: usize) -> [f64; PROBE_WIDTH] {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = row.iter().map(|v| (v - max).exp()).sum();
    let lse = max + z.ln();
    let entropy = -row.iter().map(|v| (v - lse).exp() * (v - lse)).sum::<f64>();
    let mut sorted = row.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut out = [lse - row[target], entropy, z.ln(), 0.0, 0.0, 0.0, 0.0, 0.0];
    for k in 0..5 {
        out[3 + k] = (sorted[k] - lse).exp();
    }
    out
}

/// `top` (decreasing) with `z` inserted where it belongs among the five largest.
#[inline(always)]
pub(super) fn push_top<T: Float>(top: &mut [T; 5], z: T) {
    if z > top[4] {
        let mut i = 4;
        while i > 0 && z > top[i - 1] {
            top[i] = top[i - 1];
            i -= 1;
        }
        top[i] = z;
    }
}

/// A row's max, `Σ exp(z − max)`, `Σ exp(z − max) (z − max)` and its five largest values above
/// `floor` (−inf where fewer), in blocks that vectorize: a block whose max cannot enter the five
/// is passed over at vector speed while it is in cache for the sums.
pub(super) struct MaxSumExpDot<'a, T> {
    pub(super) row: &'a [T],
    pub(super) floor: T,
}

impl<T: Float> cpu::Kernel for MaxSumExpDot<'_, T> {
    type Out = (T, T, T, [T; 5]);
    #[inline(always)]
    fn run<const FMA: bool>(self) -> (T, T, T, [T; 5]) {
        const BLOCK: usize = 64;
        let max = cpu::max(self.row);
        let (mut c, mut e) = ([T::zero(); BLOCK], [T::zero(); BLOCK]);
        let (mut sum, mut dot) = (T::zero(), T::zero());
        let mut top = [T::neg_infinity(); 5];
        let floor = self.floor;
        for block in self.row.chunks(BLOCK) {
            let (c, e) = (&mut c[..block.len()], &mut e[..block.len()]);
            for ((c, e), &z) in c.iter_mut().zip(e.iter_mut()).zip(block) {
                *c = z - max;
                *e = c.exp_fast::<FMA>();
            }
            sum += cpu::sum(e);
            dot += cpu::dot(e, c);
            let bar = if top[4] > floor { top[4] } else { floor };
            if block.iter().fold(false, |hit, &z| hit | (z > bar)) {
                block
                    .iter()
                    .filter(|&&z| z > bar)
                    .for_each(|&z| push_top(&mut top, z));
            }
        }
        (max, sum, dot, top)
    }
}
