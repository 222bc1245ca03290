//! Every method applied to the shared chunk records: decisions by `ponder-gate`, statistics by
//! `ponder-metrics`. Nothing here runs the model; the oracle sees the whole stream because the
//! records already hold it.
//!
//! Beside each method's row, a comparison tests `ours` and `ours_lh` against Random three ways,
//! so that one lucky or unlucky draw of Random cannot decide it: McNemar's test against the
//! `random` row, Random's spread over `eval.random_seeds` seeds, and a paired interval of each
//! method's loss minus Random's exact expected loss.

use ponder_gate::{Budget, Decision, GateConfig, Method};
use ponder_metrics as m;

use crate::error::{Error, Result};
use crate::records::ChunkRecord;
use crate::summary::{
    Correlation, Correlations, McNemarSummary, MethodSummary, RandomSpread, Summary, SweepPoint,
    VersusRandom,
};
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
pub(crate) fn chosen_losses(records: &[ChunkRecord], decisions: &[Decision]) -> Result<Vec<f64>> {
    records
        .iter()
        .zip(decisions)
        .map(|(r, &d)| r.loss_of(d))
        .collect()
}

/// Checks, before any model work, that `n` chunk-batches are enough for every method of
/// `config` (a reconstruction gate needs at least its calibration window); `selected` is the
/// policy of `ours_lh`, when it runs.
pub fn check_stream_length(
    config: &EvalConfig,
    selected: Option<&GateConfig>,
    n: usize,
) -> Result<()> {
    for method in &config.methods {
        let Some(policy) = method.config().or(selected) else {
            continue;
        };
        if let Some(window) = policy.calibration() {
            if n < window {
                return Err(Error::Data(format!(
                    "the evaluation set has {n} chunk-batches, fewer than the calibration window of {window} of method {method} (raise eval.max_batches, lower eval.batch_size, or add data)"
                )));
            }
        }
    }
    Ok(())
}

/// The policy of `method`, `ours_lh` taken from `selected`, and the decisions it makes.
fn run_listed(
    method: &Method,
    selected: Option<&GateConfig>,
    rho: f64,
    gates: &[ponder_gate::StreamRecord],
) -> Result<MethodRun> {
    let policy = method.resolve(selected).map_err(Error::from)?;
    let mut run = run_method(policy, rho, gates)?;
    run.name = method.name();
    Ok(run)
}

/// Per chunk-batch: does `run` agree with the oracle's set?
fn agreement(run: &MethodRun, oracle: &[bool]) -> Vec<bool> {
    run.updated()
        .iter()
        .zip(oracle)
        .map(|(a, b)| a == b)
        .collect()
}

/// Applies every method of `config` to `records`; `selected` is the policy of `ours_lh` (an
/// error when `ours_lh` is listed and it is `None`).
pub fn compare(
    records: &[ChunkRecord],
    config: &EvalConfig,
    selected: Option<&GateConfig>,
) -> Result<Comparison> {
    config.check()?;
    let n = records.len();
    let rho = config.budget;
    let gates: Vec<_> = records.iter().map(ChunkRecord::gate_record).collect();
    let runs = config
        .methods
        .iter()
        .map(|method| run_listed(method, selected, rho, &gates))
        .collect::<Result<Vec<_>>>()?;
    let find = |name: &str| runs.iter().find(|r| r.name == name);
    // The reference of Recovery and decision accuracy: the oracle's run if it was asked for.
    let oracle_run = match find("oracle") {
        Some(run) => run.clone(),
        None => run_method(&GateConfig::oracle_global(), rho, &gates)?,
    };
    let oracle = oracle_run.updated();
    let skip: Vec<f64> = records.iter().map(|r| r.skip_loss).collect();
    let oracle_losses = chosen_losses(records, &oracle_run.decisions)?;
    let resampling = m::Resampling {
        resamples: config.bootstrap_resamples,
        level: config.ci_level,
        seed: config.seed,
    };
    // The loss of the path each listed method took, chunk-batch by chunk-batch.
    let chosen = runs
        .iter()
        .map(|run| chosen_losses(records, &run.decisions))
        .collect::<Result<Vec<_>>>()?;
    let summarize = |run: &MethodRun, chosen: &[f64]| -> Result<MethodSummary> {
        let updated = run.updated();
        let stats = m::method_stats(&skip, chosen, &oracle_losses, resampling)?;
        let steps: Vec<u32> = run.decisions.iter().map(|d| d.steps()).collect();
        Ok(MethodSummary {
            method: run.name.clone(),
            perplexity: Some(m::perplexity(stats.loss.point)).filter(|p| p.is_finite()),
            loss: stats.loss,
            update_rate: m::update_rate(&updated)?,
            cost_units: m::mean_cost(&steps)?,
            recovery: stats.recovery,
            recovery_ci: stats.recovery_ci,
            decision_accuracy: m::decision_accuracy(&updated, &oracle)?,
        })
    };
    let methods = runs
        .iter()
        .zip(&chosen)
        .map(|(run, chosen)| summarize(run, chosen))
        .collect::<Result<Vec<_>>>()?;
    let random_run = find("random");
    let mut mcnemar = Vec::new();
    for name in ["ours", ponder_gate::SELECTED] {
        if let (Some(run), Some(random)) = (find(name), random_run) {
            let t = m::mcnemar(&agreement(run, &oracle), &agreement(random, &oracle))?;
            mcnemar.push(McNemarSummary {
                method: run.name.clone(),
                against: random.name.clone(),
                n10: t.n10,
                n01: t.n01,
                chi2: t.chi2,
                p_chi2: t.p_chi2,
                p_exact: t.p_exact,
            });
        }
    }
    let (random, versus_random) = match random_run {
        None => (None, Vec::new()),
        Some(_) => {
            let update: Vec<f64> = records.iter().map(|r| r.update_loss).collect();
            let expected = m::random_expected_losses(&skip, &update, rho)?;
            let versus = runs
                .iter()
                .zip(&chosen)
                .map(|(run, chosen)| {
                    Ok(VersusRandom {
                        method: run.name.clone(),
                        difference: m::paired_difference(chosen, &expected, resampling)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let reference = Reference {
                skip: &skip,
                oracle_losses: &oracle_losses,
                oracle: &oracle,
            };
            let spread = random_spread(config, records, &gates, &expected, &reference)?;
            (Some(spread), versus)
        }
    };
    let sweep = sweep(records, config, selected, &gates)?;
    Ok(Comparison {
        summary: Summary {
            chunks: n,
            budget: rho,
            methods,
            mcnemar,
            random,
            versus_random,
            sweep,
        },
        correlations: correlations(records)?,
        runs,
    })
}

/// What every method is scored against: the SKIP losses, and the oracle's chosen losses and
/// decisions.
struct Reference<'a> {
    skip: &'a [f64],
    oracle_losses: &'a [f64],
    oracle: &'a [bool],
}

/// Random's figures over seeds 42, 43, … (`eval.random_seeds` of them), and its expectation.
/// Only point figures are kept over the seeds, so no interval is drawn for them.
fn random_spread(
    config: &EvalConfig,
    records: &[ChunkRecord],
    gates: &[ponder_gate::StreamRecord],
    expected: &[f64],
    reference: &Reference<'_>,
) -> Result<RandomSpread> {
    let first = ponder_gate::random::ORIGINAL_RANDOM_SEED;
    let seeds: Vec<u64> = (first..).take(config.random_seeds).collect();
    let (skip, oracle) = (m::mean(reference.skip)?, m::mean(reference.oracle_losses)?);
    let recovery = |loss: f64| m::oracle_recovery(skip, loss, oracle).ok();
    let (mut loss, mut rate, mut accuracy, mut recoveries) = (vec![], vec![], vec![], vec![]);
    for &seed in &seeds {
        let run = run_method(&GateConfig::Random { seed }, config.budget, gates)?;
        let updated = run.updated();
        let l = m::mean(&chosen_losses(records, &run.decisions)?)?;
        loss.push(l);
        rate.push(m::update_rate(&updated)?);
        accuracy.push(m::decision_accuracy(&updated, reference.oracle)?);
        recoveries.push(recovery(l));
    }
    let recoveries: Option<Vec<f64>> = recoveries.into_iter().collect();
    let expected_loss = m::mean(expected)?;
    Ok(RandomSpread {
        loss: m::spread(&loss)?,
        update_rate: m::spread(&rate)?,
        decision_accuracy: m::spread(&accuracy)?,
        recovery: recoveries.map(|r| m::spread(&r)).transpose()?,
        expected_recovery: recovery(expected_loss),
        expected_loss,
        seeds,
    })
}

/// The loss-vs-budget sweep of the oracle and of each listed threshold controller.
fn sweep(
    records: &[ChunkRecord],
    config: &EvalConfig,
    selected: Option<&GateConfig>,
    gates: &[ponder_gate::StreamRecord],
) -> Result<Vec<SweepPoint>> {
    let fixed = [
        GateConfig::original_recon(),
        GateConfig::original_random(),
        GateConfig::pid_recommended(),
    ];
    let mut swept: Vec<Method> = vec![Method::Policy(GateConfig::oracle_global())];
    swept.extend(
        fixed
            .into_iter()
            .map(Method::Policy)
            .filter(|m| config.methods.contains(m)),
    );
    if config.methods.contains(&Method::Selected) {
        swept.push(Method::Selected);
    }
    let all: Vec<usize> = (0..records.len()).collect();
    config
        .budget_sweep
        .iter()
        .map(|&rho| {
            let losses = swept
                .iter()
                .map(|method| {
                    let run = run_listed(method, selected, rho, gates)?;
                    let chosen = chosen_losses(records, &run.decisions)?;
                    Ok((run.name, m::mean_at(&chosen, &all)?))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(SweepPoint {
                budget: rho,
                losses,
            })
        })
        .collect()
}
