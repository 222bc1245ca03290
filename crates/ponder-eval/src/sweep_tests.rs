//! Tests of a sweep's aggregate against figures worked by hand.

use super::*;
use ponder_metrics::Interval;

fn method(name: &str, loss: f64, recovery: Option<f64>) -> MethodSummary {
    MethodSummary {
        method: name.into(),
        loss: Interval {
            point: loss,
            lo: loss - 0.1,
            hi: loss + 0.1,
        },
        perplexity: Some(loss.exp()),
        update_rate: 0.5,
        cost_units: 2.0,
        recovery,
        recovery_ci: None,
        decision_accuracy: 0.6,
    }
}

fn point(seed: u32, budget: &str, ours: f64, recovery: Option<f64>) -> PointSummary {
    PointSummary {
        values: vec![
            ("run.seed".into(), seed.to_string()),
            ("eval.budget".into(), budget.into()),
        ],
        summary: Summary {
            chunks: 10,
            budget: budget.parse().unwrap(),
            methods: vec![method("skip", 4.0, None), method("ours", ours, recovery)],
            mcnemar: Vec::new(),
            random: None,
            versus_random: Vec::new(),
            sweep: Vec::new(),
        },
    }
}

fn points() -> Vec<PointSummary> {
    vec![
        point(0, "0.25", 3.9, Some(0.5)),
        point(0, "0.5", 3.8, Some(0.6)),
        point(1, "0.25", 3.7, Some(0.7)),
        point(1, "0.5", 3.6, None),
        point(2, "0.25", 3.8, Some(0.9)),
        point(2, "0.5", 3.4, Some(0.8)),
    ]
}

#[test]
fn groups_average_over_seeds() {
    let rows = aggregate(&points(), 0.95).unwrap();
    let find = |g: &str, m: &str, metric: &str| {
        rows.iter()
            .find(|r| r.group == g && r.method == m && r.metric == metric)
            .unwrap()
    };
    let loss = find("eval.budget=0.25", "ours", "loss");
    assert_eq!(loss.n, 3);
    assert!((loss.mean - 3.8).abs() < 1e-12);
    // sd of (3.9, 3.7, 3.8) is 0.1; the interval is 3.8 ± t(0.975, 2) · 0.1 / √3.
    assert!((loss.sd - 0.1).abs() < 1e-12);
    let half = 4.302652729911275 * 0.1 / 3f64.sqrt();
    let [lo, hi] = loss.interval.unwrap();
    assert!((lo - (3.8 - half)).abs() < 1e-9 && (hi - (3.8 + half)).abs() < 1e-9);
    // A recovery that was not defined is left out, not counted as zero.
    let rec = find("eval.budget=0.5", "ours", "recovery");
    assert_eq!(rec.n, 2);
    assert!((rec.mean - 0.7).abs() < 1e-12);
    // SKIP has no recovery at all: no row.
    assert!(!rows
        .iter()
        .any(|r| r.method == "skip" && r.metric == "recovery"));
    assert_eq!(rows[0].group, "eval.budget=0.25");
}

#[test]
fn seeds_only_make_one_group_and_no_chart() {
    let mut pts = points();
    pts.retain(|p| p.values[1].1 == "0.5");
    for p in &mut pts {
        p.values.truncate(1);
    }
    let rows = aggregate(&pts, 0.95).unwrap();
    assert!(rows.iter().all(|r| r.group == "all"));
    assert!(chart(&rows, "loss", "loss").is_none());
    assert!(aggregate(&[], 0.95).is_err());
}

#[test]
fn csv_markdown_and_the_chart() {
    let rows = aggregate(&points(), 0.95).unwrap();
    let csv = to_csv(&rows);
    assert!(csv.starts_with("group,method,metric,n,mean,sd,lo,hi\n"));
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let md = to_markdown(&rows, 0.95);
    assert!(md.contains("### eval.budget=0.5"), "{md}");
    assert!(md.contains("| ours | 3 | 3.6000 ± 0.2000 ["), "{md}");
    let c = chart(&rows, "loss", "loss (nats/token)").unwrap();
    assert_eq!(c.x_label, "eval.budget");
    let ours = c.series.iter().find(|s| s.label == "ours").unwrap();
    let xs: Vec<f64> = ours.points.iter().map(|p| p.0).collect();
    assert_eq!(xs, [0.25, 0.5]);
    assert!((ours.points[0].1 - 3.8).abs() < 1e-12 && (ours.points[1].1 - 3.6).abs() < 1e-12);
    let band = c.series.iter().find(|s| s.mark == Mark::Band).unwrap();
    assert_eq!(band.points.len(), 4);
}
