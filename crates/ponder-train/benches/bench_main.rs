//! Criterion benches of the training loops: `cargo bench -p ponder-train --bench bench_main`.

mod benchmarks;

ponder_nn::criterion_main!(benchmarks::fast_step::benches);
