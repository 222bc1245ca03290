//! The learned gate in stream mode (`docs/design/policy.md`): the trained actor-critic with the
//! settings its features were computed under ([`PolicyMeta`]), saved and loaded as a folder of
//! `policy.json` and `policy.safetensors`, and its decisions ([`LearnedGate::decide`]); the
//! feature vectors of one chunk position ([`features`]), shared by training rollouts and
//! evaluation; and the budget correction of inference ([`correction`]).

pub mod correction;
pub mod decider;
pub mod features;

pub use correction::{corrected_actions, BudgetDebt, Corrected};
pub use decider::LearnedDecider;
pub use features::{chunk_features, ChunkProbe, FeatureShape, Position};

use std::collections::BTreeMap;
use std::path::Path;

use candle::{Device, Tensor};
use ponder_experiment::run_dir::{read_json, write_json};
use ponder_experiment::{
    CorrectionForm, EvalConfig, ExperimentConfig, Inference, Layout, RunFolder,
};
use ponder_gate::features as feature_vector;
use ponder_gate::{Decision, ACTIONS};
use ponder_policy::{ActorCritic, NetConfig, ObsNorm};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a learned gate was trained for and under: everything its features and decisions depend
/// on besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyMeta {
    /// The network's shape.
    pub net: NetConfig,
    /// The inner steps of each logit's action, in order (0 for SKIP).
    pub actions: Vec<u32>,
    /// The feature names, in order ([`feature_vector::NAMES`]).
    pub features: Vec<String>,
    /// The mean cost per chunk it was trained and calibrated for.
    pub budget: f64,
    /// Tokens per chunk.
    pub chunk_len: usize,
    /// EMA rate of the history features.
    pub history_alpha: f64,
    /// The length the sequence features divide by.
    pub length_norm: usize,
    /// The feature normalization learned in training, applied before the network; `None` for
    /// raw features.
    pub feature_norm: Option<ObsNorm>,
    /// How it acts at inference.
    pub inference: Inference,
    /// How the budget correction enters the logits.
    pub correction_form: CorrectionForm,
    /// The gain of the correction's online part ([`BudgetDebt`]), chosen on validation.
    pub correction_gain: f64,
    /// Whether the budget of a whole evaluation is guarded ([`BudgetDebt::guarded`]).
    pub budget_guard: bool,
    /// Every gain tried on validation: β₀ chosen on half the streams, the cost on the other.
    pub gain_trials: Vec<GainTrial>,
    /// The budget correction β chosen on validation.
    pub correction: f64,
    /// Every correction tried on validation, in the order tried.
    pub calibration: Vec<Correction>,
    /// The validation streams the correction was chosen on.
    pub calibration_streams: usize,
    /// PPO iterations trained.
    pub iterations: usize,
}

/// A gain of the correction's online part tried on validation: β₀ chosen for it on one half of
/// the streams, and the mean cost and loss it gave on the other half.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GainTrial {
    /// The gain.
    pub gain: f64,
    /// β₀ chosen on the first half.
    pub beta: f64,
    /// The mean cost per chunk on the second half.
    pub cost: f64,
    /// The mean loss per chunk on the second half, nats/token.
    pub loss: f64,
}

/// A budget correction tried on the validation streams.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// β.
    pub beta: f64,
    /// The mean cost per chunk it gave.
    pub cost: f64,
    /// The mean loss per chunk it gave, nats/token.
    pub loss: f64,
}

/// A trained learned gate, ready to decide.
pub struct LearnedGate {
    /// The actor-critic (only its logits are read at inference).
    pub net: ActorCritic,
    /// Its settings.
    pub meta: PolicyMeta,
    /// The online part of its correction, over the decisions made so far.
    pub debt: BudgetDebt,
}

/// The inner steps of [`ACTIONS`], the action set a learned gate must have.
pub fn action_steps() -> Vec<u32> {
    ACTIONS.iter().map(|a| a.steps()).collect()
}

impl PolicyMeta {
    /// Errors when this policy does not fit stream mode's actions and features.
    pub fn check(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| Error::Resume {
            path: origin.to_path_buf(),
            reason,
        };
        if self.actions != action_steps() {
            return Err(bad(format!(
                "a policy for the action set {:?} (inner steps per logit); stream mode's is {:?}",
                self.actions,
                action_steps()
            )));
        }
        if self.features != feature_vector::NAMES || self.net.features != feature_vector::WIDTH {
            return Err(bad(format!(
                "a policy over {} features ({} named), the learned gate's feature vector has \
                 {} ({})",
                self.net.features,
                self.features.len(),
                feature_vector::WIDTH,
                feature_vector::NAMES.join(", ")
            )));
        }
        if self.net.actions != ACTIONS.len() {
            return Err(bad(format!(
                "a network of {} logits for {} actions",
                self.net.actions,
                ACTIONS.len()
            )));
        }
        Ok(())
    }
}

impl LearnedGate {
    /// A gate of `net` under `meta`, no decision made yet.
    pub fn new(net: ActorCritic, meta: PolicyMeta) -> Self {
        let debt = BudgetDebt::new(meta.correction_gain, meta.budget);
        Self { net, meta, debt }
    }

    /// Writes `dir/policy.json` and `dir/policy.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(crate::error::io(dir))?;
        let tensors: BTreeMap<String, Tensor> = self
            .net
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        let path = RunFolder::policy_tensors(dir);
        ponder_nn::save_safetensors(&path, &tensors)?;
        write_json(&RunFolder::policy_meta(dir), &self.meta)?;
        Ok(())
    }

    /// Reads a folder written by [`LearnedGate::save`]; a policy of another action set or
    /// feature width, or a tensor missing or of the wrong shape, is an error naming it.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta_path = RunFolder::policy_meta(dir);
        if !meta_path.is_file() {
            return Err(Error::Config(format!(
                "{}: no trained learned gate here (run `ponder train gate` first)",
                meta_path.display()
            )));
        }
        let meta: PolicyMeta = read_json(&meta_path)?;
        meta.check(&meta_path)?;
        // The weights are overwritten from the file; the draw only builds the variables.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let net = ActorCritic::new(meta.net.clone(), &mut rng, device).map_err(policy_err)?;
        let path = RunFolder::policy_tensors(dir);
        let tensors = candle::safetensors::load(&path, device)?;
        for (name, var) in net.vars() {
            let t = tensors.get(&name).ok_or_else(|| Error::Resume {
                path: path.clone(),
                reason: format!("the policy lacks tensor {name}"),
            })?;
            if t.dims() != var.dims() {
                return Err(Error::Resume {
                    path: path.clone(),
                    reason: format!(
                        "tensor {name} has shape {:?}, the network of policy.json expects {:?}",
                        t.dims(),
                        var.dims()
                    ),
                });
            }
            var.set(t)?;
        }
        Ok(Self::new(net, meta))
    }

    /// The learned gate that `ppo` runs in a stream-mode comparison of `config`: the one trained
    /// on its fast layer (`ponder train gate`), which must have been trained for `eval`'s budget
    /// and chunk length.
    pub fn for_comparison(
        config: &ExperimentConfig,
        eval: &EvalConfig,
        device: &Device,
    ) -> Result<Self> {
        let dir = Layout::fast_of(config)?.policy_run().learned_policy();
        let gate = Self::load(&dir, device)?;
        let budget = eval.cost_budget()?;
        if (gate.meta.budget - budget).abs() > 1e-9 || gate.meta.chunk_len != eval.chunk_len {
            return Err(Error::Config(format!(
                "{}: the learned gate was trained for a mean cost of {} per chunk of {} tokens; \
                 this comparison's budget is {budget} per chunk of {} (set policy.budget and \
                 policy.chunk_len to match [eval], and train it again)",
                dir.display(),
                gate.meta.budget,
                gate.meta.chunk_len,
                eval.chunk_len
            )));
        }
        Ok(gate)
    }

    /// The action of each row of `obs` (`rows · WIDTH` values) under its budget correction, its
    /// online part included, and its inference rule ([`corrected_actions`]); `rng` draws where
    /// it samples. The decisions are added to the debt.
    pub fn decide(&mut self, obs: &[f32], rng: &mut ChaCha8Rng) -> Result<Vec<Decision>> {
        let logits = match &self.meta.feature_norm {
            Some(norm) => logits(&self.net, &norm.apply(obs).map_err(policy_err)?)?,
            None => logits(&self.net, obs)?,
        };
        let correction = (self.meta.correction_form, self.meta.correction);
        corrected_actions(
            &logits,
            correction,
            self.meta.inference,
            &mut self.debt,
            rng,
        )
    }

    /// Tells the gate how many decisions the evaluation holds, for its budget guard where it
    /// has one (`budget_guard`); before any decision.
    pub fn set_horizon(&mut self, decisions: usize) {
        if self.meta.budget_guard {
            self.debt = self.debt.guarded(decisions);
        }
    }
}

/// The logits of each row of `obs`, one `Vec` per row.
pub fn logits(net: &ActorCritic, obs: &[f32]) -> Result<Vec<Vec<f32>>> {
    let w = net.config().features;
    let x = Tensor::from_slice(obs, (obs.len() / w, w), &Device::Cpu)?;
    Ok(net
        .forward(&x)
        .map_err(policy_err)?
        .logits
        .to_vec2::<f32>()?)
}

/// A policy error, as an evaluation config error.
pub fn policy_err(e: ponder_policy::Error) -> Error {
    Error::Config(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn gate() -> LearnedGate {
        let net = NetConfig {
            features: feature_vector::WIDTH,
            hidden: vec![8],
            actions: ACTIONS.len(),
            activation: ponder_policy::Activation::Tanh,
            dropout: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        LearnedGate::new(
            ActorCritic::new(net.clone(), &mut rng, &Device::Cpu).unwrap(),
            PolicyMeta {
                net,
                actions: action_steps(),
                features: feature_vector::NAMES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                budget: 2.0,
                chunk_len: 16,
                history_alpha: 0.1,
                length_norm: 512,
                feature_norm: None,
                inference: Inference::Argmax,
                correction_form: CorrectionForm::Cost,
                correction_gain: 0.0,
                budget_guard: false,
                gain_trials: Vec::new(),
                correction: 0.25,
                calibration: vec![
                    Correction {
                        beta: 0.0,
                        cost: 3.0,
                        loss: 4.0,
                    },
                    Correction {
                        beta: 0.25,
                        cost: 2.0,
                        loss: 4.1,
                    },
                ],
                calibration_streams: 3,
                iterations: 2,
            },
        )
    }

    #[test]
    fn a_saved_gate_loads_back_and_foreign_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = gate();
        g.save(dir.path()).unwrap();
        let back = LearnedGate::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(back.meta, g.meta);
        let obs = vec![0.5f32; 2 * feature_vector::WIDTH];
        assert_eq!(
            logits(&back.net, &obs).unwrap(),
            logits(&g.net, &obs).unwrap()
        );

        let meta_path = RunFolder::policy_meta(dir.path());
        let edit = |f: &dyn Fn(&mut PolicyMeta)| {
            let mut m = g.meta.clone();
            f(&mut m);
            write_json(&meta_path, &m).unwrap();
            LearnedGate::load(dir.path(), &Device::Cpu)
                .err()
                .unwrap()
                .to_string()
        };
        let e = edit(&|m| m.actions = vec![0, 1, 2, 3]);
        assert!(e.contains("action set [0, 1, 2, 3]"), "{e}");
        let e = edit(&|m| {
            m.net.features = 32;
            m.features.pop();
        });
        assert!(
            e.contains("over 32 features") && e.contains("has 33"),
            "{e}"
        );
        let e = edit(&|m| m.net.hidden = vec![16]);
        assert!(
            e.contains("hidden.0.weight has shape [33, 8]") && e.contains("[33, 16]"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = LearnedGate::load(empty.path(), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ponder train gate"), "{e}");
    }
}
