//! What a comparison writes and prints: each method's figures ([`MethodSummary`]), the tests
//! against Random ([`McNemarSummary`], [`RandomSpread`], [`VersusRandom`]), the budget sweep
//! and the signal's correlations. `summary.json` and `correlation.json` are these types.

use ponder_metrics::{Interval, Spread};
use serde::{Deserialize, Serialize};

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

/// McNemar's test of a controller (`ours`, `ours_lh`) against Random, each scored by agreement
/// with the oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemarSummary {
    /// The method tested (`ours` or `ours_lh`).
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
    /// `ours` and `ours_lh` against Random (those that ran beside `random`).
    pub mcnemar: Vec<McNemarSummary>,
    /// Random over many seeds and in expectation (when `random` ran).
    pub random: Option<RandomSpread>,
    /// Every method's mean loss minus Random's expected loss, with a paired interval (when
    /// `random` ran).
    pub versus_random: Vec<VersusRandom>,
    /// The loss-vs-budget sweep.
    pub sweep: Vec<SweepPoint>,
}

/// Random beyond its one `random` row: the spread of its figures over `eval.random_seeds` seeds,
/// and its exact expectation from the records (`ρ·L_update + (1 − ρ)·L_skip` per chunk-batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomSpread {
    /// The seeds drawn (42, 43, …; 42 is the `random` row).
    pub seeds: Vec<u64>,
    /// Mean loss over the seeds.
    pub loss: Spread,
    /// Realized update rate over the seeds.
    pub update_rate: Spread,
    /// Decision accuracy over the seeds.
    pub decision_accuracy: Spread,
    /// Oracle Recovery over the seeds; `None` when the oracle equals SKIP.
    pub recovery: Option<Spread>,
    /// Random's expected loss.
    pub expected_loss: f64,
    /// The Oracle Recovery of the expected loss; `None` when the oracle equals SKIP.
    pub expected_recovery: Option<f64>,
}

/// A method's mean loss minus Random's expected loss over the same chunk-batches; negative is
/// better than Random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersusRandom {
    /// The method.
    pub method: String,
    /// The difference, with its paired bootstrap interval.
    pub difference: Interval,
}

impl std::fmt::Display for Summary {
    /// One row per method (loss, perplexity, update rate, Recovery, decision accuracy), then
    /// McNemar's test when it ran.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The method column fits the longest name (`signal_topk_neg_prev_loss`).
        let w = self
            .methods
            .iter()
            .map(|m| m.method.len())
            .fold(16, usize::max);
        writeln!(
            f,
            "{:<w$} {:>8} {:>9} {:>7} {:>9} {:>9}",
            "method", "loss", "ppl", "rate", "recovery", "accuracy"
        )?;
        for m in &self.methods {
            writeln!(
                f,
                "{:<w$} {:>8.4} {:>9} {:>6.1}% {:>9} {:>8.1}%",
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
        for t in &self.mcnemar {
            writeln!(
                f,
                "McNemar {} vs {} (agreement with the oracle): n10 = {}, n01 = {}, p = {:.3e} (exact), {:.3e} (chi2)",
                t.method, t.against, t.n10, t.n01, t.p_exact, t.p_chi2
            )?;
        }
        if let Some(r) = &self.random {
            writeln!(
                f,
                "random over {} seeds: loss {:.4} ± {:.4} (sd), accuracy {:.1}% ± {:.1}%; expected loss {:.4}",
                r.seeds.len(),
                r.loss.mean,
                r.loss.sd,
                100.0 * r.decision_accuracy.mean,
                100.0 * r.decision_accuracy.sd,
                r.expected_loss
            )?;
        }
        for v in self
            .versus_random
            .iter()
            .filter(|v| v.method.starts_with("ours"))
        {
            writeln!(
                f,
                "{} − random (expected): {:+.4} [{:+.4}, {:+.4}] nats/token",
                v.method, v.difference.point, v.difference.lo, v.difference.hi
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
