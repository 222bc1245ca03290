//! The original's controller (`ours`) makes exactly the decisions, and holds exactly the
//! thresholds, that it made on the embedded default's held-out Python records before the
//! long-horizon controllers and the larger validation split were added
//! (`tests/fixtures/ours_replay.csv`, extracted by `make_ours_replay.sh`).

use ponder_gate::stream::replay;
use ponder_gate::{Budget, Decision, ReconGate, StreamRecord};

#[test]
fn ours_replays_the_saved_records_exactly() {
    let text = include_str!("fixtures/ours_replay.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("recon,ours,ours_threshold"));
    let rows: Vec<(f64, u32, Option<f64>)> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let threshold = (!cells[2].is_empty()).then(|| cells[2].parse().unwrap());
            (
                cells[0].parse().unwrap(),
                cells[1].parse().unwrap(),
                threshold,
            )
        })
        .collect();
    assert_eq!(rows.len(), 598);
    let records: Vec<StreamRecord> = rows
        .iter()
        .map(|&(recon, _, _)| StreamRecord {
            recon,
            recon_init: recon,
            recon_after: recon,
            skip_loss: 0.0,
            update_loss: 0.0,
        })
        .collect();
    let mut gate = ReconGate::original(Budget::new(0.5).unwrap());
    let trace = replay(&mut gate, &records);
    for (i, (&(_, decision, threshold), (d, t))) in rows
        .iter()
        .zip(trace.decisions.iter().zip(&trace.thresholds))
        .enumerate()
    {
        let expected = if decision == 1 {
            Decision::Update(1)
        } else {
            Decision::Skip
        };
        assert_eq!(*d, expected, "chunk-batch {i}");
        assert_eq!(
            t.map(f64::to_bits),
            threshold.map(f64::to_bits),
            "chunk-batch {i}"
        );
    }
}
