//! A bias added to every row and its backward pass, as a training step runs it: Candle's
//! `broadcast_add` (whose bias gradient comes from `sum_keepdim`) against
//! [`ponder_nn::add_bias`] (a fused bias gradient). Shapes: the MLP's `c_fc` bias of a tiny
//! backbone training batch (16 × 256 rows, width 512) and of one GPT-2 small sequence of 1,024
//! tokens (width 3,072).

use std::time::Duration;

use candle::{Device, Tensor, Var};
use criterion::{criterion_group, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (name, n, m) in [("tiny-c_fc", 4096, 512), ("gpt2-small-c_fc", 1024, 3072)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, m), &dev).expect("x")).expect("x");
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, m, &dev).expect("b")).expect("b");
        let w = Tensor::randn(0f32, 1.0, (n, m), &dev).expect("w");
        let mut group = c.benchmark_group(format!("cpu_bias/{name}"));
        group.throughput(Throughput::Elements((n * m) as u64));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
        let step = |fused: bool| {
            let y = if fused {
                ponder_nn::add_bias(&x, &b).expect("add_bias")
            } else {
                x.broadcast_add(&b).expect("broadcast_add")
            };
            let loss = (y * &w).expect("mul").sum_all().expect("sum");
            std::hint::black_box(loss.backward().expect("backward"))
        };
        group.bench_function("broadcast_add_forward_backward", |bch| {
            bch.iter(|| step(false))
        });
        group.bench_function("add_bias_forward_backward", |bch| bch.iter(|| step(true)));
        group.finish();
    }
}

criterion_group!(benches, bench);
