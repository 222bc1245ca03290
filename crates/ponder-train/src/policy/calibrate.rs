//! The budget correction of deterministic inference, chosen on validation streams
//! ([`calibrate`]): in training the PID Lagrangian holds the sampled policy's cost to the
//! budget; at inference the policy takes its most probable action and the controller no longer
//! acts, so its cost drifts. The correction β shifts the logits toward cheaper actions
//! (`ponder_eval::learned::Corrected`); at fixed features the argmax's cost never rises with β,
//! nor does a draw's expected cost, so a bracket and a bisection find the β whose realized mean
//! cost on the validation streams is closest to the budget.

use ponder_base::derive_seed;
use ponder_eval::learned::{corrected_actions, logits, Corrected, Correction, FeatureShape};
use ponder_experiment::{CorrectionForm, Inference};
use ponder_gate::ACTIONS;
use ponder_model::PonderLm;
use ponder_policy::{ActorCritic, ObsNorm};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cache::StreamCache;
use super::rollout::{means, run_episodes};
use crate::error::{eval_err, policy_err, Error, Result};

/// Bisection steps after the bracket is found.
pub const CALIBRATION_BISECTIONS: usize = 12;

/// The first step of the bracket's search, doubled until it brackets the budget.
const FIRST_STEP: f64 = 0.125;

/// The largest |β| tried before the budget is declared out of reach.
const LARGEST: f64 = 1024.0;

/// The correction kept and every one tried, in order: the kept one is the tried one whose mean
/// cost is closest to `budget` (ties: the cheaper). Where `inference` samples, try `i` draws
/// from `derive_seed(seed, "policy-calibration", i)`. `norm` is the frozen feature
/// normalization, where the gate has one.
#[allow(clippy::too_many_arguments)]
pub fn calibrate(
    lm: &PonderLm,
    net: &ActorCritic,
    cache: &StreamCache,
    shape: FeatureShape,
    history: (f64, f64),
    budget: f64,
    (inference, form, seed): (Inference, CorrectionForm, u64),
    norm: Option<&ObsNorm>,
    mut on_try: impl FnMut(usize),
) -> Result<(Correction, Vec<Correction>)> {
    let all: Vec<usize> = (0..cache.streams.len()).collect();
    let mut tried: Vec<Correction> = Vec::new();
    let mut run = |beta: f64| -> Result<f64> {
        let mut draws =
            ChaCha8Rng::seed_from_u64(derive_seed(seed, "policy-calibration", tried.len() as u64));
        let mut choose = |obs: &[f32]| -> Result<Vec<usize>> {
            let l = match norm {
                Some(n) => logits(net, &n.apply(obs).map_err(policy_err)?),
                None => logits(net, obs),
            }
            .map_err(eval_err)?;
            let d = corrected_actions(&l, Corrected { form, beta }, inference, &mut draws)
                .map_err(eval_err)?;
            Ok(d.iter()
                .map(|a| ACTIONS.iter().position(|b| b == a).expect("an action"))
                .collect())
        };
        let episodes = run_episodes(lm, cache, &all, shape, history, &mut choose)?;
        let (cost, loss) = means(&episodes.steps);
        tried.push(Correction { beta, cost, loss });
        on_try(tried.len());
        Ok(cost)
    };
    let at_zero = run(0.0)?;
    if at_zero != budget {
        // Overspending needs β > 0 (cheaper actions), underspending β < 0.
        let sign = if at_zero > budget { 1.0 } else { -1.0 };
        let over = |cost: f64| (cost - budget) * sign > 0.0;
        let (mut inside, mut outside) = (0.0, FIRST_STEP * sign);
        while over(run(outside)?) {
            inside = outside;
            outside *= 2.0;
            if outside.abs() > LARGEST {
                return Err(Error::Run(format!(
                    "calibration: no correction up to |β| = {LARGEST} brings the mean cost to the \
                     budget {budget} (at β = 0 it is {at_zero})"
                )));
            }
        }
        for _ in 0..CALIBRATION_BISECTIONS {
            let mid = 0.5 * (inside + outside);
            if over(run(mid)?) {
                inside = mid;
            } else {
                outside = mid;
            }
        }
    }
    let best = tried
        .iter()
        .copied()
        .min_by(|a, b| {
            let key = |t: &Correction| ((t.cost - budget).abs(), t.cost);
            key(a).partial_cmp(&key(b)).expect("finite costs")
        })
        .expect("one try at least");
    Ok((best, tried))
}
