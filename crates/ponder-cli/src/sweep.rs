//! `ponder sweep plan` and `ponder sweep aggregate`: the halves of `cargo xtask sweep` that
//! need the experiment's types. `plan` checks a sweep file and every point's config, claims the
//! sweep's folder and prints what to run as JSON; `aggregate` reads every point's comparison
//! summary and writes the aggregate over seeds with its report and plots.

use anyhow::{bail, Context, Result};
use ponder_eval::summary::Summary;
use ponder_eval::sweep::{aggregate, chart, to_csv, to_markdown, PointSummary};
use ponder_experiment::run_dir::{read_json, write_atomic};
use ponder_experiment::sweep::{Point, SweepConfig};
use ponder_experiment::{Ablation, ExperimentConfig, Layout, StateMode};
use serde_json::json;

use crate::args::SweepCommand;

/// Runs a `ponder sweep` subcommand.
#[allow(clippy::print_stdout)]
pub fn run(command: &SweepCommand) -> Result<()> {
    match command {
        SweepCommand::Plan { config } => {
            let sweep = SweepConfig::load(config)?;
            sweep.configs()?;
            sweep.claim()?;
            let layout = sweep.layout();
            // The shared phases with their overrides and log, the phases of every point, and
            // each point's name, overrides and log.
            let points: Vec<_> = sweep
                .points()
                .into_iter()
                .map(|p| {
                    json!({
                        "log": layout.point_log(&p.name).display().to_string(),
                        "name": p.name,
                        "overrides": p.overrides,
                    })
                })
                .collect();
            let plan = json!({
                "base": sweep.base.display().to_string(),
                "shared": sweep.shared,
                "shared_overrides": sweep.shared_overrides(),
                "shared_log": layout.shared_log().display().to_string(),
                "phases": sweep.phases,
                "points": points,
            });
            println!("{plan}");
            Ok(())
        }
        SweepCommand::Aggregate { config } => aggregate_sweep(config),
    }
}

/// The comparison summary of one point's config (its `eval-id` phase).
fn point_summary(point: &Point, config: &ExperimentConfig) -> Result<PointSummary> {
    let eval = config.eval()?;
    if eval.mode != StateMode::Reset {
        bail!(
            "sweep point {}: eval.mode = \"stream\"; the aggregate reads reset-mode comparisons (`eval-id`) only",
            point.name
        );
    }
    let folder = Layout::fast_of(config)?.eval(&config.data.language, Ablation::default());
    let path = folder.summary();
    if !path.is_file() {
        bail!(
            "sweep point {}: no comparison at {} (run the sweep's eval-id phase first)",
            point.name,
            path.display()
        );
    }
    let summary: Summary = read_json(&path)?;
    Ok(PointSummary {
        values: point.labels(),
        summary,
    })
}

/// `ponder sweep aggregate`.
#[allow(clippy::print_stdout)]
fn aggregate_sweep(path: &std::path::Path) -> Result<()> {
    let sweep = SweepConfig::load(path)?;
    let configs = sweep.configs()?;
    let level = configs
        .first()
        .map(|(_, c)| c.eval().map(|e| e.ci_level))
        .transpose()?
        .context("a sweep with no points")?;
    let points = configs
        .iter()
        .map(|(p, c)| point_summary(p, c))
        .collect::<Result<Vec<_>>>()?;
    let rows = aggregate(&points, level)?;
    let layout = sweep.layout();
    write_atomic(&layout.aggregate(), to_csv(&rows).as_bytes())?;
    let report = layout.report();
    let mut md = format!(
        "# Sweep {}\n\nBase config `{}`, {} points ({}), each an experiment folder under `{}` with its resolved config, seed and git revision; the figures of every point are in `{}`.\n\n## Aggregate over seeds\n\n",
        path.display(),
        sweep.base.display(),
        points.len(),
        sweep
            .axes
            .iter()
            .map(|a| format!("{} × {}", a.key, a.values.len()))
            .collect::<Vec<_>>()
            .join(", "),
        sweep.out_dir.display(),
        layout.aggregate().display()
    );
    md.push_str(&to_markdown(&rows, level));
    let plots = report.plots();
    for (metric, label, file) in [
        ("loss", "loss (nats/token)", "sweep-loss.svg"),
        ("recovery", "Recovery", "sweep-recovery.svg"),
    ] {
        if let Some(c) = chart(&rows, metric, label) {
            std::fs::create_dir_all(&plots)
                .with_context(|| format!("creating {}", plots.display()))?;
            write_atomic(&plots.join(file), c.to_svg().as_bytes())?;
            md.push_str(&format!("\n![{label}](plots/{file})\n"));
        }
    }
    write_atomic(&report.report(), md.as_bytes())?;
    println!(
        "aggregate of {} points: {} and {}",
        points.len(),
        layout.aggregate().display(),
        report.report().display()
    );
    print!("{}", to_markdown(&rows, level));
    Ok(())
}
