//! A sweep's aggregate (`ponder sweep aggregate`): the points' comparison summaries grouped by
//! the axes that are not seeds, and per group, method and metric the mean, standard deviation
//! and Student-t interval over the seeds. Written as CSV, as a markdown section, and as
//! loss-vs-axis plots with interval bands when the sweep varies one numeric axis besides seeds.

use std::fmt::Write;

use serde::Serialize;

use crate::plot::{Chart, Mark, Series};
use crate::summary::{MethodSummary, Summary};
use crate::{Error, Result};

/// The axes over which a sweep's figures are averaged rather than grouped.
pub const SEED_KEYS: &[&str] = &["run.seed", "eval.seed"];

/// How a metric is read from a method's summary.
type Read = fn(&MethodSummary) -> Option<f64>;

/// The metrics aggregated.
const METRICS: &[(&str, Read)] = &[
    ("loss", |m| Some(m.loss.point)),
    ("recovery", |m| m.recovery),
    ("decision_accuracy", |m| Some(m.decision_accuracy)),
    ("cost_units", |m| Some(m.cost_units)),
    ("update_rate", |m| Some(m.update_rate)),
];

/// One point's axis values (key and value as written in its folder name) and its summary.
#[derive(Debug, Clone)]
pub struct PointSummary {
    /// The axes' keys and values, in the sweep's order.
    pub values: Vec<(String, String)>,
    /// Its comparison's summary.
    pub summary: Summary,
}

/// One row of the aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateRow {
    /// The values of the axes that are not seeds (`eval.budget=0.5`), or `all`.
    pub group: String,
    /// The method.
    pub method: String,
    /// The metric (`loss`, `recovery`, `decision_accuracy`, `cost_units`, `update_rate`).
    pub metric: String,
    /// Points that gave a value.
    pub n: usize,
    /// Mean over them.
    pub mean: f64,
    /// Their sample standard deviation (0 for one).
    pub sd: f64,
    /// The interval of the mean (none for one point).
    pub interval: Option<[f64; 2]>,
}

/// The group of a point: its values of the axes that are not seeds.
fn group_of(values: &[(String, String)]) -> String {
    let kept: Vec<String> = values
        .iter()
        .filter(|(k, _)| !SEED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if kept.is_empty() {
        "all".into()
    } else {
        kept.join(",")
    }
}

/// Groups, methods and metrics in the order they first appear; `level` is the interval's.
pub fn aggregate(points: &[PointSummary], level: f64) -> Result<Vec<AggregateRow>> {
    if points.is_empty() {
        return Err(Error::Config(
            "a sweep with no finished points to aggregate".into(),
        ));
    }
    let mut groups: Vec<(String, Vec<&PointSummary>)> = Vec::new();
    for p in points {
        let g = group_of(&p.values);
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, members)) => members.push(p),
            None => groups.push((g, vec![p])),
        }
    }
    let mut rows = Vec::new();
    for (group, members) in &groups {
        let mut methods: Vec<&str> = Vec::new();
        for m in members.iter().flat_map(|p| &p.summary.methods) {
            if !methods.contains(&m.method.as_str()) {
                methods.push(&m.method);
            }
        }
        for method in methods {
            for (metric, read) in METRICS {
                let values: Vec<f64> = members
                    .iter()
                    .filter_map(|p| p.summary.methods.iter().find(|m| m.method == method))
                    .filter_map(read)
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let s = ponder_metrics::spread(&values)
                    .map_err(|e| Error::NonFinite(format!("{group}, {method}, {metric}: {e}")))?;
                let interval = ponder_metrics::mean_interval(&values, level)
                    .map_err(|e| Error::NonFinite(format!("{group}, {method}, {metric}: {e}")))?;
                rows.push(AggregateRow {
                    group: group.clone(),
                    method: method.to_string(),
                    metric: metric.to_string(),
                    n: values.len(),
                    mean: s.mean,
                    sd: s.sd,
                    interval,
                });
            }
        }
    }
    Ok(rows)
}

/// The rows as CSV (`group,method,metric,n,mean,sd,lo,hi`; an interval left empty for one
/// point).
pub fn to_csv(rows: &[AggregateRow]) -> String {
    let mut s = String::from("group,method,metric,n,mean,sd,lo,hi\n");
    for r in rows {
        let (lo, hi) = match r.interval {
            Some([lo, hi]) => (lo.to_string(), hi.to_string()),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "\"{}\",{},{},{},{},{},{lo},{hi}",
            r.group, r.method, r.metric, r.n, r.mean, r.sd
        );
    }
    s
}

/// One cell: `mean ± sd [lo, hi]`, in percent for rates.
fn cell(row: Option<&AggregateRow>, percent: bool) -> String {
    let Some(r) = row else {
        return "–".into();
    };
    let (f, unit) = if percent { (100.0, "%") } else { (1.0, "") };
    let digits = if percent { 1 } else { 4 };
    let mut s = format!("{:.digits$}{unit} ± {:.digits$}", r.mean * f, r.sd * f);
    if let Some([lo, hi]) = r.interval {
        let _ = write!(s, " [{:.digits$}, {:.digits$}]", lo * f, hi * f);
    }
    s
}

/// The aggregate as a markdown section: one table per group, each cell mean ± sd over the
/// group's points with the interval of the mean.
pub fn to_markdown(rows: &[AggregateRow], level: f64) -> String {
    let mut s = format!(
        "Each cell: mean ± standard deviation over the seeds, with the {:.0}% Student-t interval of the mean; `n` points per method.\n",
        level * 100.0
    );
    let mut groups: Vec<&str> = Vec::new();
    for r in rows {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    for g in groups {
        let mine: Vec<&AggregateRow> = rows.iter().filter(|r| r.group == g).collect();
        let _ = writeln!(s, "\n### {g}\n");
        let _ = writeln!(
            s,
            "| method | n | loss (nats/token) | Recovery | decision accuracy | cost (units) |\n|---|---|---|---|---|---|"
        );
        let mut methods: Vec<&str> = Vec::new();
        for r in &mine {
            if !methods.contains(&r.method.as_str()) {
                methods.push(&r.method);
            }
        }
        for m in methods {
            let get = |metric: &str| {
                mine.iter()
                    .find(|r| r.method == m && r.metric == metric)
                    .copied()
            };
            let n = get("loss").map_or(0, |r| r.n);
            let _ = writeln!(
                s,
                "| {m} | {n} | {} | {} | {} | {} |",
                cell(get("loss"), false),
                cell(get("recovery"), true),
                cell(get("decision_accuracy"), true),
                cell(get("cost_units"), false)
            );
        }
    }
    s
}

/// Where the sweep varies exactly one axis besides the seeds and its values are numbers: a
/// chart of `metric` against that axis, per method a line through the means and a band over
/// the intervals. `None` otherwise.
pub fn chart(rows: &[AggregateRow], metric: &str, label: &str) -> Option<Chart> {
    let mut axis: Option<&str> = None;
    let mut series = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for r in rows {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    for m in methods {
        let mut pts: Vec<(f64, f64, Option<[f64; 2]>)> = Vec::new();
        for r in rows.iter().filter(|r| r.method == m && r.metric == metric) {
            let (key, value) = r.group.split_once('=')?;
            if key.contains(',') || value.contains(',') || axis.is_some_and(|a| a != key) {
                return None;
            }
            axis = Some(key);
            pts.push((value.parse().ok()?, r.mean, r.interval));
        }
        if pts.is_empty() {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            label: m.to_string(),
            points: pts.iter().map(|p| (p.0, p.1)).collect(),
            mark: Mark::LinePoints,
        });
        let band: Option<Vec<(f64, [f64; 2])>> =
            pts.iter().map(|p| p.2.map(|i| (p.0, i))).collect();
        if let Some(band) = band {
            let upper = band.iter().map(|(x, i)| (*x, i[1]));
            let lower = band.iter().rev().map(|(x, i)| (*x, i[0]));
            series.push(Series {
                label: format!("{m} interval"),
                points: upper.chain(lower).collect(),
                mark: Mark::Band,
            });
        }
    }
    let axis = axis?;
    Some(Chart {
        title: format!("{label} against {axis}, bands: interval over seeds"),
        x_label: axis.to_string(),
        y_label: label.to_string(),
        series,
    })
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
