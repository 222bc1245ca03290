//! `report.md` of an experiment folder, in the shape of the paper's tables, with SVG plots
//! beside it. Every number is read from the files the runs wrote (`eval/*/summary.json`,
//! `correlation.json`, `cost.json`, `chunks.csv`, `latency.json`, the training metrics); nothing
//! is computed here but ratios and formatting.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::compare::{Correlations, MethodSummary, Summary};
use crate::error::{io, Error, Result};
use crate::latency::Latency;
use crate::output::{files, CostReport};
use crate::paper::PaperSize;
use crate::plots;
use crate::run::write_atomic;
use crate::tables::{ablation_section, cell, ood_table, signal_section, table1};

/// One evaluation folder's results.
#[derive(Debug, Clone)]
pub struct EvalRun {
    /// The folder name (`python`, `go`, `python-shuffled`, `python-diagonal-1`).
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
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
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Resume {
        path: path.to_path_buf(),
        reason: format!("not the expected JSON ({e})"),
    })
}

/// The evaluation folders under `root/eval` that hold a finished comparison, sorted by name.
pub fn eval_runs(root: &Path) -> Result<Vec<EvalRun>> {
    let dir = root.join("eval");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(files::SUMMARY).is_file())
        .collect();
    dirs.sort();
    for d in dirs {
        out.push(EvalRun {
            name: d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary: read_json(&d.join(files::SUMMARY))?,
            correlations: read_json(&d.join(files::CORRELATION))?,
            cost: read_json(&d.join(files::COST))?,
            dir: d,
        });
    }
    Ok(out)
}

/// The last JSON line of `path` holding `key`, if the file exists.
fn last_with(path: &Path, key: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get(key).is_some())
}

/// What the report is about.
pub struct ReportSpec<'a> {
    /// The experiment folder (`runs/tiny`).
    pub root: &'a Path,
    /// The in-distribution language (the name of its evaluation folder).
    pub language: &'a str,
    /// The paper's numbers to show beside ours (GPT-2 presets), if any.
    pub paper: Option<&'a PaperSize>,
    /// Provenance lines to print at the top (config, seed, revision).
    pub provenance: Vec<String>,
}

/// Writes `root/report.md` and its plots under `root/plots/`; returns the report's path.
pub fn write_report(spec: &ReportSpec<'_>) -> Result<PathBuf> {
    let runs = eval_runs(spec.root)?;
    let id = runs.iter().find(|r| r.name == spec.language);
    let mut s = String::from("# PonderTTT reproduction report\n\n");
    for line in &spec.provenance {
        let _ = writeln!(s, "- {line}");
    }
    s.push('\n');
    let plot_dir = spec.root.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(io(&plot_dir))?;
    training_section(&mut s, spec.root, &plot_dir)?;
    table1(&mut s, id, spec);
    ood_table(&mut s, &runs, spec);
    signal_section(&mut s, &runs, spec);
    ablation_section(&mut s, &runs, spec);
    cost_section(&mut s, id, spec.root)?;
    s.push_str("## Plots\n\n");
    for run in runs.iter().filter(|r| !r.name.contains('-')) {
        for (file, title) in plots::write_plots(run, &plot_dir)? {
            let _ = writeln!(s, "![{title}](plots/{file})\n");
        }
    }
    let path = spec.root.join("report.md");
    write_atomic(&path, s.as_bytes())?;
    Ok(path)
}

fn training_section(s: &mut String, root: &Path, plot_dir: &Path) -> Result<()> {
    s.push_str("## Training\n\n");
    let mut charts = Vec::new();
    match last_with(&root.join("metrics.jsonl"), "val_loss") {
        Some(v) => {
            let speed = last_with(&root.join("timing.jsonl"), "tokens_per_s")
                .and_then(|t| t["tokens_per_s"].as_f64())
                .map(|x| format!(", trained at {x:.0} tokens/s"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "- Backbone (trained from scratch): validation loss {} nats/token against a unigram baseline of {}{speed}.",
                cell(v["val_loss"].as_f64(), 4),
                cell(v["unigram_val_loss"].as_f64(), 4)
            );
            charts.extend(
                plots::training_chart(root, "backbone: loss curve", &["val_loss"])
                    .map(|c| ("backbone-loss.svg".to_string(), c)),
            );
        }
        None => s.push_str("- Backbone: pretrained (not trained in this experiment).\n"),
    }
    let mut ks: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("fast-k"))
        })
        .collect();
    ks.sort();
    for dir in ks {
        if let Some(v) = last_with(&dir.join("metrics.jsonl"), "val_update_loss") {
            let _ = writeln!(
                s,
                "- Fast layer {}: validation SKIP {} → UPDATE {} nats/token.",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                cell(v["val_skip_loss"].as_f64(), 4),
                cell(v["val_update_loss"].as_f64(), 4)
            );
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            charts.extend(
                plots::training_chart(
                    &dir,
                    &format!("fast layer {name}: loss curve"),
                    &["val_skip_loss", "val_update_loss"],
                )
                .map(|c| (format!("{name}-loss.svg"), c)),
            );
        }
    }
    s.push('\n');
    for (file, chart) in charts {
        write_atomic(&plot_dir.join(&file), chart.to_svg().as_bytes())?;
        let _ = writeln!(s, "![{}](plots/{file})\n", chart.title);
    }
    Ok(())
}

fn cost_section(s: &mut String, id: Option<&EvalRun>, root: &Path) -> Result<()> {
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
    let path = root.join("latency.json");
    if path.is_file() {
        let rows: Vec<Latency> = read_json(&path)?;
        s.push_str("Latency per chunk (`ponder bench`, medians in one process):\n\n| shape | batch × tokens | SKIP ms | UPDATE_1 ms | UPDATE / SKIP | signal / SKIP | comparison / UPDATE |\n|---|---|---|---|---|---|---|\n");
        for l in rows {
            let _ = writeln!(
                s,
                "| {} | {} × {} | {:.1} | {:.1} | {:.3} | {:.1}% | {:.3} |",
                l.label,
                l.rows,
                l.tokens,
                1e3 * l.skip_s,
                1e3 * l.update_s,
                l.update_over_skip(),
                100.0 * l.signal_over_skip(),
                l.compare_over_update()
            );
        }
        s.push('\n');
    }
    Ok(())
}
