//! The model pass of a comparison on a small random model: an interrupted pass resumes to the
//! same records as an uninterrupted one, and records of other data are refused.

use candle::Device;
use ponder_eval::chunk_batches;
use ponder_eval::records::{evaluate, read_records, record_chunk, PassMode, PassTimes};
use ponder_experiment::EvalConfig;
mod common;
use common::lm;

fn config() -> EvalConfig {
    EvalConfig {
        chunk_len: 32,
        mode: Default::default(),
        chunks_per_window: Some(2),
        chunks_per_stream: None,
        budget_cost: None,
        greedy_oracle_batches: None,
        batch_size: 2,
        max_batches: 3,
        budget: 0.5,
        methods: vec!["skip".parse().unwrap()],
        seed: 0,
        bootstrap_resamples: 10,
        ci_level: 0.95,
        budget_sweep: vec![],
        random_seeds: 3,
        select: None,
    }
}

#[test]
fn an_interrupted_pass_resumes_to_the_same_records() {
    let lm = lm();
    let stream: Vec<u32> = (0..1000u32).map(|i| (i * 37 + i / 7) % 300).collect();
    let chunks = chunk_batches(&stream, &config(), None).unwrap();
    assert_eq!(chunks.len(), 6);
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.jsonl");
    let (records, times) = evaluate(&lm, &chunks, &Device::Cpu, &full, &[], |_| {}).unwrap();
    assert_eq!(records.len(), 6);
    // Chunk-batches 0 and 4 are the probes, timed part by part.
    assert_eq!((times.chunks, times.overlapped), (2, 4));
    let bytes = std::fs::read_to_string(&full).unwrap();

    // A kill after two records and half of the third line.
    let cut = dir.path().join("cut.jsonl");
    let lines: Vec<&str> = bytes.lines().collect();
    std::fs::write(
        &cut,
        format!("{}\n{}\n{}", lines[0], lines[1], &lines[2][..20]),
    )
    .unwrap();
    assert_eq!(read_records(&cut, &chunks).unwrap().len(), 2);
    let (resumed, times) = evaluate(&lm, &chunks, &Device::Cpu, &cut, &[], |_| {}).unwrap();
    assert_eq!(
        (times.chunks, times.overlapped),
        (1, 3),
        "only the missing chunk-batches are computed"
    );
    assert_eq!(resumed, records);
    assert_eq!(std::fs::read_to_string(&cut).unwrap(), bytes);

    // Records of other tokens are refused, naming the file.
    let other: Vec<u32> = stream.iter().map(|t| (t + 1) % 300).collect();
    let other_chunks = chunk_batches(&other, &config(), None).unwrap();
    let e = evaluate(&lm, &other_chunks, &Device::Cpu, &full, &[], |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("full.jsonl") && e.contains("different tokens"),
        "{e}"
    );
}

#[test]
fn probes_and_overlapped_passes_give_the_same_records() {
    let lm = lm();
    let stream: Vec<u32> = (0..1000u32).map(|i| (i * 29 + i / 5) % 300).collect();
    let chunks = chunk_batches(&stream, &config(), None).unwrap();
    let mut times = PassTimes::default();
    for chunk in &chunks {
        let probe =
            record_chunk(&lm, chunk, &Device::Cpu, PassMode::Probe, &[], &mut times).unwrap();
        let overlapped = record_chunk(
            &lm,
            chunk,
            &Device::Cpu,
            PassMode::Overlapped,
            &[],
            &mut times,
        )
        .unwrap();
        assert_eq!(probe, overlapped, "chunk-batch {}", chunk.index);
        assert!(probe.skip_loss != probe.update_loss);
    }
    assert_eq!((times.chunks, times.overlapped), (6, 6));
    let (skip, update) = (
        times.skip_forward().unwrap(),
        times.update_forward().unwrap(),
    );
    assert!(skip > 0.0 && update > skip, "{times:?}");
    assert_eq!(
        times.comparison(),
        Some(times.overlapped_s / 6.0),
        "the comparison's cost comes from the passes run as it runs them"
    );
    assert_eq!(PassTimes::default().update_forward(), None);
}

#[test]
fn flops_count_both_heads_once_more() {
    let lm = lm();
    let f = ponder_eval::flops::chunk_flops(&lm, 2, 32, &[4]);
    // The head: 2 · rows · t · d · V.
    assert_eq!(f.head, 2.0 * 2.0 * 32.0 * 64.0 * 300.0);
    assert_eq!(f.comparison() - f.update(), f.head);
    // Per block and token: 2 · (4d² + 2 · d · 4d) for the projections and MLP, plus 2 · 2 · t · d
    // for QKᵀ and AV; 2 blocks, 2 rows of 32 tokens.
    let block = 2.0 * (4.0 * 64.0 * 64.0 + 2.0 * 64.0 * 256.0) + 4.0 * 32.0 * 64.0;
    assert_eq!(f.backbone, 2.0 * 2.0 * 32.0 * block);
    assert!(f.fast > 0.0, "{f:?}");
    // UPDATE_4 gives every token its own weights: more work than the dual form's UPDATE_1.
    assert!(f.fast_k[&4] > f.fast, "{f:?}");
    assert_eq!(f.path(ponder_gate::Decision::Update(2)), None);
}

/// Each UPDATE_k with k > 1 that a method uses gets its own k-step fast-layer pass: its loss is
/// the k-step path's, computed independently here, not UPDATE_1's.
#[test]
fn update_k_records_hold_the_k_step_loss() {
    let lm = lm();
    let stream: Vec<u32> = (0..1000u32).map(|i| (i * 31 + i / 3) % 300).collect();
    let chunks = chunk_batches(&stream, &config(), None).unwrap();
    let mut times = PassTimes::default();
    for (chunk, mode) in chunks.iter().zip([PassMode::Probe, PassMode::Overlapped]) {
        let r = record_chunk(&lm, chunk, &Device::Cpu, mode, &[2, 4], &mut times).unwrap();
        let ids =
            candle::Tensor::from_slice(&chunk.ids, (chunk.rows, chunk.len), &Device::Cpu).unwrap();
        let hidden = lm.backbone(&ids).unwrap();
        let state = lm.initial_state(chunk.rows).unwrap();
        for (k, got) in [(2, r.update_2_loss), (4, r.update_4_loss)] {
            let up = lm.update(&hidden, &ids, &state, k).unwrap();
            let want = lm
                .next_token_loss(&up.features, &ids)
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64;
            let got = got.unwrap();
            assert!((got - want).abs() < 1e-6, "UPDATE_{k}: {got} vs {want}");
            assert!(
                (got - r.update_loss).abs() > 1e-6,
                "UPDATE_{k} equals UPDATE_1"
            );
        }
        let d = |k| ponder_gate::Decision::Update(k);
        assert_eq!(r.loss_of(d(2)).unwrap(), r.update_2_loss.unwrap());
        assert_eq!(r.loss_of(ponder_gate::Decision::Skip).unwrap(), r.skip_loss);
    }
    // Only the probe times the extra passes.
    assert!(times.update_k_s[&2] > 0.0 && times.update_k_s[&4] > 0.0);
    assert!(times.forward(ponder_gate::Decision::Update(4)).is_some());
    // A record made without UPDATE_2 cannot score it.
    let plain = record_chunk(
        &lm,
        &chunks[0],
        &Device::Cpu,
        PassMode::Probe,
        &[],
        &mut times,
    )
    .unwrap();
    assert_eq!(plain.update_2_loss, None);
    let e = plain
        .loss_of(ponder_gate::Decision::Update(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("UPDATE_2 loss was not computed"), "{e}");
}
