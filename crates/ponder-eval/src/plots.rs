//! The report's plots of one evaluation, read back from its files: the signal against the
//! advantage, loss against budget, the decisions along the stream and the threshold trace.

use std::collections::HashMap;
use std::path::Path;

use ponder_experiment::run_dir::write_atomic;
use ponder_experiment::{Metric, RunFolder};

use crate::error::{io, Error, Result};
use crate::plot::{Chart, Mark, Series};
use crate::report::EvalRun;
use ponder_gate::Signal;

/// The columns of `chunks.csv` by header name.
pub struct ChunkTable {
    columns: HashMap<String, Vec<Option<f64>>>,
    rows: usize,
}

impl ChunkTable {
    /// Reads `chunks.csv`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        let mut columns: HashMap<String, Vec<Option<f64>>> =
            header.iter().map(|h| (h.clone(), Vec::new())).collect();
        let mut rows = 0;
        for (i, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != header.len() {
                return Err(Error::Resume {
                    path: path.to_path_buf(),
                    reason: format!(
                        "row {} has {} cells, the header {}",
                        i + 1,
                        cells.len(),
                        header.len()
                    ),
                });
            }
            for (h, c) in header.iter().zip(cells) {
                let v = if c.is_empty() {
                    None
                } else {
                    Some(c.parse::<f64>().map_err(|_| Error::Resume {
                        path: path.to_path_buf(),
                        reason: format!("row {}, column {h}: {c:?} is not a number", i + 1),
                    })?)
                };
                columns.get_mut(h).expect("from the header").push(v);
            }
            rows += 1;
        }
        Ok(Self { columns, rows })
    }

    /// A column (`None` cells where empty), if present.
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns.get(name).map(Vec::as_slice)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

fn pairs(x: &[Option<f64>], y: &[Option<f64>], keep: impl Fn(usize) -> bool) -> Vec<(f64, f64)> {
    x.iter()
        .zip(y)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .filter_map(|(_, (a, b))| Some(((*a)?, (*b)?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect()
}

/// Writes the plots of `run` into `dir`; returns `(file name, title)` of each.
/// `selected_signal` is the signal `ours_lh` thresholds, for its threshold trace.
pub fn write_plots(
    run: &EvalRun,
    dir: &Path,
    selected_signal: Option<Signal>,
) -> Result<Vec<(String, String)>> {
    let table = ChunkTable::read(&run.folder.chunks())?;
    let missing = |c: &str| Error::Resume {
        path: run.folder.chunks(),
        reason: format!("no column {c}"),
    };
    let col = |c: &str| table.column(c).ok_or_else(|| missing(c));
    let index: Vec<Option<f64>> = (0..table.rows()).map(|i| Some(i as f64)).collect();
    let (recon, adv) = (col("recon")?, col("advantage")?);
    let mut out = Vec::new();
    let mut save = |name: &str, chart: Chart| -> Result<()> {
        let file = format!("{}-{name}.svg", run.name);
        let path = dir.join(&file);
        write_atomic(&path, chart.to_svg().as_bytes())?;
        out.push((file, chart.title));
        Ok(())
    };
    save(
        "signal-vs-advantage",
        Chart {
            title: format!(
                "{}: reconstruction signal vs advantage (r = {})",
                run.name,
                run.correlations
                    .recon
                    .as_ref()
                    .map(|c| format!("{:.3}", c.pearson))
                    .unwrap_or_else(|| "undefined".into())
            ),
            x_label: "mean reconstruction loss (step_0)".into(),
            y_label: "advantage: SKIP loss − UPDATE loss".into(),
            series: vec![Series {
                label: "chunk-batches".into(),
                points: pairs(recon, adv, |_| true),
                mark: Mark::Points,
            }],
        },
    )?;
    if !run.summary.sweep.is_empty() {
        let names: Vec<String> = run.summary.sweep[0]
            .losses
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let series = names
            .iter()
            .map(|n| Series {
                label: n.clone(),
                points: run
                    .summary
                    .sweep
                    .iter()
                    .filter_map(|p| {
                        p.losses
                            .iter()
                            .find(|(m, _)| m == n)
                            .map(|(_, l)| (p.budget, *l))
                    })
                    .collect(),
                mark: Mark::LinePoints,
            })
            .collect();
        save(
            "loss-vs-budget",
            Chart {
                title: format!("{}: loss vs update budget", run.name),
                x_label: "budget ρ (fraction of chunk-batches updated)".into(),
                y_label: "mean loss (nats/token)".into(),
                series,
            },
        )?;
    }
    if let Ok(ours) = col("ours") {
        let updated = |i: usize| ours[i].is_some_and(|d| d > 0.0);
        save(
            "decisions",
            Chart {
                title: format!("{}: Ours' decisions along the stream", run.name),
                x_label: "chunk-batch".into(),
                y_label: "advantage".into(),
                series: vec![
                    Series {
                        label: "UPDATE".into(),
                        points: pairs(&index, adv, updated),
                        mark: Mark::Points,
                    },
                    Series {
                        label: "SKIP".into(),
                        points: pairs(&index, adv, |i| !updated(i)),
                        mark: Mark::Points,
                    },
                ],
            },
        )?;
    }
    // The threshold traces: the original's controller on its signal, and `ours_lh` on its own.
    let lh = ponder_gate::SELECTED;
    let traces = [("ours", Some(Signal::Recon)), (lh, selected_signal)];
    for (method, signal) in traces {
        let (Ok(threshold), Some(signal)) = (col(&format!("{method}_threshold")), signal) else {
            continue;
        };
        let values: Vec<Option<f64>> = if signal == Signal::NegPrevLoss {
            // The loss of the previous chunk-batch under the method's own decision there.
            let (decided, skip, update) = (col(method)?, col("skip_loss")?, col("update_loss")?);
            (0..table.rows())
                .map(|i| {
                    let p = i.checked_sub(1)?;
                    let loss = if decided[p]? > 0.0 {
                        update[p]
                    } else {
                        skip[p]
                    };
                    loss.map(|l| -l)
                })
                .collect()
        } else {
            col(signal.base().name())?
                .iter()
                .map(|v| v.map(|v| signal.sign() * v))
                .collect()
        };
        let file = if method == "ours" {
            "threshold".to_string()
        } else {
            format!("{method}-threshold")
        };
        save(
            &file,
            Chart {
                title: format!("{}: threshold trace of {method}", run.name),
                x_label: "chunk-batch".into(),
                y_label: format!("signal ({signal})"),
                series: vec![
                    Series {
                        label: "signal".into(),
                        points: pairs(&index, &values, |_| true),
                        mark: Mark::Points,
                    },
                    Series {
                        label: "threshold τ".into(),
                        points: pairs(&index, threshold, |_| true),
                        mark: Mark::Line,
                    },
                ],
            },
        )?;
    }
    Ok(out)
}

/// The loss curves of a training run folder's `metrics.jsonl`: training loss per step and the
/// validation losses `validation` picks from each record (labelled by `labels`); `None` when the
/// folder has no training records.
pub fn training_chart(
    folder: &RunFolder,
    title: &str,
    labels: &[&str],
    validation: impl Fn(&Metric) -> Option<Vec<f64>>,
) -> Result<Option<Chart>> {
    let metrics: Vec<Metric> = ponder_experiment::run_dir::read_lines(&folder.metrics())?;
    let train: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| Some((m.step()? as f64, m.train_loss()?)))
        .collect();
    if train.is_empty() {
        return Ok(None);
    }
    let mut series = vec![Series {
        label: "training loss".into(),
        points: train,
        mark: Mark::Line,
    }];
    for (i, label) in labels.iter().enumerate() {
        let points: Vec<(f64, f64)> = metrics
            .iter()
            .filter_map(|m| Some((m.step()? as f64, *validation(m)?.get(i)?)))
            .collect();
        if !points.is_empty() {
            series.push(Series {
                label: label.to_string(),
                points,
                mark: Mark::LinePoints,
            });
        }
    }
    Ok(Some(Chart {
        title: title.to_string(),
        x_label: "step".into(),
        y_label: "loss (nats/token)".into(),
        series,
    }))
}
