//! Criterion benches of the GPT-2 backbone: `cargo bench -p ponder-gpt2 --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::forward::benches);
