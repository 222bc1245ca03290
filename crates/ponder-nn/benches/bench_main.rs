//! Criterion benches of ponder-nn's CPU kernels: `cargo bench -p ponder-nn --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(benchmarks::head::benches, benchmarks::bias::benches);
