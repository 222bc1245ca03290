//! Fast-layer training through `train_fast` for every fast layer (TTT-Linear, TTT-MLP, LoRA) on a
//! learnable stream, and the frozen backbone's dropout: where the backbone's config has dropout
//! it runs during training (so the steps differ from a dropout-free backbone's), deterministically
//! from the run seed.

use ponder_data::{DataConfig, ExperimentData, TokenizerConfig};
use ponder_experiment::records::Metric;
use ponder_experiment::{ExperimentConfig, FastConfig, OpenOptions, RunConfig, RunDir, RunFolder};
use ponder_gpt2::{Gpt2, Gpt2Config, LoadOptions};
use ponder_model::{FastLayerKind, LoraFastConfig, LoraUpdate, TttConfig};
use ponder_nn::Precision;
use ponder_train::train_fast;

const VOCAB: usize = 64;
const LEN: usize = 32;

fn model_config(pdrop: f64) -> Gpt2Config {
    Gpt2Config {
        vocab_size: VOCAB,
        n_positions: LEN,
        n_embd: 32,
        n_head: 2,
        resid_pdrop: pdrop,
        embd_pdrop: pdrop,
        attn_pdrop: pdrop,
        ..Gpt2Config::tiny()
    }
}

fn backbone(pdrop: f64) -> Gpt2 {
    ponder_gpt2::random(model_config(pdrop), 5, &LoadOptions::cpu_f32()).unwrap()
}

/// A learnable stream: each token is `5 · previous + 3` (mod `VOCAB`), a fixed token every
/// seventh place.
fn stream(n: usize) -> Vec<u32> {
    let mut cur = 1u32;
    (0..n)
        .map(|i| {
            cur = if i % 7 == 0 {
                2
            } else {
                (5 * cur + 3) % VOCAB as u32
            };
            cur
        })
        .collect()
}

fn config(out: &std::path::Path, layer: FastLayerKind, pdrop: f64, steps: u64) -> ExperimentConfig {
    let ttt = TttConfig {
        head_dim: 16,
        mini_batch_size: 8,
        ..TttConfig::for_gpt2(32, 2)
    };
    let lora = LoraFastConfig {
        lora_dropout: 0.0,
        ..LoraFastConfig::original(
            32,
            4,
            LoraUpdate {
                lr: 0.5,
                block_size: 8,
                max_grad_norm: None,
            },
        )
    };
    let is_lora = layer == FastLayerKind::Lora;
    ExperimentConfig {
        run: RunConfig {
            seed: 3,
            out_dir: out.to_path_buf(),
            cache_dir: out.join("cache"),
        },
        data: DataConfig {
            sources: vec!["synthetic".into()],
            hf: None,
            language: "python".into(),
            validation: 0.1,
            test: 0.0,
            seq_len: LEN,
            tokenizer: TokenizerConfig::Gpt2,
            decontaminate: Vec::new(),
        },
        model: model_config(pdrop),
        backbone: None,
        fast: Some(FastConfig {
            backbone: "random".into(),
            layer,
            mode: Default::default(),
            chunks_per_window: None,
            chunk_len: LEN,
            k: 1,
            steps,
            batch_size: 4,
            lr: 1e-2,
            grad_clip: 1.0,
            ssl_weight: 0.1,
            eval_every: steps,
            eval_chunks: 4,
            checkpoint_every: steps,
            precision: Precision::F32,
            hidden_cache_mb: 16,
            ttt: (!is_lora).then_some(ttt),
            lora: is_lora.then_some(lora),
        }),
        eval: None,
        policy: None,
    }
}

fn data() -> ExperimentData {
    ExperimentData {
        tokenizer: ponder_data::Tokenizer::gpt2().unwrap(),
        tokenizer_path: None,
        train: stream(LEN * 64),
        validation: stream(LEN * 8),
        test: Vec::new(),
        manifests: Vec::new(),
    }
}

/// Trains in a fresh folder and returns the run's metrics.
fn train(dir: &std::path::Path, layer: FastLayerKind, pdrop: f64, steps: u64) -> Vec<Metric> {
    let config = config(dir, layer, pdrop, steps);
    config.validate().unwrap();
    let run = RunDir::open(
        &RunFolder::new(dir),
        &config.to_toml(),
        3,
        "test",
        OpenOptions::default(),
    )
    .unwrap()
    .unwrap();
    train_fast(&config, &backbone(pdrop), &data(), &run, false).unwrap();
    run.metrics().unwrap()
}

fn step_losses(metrics: &[Metric]) -> Vec<f64> {
    metrics.iter().filter_map(Metric::train_loss).collect()
}

#[test]
fn every_fast_layer_trains_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    for layer in [
        FastLayerKind::TttLinear,
        FastLayerKind::TttMlp,
        FastLayerKind::Lora,
    ] {
        let run = dir.path().join(layer.name());
        let metrics = train(&run, layer, 0.0, 16);
        let losses = step_losses(&metrics);
        assert_eq!(losses.len(), 16, "{layer}");
        let (first, last) = (
            losses[..4].iter().sum::<f64>(),
            losses[12..].iter().sum::<f64>(),
        );
        assert!(
            last < first,
            "{layer}: training loss {first} -> {last} (sums of four steps)"
        );
        assert!(matches!(metrics.last(), Some(Metric::Done(_))), "{layer}");
        let lm = ponder_model::checkpoint::load(&RunFolder::new(&run).fast_layer(), &backbone(0.0))
            .unwrap();
        assert_eq!(lm.fast_layer().kind(), layer);
    }
}

/// Before, the hidden-state cache fed every step the dropout-free hidden states whatever the
/// backbone's config said; now a backbone with dropout trains through it.
#[test]
fn the_backbones_dropout_runs_in_training_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let plain = step_losses(&train(
        &dir.path().join("p"),
        FastLayerKind::TttLinear,
        0.0,
        3,
    ));
    let drop_a = train(&dir.path().join("a"), FastLayerKind::TttLinear, 0.3, 3);
    let drop_b = train(&dir.path().join("b"), FastLayerKind::TttLinear, 0.3, 3);
    assert_eq!(drop_a, drop_b, "the same seed draws the same dropout");
    let dropped = step_losses(&drop_a);
    assert!(
        (dropped[0] - plain[0]).abs() > 1e-4,
        "the first step's loss is the same with and without dropout: {} vs {}",
        dropped[0],
        plain[0]
    );
}
