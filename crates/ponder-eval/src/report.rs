//! `report.md` of a trained fast layer's experiment, in the shape of the paper's tables, with SVG
//! plots beside it. Every number is read from the files the runs wrote (each evaluation's
//! `summary.json`, `correlation.json`, `cost.json` and `chunks.csv`, the latency table, the
//! training records); nothing is computed here but ratios and formatting.

use std::fmt::Write;
use std::path::PathBuf;

use ponder_experiment::records::Metric;
use ponder_experiment::run_dir::{read_json, read_lines, write_atomic};
use ponder_experiment::{Ablation, Layout, RunFolder, Timing};

use crate::error::{io, Result};
use crate::latency::Latency;
use crate::output::CostReport;
use crate::paper::PaperSize;
use crate::plots;
use crate::selection::Selection;
use crate::summary::{Correlations, MethodSummary, Summary};
use crate::tables::{ablation_section, cell, ood_table, signal_section, table1};

/// One evaluation folder's results.
#[derive(Debug, Clone)]
pub struct EvalRun {
    /// The folder name (`python`, `go`, `python-shuffled`, `python-diagonal-1`).
    pub name: String,
    /// The folder.
    pub folder: RunFolder,
    /// `summary.json`.
    pub summary: Summary,
    /// `correlation.json`.
    pub correlations: Correlations,
    /// `cost.json`.
    pub cost: CostReport,
}

impl EvalRun {
    /// The summary of `method`, if it ran.
    pub fn method(&self, method: &str) -> Option<&MethodSummary> {
        self.summary.methods.iter().find(|m| m.method == method)
    }

    /// The mean loss of `method`, if it ran.
    pub fn loss(&self, method: &str) -> Option<f64> {
        self.method(method).map(|m| m.loss.point)
    }

    /// Whether this evaluation is an ablation of another.
    pub fn is_ablation(&self) -> bool {
        Ablation::is_ablation_name(&self.name)
    }
}

impl EvalRun {
    /// Reads the results of the finished evaluation in `folder`.
    pub fn read(folder: RunFolder) -> Result<Self> {
        Ok(EvalRun {
            name: folder.name(),
            summary: read_json(&folder.summary())?,
            correlations: read_json(&folder.correlation())?,
            cost: read_json(&folder.cost())?,
            folder,
        })
    }
}

/// The finished evaluations of the fast layer in `fast`, sorted by name.
pub fn eval_runs(fast: &RunFolder) -> Result<Vec<EvalRun>> {
    fast.finished_evals()
        .into_iter()
        .map(EvalRun::read)
        .collect()
}

/// What the report is about.
pub struct ReportSpec<'a> {
    /// The experiment's folders.
    pub layout: &'a Layout,
    /// The fast layer's run folder, whose evaluations are reported.
    pub fast: &'a RunFolder,
    /// The in-distribution language (the name of its evaluation folder).
    pub language: &'a str,
    /// The paper's numbers to show beside ours (GPT-2 presets), if any.
    pub paper: Option<&'a PaperSize>,
    /// Provenance lines to print at the top (config, seed, revision).
    pub provenance: Vec<String>,
    /// The same fast layer trained in stream mode, when it was: its stream-mode evaluation is
    /// shown beside the reported layer's.
    pub stream_trained: Option<&'a RunFolder>,
}

/// Writes the fast layer's `report.md` and its plots; returns the report's path.
pub fn write_report(spec: &ReportSpec<'_>) -> Result<PathBuf> {
    let runs = eval_runs(spec.fast)?;
    let id = runs.iter().find(|r| r.name == spec.language);
    let mut s = String::from("# PonderTTT reproduction report\n\n");
    for line in &spec.provenance {
        let _ = writeln!(s, "- {line}");
    }
    s.push('\n');
    let plot_dir = spec.fast.plots();
    std::fs::create_dir_all(&plot_dir).map_err(io(&plot_dir))?;
    training_section(&mut s, spec, &plot_dir)?;
    table1(&mut s, id, spec);
    let selection = read_selection(spec)?;
    selection_section(&mut s, selection.as_ref());
    ood_table(&mut s, &runs, spec);
    signal_section(&mut s, &runs, spec);
    let validation_folder = spec
        .fast
        .validation_eval(spec.language, Ablation::default());
    let validation = if validation_folder.summary().is_file() {
        Some(EvalRun::read(validation_folder)?)
    } else {
        None
    };
    let mut decile_runs: Vec<(String, &EvalRun)> = Vec::new();
    if let Some(v) = &validation {
        decile_runs.push((format!("{} validation", spec.language), v));
    }
    if let Some(t) = id {
        decile_runs.push((format!("{} test", spec.language), t));
    }
    crate::deciles::deciles_section(&mut s, &decile_runs)?;
    ablation_section(&mut s, &runs, spec);
    cost_section(&mut s, id, spec.fast)?;
    crate::stream_report::stream_section(&mut s, spec, &plot_dir)?;
    crate::codegen_report::codegen_section(&mut s, spec.fast)?;
    s.push_str("## Plots\n\n");
    let selected_signal = selection.as_ref().and_then(|sel| sel.config.signal());
    for run in runs.iter().filter(|r| !r.is_ablation()) {
        for (file, title) in plots::write_plots(run, &plot_dir, selected_signal)? {
            let _ = writeln!(s, "![{title}](plots/{file})\n");
        }
    }
    let path = spec.fast.report();
    write_atomic(&path, s.as_bytes())?;
    Ok(path)
}

fn training_section(
    s: &mut String,
    spec: &ReportSpec<'_>,
    plot_dir: &std::path::Path,
) -> Result<()> {
    s.push_str("## Training\n\n");
    let mut charts = Vec::new();
    let backbone = spec.layout.backbone();
    let metrics: Vec<Metric> = read_lines(&backbone.metrics())?;
    let last_val = metrics.iter().rev().find_map(|m| match m {
        Metric::BackboneValidation(v) => Some((v.val_loss, v.unigram_val_loss)),
        _ => None,
    });
    match last_val {
        Some((val, unigram)) => {
            let timing: Vec<Timing> = read_lines(&backbone.timing())?;
            let speed = timing
                .last()
                .map(|t| format!(", trained at {:.0} tokens/s", t.tokens_per_s))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "- Backbone (trained from scratch): validation loss {} nats/token against a unigram baseline of {}{speed}.",
                cell(Some(val), 4),
                cell(Some(unigram), 4)
            );
            let chart = plots::training_chart(
                &backbone,
                "backbone: loss curve",
                &["val loss"],
                |m| match m {
                    Metric::BackboneValidation(v) => Some(vec![v.val_loss]),
                    _ => None,
                },
            )?;
            charts.extend(chart.map(|c| ("backbone-loss.svg".to_string(), c)));
        }
        None => s.push_str("- Backbone: pretrained (not trained in this experiment).\n"),
    }
    let fast_metrics: Vec<Metric> = read_lines(&spec.fast.metrics())?;
    let name = spec.fast.name();
    if let Some((skip, update)) = fast_metrics.iter().rev().find_map(|m| match m {
        Metric::FastValidation(v) => Some((v.val_skip_loss, v.val_update_loss)),
        _ => None,
    }) {
        let _ = writeln!(
            s,
            "- Fast layer {name}: validation SKIP {} → UPDATE {} nats/token.",
            cell(Some(skip), 4),
            cell(Some(update), 4)
        );
        let chart = plots::training_chart(
            spec.fast,
            &format!("fast layer {name}: loss curve"),
            &["val skip loss", "val update loss"],
            |m| match m {
                Metric::FastValidation(v) => Some(vec![v.val_skip_loss, v.val_update_loss]),
                _ => None,
            },
        )?;
        charts.extend(chart.map(|c| (format!("{name}-loss.svg"), c)));
    }
    s.push('\n');
    for (file, chart) in charts {
        write_atomic(&plot_dir.join(&file), chart.to_svg().as_bytes())?;
        let _ = writeln!(s, "![{}](plots/{file})\n", chart.title);
    }
    Ok(())
}

/// The selection on validation of the in-distribution language, if one was made.
fn read_selection(spec: &ReportSpec<'_>) -> Result<Option<Selection>> {
    let path = spec
        .fast
        .validation_eval(spec.language, Ablation::default())
        .selection();
    Ok(if path.is_file() {
        Some(read_json(&path)?)
    } else {
        None
    })
}

/// "Choosing the controller": every candidate tried on the validation split, and the choice.
fn selection_section(s: &mut String, selection: Option<&Selection>) {
    s.push_str("## Choosing the controller\n\n");
    let Some(sel) = selection else {
        s.push_str("No controller was chosen on the validation split (the config has no `[eval.select]`, or the validation comparison has not run).\n\n");
        return;
    };
    let within = sel.candidates.iter().filter(|c| c.within_tolerance).count();
    let _ = writeln!(
        s,
        "`ours_lh` is the candidate with the lowest loss on the {} chunk-batches of the validation split among those whose realized update rate is within ±{} of ρ = {} ({within} of {} candidates); the test split is not read. Chosen: **{}**.\n",
        sel.chunks,
        sel.grid.tolerance,
        sel.budget,
        sel.candidates.len(),
        sel.chosen
    );
    s.push_str("| candidate | validation loss | rate | within tolerance |\n|---|---|---|---|\n");
    for c in &sel.candidates {
        let name = if c.name == sel.chosen {
            format!("**{}**", c.name)
        } else {
            c.name.clone()
        };
        let _ = writeln!(
            s,
            "| {name} | {:.4} | {:.1}% | {} |",
            c.loss,
            100.0 * c.update_rate,
            if c.within_tolerance { "yes" } else { "no" }
        );
    }
    s.push('\n');
}

fn cost_section(s: &mut String, id: Option<&EvalRun>, fast: &RunFolder) -> Result<()> {
    s.push_str("## Cost and latency\n\n");
    if let Some(run) = id {
        let _ = write!(
            s,
            "Per chunk-batch, in the original's units (SKIP 1, UPDATE_k 1 + 2k), in FLOPs counted from the shapes, and in seconds from the part times of the probes (one chunk-batch in {} runs its parts one after another, each timed).\n\n| method | units | GFLOPs | ms |\n|---|---|---|---|\n",
            crate::records::PROBE_EVERY
        );
        for m in &run.cost.methods {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.3} | {:.1} |",
                m.method,
                m.cost_units,
                m.flops / 1e9,
                1e3 * m.seconds
            );
        }
        let _ = writeln!(
            s,
            "\nThe one-pass comparison of all methods cost {} of one UPDATE forward per chunk-batch (measured, with the SKIP head running beside the fast layer; {:.3}× in FLOPs).\n",
            run.cost
                .comparison_over_update
                .map(|r| format!("{r:.3}×"))
                .unwrap_or_else(|| "–".into()),
            run.cost.comparison_over_update_flops
        );
    }
    let path = fast.latency_run().latency();
    if path.is_file() {
        let rows: Vec<Latency> = read_json(&path)?;
        s.push_str("Latency per chunk (`ponder bench`, medians in one process, ratios the median of each round's; FLOP ratios counted from the shapes in brackets):\n\n| shape | batch × tokens | SKIP ms | UPDATE_1 / SKIP | UPDATE_2 / SKIP | UPDATE_4 / SKIP | signal / SKIP | comparison / UPDATE_1 | SKIP with the gate's features / SKIP |\n|---|---|---|---|---|---|---|---|---|\n");
        for l in rows {
            let ratios = l
                .updates_over_skip
                .iter()
                .zip(l.flops_over_skip)
                .map(|(ratio, flops)| format!("{ratio:.3} ({flops:.3})"))
                .collect::<Vec<_>>();
            let _ = writeln!(
                s,
                "| {} | {} × {} | {:.1} | {} | {:.1}% | {:.3} | {:.3} |",
                l.label,
                l.rows,
                l.tokens,
                1e3 * l.skip_s,
                ratios.join(" | "),
                100.0 * l.signal_over_skip(),
                l.compare_over_update(),
                l.probe_over_skip
            );
        }
        s.push('\n');
    }
    Ok(())
}
