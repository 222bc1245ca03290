//! Every method applied to the shared chunk records: decisions by `ponder-gate`, statistics by
//! `ponder-metrics`. Nothing here runs the model; the oracle sees the whole stream because the
//! records already hold it.

use ponder_gate::{Budget, Decision, GateConfig};
use ponder_metrics as m;
use ponder_metrics::Interval;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::records::ChunkRecord;
use ponder_experiment::EvalConfig;

/// One method's decisions over the stream, and the threshold trace of controllers.
#[derive(Debug, Clone)]
pub struct MethodRun {
    /// The method's one name (`ours`, `oracle`, …).
    pub name: String,
    /// One decision per chunk-batch.
    pub decisions: Vec<Decision>,
    /// The threshold after each decision, for controllers that keep one.
    pub thresholds: Vec<Option<f64>>,
}

impl MethodRun {
    /// Which chunk-batches were updated.
    pub fn updated(&self) -> Vec<bool> {
        self.decisions.iter().map(|d| d.is_update()).collect()
    }
}

/// One method's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// The short name.
    pub method: String,
    /// Mean next-token loss of the chosen paths, nats/token, with its bootstrap interval.
    pub loss: Interval,
    /// `exp(loss)`; `None` when it overflows (a loss above ~709 nats/token, as a diverging update
    /// gives), so that the summary stays valid JSON.
    pub perplexity: Option<f64>,
    /// Fraction of chunk-batches updated (calibration included).
    pub update_rate: f64,
    /// Mean cost per chunk-batch in the original's units (SKIP 1, UPDATE_k 1 + 2k).
    pub cost_units: f64,
    /// Oracle Recovery `(L_SKIP − L) / (L_SKIP − L_Oracle)`; `None` when the oracle equals
    /// SKIP.
    pub recovery: Option<f64>,
    /// Its paired bootstrap interval (decisions held fixed); `None` when some resample has no
    /// oracle gain to recover (too few chunk-batches).
    pub recovery_ci: Option<[f64; 2]>,
    /// Fraction of decisions agreeing with the oracle's top-ρ set.
    pub decision_accuracy: f64,
}

/// McNemar's test of Ours against Random, each scored by agreement with the oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemarSummary {
    /// The method tested (`ours`).
    pub method: String,
    /// The method it is tested against (`random`).
    pub against: String,
    /// Chunk-batches where only the method agrees with the oracle.
    pub n10: u64,
    /// Chunk-batches where only the other agrees.
    pub n01: u64,
    /// χ² with continuity correction.
    pub chi2: f64,
    /// Its p-value (χ², 1 degree of freedom).
    pub p_chi2: f64,
    /// The exact two-sided binomial p-value.
    pub p_exact: f64,
}

/// One point of the loss-vs-budget sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// ρ.
    pub budget: f64,
    /// Loss of each swept method at this budget, by name.
    pub losses: Vec<(String, f64)>,
}

/// Pearson and Spearman correlation of one quantity with the advantage; `None` in
/// [`Correlations`] where a column is constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Pearson r.
    pub pearson: f64,
    /// Its two-sided p-value.
    pub pearson_p: f64,
    /// Spearman ρ.
    pub spearman: f64,
    /// Its two-sided p-value.
    pub spearman_p: f64,
}

/// What `correlation.json` holds: each candidate signal against the advantage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Chunk-batches.
    pub n: usize,
    /// The gating signal `mean(step_0)`.
    pub recon: Option<Correlation>,
    /// `mean(init)`, the "full-sequence" signal of an earlier version of the original.
    pub recon_init: Option<Correlation>,
    /// The SKIP loss.
    pub skip_loss: Option<Correlation>,
    /// `mean(step_0) − mean(step_1)`.
    pub ttt_improvement: Option<Correlation>,
}

/// What `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Chunk-batches compared.
    pub chunks: usize,
    /// ρ.
    pub budget: f64,
    /// Each method, in the config's order.
    pub methods: Vec<MethodSummary>,
    /// Ours against Random (when both ran).
    pub mcnemar: Option<McNemarSummary>,
    /// The loss-vs-budget sweep.
    pub sweep: Vec<SweepPoint>,
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The summary.
    pub summary: Summary,
    /// Correlations with the advantage.
    pub correlations: Correlations,
    /// Each method's decisions.
    pub runs: Vec<MethodRun>,
}

impl std::fmt::Display for Summary {
    /// One row per method (loss, perplexity, update rate, Recovery, decision accuracy), then
    /// McNemar's test when it ran.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:>8} {:>9} {:>7} {:>9} {:>9}",
            "method", "loss", "ppl", "rate", "recovery", "accuracy"
        )?;
        for m in &self.methods {
            writeln!(
                f,
                "{:<16} {:>8.4} {:>9} {:>6.1}% {:>9} {:>8.1}%",
                m.method,
                m.loss.point,
                m.perplexity
                    .map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "-".into()),
                100.0 * m.update_rate,
                m.recovery
                    .map(|r| format!("{:.1}%", 100.0 * r))
                    .unwrap_or_else(|| "-".into()),
                100.0 * m.decision_accuracy
            )?;
        }
        if let Some(t) = &self.mcnemar {
            writeln!(
                f,
                "McNemar {} vs {} (agreement with the oracle): n10 = {}, n01 = {}, p = {:.3e} (exact), {:.3e} (chi2)",
                t.method, t.against, t.n10, t.n01, t.p_exact, t.p_chi2
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Correlations {
    /// The gating signal against the advantage, when it is defined.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = &self.recon {
            writeln!(
                f,
                "signal vs advantage: Pearson r = {:.3} (p = {:.2e}), Spearman = {:.3}",
                c.pearson, c.pearson_p, c.spearman
            )?;
        }
        Ok(())
    }
}

/// The decisions of `method` under budget `rho` on the records.
pub fn run_method(
    method: &GateConfig,
    rho: f64,
    gates: &[ponder_gate::StreamRecord],
) -> Result<MethodRun> {
    let trace = ponder_gate::stream::decide_stream(method, Budget::new(rho)?, gates)?;
    Ok(MethodRun {
        name: method.name(),
        decisions: trace.decisions,
        thresholds: trace.thresholds,
    })
}

/// The correlation of `x` with `y`, `None` when either is constant.
fn correlation(x: &[f64], y: &[f64]) -> Result<Option<Correlation>> {
    let constant = |v: &[f64]| v.iter().all(|a| *a == v[0]);
    if x.is_empty() || constant(x) || constant(y) {
        return Ok(None);
    }
    let p = m::pearson(x, y)?;
    let s = m::spearman(x, y)?;
    Ok(Some(Correlation {
        pearson: p.r,
        pearson_p: p.p,
        spearman: s.r,
        spearman_p: s.p,
    }))
}

/// Every quantity against the advantage.
pub fn correlations(records: &[ChunkRecord]) -> Result<Correlations> {
    let col = |f: fn(&ChunkRecord) -> f64| records.iter().map(f).collect::<Vec<f64>>();
    let adv = col(ChunkRecord::advantage);
    Ok(Correlations {
        n: records.len(),
        recon: correlation(&col(|r| r.recon), &adv)?,
        recon_init: correlation(&col(|r| r.recon_init), &adv)?,
        skip_loss: correlation(&col(|r| r.skip_loss), &adv)?,
        ttt_improvement: correlation(&col(|r| r.recon - r.recon_after), &adv)?,
    })
}

/// The loss of the path each decision takes, chunk by chunk.
fn chosen_losses(records: &[ChunkRecord], decisions: &[Decision]) -> Result<Vec<f64>> {
    records
        .iter()
        .zip(decisions)
        .map(|(r, &d)| r.loss_of(d))
        .collect()
}

/// Checks, before any model work, that `n` chunk-batches are enough for every method of
/// `config` (a reconstruction gate needs at least its calibration window).
pub fn check_stream_length(config: &EvalConfig, n: usize) -> Result<()> {
    for method in &config.methods {
        if let Some(window) = method.config().calibration() {
            if n < window {
                return Err(Error::Data(format!(
                    "the evaluation set has {n} chunk-batches, fewer than the calibration window of {window} of method {method} (raise eval.max_batches, lower eval.batch_size, or add data)"
                )));
            }
        }
    }
    Ok(())
}

/// Applies every method of `config` to `records`.
pub fn compare(records: &[ChunkRecord], config: &EvalConfig) -> Result<Comparison> {
    config.check()?;
    let n = records.len();
    let gates: Vec<_> = records.iter().map(ChunkRecord::gate_record).collect();
    let runs = config
        .methods
        .iter()
        .map(|method| run_method(method.config(), config.budget, &gates))
        .collect::<Result<Vec<_>>>()?;
    let find = |name: &str| runs.iter().find(|r| r.name == name);
    // The reference of Recovery and decision accuracy: the oracle's run if it was asked for.
    let oracle_run = match find("oracle") {
        Some(run) => run.clone(),
        None => run_method(&GateConfig::oracle_global(), config.budget, &gates)?,
    };
    let oracle = oracle_run.updated();
    let skip: Vec<f64> = records.iter().map(|r| r.skip_loss).collect();
    let oracle_losses = chosen_losses(records, &oracle_run.decisions)?;
    let resampling = m::Resampling {
        resamples: config.bootstrap_resamples,
        level: config.ci_level,
        seed: config.seed,
    };
    let mut methods = Vec::new();
    for run in &runs {
        let updated = run.updated();
        let chosen = chosen_losses(records, &run.decisions)?;
        let stats = m::method_stats(&skip, &chosen, &oracle_losses, resampling)?;
        let steps: Vec<u32> = run.decisions.iter().map(|d| d.steps()).collect();
        methods.push(MethodSummary {
            method: run.name.clone(),
            perplexity: Some(m::perplexity(stats.loss.point)).filter(|p| p.is_finite()),
            loss: stats.loss,
            update_rate: m::update_rate(&updated)?,
            cost_units: m::mean_cost(&steps)?,
            recovery: stats.recovery,
            recovery_ci: stats.recovery_ci,
            decision_accuracy: m::decision_accuracy(&updated, &oracle)?,
        });
    }
    let mcnemar = match (find("ours"), find("random")) {
        (Some(ours), Some(random)) => {
            let agree = |r: &MethodRun| -> Vec<bool> {
                r.updated()
                    .iter()
                    .zip(&oracle)
                    .map(|(a, b)| a == b)
                    .collect()
            };
            let t = m::mcnemar(&agree(ours), &agree(random))?;
            Some(McNemarSummary {
                method: ours.name.clone(),
                against: random.name.clone(),
                n10: t.n10,
                n01: t.n01,
                chi2: t.chi2,
                p_chi2: t.p_chi2,
                p_exact: t.p_exact,
            })
        }
        _ => None,
    };
    let swept: Vec<GateConfig> = [
        GateConfig::oracle_global(),
        GateConfig::original_recon(),
        GateConfig::original_random(),
        GateConfig::pid_recommended(),
    ]
    .into_iter()
    .filter(|g| g.name() == "oracle" || config.methods.iter().any(|m| m.config() == g))
    .collect();
    let all: Vec<usize> = (0..n).collect();
    let sweep = config
        .budget_sweep
        .iter()
        .map(|&rho| {
            let losses = swept
                .iter()
                .map(|method| {
                    let run = run_method(method, rho, &gates)?;
                    let chosen = chosen_losses(records, &run.decisions)?;
                    Ok((run.name, m::mean_at(&chosen, &all)?))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(SweepPoint {
                budget: rho,
                losses,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Comparison {
        summary: Summary {
            chunks: n,
            budget: config.budget,
            methods,
            mcnemar,
            sweep,
        },
        correlations: correlations(records)?,
        runs,
    })
}
