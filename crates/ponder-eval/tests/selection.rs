//! Choosing `ours_lh` on validation records: the lowest loss within the rate tolerance, every
//! candidate's figures recomputed independently, the errors, and `selection.json` read back.

use ponder_eval::compare::{compare, run_method};
use ponder_eval::selection::{select, Selection};
use ponder_eval::ChunkRecord;
use ponder_gate::{ControllerGrid, PacedParams, Signal};

/// `n` chunk-batches in long stretches: the advantage follows `recon_init`, and `recon` carries
/// the level only weakly under noise of its own.
fn records(n: usize, seed: usize) -> Vec<ChunkRecord> {
    (0..n)
        .map(|i| {
            let level = if (i / 25) % 2 == 0 { 0.2 } else { 0.6 };
            let jitter = ((i * 37 + seed * 11) % 29) as f64 / 29.0 * 0.3;
            let recon_init = level + jitter;
            let advantage = 0.1 * recon_init + 0.01 * jitter;
            ChunkRecord {
                index: i,
                batch: i / 2,
                position: i % 2,
                digest: i as u64,
                skip_loss: 4.0,
                update_loss: 4.0 - advantage,
                update_2_loss: None,
                update_4_loss: None,
                recon_init,
                recon: 0.05 * level + ((i * 13 + 5) % 17) as f64 / 17.0,
                recon_after: 0.0,
            }
        })
        .collect()
}

fn grid(tolerance: f64) -> ControllerGrid {
    ControllerGrid {
        tolerance,
        recon_alpha: vec![0.1, 0.01],
        recon_step: vec![0.1, 0.01],
        signals: vec![Signal::Recon, Signal::ReconInit],
        quantile_calibration: vec![1, 8],
        quantile_gain: vec![0.05, 0.2],
        quantile_deadband: vec![0.0, 4.0],
        paced_calibration: vec![1],
        paced_prior: vec![false],
    }
}

#[test]
fn the_lowest_loss_within_the_tolerance_is_chosen() {
    let recs = records(200, 0);
    let g = grid(0.01);
    let sel = select(&recs, 0.5, &g).unwrap();
    assert_eq!(sel.candidates.len(), 4 + 2 * 2 * 2 * 2 + 2);
    let gates: Vec<_> = recs.iter().map(ChunkRecord::gate_record).collect();
    let mut best: Option<(f64, String)> = None;
    for c in &sel.candidates {
        // Each candidate's figures, recomputed from its decisions.
        let run = run_method(&c.config, 0.5, &gates).unwrap();
        let n_up = run.decisions.iter().filter(|d| d.is_update()).count();
        let loss: f64 = recs
            .iter()
            .zip(&run.decisions)
            .map(|(r, d)| {
                if d.is_update() {
                    r.update_loss
                } else {
                    r.skip_loss
                }
            })
            .sum::<f64>()
            / recs.len() as f64;
        assert!((c.loss - loss).abs() < 1e-12, "{}", c.name);
        let rate = n_up as f64 / recs.len() as f64;
        assert_eq!(c.update_rate, rate);
        assert_eq!(c.within_tolerance, (rate - 0.5).abs() <= 0.01 + 1e-12);
        if c.within_tolerance && best.as_ref().is_none_or(|(l, _)| loss < *l) {
            best = Some((loss, c.name.clone()));
        }
    }
    assert_eq!(sel.chosen, best.unwrap().1);
    // The level lives in recon_init here, in stretches of 25, so the gate that keeps it longest,
    // the paced quantile gate on recon_init, wins.
    assert_eq!(sel.chosen, "paced_recon_init_cal1");
}

#[test]
fn no_candidate_within_the_tolerance_is_an_error() {
    // 201 chunk-batches: no rate is within 0.001 of 0.5 except 100/201 or 101/201 … which are
    // 0.0025 away.
    let e = select(&records(201, 0), 0.5, &grid(0.001))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no candidate") && e.contains("closest"), "{e}");
}

#[test]
fn the_choice_reads_validation_records_only() {
    let validation = records(200, 0);
    let sel = select(&validation, 0.5, &grid(0.01)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selection.json");
    ponder_experiment::run_dir::write_json(&path, &sel).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Two different test streams: each runs the same chosen policy as `ours_lh`, and the
    // choice read back is the same file.
    for seed in [1, 2] {
        let test = records(160, seed);
        let mut cfg = ponder_experiment::EvalConfig {
            chunk_len: 16,
            mode: Default::default(),
            chunks_per_window: Some(2),
            chunks_per_stream: None,
            budget_cost: None,
            greedy_oracle_batches: None,
            batch_size: 1,
            max_batches: 100,
            budget: 0.5,
            methods: vec!["random".parse().unwrap(), "ours_lh".parse().unwrap()],
            seed: 0,
            bootstrap_resamples: 50,
            ci_level: 0.95,
            budget_sweep: vec![],
            random_seeds: 2,
            select: Some(grid(0.01)),
        };
        let read = Selection::read_for(&path, 0.5, cfg.select.as_ref().unwrap()).unwrap();
        assert_eq!(read, sel);
        let c = compare(&test, &cfg, Some(&read.config)).unwrap();
        assert!(c.summary.methods.iter().any(|m| m.method == "ours_lh"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A config whose grid differs from the file's is refused.
        cfg.select.as_mut().unwrap().tolerance = 0.02;
        let e = Selection::read_for(&path, 0.5, cfg.select.as_ref().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("another [eval.select]"), "{e}");
    }
    let e = Selection::read_for(&dir.path().join("none.json"), 0.5, &grid(0.01))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not found") && e.contains("--split validation"),
        "{e}"
    );
}

#[test]
fn a_prior_is_cross_fitted_on_validation_and_carried_to_test() {
    let recs = records(101, 0);
    let gates: Vec<_> = recs.iter().map(ChunkRecord::gate_record).collect();
    let g = ControllerGrid {
        recon_alpha: vec![],
        recon_step: vec![],
        signals: vec![Signal::ReconInit],
        quantile_calibration: vec![],
        paced_prior: vec![false, true],
        ..grid(0.05)
    };
    let sel = select(&recs, 0.5, &g).unwrap();
    let names: Vec<&str> = sel.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["paced_recon_init_cal1", "paced_recon_init_cal1_prior"]
    );
    // The candidate with a prior, replayed by hand: the first 50 chunk-batches with the last
    // 51's values as the history's start, the last 51 with the first 50's.
    let values = |r: &[ChunkRecord]| -> Vec<f64> { r.iter().map(|r| r.recon_init).collect() };
    let half = |part: &[ponder_gate::StreamRecord], prior: Vec<f64>| -> Vec<bool> {
        let config = ponder_gate::GateConfig::Paced(PacedParams {
            signal: Signal::ReconInit,
            calibration: 1,
            prior: Some(prior),
        });
        run_method(&config, 0.5, part).unwrap().updated()
    };
    let mut updated = half(&gates[..50], values(&recs[50..]));
    updated.extend(half(&gates[50..], values(&recs[..50])));
    let loss = recs
        .iter()
        .zip(&updated)
        .map(|(r, &u)| if u { r.update_loss } else { r.skip_loss })
        .sum::<f64>()
        / 101.0;
    let with_prior = &sel.candidates[1];
    assert!((with_prior.loss - loss).abs() < 1e-12);
    assert_eq!(
        with_prior.update_rate,
        updated.iter().filter(|&&u| u).count() as f64 / 101.0
    );
    // Chosen or not, the choice carries the whole validation split's values as its prior.
    let chosen = select(
        &recs,
        0.5,
        &ControllerGrid {
            paced_prior: vec![true],
            ..g.clone()
        },
    )
    .unwrap();
    match &chosen.config {
        ponder_gate::GateConfig::Paced(p) => assert_eq!(p.prior, Some(values(&recs))),
        other => panic!("chose {other:?}"),
    }
    assert_eq!(chosen.chosen, "paced_recon_init_cal1_prior");
}

#[test]
fn a_prior_fills_the_calibration_of_a_short_half() {
    // 20 chunk-batches: each half (10) is shorter than the calibration window of 16, but the
    // other half's 10 values start the history, so 6 chunks complete it.
    let recs = records(20, 0);
    let g = ControllerGrid {
        recon_alpha: vec![],
        recon_step: vec![],
        signals: vec![Signal::Recon],
        quantile_calibration: vec![],
        paced_calibration: vec![16],
        paced_prior: vec![true],
        ..grid(0.05)
    };
    let sel = select(&recs, 0.5, &g).unwrap();
    assert_eq!(sel.chosen, "paced_recon_cal16_prior");
    assert_eq!(sel.candidates[0].update_rate, 0.5);
    // 12: halves of 6 with 6 values of prior leave 10 chunks of the window to a half of 6.
    let e = select(&records(12, 0), 0.5, &g).unwrap_err().to_string();
    assert!(
        e.contains("cross-fitting paced_recon_cal16_prior on the two halves of the 12")
            && e.contains("calibration window of 10"),
        "{e}"
    );
    let e = select(&records(1, 0), 0.5, &g).unwrap_err().to_string();
    assert!(
        e.contains("needs at least 2 validation chunk-batches"),
        "{e}"
    );
}
