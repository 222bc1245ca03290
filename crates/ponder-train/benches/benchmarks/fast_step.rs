//! One fast-layer training step (the TTT layer's forward and backward, the tied head and
//! cross-entropy, clipping and Adam) on a chunk-batch whose backbone hidden states are cached,
//! against one that needs the frozen backbone's pass first: what `fast.hidden_cache_mb` saves.
//!
//! Two shapes, random weights, f32: GPT-2 small (`configs/small.toml`'s model and fast layer)
//! on 2 × 128-token chunks, and the embedded default at its training shape (`configs/tiny.toml`:
//! 8 × 128-token chunks). Reported as tokens/s.

use std::path::Path;
use std::time::{Duration, Instant};

use candle::Device;
use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use ponder_experiment::ExperimentConfig;
use ponder_gpt2::LoadOptions;
use ponder_train::backbone::windows_tensor;
use ponder_train::{fast_step, FastModel, HiddenCache};

fn config(name: &str, overrides: &[&str]) -> ExperimentConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../configs/{name}.toml"));
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ExperimentConfig::load(&path, &overrides).expect("preset loads")
}

fn bench_fast_step(c: &mut Criterion) {
    let device = Device::Cpu;
    for (name, config) in [
        (
            "gpt2-small",
            config("small", &["fast.chunk_len=128", "fast.batch_size=2"]),
        ),
        ("tiny", config("tiny", &[])),
    ] {
        let f = config.fast.clone().expect("a [fast] section");
        let backbone =
            ponder_gpt2::random(config.model.clone(), 0, &LoadOptions::cpu_f32()).expect("model");
        let model = FastModel::new(&backbone, &f, 0).expect("fast layer");
        let mut opt = model.optimizer().expect("adam");
        let (len, bs) = (f.chunk_len, f.batch_size);
        let vocab = config.model.vocab_size as u64;
        let stream: Vec<u32> = (0..(bs * len) as u64)
            .map(|i| ((i * 7919 + 13) % vocab) as u32)
            .collect();
        let idx: Vec<usize> = (0..bs).collect();
        let ids = windows_tensor(&stream, &idx, len, &device).expect("ids");

        let mut group = c.benchmark_group(format!("cpu_fast_step/{name}"));
        group.throughput(Throughput::Elements((bs * len) as u64));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(12));
        for (case, budget) in [("cached", usize::MAX), ("backbone_pass", 0)] {
            let mut cache = HiddenCache::new(budget);
            cache
                .get(&model, &stream, &idx, len)
                .expect("warm the cache");
            group.bench_function(format!("b{bs}x{len}/{case}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let hidden = cache.get(&model, &stream, &idx, len).expect("hidden");
                        let stats = fast_step(
                            &model,
                            &mut opt,
                            std::slice::from_ref(&hidden),
                            std::slice::from_ref(&ids),
                            &f,
                        )
                        .expect("step");
                        device.synchronize().expect("sync");
                        std::hint::black_box(stats);
                    }
                    start.elapsed()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_fast_step);
