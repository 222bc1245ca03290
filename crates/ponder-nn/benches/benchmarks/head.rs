//! The tied LM head and its loss, which a method comparison runs twice per chunk (SKIP and
//! UPDATE): the logits materialized by a matmul then [`ponder_nn::cross_entropy`], against
//! [`ponder_nn::linear_cross_entropy`], which never materializes them; and the cross-entropy
//! alone on saved logits (the vectorized `exp`). Shapes: the tiny preset's evaluation
//! chunk-batch (4 × 127 predictions, width 128, vocabulary 4,096) and one GPT-2 small and one
//! GPT-2 medium sequence (511 predictions, widths 768 and 1,024, vocabulary 50,257).

use std::time::Duration;

use candle::{Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (name, n, d, v) in [
        ("tiny", 508, 128, 4096),
        ("gpt2-small", 511, 768, 50_257),
        ("gpt2-medium", 511, 1024, 50_257),
    ] {
        let x = Tensor::randn(0f32, 1.0, (n, d), &dev).expect("x");
        let w = Tensor::randn(0f32, 0.02, (v, d), &dev).expect("w");
        let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % v as u32).collect();
        let targets = Tensor::new(ids, &dev).expect("targets");
        let logits = x.matmul(&w.t().expect("t")).expect("logits");

        let mut group = c.benchmark_group(format!("cpu_head/{name}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if name == "tiny" { 3 } else { 10 }));
        group.bench_function("matmul_then_cross_entropy", |b| {
            b.iter(|| {
                let logits = x.matmul(&w.t().expect("t")).expect("logits");
                std::hint::black_box(ponder_nn::cross_entropy(&logits, &targets).expect("ce"))
            })
        });
        group.bench_function("linear_cross_entropy", |b| {
            b.iter(|| {
                std::hint::black_box(
                    ponder_nn::linear_cross_entropy(&x, &w, &targets, None).expect("fused"),
                )
            })
        });
        group.bench_function("cross_entropy_only", |b| {
            b.iter(|| {
                std::hint::black_box(ponder_nn::cross_entropy(&logits, &targets).expect("ce"))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
