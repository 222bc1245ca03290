//! The report's result tables in the shape of the paper's: Table 1 (in distribution), the
//! out-of-distribution table, signal quality and decisions, and the ablations, each cell read
//! from an evaluation's `summary.json` and `correlation.json`.

use std::fmt::Write;

use crate::report::{EvalRun, ReportSpec};
use crate::summary::MethodSummary;

pub(crate) fn cell(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

fn ci(m: Option<&MethodSummary>) -> String {
    m.map(|m| format!("{:.3} [{:.3}, {:.3}]", m.loss.point, m.loss.lo, m.loss.hi))
        .unwrap_or_else(|| "–".into())
}

/// The Recovery of `method` in `run`, marked † where the oracle does not beat SKIP (its budget
/// forces it to update chunks that lose), which leaves the ratio without meaning.
fn recovery_of(run: &EvalRun, method: &str) -> String {
    let text = recovery(run.method(method));
    match (run.loss("skip"), run.loss("oracle")) {
        (Some(skip), Some(oracle)) if oracle >= skip && text != "–" => format!("{text} †"),
        _ => text,
    }
}

const DAGGER_NOTE: &str = "† The oracle's loss is not below SKIP's here: at this budget it must update chunks whose update hurts, so Recovery has no meaning.\n";

fn recovery(m: Option<&MethodSummary>) -> String {
    match m.map(|m| (m.recovery, m.recovery_ci)) {
        Some((Some(r), Some([lo, hi]))) => {
            format!("{:.1}% [{:.1}, {:.1}]", 100.0 * r, 100.0 * lo, 100.0 * hi)
        }
        Some((Some(r), None)) => format!("{:.1}%", 100.0 * r),
        _ => "–".into(),
    }
}

/// `+0.123` or `–` for an undefined correlation.
fn signed(c: Option<&crate::summary::Correlation>, spearman: bool) -> String {
    c.map(|c| format!("{:+.3}", if spearman { c.spearman } else { c.pearson }))
        .unwrap_or_else(|| "–".into())
}

/// Loss minus Random's expectation, with its interval, for `method`.
fn versus_random(run: &EvalRun, method: &str) -> String {
    run.summary
        .versus_random
        .iter()
        .find(|v| v.method == method)
        .map(|v| {
            let d = v.difference;
            format!("{:+.4} [{:+.4}, {:+.4}]", d.point, d.lo, d.hi)
        })
        .unwrap_or_else(|| "–".into())
}

/// McNemar's test of `method` against Random: `n10 / n01, p exact`.
fn mcnemar_cell(run: &EvalRun, method: &str) -> String {
    run.summary
        .mcnemar
        .iter()
        .find(|t| t.method == method)
        .map(|t| format!("{} / {}, p = {:.2e}", t.n10, t.n01, t.p_exact))
        .unwrap_or_else(|| "–".into())
}

pub(crate) fn table1(s: &mut String, id: Option<&EvalRun>, spec: &ReportSpec<'_>) {
    let _ = writeln!(
        s,
        "## Table 1: in distribution ({}, fast layer `{}`)\n",
        spec.language,
        spec.fast.name()
    );
    let Some(run) = id else {
        s.push_str("No in-distribution evaluation was found.\n\n");
        return;
    };
    let _ = writeln!(
        s,
        "{} chunk-batches of the test split, budget ρ = {}. Losses in nats/token with bootstrap 95% intervals over chunk-batches; \"− Random\" is the loss minus Random's expected loss `ρ·L_update + (1 − ρ)·L_skip` with a paired interval; accuracy is agreement with the oracle's top-ρ set; McNemar tests that agreement against the `random` row (n10: only the method agrees).\n",
        run.summary.chunks, run.summary.budget
    );
    s.push_str("| method | loss | Recovery | rate | accuracy | − Random | McNemar vs Random |\n|---|---|---|---|---|---|---|\n");
    let mut rows: Vec<(String, &str)> = [
        ("SKIP", "skip"),
        ("UPDATE_1", "update_1"),
        ("Random (seed 42)", "random"),
        ("Ours (the original's controller)", "ours"),
        ("Ours, long horizon (`ours_lh`)", ponder_gate::SELECTED),
        ("PID (sliding window)", "pid"),
        ("signal top-k (hindsight)", "signal_topk"),
    ]
    .map(|(label, method)| (label.to_string(), method))
    .into();
    // The hindsight top-k of the other signals the run lists, such as the one `ours_lh` reads.
    for m in &run.summary.methods {
        if let Ok(ponder_gate::GateConfig::SignalTopK { signal }) = m.method.parse() {
            if signal != ponder_gate::Signal::Recon {
                rows.push((format!("top-k of `{signal}` (hindsight)"), &m.method));
            }
        }
    }
    rows.push((
        "TTT improvement top-k (hindsight)".into(),
        "ttt_improvement",
    ));
    rows.push(("Oracle".into(), "oracle"));
    for (label, method) in rows {
        let Some(m) = run.method(method) else {
            continue;
        };
        let recovery = recovery_of(run, method);
        let _ = writeln!(
            s,
            "| {label} | {} | {recovery} | {} | {} | {} | {} |",
            ci(Some(m)),
            pct(Some(m.update_rate)),
            pct(Some(m.decision_accuracy)),
            versus_random(run, method),
            mcnemar_cell(run, method),
        );
    }
    if let Some(r) = &run.summary.random {
        let _ = writeln!(
            s,
            "| Random, {} seeds (mean ± sd) | {:.3} ± {:.3} | {} | {} | {:.1}% ± {:.1}% | – | – |",
            r.seeds.len(),
            r.loss.mean,
            r.loss.sd,
            r.recovery
                .map(|x| format!("{:.1}% ± {:.1}%", 100.0 * x.mean, 100.0 * x.sd))
                .unwrap_or_else(|| "–".into()),
            pct(Some(r.update_rate.mean)),
            100.0 * r.decision_accuracy.mean,
            100.0 * r.decision_accuracy.sd,
        );
        let _ = writeln!(
            s,
            "| Random, expectation | {:.3} | {} | {} | – | 0 | – |",
            r.expected_loss,
            pct(r.expected_recovery),
            pct(Some(run.summary.budget)),
        );
    }
    if let Some(p) = spec.paper {
        let q = &p.python;
        let _ = writeln!(
            s,
            "\nPaper ({}): SKIP {:.3}, Oracle {:.3}, Ours {:.3} (Recovery {:.1}%, rate {:.1}%), Random {:.3}, UPDATE_1 {:.3}.",
            p.size,
            q.skip,
            q.oracle,
            q.ours,
            100.0 * q.recovery,
            100.0 * q.rate,
            q.random,
            q.update_1
        );
    }
    if recovery_of(run, "ours").ends_with('†') {
        s.push('\n');
        s.push_str(DAGGER_NOTE);
    }
    s.push('\n');
}

pub(crate) fn ood_table(s: &mut String, runs: &[EvalRun], spec: &ReportSpec<'_>) {
    s.push_str("## Out of distribution\n\n");
    let ood: Vec<&EvalRun> = runs
        .iter()
        .filter(|r| r.name != spec.language && !r.is_ablation())
        .collect();
    if ood.is_empty() {
        s.push_str("No out-of-distribution evaluation was found (run `cargo xtask data` to install Go, Java and JavaScript sources).\n\n");
        return;
    }
    s.push_str("| language | chunks | SKIP | Random | Ours | Ours LH | Oracle | UPDATE_1 | Recovery (Ours) | Recovery (Ours LH) | paper SKIP / Random / Ours / Oracle / UPDATE_1 |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &ood {
        let paper = spec
            .paper
            .and_then(|p| p.ood.iter().find(|o| o.language == r.name))
            .map(|o| {
                format!(
                    "{:.3} / {} / {:.3} / {:.3} / {:.3}",
                    o.skip,
                    cell(o.random, 2),
                    o.ours,
                    o.oracle,
                    o.update_1
                )
            })
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.summary.chunks,
            cell(r.loss("skip"), 3),
            cell(r.loss("random"), 3),
            cell(r.loss("ours"), 3),
            cell(r.loss(ponder_gate::SELECTED), 3),
            cell(r.loss("oracle"), 3),
            cell(r.loss("update_1"), 3),
            recovery_of(r, "ours"),
            recovery_of(r, ponder_gate::SELECTED),
            paper
        );
    }
    if ood.iter().any(|r| recovery_of(r, "ours").ends_with('†')) {
        s.push('\n');
        s.push_str(DAGGER_NOTE);
    }
    s.push('\n');
}

pub(crate) fn signal_section(s: &mut String, runs: &[EvalRun], spec: &ReportSpec<'_>) {
    s.push_str("## Signal quality and decisions\n\n");
    s.push_str("Correlation of each quantity with the advantage `SKIP loss − UPDATE loss` over chunk-batches; decision accuracy is agreement with the oracle's top-ρ set; McNemar compares a controller with Random by that agreement (n10 / n01, exact p).\n\n");
    s.push_str("| eval | Pearson r (signal) | Spearman (signal) | r (recon_init) | r (SKIP loss) | r (TTT improvement) | accuracy Random | accuracy Ours | accuracy Ours LH | McNemar Ours | McNemar Ours LH |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs.iter().filter(|r| !r.is_ablation()) {
        let c = &r.correlations;
        let _ = writeln!(
            s,
            "| {} | {} (p {}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            signed(c.recon.as_ref(), false),
            c.recon
                .as_ref()
                .map(|c| format!("{:.1e}", c.pearson_p))
                .unwrap_or_else(|| "–".into()),
            signed(c.recon.as_ref(), true),
            signed(c.recon_init.as_ref(), false),
            signed(c.skip_loss.as_ref(), false),
            signed(c.ttt_improvement.as_ref(), false),
            pct(r.method("random").map(|m| m.decision_accuracy)),
            pct(r.method("ours").map(|m| m.decision_accuracy)),
            pct(r.method(ponder_gate::SELECTED).map(|m| m.decision_accuracy)),
            mcnemar_cell(r, "ours"),
            mcnemar_cell(r, ponder_gate::SELECTED),
        );
    }
    if let Some(p) = spec.paper {
        let _ = writeln!(
            s,
            "\nPaper ({}, Python): r = {:+.2}; decision accuracy Random {:.1}%, Ours {:.1}%.",
            p.size,
            p.python.pearson,
            100.0 * p.python.accuracy.0,
            100.0 * p.python.accuracy.1
        );
    }
    s.push('\n');
}

pub(crate) fn ablation_section(s: &mut String, runs: &[EvalRun], spec: &ReportSpec<'_>) {
    s.push_str("## Ablations\n\n");
    let base = runs.iter().find(|r| r.name == spec.language);
    let rows: Vec<&EvalRun> = runs.iter().filter(|r| r.is_ablation()).collect();
    if rows.is_empty() || base.is_none() {
        s.push_str("No ablation was run.\n\n");
        return;
    }
    s.push_str("| eval | SKIP | Ours | UPDATE_1 | SKIP → Ours |\n|---|---|---|---|---|\n");
    for r in base.into_iter().chain(rows) {
        let gain = match (r.loss("skip"), r.loss("ours")) {
            (Some(a), Some(b)) => format!("{:.1}%", 100.0 * (a - b) / a),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {gain} |",
            r.name,
            cell(r.loss("skip"), 3),
            cell(r.loss("ours"), 3),
            cell(r.loss("update_1"), 3)
        );
    }
    s.push_str("\nPaper (small): shuffled input SKIP 6.382 → Ours 6.329 (0.8%) against 2.324 → 1.977 (14.9%); diagonal k = −1: Ours 1.978 against 1.977.\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(skip: f64, oracle: f64, ours: f64) -> EvalRun {
        let method = |name: &str, loss: f64, recovery: Option<f64>| {
            json!({"method": name, "loss": {"point": loss, "lo": loss, "hi": loss},
                   "perplexity": loss.exp(), "update_rate": 0.5, "cost_units": 2.0,
                   "recovery": recovery, "recovery_ci": null, "decision_accuracy": 0.5})
        };
        let summary = json!({"chunks": 4, "budget": 0.5, "mcnemar": [], "sweep": [],
            "random": null, "versus_random": [],
            "methods": [method("skip", skip, Some(0.0)), method("oracle", oracle, Some(1.0)),
                        method("ours", ours, Some((skip - ours) / (skip - oracle)))]});
        let flops = json!({"tokens": 2, "rows": 1, "backbone": 1.0, "head": 1.0, "fast": 1.0});
        let times = json!({"chunks": 0, "backbone_s": 0.0, "fast_s": 0.0, "update_head_s": 0.0,
                           "skip_head_s": 0.0});
        EvalRun {
            name: "go".into(),
            folder: ponder_experiment::RunFolder::new("eval/go"),
            summary: serde_json::from_value(summary).unwrap(),
            correlations: serde_json::from_value(json!({"n": 4, "recon": null,
                "recon_init": null, "skip_loss": null, "ttt_improvement": null}))
            .unwrap(),
            cost: serde_json::from_value(json!({"flops": flops, "times": times,
                "comparison_over_update": null, "comparison_over_update_flops": 1.5,
                "update_over_skip": null, "methods": []}))
            .unwrap(),
        }
    }

    #[test]
    fn recovery_is_marked_where_the_oracle_does_not_beat_skip() {
        // (3 − 2.5) / (3 − 2) = 50%.
        assert_eq!(recovery_of(&run(3.0, 2.0, 2.5), "ours"), "50.0%");
        // The oracle is worse than SKIP: (6.877 − 6.943) / (6.877 − 6.920) = 153.5%, marked.
        assert_eq!(recovery_of(&run(6.877, 6.92, 6.943), "ours"), "153.5% †");
    }
}
