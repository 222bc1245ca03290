//! The typed lines of a run folder's record files, written and read by the same structs:
//! `metrics.jsonl` holds [`Metric`]s (deterministic: the same config and seed give the same
//! bytes), `timing.jsonl` holds [`Timing`]s (wall clock, not deterministic), and a checkpoint's
//! `state.json` is a [`CheckpointState`]. Every line says what it is in its `record` field.
//! Numbers are finite: JSON has no infinity, so a record holding one is refused when written
//! ([`crate::RunDir::metric`]). Perplexities are not recorded; they are `exp` of the losses.

use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Metric {
    /// A backbone training step.
    BackboneStep(BackboneStep),
    /// A backbone validation.
    BackboneValidation(BackboneValidation),
    /// A fast-layer training step.
    FastStep(FastStep),
    /// A fast-layer validation.
    FastValidation(FastValidation),
    /// An iteration of the learned gate's training.
    PolicyIteration(PolicyIteration),
    /// The run finished; nothing follows.
    Done(Done),
}

/// A backbone training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneStep {
    /// Steps done, from 1.
    pub step: u64,
    /// Training loss, nats/token.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// A backbone validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneValidation {
    /// Steps done.
    pub step: u64,
    /// Validation loss, nats/token.
    pub val_loss: f64,
    /// A unigram model of the training tokens on the same validation tokens.
    pub unigram_val_loss: f64,
}

/// A fast-layer training step (the values of its last Adam step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastStep {
    /// Steps done, from 1.
    pub step: u64,
    /// Next-token loss of the UPDATE path, nats/token.
    pub loss: f64,
    /// Mean reconstruction loss under the chunk's initial fast weights.
    pub ttt_loss_init: f64,
    /// Mean reconstruction loss before each mini-batch's update.
    pub ttt_loss_step_0: f64,
    /// Mean reconstruction loss after each mini-batch's update.
    pub ttt_loss_step_1: f64,
    /// Learning rate of the Adam steps (`lr / k`).
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// A fast-layer validation: SKIP and UPDATE_1 losses on the same chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastValidation {
    /// Steps done.
    pub step: u64,
    /// The frozen backbone alone, nats/token.
    pub val_skip_loss: f64,
    /// With the fast layer's UPDATE_1, nats/token.
    pub val_update_loss: f64,
}

/// One PPO iteration of the learned gate: its rollout's figures and its update's diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyIteration {
    /// Iterations done, from 1.
    pub iteration: u64,
    /// Mean return per stream before the budget's charge: `reward_scale` times the stream's
    /// loss reduction below the backbone alone, summed over its chunks.
    pub return_mean: f64,
    /// Mean cost per chunk of the rollout.
    pub cost: f64,
    /// Mean next-token loss per chunk of the rollout, nats/token.
    pub loss: f64,
    /// The multiplier the rollout's rewards were charged with.
    pub lambda: f64,
    /// Fractions of the rollout's chunks taking each action (SKIP, UPDATE_1, UPDATE_2, UPDATE_4).
    pub actions: Vec<f64>,
    /// Mean entropy of the policy over the update's minibatches.
    pub entropy: f64,
    /// The approximate KL of the update's last minibatch (the configured estimator).
    pub approx_kl: f64,
    /// Fraction of probability ratios outside `1 ± ε`.
    pub clip_fraction: f64,
    /// The clipped surrogate loss.
    pub policy_loss: f64,
    /// The value loss.
    pub value_loss: f64,
    /// `1 − Var(R − V) / Var(R)`; absent when the returns do not vary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explained_variance: Option<f64>,
    /// Passes over the rollout run (fewer than configured after a KL stop).
    pub epochs_run: usize,
}

/// The last record of a finished run, with its final figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// Backbone: the final validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Backbone: the unigram baseline on the same tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unigram_val_loss: Option<f64>,
    /// Fast layer: the final validation SKIP loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_skip_loss: Option<f64>,
    /// Fast layer: the final validation UPDATE_1 loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_update_loss: Option<f64>,
    /// Evaluation: the chunk-batches compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
}

impl Done {
    /// A done record with no figures.
    pub fn empty() -> Self {
        Self {
            val_loss: None,
            unigram_val_loss: None,
            val_skip_loss: None,
            val_update_loss: None,
            chunks: None,
        }
    }
}

impl Metric {
    /// The step of a step or validation record.
    pub fn step(&self) -> Option<u64> {
        match self {
            Self::BackboneStep(r) => Some(r.step),
            Self::BackboneValidation(r) => Some(r.step),
            Self::FastStep(r) => Some(r.step),
            Self::FastValidation(r) => Some(r.step),
            Self::PolicyIteration(r) => Some(r.iteration),
            Self::Done(_) => None,
        }
    }

    /// The training loss of a step record.
    pub fn train_loss(&self) -> Option<f64> {
        match self {
            Self::BackboneStep(r) => Some(r.loss),
            Self::FastStep(r) => Some(r.loss),
            _ => None,
        }
    }
}

/// One line of `timing.jsonl`: wall-clock progress at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Steps done.
    pub step: u64,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
    /// Training tokens per second in this process.
    pub tokens_per_s: f64,
    /// Fast layer: backbone passes saved by the hidden-state cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hits: Option<u64>,
}

/// A checkpoint's `state.json`: where training stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// Steps done.
    pub step: u64,
    /// Adam steps taken (the bias correction's count).
    pub adam_steps: u64,
    /// Lines of `metrics.jsonl` written by then.
    pub metric_lines: usize,
    /// The learned gate's budget controller, where the run trains one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lagrangian: Option<ponder_policy::PidLagrangian>,
    /// The learned gate's feature normalization, where it trains one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs_norm: Option<ponder_policy::ObsNorm>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_say_what_they_are() {
        let records = [
            Metric::BackboneStep(BackboneStep {
                step: 1,
                loss: 8.0,
                lr: 1e-3,
                grad_norm: 2.5,
            }),
            Metric::FastValidation(FastValidation {
                step: 50,
                val_skip_loss: 4.9,
                val_update_loss: 4.8,
            }),
            Metric::Done(Done {
                val_loss: Some(4.6),
                ..Done::empty()
            }),
        ];
        for r in &records {
            let line = serde_json::to_string(r).unwrap();
            assert_eq!(&serde_json::from_str::<Metric>(&line).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_string(&records[2]).unwrap(),
            r#"{"record":"done","val_loss":4.6}"#
        );
        let bad =
            r#"{"record":"fast_validation","step":1,"val_skip_loss":1,"val_update_loss":1,"x":2}"#;
        let e = serde_json::from_str::<Metric>(bad).unwrap_err().to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
    }
}
