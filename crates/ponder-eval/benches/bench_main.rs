//! Criterion benches of the comparison: `cargo bench -p ponder-eval --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(benchmarks::stream_pass::benches);
