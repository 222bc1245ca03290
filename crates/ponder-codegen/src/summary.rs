//! The results of a code-generation run: one [`SampleRecord`] per sample (a line of
//! `samples.jsonl`) and a [`CodegenSummary`] per run: per method, the outcome counts and pass@k
//! with its standard error over problems.

use std::collections::BTreeMap;

use ponder_metrics::{pass_at_k_over, PassAtK};
use serde::{Deserialize, Serialize};

use crate::error::{CodegenError, Result};
use crate::problem::Bench;
use crate::sandbox::{Execution, Limits, Outcome, Tally};

/// One sample: which problem and method, what was generated, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The problem's id.
    pub task_id: String,
    /// The method that generated it (`canonical` for the benchmark's own solution).
    pub method: String,
    /// Its index among the method's samples of the problem.
    pub sample: usize,
    /// The completion, as generated.
    pub completion: String,
    /// What became of it.
    pub outcome: Outcome,
    /// How its process ended.
    pub detail: String,
    /// Its CPU seconds.
    pub cpu_seconds: f64,
    /// Its wall-clock seconds.
    pub wall_seconds: f64,
    /// Times the backbone's window slid while generating it, because prompt and completion
    /// outgrew the model's context (0 for the benchmark's own solutions).
    pub window_slides: usize,
}

impl SampleRecord {
    /// The record of `completion`'s execution; its generation slid the backbone's window
    /// `window_slides` times.
    pub fn new(
        task_id: &str,
        method: &str,
        sample: usize,
        completion: &str,
        window_slides: usize,
        e: &Execution,
    ) -> Self {
        SampleRecord {
            task_id: task_id.to_string(),
            method: method.to_string(),
            sample,
            completion: completion.to_string(),
            window_slides,
            outcome: e.outcome,
            detail: e.detail.clone(),
            cpu_seconds: e.cpu_seconds,
            wall_seconds: e.wall_seconds,
        }
    }
}

/// One method's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    /// The method.
    pub method: String,
    /// Samples per problem.
    pub samples_per_problem: usize,
    /// Outcome counts over all its samples.
    pub tally: Tally,
    /// pass@k for each k asked.
    pub pass_at_k: Vec<PassAtK>,
    /// Samples whose generation slid the backbone's window (the context was full).
    pub slid_samples: usize,
}

/// A run's summary (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodegenSummary {
    /// The benchmark.
    pub bench: Bench,
    /// Problems run.
    pub problems: usize,
    /// How samples were run: isolated or not, interpreter, uids.
    pub sandbox: String,
    /// How samples were generated (model, fast layer, budget, sampling); `None` for the
    /// benchmark's own solutions.
    pub decoding: Option<String>,
    /// The limits of each sample.
    pub limits: Limits,
    /// Per method, in the order first met.
    pub methods: Vec<MethodResult>,
}

/// Checks the ks against the samples per problem before anything runs: each k in `1..=n`.
pub fn check_ks(ks: &[usize], n: usize) -> Result<()> {
    if let Some(&k) = ks.iter().find(|&&k| k == 0 || k > n) {
        return Err(CodegenError::Limit {
            key: "k",
            what: format!("pass@{k} needs 1 ≤ k ≤ n, and n = {n} samples per problem"),
        });
    }
    Ok(())
}

/// Per method (in the order first met): the outcome counts and pass@k for each of `ks` over
/// the problems. Every problem must have the same number of samples under a method.
pub fn summarize(records: &[SampleRecord], ks: &[usize]) -> Result<Vec<MethodResult>> {
    let mut order: Vec<&str> = Vec::new();
    // method → task → (samples, correct), tasks in first-met order.
    let mut counts: BTreeMap<&str, Vec<(&str, usize, usize)>> = BTreeMap::new();
    for r in records {
        if !order.contains(&r.method.as_str()) {
            order.push(&r.method);
        }
        let tasks = counts.entry(&r.method).or_default();
        let i = match tasks.iter().position(|t| t.0 == r.task_id) {
            Some(i) => i,
            None => {
                tasks.push((&r.task_id, 0, 0));
                tasks.len() - 1
            }
        };
        tasks[i].1 += 1;
        tasks[i].2 += usize::from(r.outcome == Outcome::Passed);
    }
    order
        .into_iter()
        .map(|method| {
            let tasks = &counts[method];
            let n = tasks[0].1;
            if let Some(t) = tasks.iter().find(|t| t.1 != n) {
                return Err(CodegenError::Problem {
                    task_id: t.0.to_string(),
                    what: format!(
                        "{} samples of method {method}, other problems have {n}",
                        t.1
                    ),
                });
            }
            check_ks(ks, n)?;
            let pairs: Vec<(usize, usize)> = tasks.iter().map(|t| (t.1, t.2)).collect();
            let pass_at_k = ks
                .iter()
                .map(|&k| {
                    pass_at_k_over(&pairs, k).map_err(|e| CodegenError::Limit {
                        key: "k",
                        what: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(MethodResult {
                method: method.to_string(),
                samples_per_problem: n,
                tally: Tally::of_outcomes(
                    records
                        .iter()
                        .filter(|r| r.method == method)
                        .map(|r| r.outcome),
                ),
                pass_at_k,
                slid_samples: records
                    .iter()
                    .filter(|r| r.method == method && r.window_slides > 0)
                    .count(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: &str, method: &str, sample: usize, outcome: Outcome) -> SampleRecord {
        SampleRecord {
            task_id: task.into(),
            method: method.into(),
            sample,
            completion: String::new(),
            outcome,
            detail: String::new(),
            cpu_seconds: 0.0,
            wall_seconds: 0.0,
            window_slides: usize::from(sample == 1),
        }
    }

    #[test]
    fn methods_are_summarized_per_problem() {
        use Outcome::*;
        let records = vec![
            record("a", "greedy", 0, Passed),
            record("a", "greedy", 1, Failed),
            record("b", "greedy", 0, TimedOut),
            record("b", "greedy", 1, Failed),
            record("a", "ours", 0, Passed),
            record("a", "ours", 1, Passed),
            record("b", "ours", 0, Crashed),
            record("b", "ours", 1, Passed),
        ];
        let s = summarize(&records, &[1, 2]).unwrap();
        assert_eq!(s[0].method, "greedy");
        assert_eq!(s[0].pass_at_k[0].estimate, 0.25);
        assert_eq!(s[0].pass_at_k[1].estimate, 0.5);
        assert_eq!((s[0].tally.failed, s[0].tally.timed_out), (2, 1));
        assert_eq!(s[1].pass_at_k[0].estimate, 0.75);
        assert_eq!(s[1].pass_at_k[1].estimate, 1.0);
        assert_eq!(s[1].tally.crashed, 1);
        assert_eq!((s[0].slid_samples, s[1].slid_samples), (2, 2));
    }

    #[test]
    fn k_beyond_n_and_uneven_samples_are_errors() {
        let records = vec![record("a", "m", 0, Outcome::Passed)];
        let err = summarize(&records, &[10]).unwrap_err().to_string();
        assert!(err.contains("pass@10") && err.contains("n = 1"), "{err}");
        let uneven = vec![
            record("a", "m", 0, Outcome::Passed),
            record("a", "m", 1, Outcome::Passed),
            record("b", "m", 0, Outcome::Passed),
        ];
        let err = summarize(&uneven, &[1]).unwrap_err().to_string();
        assert!(err.contains("problem b"), "{err}");
    }
}
