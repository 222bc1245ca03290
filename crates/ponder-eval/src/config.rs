//! The `[eval]` section: how the evaluation stream is cut into chunk-batches, which methods are
//! compared under which budget, and the statistics' settings. Every field that moves a number is
//! spelled out; unknown keys are errors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[eval]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Tokens per chunk (512 in the original).
    pub chunk_len: usize,
    /// Chunks per sequence window (the original cuts 1024-token sequences into 2 chunks).
    pub chunks_per_window: usize,
    /// Sequences per chunk-batch; one decision covers the whole chunk-batch (16).
    pub batch_size: usize,
    /// Batches of windows to evaluate at most (1000 in distribution in the original); each gives
    /// `chunks_per_window` decisions.
    pub max_batches: usize,
    /// The update budget ρ: the fraction of chunk-batches a method may update (0.5).
    pub budget: f64,
    /// Methods to compare, by short name (`skip`, `update_1`, `update_2`, `update_4`, `random`
    /// (seed 42, the original's) or `random_seedN`, `oracle`, `ours`, `pid`, `ttt_improvement`).
    pub methods: Vec<ponder_gate::Method>,
    /// Seed of the shuffled-input ablation's permutations and of the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples for the confidence intervals.
    pub bootstrap_resamples: usize,
    /// Level of the confidence intervals (0.95).
    pub ci_level: f64,
    /// Budgets of the loss-vs-budget sweep (replayed on the recorded chunks, no new model pass).
    pub budget_sweep: Vec<f64>,
}

impl CompareConfig {
    /// Parses the `[eval]` table.
    pub fn from_table(table: &toml::Table) -> Result<Self> {
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(format!("[eval]: {e}")))
    }

    /// The inner steps k > 1 of the UPDATE_k methods listed, sorted: the fast-layer passes the
    /// records need beside UPDATE_1.
    pub fn extra_update_steps(&self) -> Vec<u32> {
        let mut ks: Vec<u32> = self
            .methods
            .iter()
            .filter_map(ponder_gate::Method::steps_beyond_one)
            .collect();
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    /// Tokens per window.
    pub fn window_len(&self) -> usize {
        self.chunk_len * self.chunks_per_window
    }

    /// Checks every value; each error names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.chunk_len < 2 {
            return bad(format!(
                "eval.chunk_len = {} (need at least 2 tokens: one prediction)",
                self.chunk_len
            ));
        }
        if self.chunks_per_window == 0 || self.batch_size == 0 || self.max_batches == 0 {
            return bad(format!(
                "eval.chunks_per_window, eval.batch_size and eval.max_batches must be positive, got {}, {}, {}",
                self.chunks_per_window, self.batch_size, self.max_batches
            ));
        }
        ponder_gate::Budget::new(self.budget).map_err(|_| {
            Error::Config(format!("eval.budget = {} is outside [0, 1]", self.budget))
        })?;
        for &b in &self.budget_sweep {
            ponder_gate::Budget::new(b)
                .map_err(|_| Error::Config(format!("eval.budget_sweep has {b}, outside [0, 1]")))?;
        }
        if self.methods.is_empty() {
            return bad("eval.methods is empty".into());
        }
        if self.bootstrap_resamples == 0 {
            return bad("eval.bootstrap_resamples must be positive".into());
        }
        if !(self.ci_level > 0.0 && self.ci_level < 1.0) {
            return bad(format!(
                "eval.ci_level = {} is outside (0, 1)",
                self.ci_level
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(extra: &str) -> toml::Table {
        format!(
            r#"
chunk_len = 128
chunks_per_window = 2
batch_size = 4
max_batches = 10
budget = 0.5
methods = ["skip", "update_1", "random", "oracle", "ours"]
seed = 0
bootstrap_resamples = 100
ci_level = 0.95
budget_sweep = [0.25, 0.5]
{extra}"#
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn parses_and_validates() {
        let c = CompareConfig::from_table(&table("")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.window_len(), 256);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = CompareConfig::from_table(&table("budgit = 0.3")).unwrap_err();
        assert!(e.to_string().contains("budgit"), "{e}");
    }

    #[test]
    fn bad_budget_and_method_are_errors() {
        let mut c = CompareConfig::from_table(&table("")).unwrap();
        c.budget = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("eval.budget = 1.5"), "{e}");
        let text = toml::to_string(&table("")).unwrap();
        let e = CompareConfig::from_table(
            &text
                .replace("\"ours\"]", "\"ours\", \"magic\"]")
                .parse()
                .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown method \"magic\""), "{e}");
    }

    #[test]
    fn the_extra_update_passes_come_from_the_methods() {
        let text = toml::to_string(&table("")).unwrap().replace(
            "\"skip\",",
            "\"skip\", \"update_4\", \"update_2\", \"update_4\",",
        );
        let c = CompareConfig::from_table(&text.parse().unwrap()).unwrap();
        assert_eq!(c.extra_update_steps(), [2, 4]);
        assert!(CompareConfig::from_table(&table(""))
            .unwrap()
            .extra_update_steps()
            .is_empty());
    }
}
