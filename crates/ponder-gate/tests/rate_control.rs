//! How well the reconstruction gates hold the update rate ρ on synthetic signal streams.
//!
//! Streams of 2000 chunks (the original protocol's length), signals `exp(μ_t + 0.5·z)` with z
//! standard normal: i.i.d. (μ = 0), a drifting mean (μ rises linearly from 0 to 3) and a level
//! shift halfway (μ jumps from 0 to 1.5 at chunk 1000).
//! The realized rate is counted over the post-calibration chunks (16 to 1999).

use ponder_gate::{
    decide_stream, Budget, Decision, Gate, GateConfig, PidParams, PidReconGate, QuantileParams,
    Signal, Signals, StreamRecord,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const N_CHUNKS: usize = 2000;
const N_CAL: usize = 16;
const SIGMA: f64 = 0.5;
const RHOS: [f64; 3] = [0.2, 0.5, 0.8];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Iid,
    Drift,
    Shift,
}

/// The log-mean of the signal at chunk `t`.
fn mu(kind: Kind, t: usize) -> f64 {
    match kind {
        Kind::Iid => 0.0,
        Kind::Drift => 3.0 * t as f64 / N_CHUNKS as f64,
        Kind::Shift if t < N_CHUNKS / 2 => 0.0,
        Kind::Shift => 1.5,
    }
}

fn signals(kind: Kind, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..N_CHUNKS)
        .map(|t| {
            let z: f64 = StandardNormal.sample(&mut rng);
            (mu(kind, t) + SIGMA * z).exp()
        })
        .collect()
}

fn records(signals: &[f64]) -> Vec<StreamRecord> {
    signals
        .iter()
        .map(|&recon| StreamRecord {
            recon,
            recon_init: recon,
            recon_after: recon,
            skip_loss: 1.0,
            update_loss: 1.0,
        })
        .collect()
}

/// The realized update rate over the post-calibration chunks.
fn post_calibration_rate(decisions: &[Decision]) -> f64 {
    let post = &decisions[N_CAL..];
    post.iter().filter(|d| d.is_update()).count() as f64 / post.len() as f64
}

fn rate_of(config: &GateConfig, rho: f64, signals: &[f64]) -> f64 {
    let trace = decide_stream(config, Budget::new(rho).unwrap(), &records(signals)).unwrap();
    post_calibration_rate(&trace.decisions)
}

#[test]
fn pid_holds_the_rate_within_one_percent() {
    let config = GateConfig::pid_recommended();
    for kind in [Kind::Iid, Kind::Drift, Kind::Shift] {
        for rho in RHOS {
            for seed in 0..5 {
                let rate = rate_of(&config, rho, &signals(kind, seed));
                assert!(
                    (rate - rho).abs() <= 0.01,
                    "{kind:?}, ρ = {rho}, seed {seed}: realized rate {rate}"
                );
            }
        }
    }
}

#[test]
fn original_misses_the_band_on_the_drifting_stream() {
    // The original's proportional step needs a standing rate error to keep τ rising with the
    // signal: on this stream its post-calibration rate is about ρ + 0.017 for every ρ and seed.
    let original = GateConfig::original_recon();
    let pid = GateConfig::pid_recommended();
    for rho in RHOS {
        for seed in 0..5 {
            let s = signals(Kind::Drift, seed);
            let ours = rate_of(&original, rho, &s);
            assert!(
                ours - rho > 0.01,
                "ρ = {rho}, seed {seed}: original's rate {ours} is within the band"
            );
            let held = rate_of(&pid, rho, &s);
            assert!((held - rho).abs() <= 0.01, "ρ = {rho}, seed {seed}: {held}");
        }
    }
}

#[test]
fn count_error_stays_under_the_bound_on_adversarial_streams() {
    let params = PidParams::recommended();
    let streams: Vec<(&str, Vec<f64>)> = vec![
        ("constant", vec![1.0; N_CHUNKS]),
        ("increasing", (0..N_CHUNKS).map(|t| t as f64).collect()),
        ("decreasing", (0..N_CHUNKS).map(|t| -(t as f64)).collect()),
        (
            "alternating",
            (0..N_CHUNKS).map(|t| (t % 2) as f64).collect(),
        ),
        (
            "sawtooth",
            (0..N_CHUNKS).map(|t| (t % 300) as f64).collect(),
        ),
    ];
    for (name, stream) in &streams {
        for rho in [0.0, 0.1, 0.2, 0.5, 0.8, 1.0] {
            let budget = Budget::new(rho).unwrap();
            let bound = params.count_bound(budget);
            assert!(bound <= 16.0);
            let mut gate = PidReconGate::new(budget, params).unwrap();
            for (position, &recon) in stream.iter().enumerate() {
                let sig = Signals {
                    position,
                    recon,
                    recon_init: recon,
                    skip_loss: None,
                    prev_loss: None,
                    updates_so_far: 0,
                };
                gate.step(&sig);
                assert!(
                    gate.deficit().abs() <= bound,
                    "{name}, ρ = {rho}, chunk {position}: deficit {} > {bound}",
                    gate.deficit()
                );
            }
            let rate = gate.realized_rate().unwrap();
            assert!((rate - rho).abs() <= 0.01, "{name}, ρ = {rho}: {rate}");
        }
    }
}

#[test]
fn pid_still_gates_on_the_signal() {
    // A gate could hold the rate by ignoring the signal. Compare with the ideal rule for these
    // streams, UPDATE iff s > exp(μ_t + σ·z_{1−ρ}): the PID gate must agree on ≥ 90% of the
    // post-calibration chunks (a signal-blind gate at ρ = 0.5 agrees on about 50%), and about as
    // often as the original (measured over 30 seeds: 0.948 against 0.937 on average; 0.01 lower
    // on the drifting stream, where the original overspends its budget by 1.2–1.8 points).
    let z_upper = 0.841_621_233_572_914_3; // z_{0.8}, the standard normal's 0.8 quantile
    for kind in [Kind::Iid, Kind::Drift, Kind::Shift] {
        for (rho, z) in [(0.2, z_upper), (0.5, 0.0), (0.8, -z_upper)] {
            let s = signals(kind, 11);
            let agreement = |config: &GateConfig| {
                let trace = decide_stream(config, Budget::new(rho).unwrap(), &records(&s)).unwrap();
                let agree = (N_CAL..N_CHUNKS)
                    .filter(|&t| {
                        let ideal = s[t] > (mu(kind, t) + SIGMA * z).exp();
                        ideal == trace.decisions[t].is_update()
                    })
                    .count();
                agree as f64 / (N_CHUNKS - N_CAL) as f64
            };
            let pid = agreement(&GateConfig::pid_recommended());
            let original = agreement(&GateConfig::original_recon());
            assert!(pid >= 0.9, "{kind:?}, ρ = {rho}: agreement {pid}");
            assert!(
                pid >= original - 0.03,
                "{kind:?}, ρ = {rho}: pid {pid}, original {original}"
            );
        }
    }
}

#[test]
fn quantile_holds_the_whole_stream_rate_on_every_stream() {
    // The quantile gate counts calibration in its debt, so its bound is on the whole stream:
    // |U − ρ·N| ≤ count_bound once the calibration's debt is repaid, for any stream.
    let params = QuantileParams {
        signal: Signal::Recon,
        calibration: N_CAL,
        gain: 0.1,
        deadband: 2.0,
    };
    let adversarial: Vec<Vec<f64>> = vec![
        vec![1.0; N_CHUNKS],
        (0..N_CHUNKS).map(|t| t as f64).collect(),
        (0..N_CHUNKS).map(|t| -(t as f64)).collect(),
        (0..N_CHUNKS).map(|t| (t % 300) as f64).collect(),
    ];
    let random = [Kind::Iid, Kind::Drift, Kind::Shift]
        .into_iter()
        .flat_map(|kind| (0..3).map(move |seed| signals(kind, seed)));
    for stream in adversarial.into_iter().chain(random) {
        // ρ = 0 cannot repay the calibration's updates: it skips every chunk after them.
        let zero = Budget::new(0.0).unwrap();
        let trace = decide_stream(&GateConfig::Quantile(params), zero, &records(&stream)).unwrap();
        assert_eq!(trace.n_updates(), N_CAL);
        for rho in [0.2, 0.5, 0.8, 1.0] {
            let budget = Budget::new(rho).unwrap();
            let bound = params.count_bound(budget);
            let trace =
                decide_stream(&GateConfig::Quantile(params), budget, &records(&stream)).unwrap();
            let updates = trace.n_updates() as f64;
            assert!(
                (updates - rho * N_CHUNKS as f64).abs() <= bound,
                "ρ = {rho}: {updates} updates of {N_CHUNKS}, bound {bound}"
            );
            assert!((trace.update_rate().unwrap() - rho).abs() <= 0.01);
        }
    }
}
