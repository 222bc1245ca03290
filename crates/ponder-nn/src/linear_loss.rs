//! A tied LM head and its cross-entropy in one pass: the per-row loss of the logits `x · wᵀ`
//! without materializing them.
//!
//! At GPT-2's vocabulary the logits of a 512-token chunk are 25.7 M values (103 MB) that are
//! written, read back once for the log-sum-exp and thrown away. The fused CPU kernel computes
//! them one vocabulary tile at a time into a buffer that stays in cache, reduces each tile to a
//! per-row (max, Σ exp) pair, and merges the pairs in tile order, so the result does not depend
//! on the number of threads. It serves inference; where a gradient is needed (either input
//! tracked by autograd) or off the CPU, the same function takes the unfused path.
//!
//! [`linear_probe`] runs the same pass and also keeps what the learned gate reads of each row's
//! distribution: its entropy, `−log max p` and the five largest probabilities.

use candle::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::cpu::{self, Float, Scratch};

mod probe;

pub use probe::{linear_probe, PROBE_WIDTH};
use probe::{push_top, MaxSumExpDot};

/// Largest logits buffer of one tile, in elements (512 KB of f32): it stays in L2.
const TILE_ELEMS: usize = 1 << 17;

/// Rows per pass over the vocabulary, so that tiles stay wide for any number of rows.
const ROW_BLOCK: usize = 1024;

/// Per-row negative log-likelihood of `targets` under the logits `x · wᵀ`, where column
/// `masked.0` (GPT-2's pad row), if any, has the constant logit `masked.1`. Equals
/// [`crate::cross_entropy`] of the materialized logits up to float rounding.
///
/// The loss is f64 for f64 inputs and f32 otherwise: off the fused path, bf16 or f16 logits are
/// cast to f32 before the loss. A target or masked column outside `0..v` is an error.
///
/// # Shapes
/// - `x`: `(n, d)`; `w`: `(v, d)`; `targets`: `(n)` u32; returns `(n)`.
pub fn linear_cross_entropy(
    x: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    masked: Option<(usize, f64)>,
) -> Result<Tensor> {
    let Some(head) = Head::new(x, w, targets, masked, false)? else {
        let logits = x.matmul(&w.t()?)?; // (n, v)
        let logits = match logits.dtype() {
            DType::F32 | DType::F64 => logits,
            _ => logits.to_dtype(DType::F32)?,
        };
        let logits = match masked {
            Some((col, value)) => crate::masks::fill_column(&logits, col, value)?,
            None => logits,
        };
        return crate::cross_entropy(&logits, targets);
    };
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &head)
}

impl CustomOp2 for Head {
    fn name(&self) -> &'static str {
        "ponder-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s1, l1), (s2, l2)])?;
        let shape = if self.probe {
            Shape::from((self.n, PROBE_WIDTH))
        } else {
            Shape::from(self.n)
        };
        Ok((out, shape))
    }
}

impl cpu::SliceOp<2> for Head {
    fn run<T: Float + Scratch + 'static>(&self, [x, w]: [&[T]; 2]) -> Vec<T> {
        self.forward(x, w)
    }
}

/// The sizes of one head evaluation, and whether it probes.
struct Head {
    n: usize,
    d: usize,
    v: usize,
    masked: Option<(usize, f64)>,
    ids: Vec<u32>,
    probe: bool,
}

/// One tile's contribution: per row, the max and Σ exp(z − max) over the tile's columns, and
/// the target logits of the rows whose target falls in the tile; when probing, per row also
/// Σ exp(z − max) · (z − max) and the tile's five largest logits.
struct Partial<T> {
    max: Vec<T>,
    sum: Vec<T>,
    target: Vec<(usize, T)>,
    dot: Vec<T>,
    top: Vec<[T; 5]>,
}

impl Head {
    /// Checks the inputs; `None` where the fused kernel cannot serve them (off the CPU, not
    /// f32 or f64, or tracked by autograd).
    fn new(
        x: &Tensor,
        w: &Tensor,
        targets: &Tensor,
        masked: Option<(usize, f64)>,
        probe: bool,
    ) -> Result<Option<Self>> {
        let op = if probe {
            "linear_probe"
        } else {
            "linear_cross_entropy"
        };
        let (n, d) = x.dims2()?;
        let (v, dw) = w.dims2()?;
        if d != dw || targets.dims() != [n] || targets.dtype() != DType::U32 {
            candle::bail!(
                "{op}: need x (n, d), w (v, d) and u32 targets (n), got {:?}, {:?} and {:?} {:?}",
                x.dims(),
                w.dims(),
                targets.dtype(),
                targets.dims()
            );
        }
        if let Some((col, _)) = masked.filter(|&(col, _)| col >= v) {
            candle::bail!("{op}: masked column {col} is outside the {v} logits");
        }
        let ids = targets.to_vec1::<u32>()?;
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= v) {
            candle::bail!("{op}: target {bad} is outside the vocabulary of {v} logits");
        }
        let fused = x.device().is_cpu()
            && w.device().is_cpu()
            && x.dtype() == w.dtype()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && !x.track_op()
            && !w.track_op();
        Ok(fused.then_some(Self {
            n,
            d,
            v,
            masked,
            ids,
            probe,
        }))
    }

    /// Vocabulary columns per tile for `rows` rows: as many as keep the tile buffer within
    /// [`TILE_ELEMS`], a multiple of 16, at least 16.
    fn tile(&self, rows: usize) -> usize {
        ((TILE_ELEMS / rows.max(1)) / 16 * 16).clamp(16, self.v.next_multiple_of(16))
    }

    /// Every row's loss, [`ROW_BLOCK`] rows at a time.
    fn forward<T: Float + Scratch + 'static>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let mut out = Vec::with_capacity(self.n);
        for start in (0..self.n).step_by(ROW_BLOCK) {
            let end = (start + ROW_BLOCK).min(self.n);
            let rows = Rows {
                x: &x[start * self.d..end * self.d],
                ids: &self.ids[start..end],
            };
            out.extend(self.block(&rows, w));
        }
        out
    }

    /// The losses (or probes) of one block of rows: the tiles in parallel, then each row's
    /// partials merged in tile order.
    fn block<T: Float + Scratch + 'static>(&self, rows: &Rows<T>, w: &[T]) -> Vec<T> {
        let n = rows.ids.len();
        let tile = self.tile(n);
        let tiles = self.v.div_ceil(tile);
        let partial = |t: usize, floor: Option<&[T]>| {
            T::with_scratch(n * tile, |buf| {
                self.tile_partial(rows, w, (t * tile, tile), floor, buf)
            })
        };
        let parts: Vec<Partial<T>> = if self.probe && tiles > 1 {
            // A row's fifth largest logit in the tiles seen so far bounds its fifth largest
            // overall from below, so a tile passes over every logit at or under it and few enter
            // its five: the first tile's bound seeds every task, and each task raises its own
            // copy as it goes. The five values merged are exact whatever the tasks saw.
            let first = partial(0, None);
            let seed: Vec<T> = first.top.iter().map(|top| top[4]).collect();
            let mut parts = vec![first];
            parts.par_extend((1..tiles).into_par_iter().map_init(
                || seed.clone(),
                |floor, t| {
                    let part = partial(t, Some(floor));
                    for (f, top) in floor.iter_mut().zip(&part.top) {
                        if top[4] > *f {
                            *f = top[4];
                        }
                    }
                    part
                },
            ));
            parts
        } else {
            (0..tiles)
                .into_par_iter()
                .map(|t| partial(t, None))
                .collect()
        };
        let mut target = vec![T::nan(); n];
        for p in &parts {
            for &(row, z) in &p.target {
                target[row] = z;
            }
        }
        let mut out = Vec::with_capacity(n * if self.probe { PROBE_WIDTH } else { 1 });
        for (row, &target) in target.iter().enumerate() {
            let max = parts
                .iter()
                .map(|p| p.max[row])
                .fold(T::neg_infinity(), |a, b| if b > a { b } else { a });
            let scale = |p: &Partial<T>| (p.max[row] - max).exp_fast::<false>();
            let sum = parts
                .iter()
                .fold(T::zero(), |s, p| s + p.sum[row] * scale(p));
            let lse = max + sum.ln();
            out.push(lse - target);
            if self.probe {
                // With c = z − max, H = log Σ exp(c) − Σ exp(c) c / Σ exp(c); a tile's
                // Σ exp(z − m) (z − m) moves to the common max as e^(m − max) (dot + (m − max) sum).
                let dot = parts.iter().fold(T::zero(), |s, p| {
                    s + (p.dot[row] + (p.max[row] - max) * p.sum[row]) * scale(p)
                });
                out.push(sum.ln() - dot / sum);
                out.push(sum.ln()); // max p = exp(max − lse)
                let mut top = [T::neg_infinity(); 5];
                for p in &parts {
                    p.top[row].iter().for_each(|&z| push_top(&mut top, z));
                }
                out.extend(top.iter().map(|&z| (z - lse).exp()));
            }
        }
        out
    }

    /// The partial of `rows` over columns `start..start + tile` (fewer in the last tile); a
    /// probe's five largest logits of each row leave out those at or under the row's `floor`.
    fn tile_partial<T: Float + 'static>(
        &self,
        rows: &Rows<T>,
        w: &[T],
        (start, tile): (usize, usize),
        floor: Option<&[T]>,
        buf: &mut [T],
    ) -> Partial<T> {
        let (n, d) = (rows.ids.len(), self.d);
        let cols = tile.min(self.v - start);
        let buf = &mut buf[..n * cols];
        let w = &w[start * d..(start + cols) * d];
        logits_tile(rows.x, w, buf, n, d, cols);
        if let Some((col, value)) = self
            .masked
            .filter(|&(c, _)| (start..start + cols).contains(&c))
        {
            let value = T::from(value).expect("the mask value fits the float type");
            buf.chunks_mut(cols)
                .for_each(|row| row[col - start] = value);
        }
        let mut part = Partial {
            max: Vec::with_capacity(n),
            sum: Vec::with_capacity(n),
            target: Vec::new(),
            dot: Vec::new(),
            top: Vec::new(),
        };
        for (i, (row, &t)) in buf.chunks(cols).zip(rows.ids).enumerate() {
            if self.probe {
                let floor = floor.map_or(T::neg_infinity(), |f| f[i]);
                let (max, sum, dot, top) = cpu::dispatch(MaxSumExpDot { row, floor });
                part.max.push(max);
                part.sum.push(sum);
                part.dot.push(dot);
                part.top.push(top);
            } else {
                let (max, sum) = cpu::dispatch(MaxSumExp { row });
                part.max.push(max);
                part.sum.push(sum);
            }
            let t = t as usize;
            if (start..start + cols).contains(&t) {
                part.target.push((i, row[t - start]));
            }
        }
        part
    }
}

/// A block of rows: their inputs `(n, d)` and targets `(n)`.
struct Rows<'a, T> {
    x: &'a [T],
    ids: &'a [u32],
}

/// `out = x · wᵀ` for `x` `(n, d)` and `w` `(cols, d)`, row-major, on the calling thread.
#[allow(unsafe_code)] // gemm's raw-pointer interface; the lengths are checked first
fn logits_tile<T: 'static + Copy + num_traits::Zero + num_traits::One>(
    x: &[T],
    w: &[T],
    out: &mut [T],
    n: usize,
    d: usize,
    cols: usize,
) {
    assert!(x.len() == n * d && w.len() == cols * d && out.len() == n * cols);
    let (d_, cols_) = (d as isize, cols as isize);
    // SAFETY: the three slices hold exactly the (n, d), (d, cols) and (n, cols) matrices the
    // strides describe (checked above), `out` is exclusive, and `read_dst = false` never
    // reads `out`'s old values.
    unsafe {
        gemm::gemm(
            n,
            cols,
            d,
            out.as_mut_ptr(),
            1,
            cols_,
            false,
            x.as_ptr(),
            1,
            d_,
            w.as_ptr(),
            d_,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// A row's max and Σ exp(z − max) ([`crate::loss::max_sum_exp`]) as a dispatched kernel.
struct MaxSumExp<'a, T> {
    row: &'a [T],
}

impl<T: Float> cpu::Kernel for MaxSumExp<'_, T> {
    type Out = (T, T);
    #[inline(always)]
    fn run<const FMA: bool>(self) -> (T, T) {
        crate::loss::max_sum_exp::<T, FMA>(self.row)
    }
}
