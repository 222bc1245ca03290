//! `compare` on records small enough to work out by hand, and its errors.

use ponder_eval::compare::compare;
use ponder_eval::ChunkRecord;
use ponder_experiment::EvalConfig;

fn record(index: usize, skip: f64, update: f64, recon: f64, recon_after: f64) -> ChunkRecord {
    ChunkRecord {
        index,
        batch: index / 2,
        position: index % 2,
        digest: index as u64,
        skip_loss: skip,
        update_loss: update,
        update_2_loss: None,
        update_4_loss: None,
        recon_init: recon,
        recon,
        recon_after,
    }
}

fn config(methods: &[&str]) -> EvalConfig {
    EvalConfig {
        chunk_len: 16,
        mode: Default::default(),
        chunks_per_window: Some(2),
        chunks_per_stream: None,
        budget_cost: None,
        greedy_oracle_batches: None,
        batch_size: 1,
        max_batches: 10,
        budget: 0.5,
        methods: methods.iter().map(|m| m.parse().unwrap()).collect(),
        seed: 0,
        bootstrap_resamples: 200,
        ci_level: 0.95,
        budget_sweep: vec![0.25, 0.75],
        random_seeds: 3,
        select: None,
    }
}

/// A small grid of candidates for `ours_lh`.
fn grid() -> ponder_gate::ControllerGrid {
    ponder_gate::ControllerGrid {
        tolerance: 0.05,
        recon_alpha: vec![0.1],
        recon_step: vec![0.1, 0.01],
        signals: vec![ponder_gate::Signal::Recon, ponder_gate::Signal::ReconInit],
        quantile_calibration: vec![4],
        quantile_gain: vec![0.1],
        quantile_deadband: vec![0.0, 2.0],
        paced_calibration: vec![1],
        paced_prior: vec![false],
    }
}

/// Advantages 2, −0.5, 1, 0; reconstruction drops 0.1, 0.05, 0.3, 0.2.
fn four() -> Vec<ChunkRecord> {
    vec![
        record(0, 3.0, 1.0, 0.5, 0.4),
        record(1, 2.0, 2.5, 0.1, 0.05),
        record(2, 4.0, 3.0, 0.4, 0.1),
        record(3, 1.0, 1.0, 0.2, 0.0),
    ]
}

#[test]
fn losses_recovery_and_accuracy_by_hand() {
    let records = four();
    let c = compare(
        &records,
        &config(&["skip", "update_1", "oracle", "ttt_improvement"]),
        None,
    )
    .unwrap();
    let get = |name: &str| c.summary.methods.iter().find(|m| m.method == name).unwrap();
    // SKIP: (3 + 2 + 4 + 1) / 4.
    assert!((get("skip").loss.point - 2.5).abs() < 1e-12);
    // UPDATE_1: (1 + 2.5 + 3 + 1) / 4.
    assert!((get("update_1").loss.point - 1.875).abs() < 1e-12);
    // Oracle, top 2 by advantage (chunks 0 and 2): (1 + 2 + 3 + 1) / 4.
    let oracle = get("oracle");
    assert!((oracle.loss.point - 1.75).abs() < 1e-12);
    assert_eq!(oracle.update_rate, 0.5);
    assert_eq!(oracle.cost_units, 2.0);
    assert_eq!(oracle.decision_accuracy, 1.0);
    // Recovery of UPDATE_1: (2.5 − 1.875) / (2.5 − 1.75) = 5/6.
    let r = get("update_1").recovery.unwrap();
    assert!((r - 5.0 / 6.0).abs() < 1e-12, "{r}");
    // Some resamples of four chunks have no oracle gain: no interval rather than a NaN.
    assert!(get("update_1").recovery_ci.is_none());
    assert_eq!(get("update_1").decision_accuracy, 0.5);
    assert_eq!(get("update_1").cost_units, 3.0);
    // TTT improvement, top 2 by drop (0.3 at chunk 2, 0.2 at chunk 3): (3 + 2 + 3 + 1) / 4.
    let t = get("ttt_improvement");
    assert!((t.loss.point - 2.25).abs() < 1e-12);
    assert_eq!(t.decision_accuracy, 0.5);
    // The sweep replays the oracle: ρ = 0.25 updates chunk 0 only, ρ = 0.75 chunks 0, 2, 3.
    let at = |i: usize| {
        c.summary.sweep[i]
            .losses
            .iter()
            .find(|(n, _)| n == "oracle")
            .unwrap()
            .1
    };
    assert!((at(0) - (1.0 + 2.0 + 4.0 + 1.0) / 4.0).abs() < 1e-12);
    assert!((at(1) - (1.0 + 2.0 + 3.0 + 1.0) / 4.0).abs() < 1e-12);
    // No McNemar and no Random spread without Random.
    assert!(c.summary.mcnemar.is_empty());
    assert!(c.summary.random.is_none() && c.summary.versus_random.is_empty());
    assert_eq!(c.correlations.n, 4);
}

#[test]
fn a_stream_shorter_than_the_calibration_window_is_an_error() {
    let e = compare(&four(), &config(&["skip", "ours"]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("16") && e.contains('4'), "{e}");
}

#[test]
fn ours_and_random_get_mcnemar_and_same_input_same_summary() {
    // 40 chunks whose advantage grows with the signal: Ours should agree with the oracle more
    // often than Random does.
    let records: Vec<ChunkRecord> = (0..40)
        .map(|i| {
            let s = ((i * 7) % 40) as f64 / 40.0;
            record(i, 3.0, 3.0 - s, s, s / 2.0)
        })
        .collect();
    let cfg = config(&["skip", "random", "oracle", "ours"]);
    let a = compare(&records, &cfg, None).unwrap();
    let b = compare(&records, &cfg, None).unwrap();
    assert_eq!(
        serde_json::to_string(&a.summary).unwrap(),
        serde_json::to_string(&b.summary).unwrap()
    );
    assert_eq!(a.summary.mcnemar.len(), 1);
    let m = &a.summary.mcnemar[0];
    assert_eq!((m.method.as_str(), m.against.as_str()), ("ours", "random"));
    assert!(m.n10 > m.n01, "{m:?}");
    assert!(a.correlations.recon.as_ref().unwrap().pearson > 0.99);
    // The SKIP loss is constant here: its correlation is undefined, not an error.
    assert!(a.correlations.skip_loss.is_none());
    let ours = a
        .summary
        .methods
        .iter()
        .find(|m| m.method == "ours")
        .unwrap();
    let [lo, hi] = ours.recovery_ci.unwrap();
    assert!(lo <= ours.recovery.unwrap() && ours.recovery.unwrap() <= hi);
    let ours = a
        .summary
        .methods
        .iter()
        .find(|m| m.method == "ours")
        .unwrap();
    let random = a
        .summary
        .methods
        .iter()
        .find(|m| m.method == "random")
        .unwrap();
    assert!(ours.decision_accuracy > random.decision_accuracy);
}

#[test]
fn bad_budget_and_unknown_method_are_errors() {
    let mut cfg = config(&["skip"]);
    cfg.budget = -0.1;
    let e = compare(&four(), &cfg, None).unwrap_err().to_string();
    assert!(e.contains("eval.budget = -0.1"), "{e}");
    let e = "psychic"
        .parse::<ponder_gate::Method>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("psychic") && e.contains("oracle"), "{e}");
}

/// `update_2` is scored on the UPDATE_2 path and charged UPDATE_2's cost; records without that
/// path are refused rather than scored on UPDATE_1's losses.
#[test]
fn update_2_is_scored_on_its_own_path() {
    let mut records = four();
    for (r, l2) in records.iter_mut().zip([0.5, 2.0, 2.5, 1.0]) {
        r.update_2_loss = Some(l2);
    }
    let c = compare(&records, &config(&["update_1", "update_2"]), None).unwrap();
    let get = |name: &str| c.summary.methods.iter().find(|m| m.method == name).unwrap();
    // (0.5 + 2 + 2.5 + 1) / 4, not UPDATE_1's 1.875.
    assert!((get("update_2").loss.point - 1.5).abs() < 1e-12);
    assert_eq!(get("update_2").cost_units, 5.0);
    assert!((get("update_1").loss.point - 1.875).abs() < 1e-12);
    let e = compare(&four(), &config(&["update_2"]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("UPDATE_2 loss was not computed"), "{e}");
}

/// A diverging update (a loss far beyond any real model's) leaves a summary that reads back:
/// its perplexity is `None`, not an infinity JSON cannot hold.
#[test]
fn a_diverging_update_leaves_a_readable_summary() {
    let mut records = four();
    records[1].update_loss = 3.6e9;
    let c = compare(&records, &config(&["skip", "update_1"]), None).unwrap();
    let text = serde_json::to_string(&c.summary).unwrap();
    let back: ponder_eval::summary::Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, c.summary);
    assert_eq!(back.methods[1].perplexity, None);
    assert!(back.methods[0].perplexity.is_some());
    assert!(c.summary.to_string().contains("update_1"));
}

/// Random's expectation, its spread over seeds and each method's paired difference to it, by
/// hand on four chunks.
#[test]
fn random_in_expectation_and_over_seeds() {
    let records = four();
    let c = compare(&records, &config(&["skip", "update_1", "random"]), None).unwrap();
    let r = c.summary.random.as_ref().unwrap();
    assert_eq!(r.seeds, [42, 43, 44]);
    // 0.5·UPDATE_1 + 0.5·SKIP = (2.5 + 1.875) / 2.
    assert!((r.expected_loss - 2.1875).abs() < 1e-12);
    // Recovery of the expectation: (2.5 − 2.1875) / (2.5 − 1.75) = 5/12.
    assert!((r.expected_recovery.unwrap() - 5.0 / 12.0).abs() < 1e-12);
    assert!(r.loss.min <= r.loss.mean && r.loss.mean <= r.loss.max);
    // SKIP − expectation = 2.5 − 2.1875, UPDATE_1 − expectation = −0.3125, exactly.
    let diff = |name: &str| {
        c.summary
            .versus_random
            .iter()
            .find(|v| v.method == name)
            .unwrap()
            .difference
    };
    assert!((diff("skip").point - 0.3125).abs() < 1e-12);
    assert!((diff("update_1").point + 0.3125).abs() < 1e-12);
    // The `random` row is seed 42, the first of the spread's seeds.
    let random = c
        .summary
        .methods
        .iter()
        .find(|m| m.method == "random")
        .unwrap();
    assert!(r.loss.min <= random.loss.point && random.loss.point <= r.loss.max);
}

/// `ours_lh` runs the policy it is given, gets McNemar against Random, and joins the sweep;
/// without a policy it is an error naming it. `signal_topk` ranks by the signal with hindsight.
#[test]
fn ours_lh_runs_the_selected_policy() {
    let records: Vec<ChunkRecord> = (0..40)
        .map(|i| {
            let s = ((i * 7) % 40) as f64 / 40.0;
            record(i, 3.0, 3.0 - s, s, s / 2.0)
        })
        .collect();
    let mut cfg = config(&["random", "ours", "ours_lh", "signal_topk"]);
    cfg.select = Some(grid());
    let e = compare(&records, &cfg, None).unwrap_err().to_string();
    assert!(e.contains("ours_lh"), "{e}");
    let chosen: ponder_gate::GateConfig = "pid".parse().unwrap();
    let c = compare(&records, &cfg, Some(&chosen)).unwrap();
    let names: Vec<&str> = c
        .summary
        .mcnemar
        .iter()
        .map(|m| m.method.as_str())
        .collect();
    assert_eq!(names, ["ours", "ours_lh"]);
    let lh = c.runs.iter().find(|r| r.name == "ours_lh").unwrap();
    let pid = ponder_eval::compare::run_method(
        &chosen,
        0.5,
        &records
            .iter()
            .map(ChunkRecord::gate_record)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(lh.decisions, pid.decisions);
    assert!(c.summary.sweep[0]
        .losses
        .iter()
        .any(|(n, _)| n == "ours_lh"));
    // The advantage grows with the signal: the signal's top half is the oracle's.
    let topk = c
        .summary
        .methods
        .iter()
        .find(|m| m.method == "signal_topk")
        .unwrap();
    assert_eq!(topk.decision_accuracy, 1.0);
}
