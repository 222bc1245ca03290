//! Criterion benches of the GPT-2 backbone: `cargo bench -p ponder-gpt2 --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(benchmarks::forward::benches);
