//! Reading a cached token shard (10 M tokens) back into memory, in tokens/s: what a second run
//! pays instead of tokenizing again.

use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use ponder_data::shard::{write_shard, Shard};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("train.tok");
    let n = 10_000_000usize;
    let tokens: Vec<u32> = (0..n as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 50_257)
        .collect();
    write_shard(&path, &[3u8; 32], &tokens).expect("write");
    let mut group = c.benchmark_group("cpu_shard_read");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("open_and_read_10M", |b| {
        b.iter(|| std::hint::black_box(Shard::open(&path).expect("open").to_vec()))
    });
    group.finish();
}

criterion_group!(benches, bench);
