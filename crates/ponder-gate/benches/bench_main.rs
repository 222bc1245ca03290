//! Criterion benches of `ponder-gate`: `cargo bench -p ponder-gate --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::gates::benches);
