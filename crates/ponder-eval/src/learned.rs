//! The learned gate in stream mode (`docs/design/policy.md`): the trained actor-critic with the
//! settings its features were computed under ([`PolicyMeta`]), saved and loaded as a folder of
//! `policy.json` and `policy.safetensors`; the feature vectors of one chunk position
//! ([`chunk_features`]), shared by training rollouts and evaluation; and deterministic
//! inference with the budget correction chosen on validation ([`LearnedGate::decide`]).
//!
//! The budget correction β shifts the logits before the argmax or the draw ([`Corrected`]):
//! either every action's logit charged with its cost, `ℓ_a − β c_a`, or SKIP's logit raised,
//! `ℓ_SKIP + β`. Either way a larger β buys cheaper actions: at a fixed feature vector the
//! argmax's cost never rises with β, nor does a draw's expected cost, so a bisection on β finds
//! the correction that holds the realized cost to the budget on the validation streams.

use std::collections::BTreeMap;
use std::path::Path;

use candle::{Device, Tensor};
use ponder_experiment::run_dir::{read_json, write_json};
use ponder_experiment::{
    CorrectionForm, EvalConfig, ExperimentConfig, Inference, Layout, RunFolder,
};
use ponder_gate::features::{self, History, ModelStats};
use ponder_gate::{Decision, ACTIONS};
use ponder_model::{FastState, PonderLm, SequenceSignal};
use ponder_policy::{ActorCritic, NetConfig, ObsNorm};
use rand::{Rng, SeedableRng};
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
    /// The feature names, in order ([`features::NAMES`]).
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

/// The online part of the budget correction: the cost spent beyond the budget over every
/// decision made so far, `debt = Σ (cost − budget)`, which moves β to `β₀ + gain · debt`. A
/// fixed β₀ holds the budget only where the decisions' margins are distributed as on the
/// streams it was chosen on; the debt pulls the realized mean cost back to the budget on any
/// stream of decisions, as the training-free controllers' budget debt does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetDebt {
    /// The gain.
    pub gain: f64,
    /// The mean cost per decision allowed.
    pub budget: f64,
    /// `Σ (cost − budget)` so far.
    pub debt: f64,
}

impl BudgetDebt {
    /// No decision made yet.
    pub fn new(gain: f64, budget: f64) -> Self {
        Self {
            gain,
            budget,
            debt: 0.0,
        }
    }

    /// `β₀` moved by the debt.
    pub fn beta(&self, base: f64) -> f64 {
        base + self.gain * self.debt
    }

    /// Adds decisions made.
    pub fn record(&mut self, decisions: &[Decision]) {
        for d in decisions {
            self.debt += d.cost() - self.budget;
        }
    }
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
        if self.features != features::NAMES || self.net.features != features::WIDTH {
            return Err(bad(format!(
                "a policy over {} features ({} named), the learned gate's feature vector has \
                 {} ({})",
                self.net.features,
                self.features.len(),
                features::WIDTH,
                features::NAMES.join(", ")
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
        let correction = Corrected {
            form: self.meta.correction_form,
            beta: self.debt.beta(self.meta.correction),
        };
        let logits = match &self.meta.feature_norm {
            Some(norm) => logits(&self.net, &norm.apply(obs).map_err(policy_err)?)?,
            None => logits(&self.net, obs)?,
        };
        let decisions = corrected_actions(&logits, correction, self.meta.inference, rng)?;
        self.debt.record(&decisions);
        Ok(decisions)
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

/// A budget correction: its form and its β.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corrected {
    /// How β enters the logits.
    pub form: CorrectionForm,
    /// β.
    pub beta: f64,
}

impl Corrected {
    /// One row of logits corrected: `ℓ_a − β c_a` (form `cost`), or `ℓ_SKIP + β` with the other
    /// logits unchanged (form `skip_logit`). Either way a larger β buys cheaper actions.
    pub fn apply(&self, row: &[f32]) -> Result<Vec<f64>> {
        if row.len() != ACTIONS.len() {
            return Err(Error::Config(format!(
                "a learned gate gave {} logits for {} actions",
                row.len(),
                ACTIONS.len()
            )));
        }
        Ok(row
            .iter()
            .zip(ACTIONS)
            .map(|(&l, a)| match self.form {
                CorrectionForm::Cost => f64::from(l) - self.beta * a.cost(),
                CorrectionForm::SkipLogit if a == Decision::Skip => f64::from(l) + self.beta,
                CorrectionForm::SkipLogit => f64::from(l),
            })
            .collect())
    }
}

/// Each row's action under `correction`: the argmax of the corrected logits (ties go to the
/// cheaper action), or a draw from their softmax by `rng`.
pub fn corrected_actions(
    logits: &[Vec<f32>],
    correction: Corrected,
    inference: Inference,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Decision>> {
    logits
        .iter()
        .map(|row| {
            let z = correction.apply(row)?;
            let pick = match inference {
                Inference::Argmax => (1..z.len()).fold(0, |b, i| if z[i] > z[b] { i } else { b }),
                Inference::Sample => ponder_policy::sample_action(&z, rng.random()).0,
            };
            Ok(ACTIONS[pick])
        })
        .collect()
}

/// A policy error, as an evaluation config error.
pub fn policy_err(e: ponder_policy::Error) -> Error {
    Error::Config(e.to_string())
}

/// The backbone's view of one chunk position that the learned gate reads: per row, the model
/// statistics of the SKIP path (their `recon` filled in per state by [`chunk_features`]) and
/// the backbone-alone loss, which is the chunk's difficulty in the history features.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkProbe {
    /// Per row.
    pub stats: Vec<ModelStats>,
    /// Per row, nats/token.
    pub none_loss: Vec<f64>,
}

impl ChunkProbe {
    /// Probes `ids`.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)`.
    pub fn new(lm: &PonderLm, ids: &Tensor) -> Result<Self> {
        let b = ids.dim(0)?;
        let (_, stats, none_loss) = lm.probe(ids, &vec![f64::NAN; b])?;
        Ok(Self { stats, none_loss })
    }
}

/// How the feature vectors are computed (the [`PolicyMeta`] fields they depend on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureShape {
    /// Tokens per chunk.
    pub chunk_len: usize,
    /// The vocabulary size.
    pub vocab: usize,
    /// See [`PolicyMeta::length_norm`].
    pub length_norm: usize,
}

/// One chunk position of a batch of streams, as the learned gate reads it.
pub struct Position<'a> {
    /// The backbone's hidden states, `(rows, t, d)`.
    pub hidden: &'a Tensor,
    /// The token ids, `(rows, t)`.
    pub ids: &'a Tensor,
    /// Each row's token ids.
    pub ids_rows: Vec<&'a [u32]>,
    /// The rows' probe.
    pub probe: &'a ChunkProbe,
}

/// The feature vectors of chunk position `at`, row-major `(rows, WIDTH)`, and each row's signal
/// under its current state (`row_states[r]`, with history `histories[r]`).
pub fn chunk_features(
    lm: &PonderLm,
    at: &Position<'_>,
    row_states: &[&FastState],
    histories: &[History],
    shape: FeatureShape,
) -> Result<(Vec<f32>, Vec<SequenceSignal>)> {
    let signals = lm.sequence_signals(at.hidden, at.ids, &FastState::cat(row_states)?)?;
    let mut obs = Vec::with_capacity(signals.len() * features::WIDTH);
    for (r, s) in signals.iter().enumerate() {
        let stats = ModelStats {
            recon: s.recon,
            ..at.probe.stats[r]
        };
        obs.extend(features::vector(
            &stats,
            at.ids_rows[r],
            shape.chunk_len,
            shape.vocab,
            shape.length_norm,
            &histories[r],
        )?);
    }
    Ok((obs, signals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> LearnedGate {
        let net = NetConfig {
            features: features::WIDTH,
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
                features: features::NAMES.iter().map(|s| s.to_string()).collect(),
                budget: 2.0,
                chunk_len: 16,
                history_alpha: 0.1,
                length_norm: 512,
                feature_norm: None,
                inference: Inference::Argmax,
                correction_form: CorrectionForm::Cost,
                correction_gain: 0.0,
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
    fn the_correction_buys_cheaper_actions() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let argmax = |logits: &[Vec<f32>], form, beta| {
            corrected_actions(
                logits,
                Corrected { form, beta },
                Inference::Argmax,
                &mut ChaCha8Rng::seed_from_u64(0),
            )
            .unwrap()[0]
        };
        // Logits 0, 1, 1.5, 1.8 for costs 1, 3, 5, 9.
        let logits = vec![vec![0.0f32, 1.0, 1.5, 1.8]];
        let cost = |beta| argmax(&logits, CorrectionForm::Cost, beta);
        assert_eq!(cost(0.0), Decision::Update(4));
        // β = 0.1: 0 − .1, 1 − .3, 1.5 − .5, 1.8 − .9 → UPDATE_2 (1.0).
        assert_eq!(cost(0.1), Decision::Update(2));
        // β = 0.3: −.3, .1, 0, −.9 → UPDATE_1.
        assert_eq!(cost(0.3), Decision::Update(1));
        assert_eq!(cost(1.0), Decision::Skip);
        // SKIP's logit raised: the favoured update until SKIP passes it.
        let skip = |beta| argmax(&logits, CorrectionForm::SkipLogit, beta);
        assert_eq!(skip(1.7), Decision::Update(4));
        assert_eq!(skip(1.9), Decision::Skip);
        // A negative correction buys dearer actions: the dearest in cost form, the favoured
        // update in SKIP-logit form.
        let flat = vec![vec![0.0f32, 0.2, 0.1, 0.0]];
        assert_eq!(
            argmax(&flat, CorrectionForm::Cost, -0.1),
            Decision::Update(4)
        );
        assert_eq!(
            argmax(&flat, CorrectionForm::SkipLogit, -0.1),
            Decision::Update(1)
        );
        // Ties go to the cheaper action.
        let flat = vec![vec![0.0f32; 4]];
        assert_eq!(argmax(&flat, CorrectionForm::Cost, 0.0), Decision::Skip);
        let bad = Corrected {
            form: CorrectionForm::Cost,
            beta: 0.0,
        };
        let e = corrected_actions(&[vec![0.0f32; 3]], bad, Inference::Argmax, &mut rng);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("3 logits for 4 actions"));
    }

    #[test]
    fn the_debt_pulls_the_mean_cost_to_the_budget() {
        // A policy that prefers UPDATE_1 over SKIP by 0.5 everywhere spends 3 per decision; the
        // debt raises SKIP's logit until it alternates around a mean cost of 2.
        let logits = vec![vec![0.0f32, 0.5, -5.0, -5.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mean_cost = |gain: f64, rng: &mut ChaCha8Rng| {
            let mut debt = BudgetDebt::new(gain, 2.0);
            let mut total = 0.0;
            for _ in 0..400 {
                let c = Corrected {
                    form: CorrectionForm::SkipLogit,
                    beta: debt.beta(0.0),
                };
                let d = corrected_actions(&logits, c, Inference::Argmax, rng).unwrap();
                debt.record(&d);
                total += d[0].cost();
            }
            total / 400.0
        };
        assert_eq!(mean_cost(0.0, &mut rng), 3.0);
        let held = mean_cost(0.1, &mut rng);
        // The debt stays within the 0.5 / 0.1 = 5 units that flip the choice, plus one step.
        assert!((held - 2.0).abs() <= 7.0 / 400.0, "{held}");
    }

    #[test]
    fn sampling_draws_from_the_corrected_softmax() {
        let logits = vec![vec![0.0f32, 1.0, 1.5, 1.8]; 20_000];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let draw = |form, beta, rows: &[Vec<f32>], rng: &mut ChaCha8Rng| {
            corrected_actions(rows, Corrected { form, beta }, Inference::Sample, rng).unwrap()
        };
        for (form, shifted) in [
            // softmax(0 − .1, 1 − .3, 1.5 − .5, 1.8 − .9)
            (CorrectionForm::Cost, [-0.1f64, 0.7, 1.0, 0.9]),
            // softmax(0 + .1, 1, 1.5, 1.8)
            (CorrectionForm::SkipLogit, [0.1f64, 1.0, 1.5, 1.8]),
        ] {
            let d = draw(form, 0.1, &logits, &mut rng);
            let z: Vec<f64> = shifted.iter().map(|x| x.exp()).collect();
            let total: f64 = z.iter().sum();
            for (a, zi) in ACTIONS.iter().zip(&z) {
                let freq = d.iter().filter(|x| *x == a).count() as f64 / d.len() as f64;
                assert!(
                    (freq - zi / total).abs() < 0.015,
                    "{form:?} {a:?}: {freq} vs {}",
                    zi / total
                );
            }
            // A large correction leaves only SKIP.
            let d = draw(form, 30.0, &logits[..50], &mut rng);
            assert!(d.iter().all(|a| *a == Decision::Skip));
        }
        let bad = Corrected {
            form: CorrectionForm::Cost,
            beta: 0.0,
        };
        let e = corrected_actions(&[vec![0.0f32; 5]], bad, Inference::Sample, &mut rng);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("5 logits for 4 actions"));
    }

    #[test]
    fn a_saved_gate_loads_back_and_foreign_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = gate();
        g.save(dir.path()).unwrap();
        let back = LearnedGate::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(back.meta, g.meta);
        let obs = vec![0.5f32; 2 * features::WIDTH];
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
