//! The report's learned-gate section (`docs/design/policy.md`): how the gate trained (its
//! iterations' return, cost and λ, the rollouts' speed) and what it chose (the budget correction
//! on validation), its loss against the training-free gates with paired intervals, and its
//! actions along the stream. Every number is read from the policy run's `metrics.jsonl`,
//! `timing.jsonl` and `learned/policy.json`, and from the stream evaluations' `summary.json`.

use std::fmt::Write;
use std::path::Path;

use ponder_experiment::records::{Metric, PolicyIteration, Timing};
use ponder_experiment::run_dir::{read_json, read_lines, write_atomic};
use ponder_experiment::{CorrectionForm, Inference, RunFolder};
use ponder_gate::ACTIONS;

use crate::error::Result;
use crate::learned::PolicyMeta;
use crate::plot::{Chart, Mark, Series};
use crate::stream_summary::{action_name, StreamSummary};

/// Appends the section for the gate trained on `fast`, the `label`ed layer (nothing when none
/// finished), with the paired differences and actions of `summary`, its stream-mode evaluation;
/// writes its plots into `plot_dir`.
pub fn learned_section(
    s: &mut String,
    fast: &RunFolder,
    label: &str,
    summary: &StreamSummary,
    plot_dir: &Path,
) -> Result<()> {
    let run = fast.policy_run();
    let meta_path = RunFolder::policy_meta(&run.learned_policy());
    if !meta_path.is_file() {
        return Ok(());
    }
    let meta: PolicyMeta = read_json(&meta_path)?;
    let iterations: Vec<PolicyIteration> = read_lines::<Metric>(&run.metrics())?
        .into_iter()
        .filter_map(|m| match m {
            Metric::PolicyIteration(i) => Some(i),
            _ => None,
        })
        .collect();
    let timing: Vec<Timing> = read_lines(&run.timing())?;
    let _ = writeln!(s, "### The learned gate (`ppo`), {label} layer\n");
    let last = iterations.last();
    let _ = writeln!(
        s,
        "PPO with a PID Lagrangian over the training split's streams (docs/design/policy.md): {} \
         iterations; the last rollout's mean cost {:.3} per chunk (budget {:.2}) at λ = {:.4}; \
         {}. At inference it takes {} after a budget correction on {}, β = {:.4} + {} · debt, \
         chosen on {} validation streams, where it gave a mean cost of {:.3}.\n",
        iterations.len(),
        last.map_or(f64::NAN, |i| i.cost),
        meta.budget,
        last.map_or(f64::NAN, |i| i.lambda),
        match timing.last() {
            Some(t) => format!(
                "rollouts and updates ran at {:.0} chunks per second on this machine (the last \
                 training process, cached backbone)",
                t.tokens_per_s / meta.chunk_len as f64
            ),
            None => "no timing recorded".into(),
        },
        match meta.inference {
            Inference::Argmax => "the most probable action",
            Inference::Sample => "a draw from its distribution",
        },
        match meta.correction_form {
            CorrectionForm::Cost => "every logit in proportion to its action's cost",
            CorrectionForm::SkipLogit => "SKIP's logit",
        },
        meta.correction,
        meta.correction_gain,
        meta.calibration_streams,
        meta.calibration
            .iter()
            .find(|c| c.beta == meta.correction)
            .map_or(f64::NAN, |c| c.cost)
    );
    if !summary.differences.is_empty() {
        s.push_str("| difference of mean loss per chunk | estimate [CI] | cost difference |\n");
        s.push_str("|---|---|---|\n");
        for d in &summary.differences {
            let _ = writeln!(
                s,
                "| {} − {} | {:+.4} [{:+.4}, {:+.4}] | {:+.3} |",
                d.a, d.b, d.difference.point, d.difference.lo, d.difference.hi, d.cost_difference
            );
        }
        s.push_str("\nBelow zero the first method has the lower loss; intervals resample whole streams, both methods at once.\n\n");
    }
    let mut charts = vec![(
        format!("policy-{label}-training.svg"),
        training_chart(&iterations, meta.budget, label),
    )];
    if let Some(m) = summary
        .methods
        .iter()
        .find(|m| m.method == ponder_gate::LEARNED)
    {
        charts.push((
            format!("policy-{label}-actions.svg"),
            actions_chart(&m.actions_by_chunk, label),
        ));
    }
    for (file, chart) in charts {
        write_atomic(&plot_dir.join(&file), chart.to_svg().as_bytes())?;
        let _ = writeln!(s, "![{}](plots/{file})\n", chart.title);
    }
    Ok(())
}

/// Each iteration's mean cost per chunk, λ and return per stream over 10, beside the budget.
fn training_chart(iterations: &[PolicyIteration], budget: f64, label: &str) -> Chart {
    let series = |label: &str, f: &dyn Fn(&PolicyIteration) -> f64| Series {
        label: label.into(),
        points: iterations
            .iter()
            .map(|i| (i.iteration as f64, f(i)))
            .collect(),
        mark: Mark::LinePoints,
    };
    let n = iterations.len() as f64;
    Chart {
        title: format!("learned gate ({label} layer): training, iteration by iteration"),
        x_label: "PPO iteration".into(),
        y_label: "value".into(),
        series: vec![
            series("mean cost per chunk", &|i| i.cost),
            Series {
                label: "budget".into(),
                points: vec![(1.0, budget), (n.max(1.0), budget)],
                mark: Mark::Line,
            },
            series("λ", &|i| i.lambda),
            series("return per stream / 10", &|i| i.return_mean / 10.0),
        ],
    }
}

/// The fraction of streams taking each action at each chunk index.
fn actions_chart(by_chunk: &[Vec<usize>], label: &str) -> Chart {
    Chart {
        title: format!("learned gate ({label} layer): actions along the stream, held-out files"),
        x_label: "chunk index within the file".into(),
        y_label: "fraction of streams".into(),
        series: ACTIONS
            .iter()
            .enumerate()
            .map(|(a, action)| Series {
                label: action_name(Some(action.steps())),
                points: by_chunk
                    .iter()
                    .enumerate()
                    .map(|(c, counts)| {
                        let n = counts.iter().sum::<usize>().max(1) as f64;
                        (c as f64, counts[a] as f64 / n)
                    })
                    .collect(),
                mark: Mark::LinePoints,
            })
            .collect(),
    }
}
