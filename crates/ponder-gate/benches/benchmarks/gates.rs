//! Gate latency: one `decide` + `observe` of the online threshold gates in steady state
//! (calibrated, window full), and whole-stream replays over 2000 records (the original
//! protocol's 1000 batches × 2 chunk positions): the oracle, the original's controller, the
//! quantile gate, and every controller a comparison replays, together.

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use ponder_gate::{
    decide_stream, Budget, Gate, GateConfig, PacedParams, PidParams, PidReconGate, QuantileParams,
    ReconGate, Signal, Signals, StreamRecord,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

const N_CHUNKS: usize = 2000;

/// Lognormal reconstruction signals and losses, seeded.
fn records(n: usize) -> Vec<StreamRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let dist = LogNormal::new(0.0, 0.5).expect("valid lognormal");
    (0..n)
        .map(|_| {
            let recon = dist.sample(&mut rng);
            let skip_loss = 2.0 + dist.sample(&mut rng);
            StreamRecord {
                recon,
                recon_init: recon,
                recon_after: 0.8 * recon,
                skip_loss,
                update_loss: skip_loss - 0.1 * recon,
            }
        })
        .collect()
}

/// Times `decide` + `observe` on a gate already past calibration, cycling through the records.
fn bench_gate(c: &mut Criterion, name: &str, mut gate: impl Gate, recs: &[StreamRecord]) {
    let mut position = 0usize;
    let mut updates_so_far = 0usize;
    let mut step = |gate: &mut dyn Gate| {
        let signals = Signals {
            position,
            recon: recs[position % recs.len()].recon,
            recon_init: recs[position % recs.len()].recon,
            skip_loss: None,
            prev_loss: None,
            updates_so_far,
        };
        let d = gate.step(&signals);
        position += 1;
        updates_so_far += usize::from(d.is_update());
        d
    };
    // Warm up past calibration and fill the window.
    for _ in 0..500 {
        step(&mut gate);
    }
    c.bench_function(&format!("cpu_decide_observe/{name}"), |b| {
        b.iter(|| black_box(step(&mut gate)))
    });
}

/// A quantile gate's parameters: calibration 16, debt gain 0.1, deadband 2.
fn quantile_params() -> QuantileParams {
    QuantileParams {
        signal: Signal::Recon,
        calibration: 16,
        gain: 0.1,
        deadband: 2.0,
    }
}

fn bench(c: &mut Criterion) {
    let recs = records(N_CHUNKS);
    let budget = Budget::new(0.5).expect("valid budget");
    bench_gate(c, "recon", ReconGate::original(budget), &recs);
    let pid = PidReconGate::new(budget, PidParams::recommended()).expect("valid params");
    bench_gate(c, "pid_recon", pid, &recs);

    // The quantile gate's step costs a sorted insertion into its whole history, which grows
    // without end in a loop of single steps; its cost is measured by the replays below.
    let mut group = c.benchmark_group("cpu_decide_stream");
    group.throughput(Throughput::Elements(N_CHUNKS as u64));
    let quantile = GateConfig::Quantile(quantile_params());
    let paced = GateConfig::Paced(PacedParams {
        signal: Signal::Recon,
        calibration: 16,
        prior: None,
    });
    for config in [
        GateConfig::oracle_global(),
        GateConfig::original_recon(),
        quantile.clone(),
        paced.clone(),
    ] {
        group.bench_function(format!("{}_{N_CHUNKS}", config.name()), |b| {
            b.iter(|| black_box(decide_stream(&config, budget, &recs).expect("replay")))
        });
    }
    // Every controller a comparison replays: the target is under 10 ms for all of them.
    let all = [
        GateConfig::original_random(),
        GateConfig::oracle_global(),
        GateConfig::original_recon(),
        GateConfig::pid_recommended(),
        quantile,
        paced,
        GateConfig::TttImprovement,
        GateConfig::SignalTopK {
            signal: Signal::Recon,
        },
    ];
    group.bench_function(format!("all_controllers_{N_CHUNKS}"), |b| {
        b.iter(|| {
            for config in &all {
                black_box(decide_stream(config, budget, &recs).expect("replay"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
