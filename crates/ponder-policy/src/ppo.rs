//! Proximal policy optimization over the actor-critic, as CleanRL's reference PPO does it:
//! clipped surrogate, clipped value loss, entropy bonus, advantages normalized per minibatch,
//! global gradient clipping, Adam, an optional approximate-KL early stop; and the original
//! PonderTTT's variant through its settings ([`crate::ppo_config`]): minibatches of a fixed size,
//! no advantage normalization, its own KL estimate, and the network's dropout active in the
//! update's forwards ([`ActorCritic::forward_train`]) while rollouts sample without it.

use std::collections::BTreeMap;

use candle::{DType, Device, Tensor, D};
use ponder_nn::optim::{clip_grad_norm, AdamW, AdamWConfig};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gae;
use crate::net::ActorCritic;
use crate::ppo_config::PpoConfig;

/// One rollout, step-major: entry `t · envs + e` is environment `e` at step `t`.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    /// Environments stepped side by side.
    pub envs: usize,
    /// Feature vectors, `features` values per entry.
    pub obs: Vec<f32>,
    /// The actions taken.
    pub actions: Vec<u32>,
    /// Their log-probabilities under the policy that took them.
    pub logp: Vec<f64>,
    /// The critic's values.
    pub values: Vec<f64>,
    /// Rewards, the budget's charge already subtracted.
    pub rewards: Vec<f64>,
    /// Whether the step ended its episode.
    pub dones: Vec<bool>,
    /// The critic's values of the states after the last step.
    pub last_values: Vec<f64>,
}

/// Diagnostics of one update, averaged over its minibatches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The clipped surrogate loss.
    pub policy_loss: f64,
    /// The (clipped) value loss.
    pub value_loss: f64,
    /// Mean entropy of the policy.
    pub entropy: f64,
    /// Approximate KL of the last minibatch, by the configured [`crate::KlEstimator`], taken
    /// before that minibatch's step.
    pub approx_kl: f64,
    /// Fraction of ratios outside `1 ± ε`, each minibatch's taken before its step.
    pub clip_fraction: f64,
    /// `1 − Var(R − V) / Var(R)` of the rollout's values.
    pub explained_variance: f64,
    /// Passes run (fewer than `epochs` after a KL stop).
    pub epochs_run: usize,
}

/// The learner: network, optimizer and settings.
pub struct Ppo {
    /// The actor-critic.
    pub net: ActorCritic,
    opt: AdamW,
    config: PpoConfig,
}

/// Softmax of one row of logits.
fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let exp: Vec<f64> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// An action drawn from the categorical distribution of one row of `logits` by the uniform draw
/// `u` ∈ [0, 1) (inverse CDF), and its log-probability.
pub fn sample_action(logits: &[f64], u: f64) -> (usize, f64) {
    let p = softmax(logits);
    let mut acc = 0.0;
    let pick = p
        .iter()
        .position(|&pi| {
            acc += pi;
            u < acc
        })
        .unwrap_or(p.len() - 1);
    (pick, p[pick].ln())
}

impl Ppo {
    /// A learner for `net`.
    pub fn new(net: ActorCritic, config: PpoConfig) -> Result<Self> {
        config.validate()?;
        let opt = AdamW::new(
            net.vars(),
            AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: config.adam_eps,
                weight_decay: 0.0,
            },
        )?;
        Ok(Self { net, opt, config })
    }

    /// The settings.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// Everything a checkpoint needs to continue exactly: the network's variables
    /// (`policy.<name>`) and Adam's moments (`optim.<name>`), with the optimizer's step count.
    pub fn state(&self) -> (BTreeMap<String, Tensor>, u64) {
        let mut tensors: BTreeMap<String, Tensor> = self
            .net
            .vars()
            .into_iter()
            .map(|(k, v)| (format!("policy.{k}"), v.as_tensor().clone()))
            .collect();
        tensors.extend(
            self.opt
                .state()
                .into_iter()
                .map(|(k, v)| (format!("optim.{k}"), v)),
        );
        (tensors, self.opt.steps())
    }

    /// Restores [`Ppo::state`]; a missing or misshapen tensor is an error naming it.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, steps: u64) -> Result<()> {
        for (name, var) in self.net.vars() {
            let key = format!("policy.{name}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| Error::Config(format!("policy checkpoint lacks {key}")))?;
            if t.dims() != var.dims() {
                return Err(Error::Config(format!(
                    "policy checkpoint: {key} has shape {:?}, the network expects {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(t)?;
        }
        let optim: BTreeMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|k| (k.to_string(), v.clone())))
            .collect();
        self.opt.load_state(&optim, steps)?;
        Ok(())
    }

    /// Samples an action for each row of `obs` (`rows · features` values): the actions, their
    /// log-probabilities and the critic's values.
    pub fn act(&self, obs: &[f32], rng: &mut ChaCha8Rng) -> Result<(Vec<u32>, Vec<f64>, Vec<f64>)> {
        let (logits, values) = self.heads(obs)?;
        let a = self.net.config().actions;
        let mut actions = Vec::new();
        let mut logp = Vec::new();
        for row in logits.chunks(a) {
            let row: Vec<f64> = row.iter().map(|&l| f64::from(l)).collect();
            let (pick, lp) = sample_action(&row, rng.random());
            actions.push(pick as u32);
            logp.push(lp);
        }
        Ok((actions, logp, values))
    }

    /// The most probable action of each row (inference).
    pub fn greedy(&self, obs: &[f32]) -> Result<Vec<u32>> {
        let (logits, _) = self.heads(obs)?;
        Ok(logits
            .chunks(self.net.config().actions)
            .map(|row| {
                (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as u32
            })
            .collect())
    }

    /// The critic's values of each row.
    pub fn values(&self, obs: &[f32]) -> Result<Vec<f64>> {
        Ok(self.heads(obs)?.1)
    }

    fn heads(&self, obs: &[f32]) -> Result<(Vec<f32>, Vec<f64>)> {
        let f = self.net.config().features;
        if obs.is_empty() || obs.len() % f != 0 {
            return Err(Error::Config(format!(
                "ppo: {} feature values are not whole rows of {f}",
                obs.len()
            )));
        }
        let x = Tensor::from_slice(obs, (obs.len() / f, f), &Device::Cpu)?;
        let heads = self.net.forward(&x)?;
        let logits = heads.logits.flatten_all()?.to_vec1::<f32>()?;
        let values = heads.values.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok((logits, values))
    }

    /// One PPO update on `rollout`, with the learning rate scaled by `lr_frac` (1 → 0 over
    /// training where annealed).
    pub fn update(
        &mut self,
        rollout: &Rollout,
        lr_frac: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<UpdateStats> {
        let c = self.config;
        let (adv, ret) = gae::advantages(
            &rollout.rewards,
            &rollout.values,
            &rollout.dones,
            &rollout.last_values,
            c.gamma,
            c.gae_lambda,
        )?;
        let n = adv.len();
        let f = self.net.config().features;
        if rollout.obs.len() != n * f || rollout.actions.len() != n || rollout.logp.len() != n {
            return Err(Error::Config(format!(
                "ppo: a rollout of {n} steps with {} feature values, {} actions and {} log-probabilities",
                rollout.obs.len(),
                rollout.actions.len(),
                rollout.logp.len()
            )));
        }
        let lr = if c.anneal_lr { c.lr * lr_frac } else { c.lr };
        let ranges = c.minibatch.ranges(n);
        let mut order: Vec<usize> = (0..n).collect();
        let (mut sums, mut count) = ([0.0f64; 4], 0usize);
        let mut approx_kl = 0.0;
        let mut epochs_run = 0;
        let vars = self.net.vars();
        for _ in 0..c.epochs {
            epochs_run += 1;
            order.shuffle(rng);
            for range in ranges.iter().cloned() {
                let mb = &order[range];
                let pick = |xs: &[f64]| -> Vec<f64> { mb.iter().map(|&i| xs[i]).collect() };
                let mut a = pick(&adv);
                if c.normalize_advantages && a.len() > 1 {
                    let mean = a.iter().sum::<f64>() / a.len() as f64;
                    let var =
                        a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (a.len() - 1) as f64;
                    for x in a.iter_mut() {
                        *x = (*x - mean) / (var.sqrt() + 1e-8);
                    }
                }
                let dev = &Device::Cpu;
                let t = |xs: Vec<f64>| -> Result<Tensor> {
                    Ok(Tensor::from_vec(xs, mb.len(), dev)?.to_dtype(DType::F32)?)
                };
                let obs: Vec<f32> = mb
                    .iter()
                    .flat_map(|&i| rollout.obs[i * f..(i + 1) * f].iter().copied())
                    .collect();
                let obs = Tensor::from_vec(obs, (mb.len(), f), dev)?;
                let actions = Tensor::from_vec(
                    mb.iter().map(|&i| rollout.actions[i]).collect::<Vec<u32>>(),
                    (mb.len(), 1),
                    dev,
                )?;
                let (old_logp, a, r, old_v) = (
                    t(pick(&rollout.logp))?,
                    t(a)?,
                    t(pick(&ret))?,
                    t(pick(&rollout.values))?,
                );
                // Training mode: where the network has dropout, the ratio below compares a
                // dropped-out network with the rollout's full one, and is not 1 before a step.
                let heads = self.net.forward_train(&obs, rng)?;
                let logp_all = candle_nn::ops::log_softmax(&heads.logits, D::Minus1)?;
                let logp = logp_all.gather(&actions, 1)?.squeeze(1)?;
                let entropy = (logp_all.exp()? * &logp_all)?.sum(1)?.neg()?.mean_all()?;
                let log_ratio = (&logp - &old_logp)?;
                let ratio = log_ratio.exp()?;
                let surrogate = (&a * &ratio)?;
                let clipped = (&a * ratio.clamp(1.0 - c.clip, 1.0 + c.clip)?)?;
                let policy_loss = surrogate.minimum(&clipped)?.neg()?.mean_all()?;
                let v = &heads.values;
                let v_err = (v - &r)?.sqr()?;
                let value_loss = if c.clip_value {
                    let v_clip = (&old_v + (v - &old_v)?.clamp(-c.clip, c.clip)?)?;
                    v_err.maximum(&(v_clip - &r)?.sqr()?)?
                } else {
                    v_err
                }
                .mean_all()?
                .affine(0.5, 0.0)?;
                let loss = ((&policy_loss - (&entropy * c.entropy_coef)?)?
                    + (&value_loss * c.value_coef)?)?;
                let mut grads = loss.backward()?;
                clip_grad_norm(&mut grads, &vars, c.max_grad_norm)?;
                self.opt.step(&grads, lr)?;
                let scalar =
                    |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
                let lr_host: Vec<f64> = log_ratio.to_dtype(DType::F64)?.to_vec1()?;
                approx_kl = c.kl_estimator.estimate(&lr_host);
                let clipped_frac = lr_host
                    .iter()
                    .filter(|&&l| (l.exp() - 1.0).abs() > c.clip)
                    .count() as f64
                    / lr_host.len() as f64;
                for (s, v) in sums.iter_mut().zip([
                    scalar(&policy_loss)?,
                    scalar(&value_loss)?,
                    scalar(&entropy)?,
                    clipped_frac,
                ]) {
                    *s += v;
                }
                count += 1;
                if !(approx_kl.is_finite() && scalar(&loss)?.is_finite()) {
                    return Err(Error::Numeric(format!(
                        "ppo: the loss or its KL is not finite (approx_kl {approx_kl})"
                    )));
                }
            }
            if c.target_kl.is_some_and(|k| approx_kl > k) {
                break;
            }
        }
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len().max(1) as f64;
        let (mr, mv) = (mean(&ret), mean(&rollout.values));
        let var_r = ret.iter().map(|x| (x - mr).powi(2)).sum::<f64>();
        let var_e = ret
            .iter()
            .zip(&rollout.values)
            .map(|(r, v)| (r - v - (mr - mv)).powi(2))
            .sum::<f64>();
        let k = count.max(1) as f64;
        Ok(UpdateStats {
            policy_loss: sums[0] / k,
            value_loss: sums[1] / k,
            entropy: sums[2] / k,
            approx_kl,
            clip_fraction: sums[3] / k,
            explained_variance: if var_r > 0.0 {
                1.0 - var_e / var_r
            } else {
                f64::NAN
            },
            epochs_run,
        })
    }
}
