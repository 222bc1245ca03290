//! Criterion benches of `ponder-lora`: `cargo bench -p ponder-lora --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(benchmarks::merge::benches);
