//! Criterion benches of ponder-nn's CPU kernels: `cargo bench -p ponder-nn --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::head::benches);
