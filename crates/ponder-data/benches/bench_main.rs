//! Criterion benches of `ponder-data`: `cargo bench -p ponder-data --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::shard::benches);
