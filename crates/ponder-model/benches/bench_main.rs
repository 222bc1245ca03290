//! Criterion benches of the PonderTTT LM: `cargo bench -p ponder-model --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::update_vs_skip::benches);
