//! Decoding speed at GPT-2 small shapes (random weights, f32, batch 1): greedy decoding of 64
//! tokens after a 128-token prompt with the backbone's kv cache (`cached`), without it
//! (`uncached`: the window run whole for every token), and with the fast layer and the
//! original's gate (`fast_gate`: TTT-Linear of the original's shape, chunk-local backbone,
//! chunks of 64 tokens, so that three chunks are decided on and may be updated). Throughput is
//! in generated tokens.

use std::time::Duration;

use candle::{DType, Device};
use criterion::{criterion_group, Criterion, Throughput};
use ponder_gate::{Budget, GateConfig};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::decode::{
    generate, BackboneStream, DecodeStream, FastStream, Sampler, Sampling, SignalDecider,
};
use ponder_model::{FastLayer, FastNorm, PonderLm};
use ponder_ttt::{TttConfig, TttParams};

const PROMPT: usize = 128;
const NEW: usize = 64;
const CHUNK: usize = 64;

fn run(stream: &mut dyn DecodeStream, prompt: &[u32]) {
    let mut sampler = Sampler::new(Sampling::Greedy).expect("sampler");
    let g = generate(stream, prompt, &mut sampler, NEW, None, |_| false).expect("generate");
    assert_eq!(g.ids.len(), NEW);
}

fn bench(c: &mut Criterion) {
    let device = Device::Cpu;
    let gpt2 = Gpt2Config::gpt2_small();
    let d = gpt2.n_embd;
    let backbone = random(gpt2, 0, &LoadOptions::cpu_f32()).expect("backbone");
    let ttt = TttConfig {
        num_heads: d / 64,
        ..TttConfig::for_gpt2(d, d / 64)
    };
    let params = TttParams::init(
        &ttt,
        ponder_model::FastModelKind::Linear,
        0,
        DType::F32,
        &device,
    )
    .expect("ttt");
    let lm = PonderLm::new(
        &backbone,
        FastNorm::init(d, DType::F32, &device).expect("norm"),
        FastLayer::Ttt {
            config: ttt,
            params,
        },
    )
    .expect("lm");
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 7919) % 50_257).collect();

    let mut group = c.benchmark_group("cpu_decode/gpt2-small");
    group.throughput(Throughput::Elements(NEW as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("cached", |b| {
        b.iter(|| run(&mut BackboneStream::new(&backbone, true), &prompt))
    });
    group.bench_function("uncached", |b| {
        b.iter(|| run(&mut BackboneStream::new(&backbone, false), &prompt))
    });
    let ours = GateConfig::original_recon();
    group.bench_function("fast_gate", |b| {
        b.iter(|| {
            let gate = ours
                .online_gate(Budget::new(0.5).expect("budget"), None)
                .expect("gate")
                .expect("online");
            let mut stream =
                FastStream::new(&lm, CHUNK, Box::new(SignalDecider(gate))).expect("stream");
            run(&mut stream, &prompt);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
