//! Forward + LM head throughput at GPT-2 small shapes (random weights, batch 1, seq 512, f32),
//! reported as tokens/s, and the tiny preset for comparison.

use std::time::{Duration, Instant};

use candle::{Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};

fn bench_forward(c: &mut Criterion) {
    let device = Device::Cpu;
    for (name, config) in [
        ("gpt2-small", Gpt2Config::gpt2_small()),
        ("tiny", Gpt2Config::tiny()),
    ] {
        let model = random(config, 0, &LoadOptions::cpu_f32()).expect("random model");
        let seq_len = 512.min(model.config().n_positions);
        let ids: Vec<u32> = (0..seq_len as u32).map(|i| (i * 7919) % 50_257).collect();
        let ids = Tensor::from_vec(ids, (1, seq_len), &device).expect("ids");
        let mut group = c.benchmark_group(format!("cpu_gpt2_forward_lm_head/{name}"));
        group.throughput(Throughput::Elements(seq_len as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(15));
        group.bench_function(format!("seq{seq_len}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let logits = model
                        .logits(&model.forward(&ids).expect("forward"))
                        .expect("logits");
                    device.synchronize().expect("sync");
                    std::hint::black_box(logits);
                }
                start.elapsed()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_forward);
