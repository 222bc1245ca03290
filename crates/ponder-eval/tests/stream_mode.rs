//! Stream mode on a small random model: one-chunk streams of UPDATE_1 are reset mode's UPDATE_1
//! bit for bit, per-stream decisions grouped into batches equal each stream run alone, and the
//! greedy oracle keeps the best action of every chunk when the budget allows any, and a paced
//! gate and a guarded learned gate spend their budget over every chunk of every stream.

mod common;

use candle::{DType, Device, Tensor};
use ponder_eval::act::act;
use ponder_eval::file_stream::{stream_batches, StreamBatch};
use ponder_eval::learned::LearnedGate;
use ponder_eval::records::{record_chunk, PassMode, PassTimes};
use ponder_eval::stream_compare::{run_streams, StreamRun};
use ponder_eval::stream_summary::summarize;
use ponder_eval::ChunkBatch;
use ponder_experiment::EvalConfig;
use ponder_gate::Decision;
use ponder_model::PonderLm;

const EOT: u32 = 299;

fn config(methods: &str, chunks: usize, extra: &str) -> EvalConfig {
    toml::from_str(&format!(
        r#"
        mode = "stream"
        chunk_len = 16
        chunks_per_stream = {chunks}
        batch_size = 3
        max_batches = 2
        methods = {methods}
        seed = 0
        bootstrap_resamples = 50
        ci_level = 0.9
        budget_sweep = []
        random_seeds = 1
        {extra}
        "#
    ))
    .unwrap()
}

/// The default budget: an UPDATE_1 rate of ½, a mean cost of 2.
const HALF: &str = "budget = 0.5";

/// `n` files of pseudo-random lengths between one and four chunks of 16 tokens, joined by EOT.
fn files(n: usize) -> Vec<u32> {
    let docs: Vec<Vec<u32>> = (0..n)
        .map(|d| {
            let len = 16 * (1 + d % 4) + d % 5;
            (0..len)
                .map(|i| ((i * 37 + d * 101 + i / 3) % 290) as u32)
                .collect()
        })
        .collect();
    ponder_data::pack::join_documents(&docs, EOT)
}

fn run_all(lm: &PonderLm, tokens: &[u32], eval: &EvalConfig) -> StreamRun {
    let batches = stream_batches(tokens, EOT, eval, None).unwrap();
    run_with(lm, &batches, eval, None, None)
}

/// `run_streams` of `batches` with `ours_lh` resolved to `selected` and `ppo` run by `learned`,
/// no records kept.
fn run_with(
    lm: &PonderLm,
    batches: &[StreamBatch],
    eval: &EvalConfig,
    selected: Option<&ponder_gate::GateConfig>,
    learned: Option<(LearnedGate, usize)>,
) -> StreamRun {
    run_streams(
        lm,
        batches,
        eval,
        selected,
        learned,
        &Device::Cpu,
        None,
        |_, _| {},
    )
    .unwrap()
}

/// Every chunk of every stream of `batches`, counted here apart from the comparison's own count
/// (the horizon the gates are given).
fn chunks_in(batches: &[StreamBatch]) -> usize {
    batches
        .iter()
        .flat_map(|b| &b.streams)
        .map(|s| s.chunks.len())
        .sum()
}

fn losses(run: &StreamRun, method: &str) -> Vec<f64> {
    let m = run.methods.iter().find(|m| m.method == method).unwrap();
    m.steps.iter().map(|s| s.loss).collect()
}

#[test]
fn one_chunk_streams_of_update_1_are_reset_mode_update_1() {
    let lm = common::lm();
    let tokens = files(6);
    let eval = config(r#"["update_1", "none"]"#, 1, HALF);
    let run = run_all(&lm, &tokens, &eval);
    let batches = stream_batches(&tokens, EOT, &eval, None).unwrap();
    let (update, none) = (losses(&run, "update_1"), losses(&run, "none"));
    let mut at = 0;
    for (b, batch) in batches.iter().enumerate() {
        let rows: Vec<usize> = (0..batch.streams.len()).collect();
        let chunk = ChunkBatch {
            index: b,
            batch: b,
            position: 0,
            rows: rows.len(),
            len: 16,
            ids: batch.ids(0, &rows),
        };
        let ids = Tensor::from_slice(&chunk.ids, (rows.len(), 16), &Device::Cpu).unwrap();
        let hidden = lm.backbone(&ids).unwrap().contiguous().unwrap();
        let up = lm
            .update(&hidden, &ids, &lm.initial_state(rows.len()).unwrap(), 1)
            .unwrap();
        let reset: Vec<f32> = lm
            .next_token_loss(&up.features, &ids)
            .unwrap()
            .to_vec1()
            .unwrap();
        let skip: Vec<f32> = lm
            .next_token_loss(&hidden, &ids)
            .unwrap()
            .to_vec1()
            .unwrap();
        for r in rows {
            assert_eq!(update[at + r], f64::from(reset[r]), "batch {b} row {r}");
            assert_eq!(none[at + r], f64::from(skip[r]), "batch {b} row {r}");
        }
        // Reset mode's record of the same chunk-batch: the mean of the same losses.
        let record = record_chunk(
            &lm,
            &chunk,
            &Device::Cpu,
            PassMode::Probe,
            &[],
            &mut PassTimes::default(),
        )
        .unwrap();
        let n = batch.streams.len();
        let mean = update[at..at + n].iter().sum::<f64>() / n as f64;
        assert!((record.update_loss - mean).abs() < 1e-12);
        at += n;
    }
    assert_eq!(at, update.len());
}

#[test]
fn per_stream_decisions_equal_each_stream_alone() {
    each_stream_alone(&common::lm_in(DType::F64), r#"["random_seed3"]"#);
}

#[test]
fn lora_streams_carry_their_factors_alone_too() {
    each_stream_alone(&common::lora_lm(), r#"["random_seed3"]"#);
}

/// `methods` (one gate) over three-chunk streams: every stream's losses equal the same stream run
/// alone with the same decisions, and both actions were taken.
fn each_stream_alone(lm: &PonderLm, methods: &str) {
    let tokens = files(6);
    let eval = config(methods, 3, HALF);
    let run = run_all(lm, &tokens, &eval);
    let steps = &run.methods[0].steps;
    let batches = stream_batches(&tokens, EOT, &eval, None).unwrap();
    let mut checked = 0;
    for stream in batches.iter().flat_map(|b| &b.streams) {
        let mut state = lm.initial_state(1).unwrap();
        for (c, chunk) in stream.chunks.iter().enumerate() {
            let step = steps
                .iter()
                .find(|s| s.stream == stream.index && s.chunk == c)
                .unwrap();
            let decision = match step.steps.unwrap() {
                0 => Decision::Skip,
                k => Decision::Update(k),
            };
            let ids = Tensor::from_slice(chunk, (1, 16), &Device::Cpu).unwrap();
            let hidden = lm.backbone(&ids).unwrap();
            let (loss, next) = act(lm, &hidden, &ids, &state, decision).unwrap();
            assert!(
                (loss[0] - step.loss).abs() < 1e-10,
                "stream {} chunk {c}: {} alone, {} in its batch",
                stream.index,
                loss[0],
                step.loss
            );
            state = next;
            checked += 1;
        }
    }
    assert_eq!(checked, steps.len());
    // Both actions were taken, so rows were grouped.
    assert!(steps.iter().any(|s| s.steps == Some(0)) && steps.iter().any(|s| s.steps == Some(1)));
}

#[test]
fn the_greedy_oracle_keeps_the_best_action_within_the_budget() {
    let lm = common::lm();
    let tokens = files(6);
    // A budget every action fits: the multiplier is 0 and each chunk keeps its least loss.
    let eval = config(
        r#"["skip", "update_1", "update_4", "greedy_oracle"]"#,
        2,
        "budget = 1.0\nbudget_cost = 9.0\ngreedy_oracle_batches = 1",
    );
    let run = run_all(&lm, &tokens, &eval);
    let (greedy, search) = run.greedy.as_ref().unwrap();
    assert_eq!(search.lambda, 0.0);
    for s in greedy.steps.iter().filter(|s| s.chunk == 0) {
        for m in &run.methods {
            let other = m
                .steps
                .iter()
                .find(|o| o.stream == s.stream && o.chunk == 0)
                .unwrap();
            assert!(
                s.loss <= other.loss,
                "{}: {} > {}",
                m.method,
                s.loss,
                other.loss
            );
        }
    }
    // The default budget (mean cost 2): the multiplier found holds the greedy oracle to it.
    let eval = config(
        r#"["skip", "greedy_oracle"]"#,
        2,
        "budget = 0.5\ngreedy_oracle_batches = 2",
    );
    let run = run_all(&lm, &tokens, &eval);
    let flops = ponder_eval::flops::chunk_flops(&lm, 1, 16, &[2, 4]);
    let summary = summarize(&run, &eval, &flops, ponder_experiment::StateMode::Stream).unwrap();
    // A layer evaluated in stream mode says which mode it was trained in.
    assert!(summary
        .to_string()
        .contains("fast layer trained in stream mode"));
    // A read costs UPDATE_1's FLOPs, so the SKIP-only row costs as much as an UPDATE_1 chunk.
    assert_eq!(summary.methods[0].flops, flops.update());
    let greedy = summary.methods.last().unwrap();
    assert_eq!(greedy.method, "greedy_oracle");
    assert!(greedy.cost.point <= 2.0, "{}", greedy.cost.point);
    assert!(summary.greedy.as_ref().unwrap().tried.len() > 1);
    assert_eq!(summary.methods[0].cost.point, 1.0);
}

#[test]
fn an_interrupted_stream_comparison_resumes_to_the_same_decisions() {
    let lm = common::lm();
    let tokens = files(6);
    let eval = config(r#"["random_seed3", "ours", "update_1"]"#, 3, HALF);
    let batches = stream_batches(&tokens, EOT, &eval, None).unwrap();
    assert_eq!(batches.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let run = |path: &std::path::Path| {
        run_streams(
            &lm,
            &batches,
            &eval,
            None,
            None,
            &Device::Cpu,
            Some(path),
            |_, _| {},
        )
        .unwrap()
    };
    let whole = run(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    // Killed while writing the second batch: its line is cut short.
    std::fs::write(&path, format!("{}\n{}", lines[0], &lines[1][..20])).unwrap();
    let resumed = run(&path);
    for (a, b) in whole.methods.iter().zip(&resumed.methods) {
        assert_eq!(a.steps, b.steps, "{}", a.method);
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Records of other tokens are refused.
    let other = stream_batches(&files(7)[40..], EOT, &eval, None).unwrap();
    let err = run_streams(
        &lm,
        &other,
        &eval,
        None,
        None,
        &Device::Cpu,
        Some(&path),
        |_, _| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("other tokens"), "{err}");
}

#[test]
fn a_paced_gate_ends_the_whole_evaluation_on_its_budget() {
    // Ragged streams of one to four chunks: the paced gate's horizon is every chunk of every
    // stream, so its count ends within one of ρ·N (a wrong horizon misses it by far).
    let lm = common::lm();
    let tokens = files(24);
    let paced = ponder_gate::GateConfig::Paced(ponder_gate::PacedParams {
        signal: ponder_gate::Signal::Recon,
        calibration: 1,
        prior: None,
    });
    // `ours_lh` needs a grid to have been chosen from; the paced gate is its one candidate.
    let select = r#"
        [select]
        tolerance = 0.1
        recon_alpha = []
        recon_step = []
        signals = ["recon"]
        quantile_calibration = []
        quantile_gain = []
        quantile_deadband = []
        paced_calibration = [1]
        paced_prior = [false]
    "#;
    for budget in [0.25, 0.5, 0.75] {
        let extra = format!("budget = {budget}\n{select}");
        let mut eval = config(r#"["ours_lh"]"#, 4, &extra);
        eval.max_batches = 8;
        let batches = stream_batches(&tokens, EOT, &eval, None).unwrap();
        let run = run_with(&lm, &batches, &eval, Some(&paced), None);
        let steps = &run.methods[0].steps;
        let n = chunks_in(&batches);
        assert_eq!((steps.len(), batches.len()), (n, 8));
        let updates = steps.iter().filter(|s| s.steps == Some(1)).count();
        assert!(
            (updates as f64 - budget * n as f64).abs() < 1.0,
            "ρ {budget}: {updates} updates of {n} chunks"
        );
    }
}

/// A learned gate on a random network whose correction makes UPDATE_4 the argmax everywhere,
/// with no online gain: it overspends as far as it can unless its budget guard holds it.
fn greedy_learned_gate(guard: bool) -> LearnedGate {
    use ponder_eval::learned::{action_steps, PolicyMeta};
    use ponder_experiment::{CorrectionForm, Inference};
    use rand::SeedableRng;
    let net = ponder_policy::NetConfig {
        features: ponder_gate::features::WIDTH,
        hidden: vec![8],
        actions: ponder_gate::ACTIONS.len(),
        activation: ponder_policy::Activation::Tanh,
        dropout: 0.0,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let actor = ponder_policy::ActorCritic::new(net.clone(), &mut rng, &Device::Cpu).unwrap();
    LearnedGate::new(
        actor,
        PolicyMeta {
            net,
            actions: action_steps(),
            features: ponder_gate::features::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            budget: 2.0,
            chunk_len: 16,
            history_alpha: 0.1,
            length_norm: 512,
            feature_norm: None,
            inference: Inference::Argmax,
            // ℓ_a + 100 c_a: the dearest action wins whatever the small random logits say.
            correction_form: CorrectionForm::Cost,
            correction: -100.0,
            correction_gain: 0.0,
            budget_guard: guard,
            gain_trials: Vec::new(),
            calibration: Vec::new(),
            calibration_streams: 1,
            iterations: 0,
        },
    )
}

#[test]
fn a_guarded_learned_gate_ends_the_whole_evaluation_on_its_budget() {
    // Ragged streams: the guard's horizon is every chunk of every stream, so the total cost
    // ends at most 4 (the widest gap between two actions' costs) under 2 per chunk, never over;
    // without the guard the same gate spends 9 per chunk.
    let lm = common::lm();
    let tokens = files(24);
    let mut eval = config(r#"["ppo"]"#, 4, HALF);
    eval.max_batches = 8;
    let batches = stream_batches(&tokens, EOT, &eval, None).unwrap();
    let n = chunks_in(&batches);
    let total = |guard: bool| -> f64 {
        let learned = Some((greedy_learned_gate(guard), 300));
        let run = run_with(&lm, &batches, &eval, None, learned);
        let steps = &run.methods[0].steps;
        assert_eq!(steps.len(), n);
        steps.iter().map(|s| s.cost()).sum()
    };
    assert_eq!(total(false), 9.0 * n as f64);
    let guarded = total(true);
    let budget = 2.0 * n as f64;
    assert!(
        guarded <= budget && guarded > budget - 4.0,
        "{guarded} against {budget} over {n} chunks"
    );
}
