//! The files a comparison writes into its run folder:
//!
//! - `chunks.csv`: one row per chunk-batch (losses, signals, every method's decision and the
//!   controllers' thresholds);
//! - `summary.json` and `correlation.json`: deterministic, the same bytes for the same config,
//!   seed and data;
//! - `cost.json`: cost per method in the original's units, in FLOPs counted from the shapes, and
//!   in measured seconds, with the measured cost of the comparison against one UPDATE forward
//!   (wall-clock figures, so not byte-identical between runs).

use std::fmt::Write;

use ponder_gate::Decision;
use serde::{Deserialize, Serialize};

use crate::compare::Comparison;
use crate::error::Result;
use crate::flops::ChunkFlops;
use crate::records::{ChunkRecord, PassTimes};
use ponder_experiment::run_dir::{write_atomic, write_json};
use ponder_experiment::RunFolder;

/// One method's cost per chunk-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodCost {
    /// The method.
    pub method: String,
    /// Original units (SKIP 1, UPDATE_k 1 + 2k), mean per chunk-batch.
    pub cost_units: f64,
    /// FLOPs per chunk-batch of a deployment that runs only the chosen path.
    pub flops: f64,
    /// Seconds per chunk-batch of such a deployment, from the part times of the probes (0 when
    /// none was timed).
    pub seconds: f64,
}

/// What `cost.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// FLOPs of the parts of one chunk-batch.
    pub flops: ChunkFlops,
    /// Measured time of the pass, summed over the chunk-batches computed in this process: part
    /// by part over the probes, whole over the rest ([`crate::records::PassMode`]).
    pub times: PassTimes,
    /// Measured seconds of the comparison pass as it runs (the SKIP head beside the fast layer)
    /// over one UPDATE forward (backbone, fast layer and one head, timed on the probes): what
    /// sharing one pass among all methods costs.
    pub comparison_over_update: Option<f64>,
    /// The same ratio in FLOPs.
    pub comparison_over_update_flops: f64,
    /// Measured UPDATE_1 over SKIP seconds per chunk-batch.
    pub update_over_skip: Option<f64>,
    /// Per method.
    pub methods: Vec<MethodCost>,
}

/// The cost report of `comparison`.
pub fn cost_report(comparison: &Comparison, flops: ChunkFlops, times: PassTimes) -> CostReport {
    let (skip_s, update_s) = (times.skip_forward(), times.update_forward());
    let methods = comparison
        .runs
        .iter()
        .map(|run| {
            let n = run.decisions.len().max(1) as f64;
            let steps: Vec<u32> = run.decisions.iter().map(|d| d.steps()).collect();
            // SKIP's cost, plus each UPDATE_k's extra cost at the rate it was chosen.
            let (mut flops_mean, mut seconds) = (flops.skip(), times.skip_forward().unwrap_or(0.0));
            for k in ponder_gate::UPDATE_STEPS {
                let rate = steps.iter().filter(|&&s| s == k).count() as f64 / n;
                if rate > 0.0 {
                    let d = Decision::Update(k);
                    flops_mean += rate * (flops.path(d).unwrap_or(f64::NAN) - flops.skip());
                    seconds += rate
                        * (times.forward(d).unwrap_or(0.0) - times.skip_forward().unwrap_or(0.0));
                }
            }
            MethodCost {
                method: run.name.clone(),
                cost_units: ponder_metrics::mean_cost(&steps).unwrap_or(f64::NAN),
                flops: flops_mean,
                seconds,
            }
        })
        .collect();
    CostReport {
        comparison_over_update: times.comparison().zip(update_s).map(|(c, u)| c / u),
        comparison_over_update_flops: flops.comparison() / flops.update(),
        update_over_skip: update_s.zip(skip_s).map(|(u, s)| u / s),
        flops,
        times,
        methods,
    }
}

/// The per-chunk table.
pub fn chunks_csv(records: &[ChunkRecord], comparison: &Comparison) -> String {
    let mut s = String::from(
        "index,batch,position,skip_loss,update_loss,advantage,recon_init,recon,recon_after",
    );
    let traced: Vec<_> = comparison
        .runs
        .iter()
        .filter(|r| r.thresholds.iter().any(Option::is_some))
        .collect();
    for run in &comparison.runs {
        let _ = write!(s, ",{}", run.name);
    }
    for run in &traced {
        let _ = write!(s, ",{}_threshold", run.name);
    }
    s.push('\n');
    for (i, r) in records.iter().enumerate() {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.index,
            r.batch,
            r.position,
            r.skip_loss,
            r.update_loss,
            r.advantage(),
            r.recon_init,
            r.recon,
            r.recon_after
        );
        for run in &comparison.runs {
            let _ = write!(s, ",{}", run.decisions[i].steps());
        }
        for run in &traced {
            match run.thresholds[i] {
                Some(t) => {
                    let _ = write!(s, ",{t}");
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

/// Writes `chunks.csv`, `summary.json`, `correlation.json` and `cost.json` into `folder`.
pub fn write_outputs(
    folder: &RunFolder,
    records: &[ChunkRecord],
    comparison: &Comparison,
    cost: &CostReport,
) -> Result<()> {
    write_atomic(&folder.chunks(), chunks_csv(records, comparison).as_bytes())?;
    write_json(&folder.summary(), &comparison.summary)?;
    write_json(&folder.correlation(), &comparison.correlations)?;
    Ok(write_json(&folder.cost(), cost)?)
}
