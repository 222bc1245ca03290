//! The LoRA fast layer inside the PonderTTT LM: the per-block statistics of its UPDATE_k
//! averaged into the reconstruction statistics every fast layer reports.

use candle::{Result, Tensor};
use ponder_ttt::TttStats;

/// Averages per-sequence block statistics into [`TttStats`] (one entry per block).
pub(crate) fn mean_stats(per_seq: &[[Vec<Tensor>; 3]]) -> Result<TttStats> {
    let mean = |which: usize| -> Result<Tensor> {
        let n_blocks = per_seq[0][which].len();
        let blocks = (0..n_blocks)
            .map(|m| {
                let vals: Vec<Tensor> = per_seq.iter().map(|s| s[which][m].clone()).collect();
                Tensor::stack(&vals, 0)?.mean(0)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&blocks, 0)
    };
    Ok(TttStats {
        ssl_target_variance: None,
        init: mean(0)?,
        step_0: mean(1)?,
        step_1: mean(2)?,
    })
}
