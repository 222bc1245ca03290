//! The cost of UPDATE_k against SKIP per chunk, at GPT-2 small shapes (random weights, batch 1,
//! 512 tokens, f32) and the tiny preset: SKIP is backbone + tied head; UPDATE_k adds `fast_norm`
//! and the TTT layer; `signal` is what a gate computes before deciding (statistics only, on
//! saved hidden states); `ttt_layer` is the fast layer alone on saved hidden states.

use std::time::{Duration, Instant};

use candle::{DType, Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::{FastLayer, FastNorm, PonderLm};
use ponder_ttt::{TttConfig, TttParams};

fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let device = Device::Cpu;
    for (name, gpt2, seq_len) in [
        ("gpt2-small", Gpt2Config::gpt2_small(), 512),
        ("tiny", Gpt2Config::tiny(), 256),
    ] {
        let (d, nh) = (gpt2.n_embd, gpt2.n_head);
        let backbone = random(gpt2, 0, &LoadOptions::cpu_f32()).expect("backbone");
        let ttt = TttConfig::for_gpt2(d, nh.max(d / 64));
        let ttt = TttConfig {
            num_heads: d / 64,
            ..ttt
        };
        let params = TttParams::init(
            &ttt,
            ponder_model::FastModelKind::Linear,
            0,
            DType::F32,
            &device,
        )
        .expect("ttt");
        let fast = FastLayer::Ttt {
            config: ttt,
            params,
        };
        let lm = PonderLm::new(
            &backbone,
            FastNorm::init(d, DType::F32, &device).expect("norm"),
            fast,
        )
        .expect("lm");
        let ids: Vec<u32> = (0..seq_len as u32).map(|i| (i * 7919) % 50_257).collect();
        let ids = Tensor::from_vec(ids, (1, seq_len), &device).expect("ids");
        let state = lm.initial_state(1).expect("state");
        let hidden = lm.backbone(&ids).expect("hidden");

        let mut group = c.benchmark_group(format!("cpu_update_vs_skip/{name}"));
        group.throughput(Throughput::Elements(seq_len as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if name == "tiny" { 5 } else { 20 }));
        group.bench_function("skip", |b| {
            b.iter_custom(|n| {
                timed(n, || {
                    let h = lm.backbone(&ids).expect("backbone");
                    std::hint::black_box(lm.logits(&h).expect("logits"));
                })
            })
        });
        for steps in [1, 2, 4] {
            group.bench_function(format!("update_{steps}"), |b| {
                b.iter_custom(|n| {
                    timed(n, || {
                        let h = lm.backbone(&ids).expect("backbone");
                        let up = lm.update(&h, &ids, &state, steps).expect("update");
                        std::hint::black_box(lm.logits(&up.features).expect("logits"));
                    })
                })
            });
        }
        group.bench_function("signal", |b| {
            b.iter_custom(|n| {
                timed(n, || {
                    drop(std::hint::black_box(
                        lm.signal(&hidden, &ids, &state, 1).expect("signal"),
                    ))
                })
            })
        });
        group.bench_function("ttt_layer", |b| {
            b.iter_custom(|n| {
                timed(n, || {
                    drop(std::hint::black_box(
                        lm.update(&hidden, &ids, &state, 1).expect("update"),
                    ))
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
