//! Merged against unmerged `LoraLinear` forward at GPT-2 small shapes: `x (512, 768)`, a
//! `768 → 768` layer with bias and rank 64 (random weights, f32), reported as tokens/s.
//!
//! The unmerged forward pays two thin matmuls (`x Aᵀ`, then `· Bᵀ`) and an add on top of the
//! base matmul; the merged one is a single plain linear layer.

use std::time::{Duration, Instant};

use candle::{DType, Device};
use candle_nn::{Linear, Module};
use criterion::{criterion_group, Criterion, Throughput};
use ponder_lora::{LoraFactors, LoraLinear};

fn bench_merge(c: &mut Criterion) {
    let device = Device::Cpu;
    let (n_tokens, n_embd, r) = (512, 768, 64);
    let mut rng = ponder_nn::init::rng_for(0, "bench-merge");
    let mut normal = |shape: (usize, usize), std: f64| {
        ponder_nn::init::normal(shape, std, &mut rng, DType::F32, &device).expect("init")
    };
    let weight = normal((n_embd, n_embd), 0.02);
    let bias = normal((1, n_embd), 0.02).squeeze(0).expect("bias");
    let a = normal((r, n_embd), 0.02);
    let b = normal((n_embd, r), 0.02);
    let x = normal((n_tokens, n_embd), 1.0);
    let factors = LoraFactors::new(a, b, 1.0).expect("factors");
    let layer = LoraLinear::new(Linear::new(weight, Some(bias)), factors).expect("layer");
    let merged = layer.merge().expect("merge");

    let mut group = c.benchmark_group(format!("cpu_lora_linear_forward/d{n_embd}_r{r}"));
    group.throughput(Throughput::Elements(n_tokens as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("unmerged", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let y = layer.forward(std::hint::black_box(&x)).expect("forward");
                device.synchronize().expect("sync");
                std::hint::black_box(y);
            }
            start.elapsed()
        })
    });
    group.bench_function("merged", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let y = merged.forward(std::hint::black_box(&x)).expect("forward");
                device.synchronize().expect("sync");
                std::hint::black_box(y);
            }
            start.elapsed()
        })
    });
    group.finish();

    // Merging itself: one (768, 64) × (64, 768) matmul and an add; no throughput in tokens.
    let mut group = c.benchmark_group(format!("cpu_lora_linear_merge/d{n_embd}_r{r}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("merge", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let m = std::hint::black_box(&layer).merge().expect("merge");
                device.synchronize().expect("sync");
                std::hint::black_box(m);
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_merge);
