//! Criterion benches of the PonderTTT LM: `cargo bench -p ponder-model --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(
    benchmarks::update_vs_skip::benches,
    benchmarks::decode::benches
);
