//! Criterion benches of the training loops: `cargo bench -p ponder-train --bench bench_main`.

mod benchmarks;

criterion::criterion_main!(benchmarks::fast_step::benches);
