//! What a stream-mode pass costs against the same chunks run as single-chunk UPDATE_1 forwards
//! (backbone, fast layer from the initial state, head and loss), at the tiny preset's shape
//! (random weights, f32): 4 streams of 8 chunks of 128 tokens, 32 chunks in all. The stream
//! passes include the backbone over the batch (computed once per batch, shared by every method in
//! a comparison) and carry each stream's state from chunk to chunk.

use candle::{DType, Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use ponder_eval::carry::{Actor, BatchHidden, MethodPass};
use ponder_eval::file_stream::{FileStream, StreamBatch};
use ponder_gate::{Budget, Fixed, RandomGate};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::{FastLayer, FastNorm, PonderLm, TttConfig, TttParams};

const STREAMS: usize = 4;
const CHUNKS: usize = 8;
const LEN: usize = 128;

/// The tiny preset's shapes: 4 layers, width 128, vocabulary 4,096, TTT-Linear with two heads.
fn lm() -> PonderLm {
    let gpt2 = Gpt2Config {
        vocab_size: 4096,
        n_positions: 256,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        ..Gpt2Config::tiny()
    };
    let backbone = random(gpt2, 0, &LoadOptions::cpu_f32()).expect("backbone");
    let ttt = TttConfig {
        head_dim: 64,
        mini_batch_size: 16,
        ..TttConfig::for_gpt2(128, 2)
    };
    let params = TttParams::init(
        &ttt,
        ponder_model::FastModelKind::Linear,
        0,
        DType::F32,
        &Device::Cpu,
    )
    .expect("ttt");
    let fast = FastLayer::Ttt {
        config: ttt,
        params,
    };
    PonderLm::new(
        &backbone,
        FastNorm::init(128, DType::F32, &Device::Cpu).expect("norm"),
        fast,
    )
    .expect("lm")
}

fn batch() -> StreamBatch {
    StreamBatch {
        streams: (0..STREAMS)
            .map(|s| FileStream {
                index: s,
                chunks: (0..CHUNKS)
                    .map(|c| {
                        (0..LEN)
                            .map(|i| ((i * 7919 + c * 131 + s * 17) % 4096) as u32)
                            .collect()
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A fresh actor for each pass.
type MakeActor = fn() -> Actor;

fn bench(c: &mut Criterion) {
    let lm = lm();
    let batch = batch();
    let dev = Device::Cpu;
    let rows: Vec<usize> = (0..STREAMS).collect();
    let mut group = c.benchmark_group("cpu_stream_pass/tiny_4x8x128");
    group.throughput(Throughput::Elements((STREAMS * CHUNKS * LEN) as u64));
    group.sample_size(10);
    group.bench_function("single_chunk_update_1", |b| {
        b.iter(|| {
            for c in 0..CHUNKS {
                let ids = Tensor::from_vec(batch.ids(c, &rows), (STREAMS, LEN), &dev).unwrap();
                let h = lm.backbone(&ids).unwrap();
                let up = lm
                    .update(&h, &ids, &lm.initial_state(STREAMS).unwrap(), 1)
                    .unwrap();
                std::hint::black_box(lm.next_token_loss(&up.features, &ids).unwrap());
            }
        })
    });
    let run = |actor: fn() -> Actor| {
        let hidden = BatchHidden::new(&lm, &batch, &dev, false).unwrap();
        let mut pass = MethodPass::new(actor());
        pass.run_batch(&lm, &batch, &hidden).unwrap();
        std::hint::black_box(pass.records);
    };
    let actors: [(&str, MakeActor); 4] = [
        ("stream_none", || Actor::Backbone),
        ("stream_skip", || Actor::Gate {
            gate: Box::new(Fixed::skip()),
            signal: false,
        }),
        ("stream_update_1", || Actor::Gate {
            gate: Box::new(Fixed::update(1).unwrap()),
            signal: false,
        }),
        ("stream_random", || Actor::Gate {
            gate: Box::new(RandomGate::new(Budget::new(0.5).unwrap(), 42)),
            signal: false,
        }),
    ];
    for (name, actor) in actors {
        group.bench_function(name, |b| b.iter(|| run(actor)));
    }
    group.finish();
}

criterion_group!(benches, bench);
