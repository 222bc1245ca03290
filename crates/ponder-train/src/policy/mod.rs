//! The learned gate's training (`ponder train gate`, `docs/design/policy.md`): PPO over
//! fast-weight streams of the training split while a PID Lagrangian holds the mean cost per
//! chunk to the budget, then the budget correction of deterministic inference chosen on
//! validation streams.
//!
//! Each iteration draws `streams_per_iteration` cached training streams, runs them as episodes
//! with sampled actions ([`rollout`]), charges every chunk's reward
//! `reward_scale · (loss(none) − loss(action)) − λ · cost`, and updates the actor-critic on the
//! episodes (one environment of concatenated episodes, each ending at its stream's last chunk).
//! Every random draw comes from the run seed, the draw's name and the iteration, so a run
//! resumed from a checkpoint continues bit for bit.

pub mod cache;
pub mod calibrate;
pub mod rollout;

use std::time::Instant;

use candle::Device;
use ponder_base::derive_seed;
use ponder_data::ExperimentData;
use ponder_eval::learned::{action_steps, Correction, FeatureShape, LearnedGate, PolicyMeta};
use ponder_experiment::records::{CheckpointState, Done, Metric, PolicyIteration, Timing};
use ponder_experiment::{ExperimentConfig, RunDir};
use ponder_gate::{features, ACTIONS};
use ponder_model::PonderLm;
use ponder_policy::{ActorCritic, ObsNorm, PidLagrangian, Ppo, Rollout};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::cache::StreamCache;
use self::calibrate::calibrate;
use self::rollout::{means, run_episodes, Episodes};
use crate::backbone::progress_bar;
use crate::error::{policy_err, Error, Result};

/// What a finished learned-gate run reports.
#[derive(Debug, Clone)]
pub struct PolicyReport {
    /// Iterations run in this process.
    pub iterations_run: usize,
    /// Chunk decisions per second of the rollouts in this process (features, action, fast
    /// layer; the cached backbone not counted).
    pub chunks_per_s: f64,
    /// The budget correction chosen on validation, with its mean cost and loss there.
    pub correction: Correction,
    /// The gain of its online part chosen on validation.
    pub gain: f64,
    /// Training and validation streams cached.
    pub streams: (usize, usize),
}

/// Trains the learned gate of `config.policy` on `lm` (its fast layer trained) in `run`,
/// resuming from its checkpoint if it has one, and saves it with its budget correction to
/// `run/learned`.
pub fn train_policy(
    config: &ExperimentConfig,
    lm: &PonderLm,
    data: &ExperimentData,
    run: &RunDir,
    progress: bool,
) -> Result<PolicyReport> {
    let p = config.policy()?;
    let seed = config.run.seed;
    let device = lm.backbone_model().device().clone();
    let eot = data.tokenizer.eot_id();
    let shape = FeatureShape {
        chunk_len: p.chunk_len,
        vocab: lm.backbone_model().config().vocab_size,
        length_norm: p.length_norm,
    };
    let history = (p.history_alpha, p.budget);
    let bar = progress_bar("caching streams", progress, p.train_streams as u64, 0);
    let train = StreamCache::new(lm, &data.train, eot, p, p.train_streams, &device, |d, _| {
        bar.set_position(d as u64)
    })?;
    bar.finish_and_clear();
    if train.streams.len() < p.streams_per_iteration {
        return Err(Error::Config(format!(
            "policy.streams_per_iteration = {}, but the training split has {} files with a whole \
             chunk of {} tokens",
            p.streams_per_iteration,
            train.streams.len(),
            p.chunk_len
        )));
    }

    let mut init_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "policy-init", 0));
    let net = ActorCritic::new(p.net.clone(), &mut init_rng, &device).map_err(policy_err)?;
    let mut ppo = Ppo::new(net, p.ppo).map_err(policy_err)?;
    let mut lagrangian = PidLagrangian::new(p.pid, p.budget).map_err(policy_err)?;
    let mut norm = p.normalize_features.then(|| ObsNorm::new(features::WIDTH));
    let start = match run.load_checkpoint(&Device::Cpu)? {
        None => 0,
        Some((tensors, state)) => {
            ppo.load_state(&tensors, state.adam_steps)
                .map_err(|e| Error::Run(format!("{}: {e}", run.path().display())))?;
            lagrangian = state.lagrangian.ok_or_else(|| {
                Error::Run(format!(
                    "{}: the checkpoint has no budget controller (not a learned gate's)",
                    run.path().display()
                ))
            })?;
            norm = state.obs_norm;
            if norm.is_some() != p.normalize_features {
                return Err(Error::Run(format!(
                    "{}: the checkpoint's feature normalization does not fit \
                     policy.normalize_features = {}",
                    run.path().display(),
                    p.normalize_features
                )));
            }
            run.truncate_metrics(state.metric_lines)?;
            state.step as usize
        }
    };

    let bar = progress_bar("learned gate", progress, p.iterations as u64, start as u64);
    let t0 = Instant::now();
    let mut chunks_run = 0usize;
    for it in start..p.iterations {
        let mut pick: Vec<usize> = (0..train.streams.len()).collect();
        pick.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
            seed,
            "policy-streams",
            it as u64,
        )));
        pick.truncate(p.streams_per_iteration);
        pick.sort_unstable();
        let mut act_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "policy-actions", it as u64));
        let (mut logp, mut values, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        let episodes = {
            let mut choose = |obs: &[f32]| -> Result<Vec<usize>> {
                let obs = match norm.as_mut() {
                    Some(n) => {
                        n.update(obs).map_err(policy_err)?;
                        n.apply(obs).map_err(policy_err)?
                    }
                    None => obs.to_vec(),
                };
                let (a, lp, v) = ppo.act(&obs, &mut act_rng).map_err(policy_err)?;
                logp.extend(lp);
                values.extend(v);
                seen.extend(obs);
                Ok(a.into_iter().map(|x| x as usize).collect())
            };
            run_episodes(lm, &train, &pick, shape, history, &mut choose)?
        };
        chunks_run += episodes.steps.len();
        let lambda = lagrangian.lambda;
        let seen = Seen {
            obs: &seen,
            logp: &logp,
            values: &values,
        };
        let rollout = to_rollout(&episodes, &seen, &pick, p.reward_scale, lambda, it)?;
        let frac = 1.0 - it as f64 / p.iterations as f64;
        let mut update_rng =
            ChaCha8Rng::seed_from_u64(derive_seed(seed, "policy-update", it as u64));
        let stats = ppo
            .update(&rollout, frac, &mut update_rng)
            .map_err(|e| Error::Run(format!("iteration {}: {e}", it + 1)))?;
        let (cost, loss) = means(&episodes.steps);
        lagrangian
            .update(cost)
            .map_err(|e| Error::Run(format!("iteration {}: {e}", it + 1)))?;
        let n = episodes.steps.len() as f64;
        let gain: f64 = episodes
            .steps
            .iter()
            .map(|s| p.reward_scale * (s.none_loss - s.loss))
            .sum();
        run.metric(&Metric::PolicyIteration(PolicyIteration {
            iteration: it as u64 + 1,
            return_mean: gain / pick.len() as f64,
            cost,
            loss,
            lambda,
            actions: (0..ACTIONS.len())
                .map(|a| episodes.steps.iter().filter(|s| s.action == a).count() as f64 / n)
                .collect(),
            entropy: stats.entropy,
            approx_kl: stats.approx_kl,
            clip_fraction: stats.clip_fraction,
            policy_loss: stats.policy_loss,
            value_loss: stats.value_loss,
            explained_variance: Some(stats.explained_variance).filter(|v| v.is_finite()),
            epochs_run: stats.epochs_run,
        }))?;
        bar.set_message(format!("cost {cost:.2} λ {:.3}", lagrangian.lambda));
        let done = it + 1 == p.iterations;
        if (it + 1) % p.checkpoint_every == 0 || done {
            let (tensors, adam_steps) = ppo.state();
            run.save_checkpoint(
                &tensors,
                &CheckpointState {
                    step: it as u64 + 1,
                    adam_steps,
                    metric_lines: run.metric_lines()?,
                    lagrangian: Some(lagrangian.clone()),
                    obs_norm: norm.clone(),
                },
            )?;
            let secs = t0.elapsed().as_secs_f64();
            run.timing(&Timing {
                step: it as u64 + 1,
                elapsed_s: secs,
                tokens_per_s: (chunks_run * p.chunk_len) as f64 / secs,
                cache_hits: None,
            })?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let chunks_per_s = chunks_run as f64 / t0.elapsed().as_secs_f64();

    let bar = progress_bar(
        "validation streams",
        progress,
        p.calibration_streams as u64,
        0,
    );
    let validation = StreamCache::new(
        lm,
        &data.validation,
        eot,
        p,
        p.calibration_streams,
        &device,
        |d, _| bar.set_position(d as u64),
    )?;
    bar.finish_and_clear();
    let spinner = progress_bar("budget correction", progress, 0, 0);
    let mut passes = 0;
    let calibration = calibrate(
        lm,
        (&ppo.net, norm.as_ref()),
        &validation,
        shape,
        (p, seed),
        || {
            passes += 1;
            spinner.set_message(format!("{passes} passes over the validation streams"))
        },
    )?;
    spinner.finish_and_clear();
    let gate = LearnedGate::new(
        ppo.net,
        PolicyMeta {
            net: p.net.clone(),
            actions: action_steps(),
            features: features::NAMES.iter().map(|s| s.to_string()).collect(),
            budget: p.budget,
            chunk_len: p.chunk_len,
            history_alpha: p.history_alpha,
            length_norm: p.length_norm,
            feature_norm: norm,
            inference: p.inference,
            correction_form: p.correction_form,
            correction_gain: calibration.gain,
            budget_guard: p.budget_guard,
            gain_trials: calibration.gains,
            correction: calibration.kept.beta,
            calibration: calibration.tried,
            calibration_streams: validation.streams.len(),
            iterations: p.iterations,
        },
    );
    gate.save(&run.folder().learned_policy())
        .map_err(crate::error::eval_err)?;
    run.finish(Done::empty())?;
    Ok(PolicyReport {
        iterations_run: p.iterations - start,
        chunks_per_s,
        correction: calibration.kept,
        gain: calibration.gain,
        streams: (train.streams.len(), validation.streams.len()),
    })
}

/// What the policy saw and gave at each decision of a rollout, in the order made: the feature
/// vectors as it read them (normalized where configured), the log-probabilities of its actions
/// and its values.
struct Seen<'a> {
    obs: &'a [f32],
    logp: &'a [f64],
    values: &'a [f64],
}

/// The episodes as PPO's rollout: one environment whose episodes follow each other stream by
/// stream, each ending at its stream's last chunk, every reward charged `lambda · cost`. A
/// reward that is not finite is an error naming the iteration, the stream and the chunk.
fn to_rollout(
    episodes: &Episodes,
    seen: &Seen<'_>,
    picked: &[usize],
    scale: f64,
    lambda: f64,
    iteration: usize,
) -> Result<Rollout> {
    let w = features::WIDTH;
    let mut order: Vec<usize> = (0..episodes.steps.len()).collect();
    order.sort_by_key(|&i| (episodes.steps[i].slot, episodes.steps[i].chunk));
    let mut rollout = Rollout {
        envs: 1,
        last_values: vec![0.0],
        ..Rollout::default()
    };
    for i in order {
        let s = &episodes.steps[i];
        let reward = scale * (s.none_loss - s.loss) - lambda * s.cost();
        if !reward.is_finite() {
            return Err(Error::Run(format!(
                "iteration {}: the reward of training stream {} chunk {} is {reward} (loss {}, \
                 backbone alone {})",
                iteration + 1,
                picked[s.slot],
                s.chunk,
                s.loss,
                s.none_loss
            )));
        }
        rollout.obs.extend_from_slice(&seen.obs[i * w..(i + 1) * w]);
        rollout.actions.push(s.action as u32);
        rollout.logp.push(seen.logp[i]);
        rollout.values.push(seen.values[i]);
        rollout.rewards.push(reward);
        rollout.dones.push(s.last);
    }
    Ok(rollout)
}

#[cfg(test)]
mod tests {
    use super::rollout::Step;
    use super::*;

    fn step(slot: usize, chunk: usize, last: bool, action: usize, loss: f64) -> Step {
        Step {
            slot,
            chunk,
            last,
            action,
            loss,
            none_loss: 4.0,
        }
    }

    #[test]
    fn episodes_become_one_environment_stream_by_stream() {
        // Made position by position: stream 0 chunk 0, stream 1 chunk 0, stream 0 chunk 1.
        let episodes = Episodes {
            steps: vec![
                step(0, 0, false, 1, 3.9),
                step(1, 0, true, 0, 4.0),
                step(0, 1, true, 3, 3.5),
            ],
            obs: (0..3 * features::WIDTH).map(|i| i as f32).collect(),
        };
        let seen = Seen {
            obs: &episodes.obs,
            logp: &[-1.0, -2.0, -3.0],
            values: &[0.1, 0.2, 0.3],
        };
        let r = to_rollout(&episodes, &seen, &[7, 9], 10.0, 0.5, 0).unwrap();
        assert_eq!(r.actions, vec![1, 3, 0]);
        assert_eq!(r.dones, vec![false, true, true]);
        assert_eq!(r.logp, vec![-1.0, -3.0, -2.0]);
        assert_eq!(r.values, vec![0.1, 0.3, 0.2]);
        // 10 · (4 − loss) − 0.5 · cost.
        let want = [10.0 * 0.1 - 1.5, 10.0 * 0.5 - 4.5, -0.5];
        for (got, want) in r.rewards.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(r.obs[features::WIDTH], (2 * features::WIDTH) as f32);
    }

    #[test]
    fn a_nan_reward_names_the_iteration_and_the_stream() {
        let episodes = Episodes {
            steps: vec![step(0, 0, false, 1, 3.9), step(0, 1, true, 1, f64::NAN)],
            obs: vec![0.0; 2 * features::WIDTH],
        };
        let seen = Seen {
            obs: &episodes.obs,
            logp: &[0.0; 2],
            values: &[0.0; 2],
        };
        let e = to_rollout(&episodes, &seen, &[41], 1.0, 0.0, 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("iteration 5") && e.contains("training stream 41 chunk 1"),
            "{e}"
        );
    }
}
