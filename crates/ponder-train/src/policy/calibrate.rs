//! The budget correction of inference, chosen on validation streams ([`calibrate`]): in
//! training the PID Lagrangian holds the sampled policy's cost to the budget; at inference the
//! controller no longer acts, so its cost drifts. The correction `β = β₀ + gain · debt` shifts
//! the logits toward cheaper actions (`ponder_eval::learned::Corrected`, `BudgetDebt`).
//!
//! Two choices, both on the validation streams only. The gain: the streams are split into two
//! halves (even and odd positions); for each gain of `policy.correction_gains`, β₀ is chosen on
//! the first half and the realized mean cost read on the second, and the smallest gain whose
//! cost there is within [`GAIN_TOLERANCE`] of the budget is kept (else the one closest). Then
//! β₀ for that gain on every stream: at fixed features the argmax's cost never rises with β, nor
//! does a draw's expected cost, so a bracket and a bisection find the β₀ whose realized mean
//! cost is closest to the budget. Both run without the budget guard (`policy.budget_guard`):
//! it would hold the cost whatever β₀, so it only catches, at inference, what they miss.

use ponder_base::derive_seed;
use ponder_eval::learned::{
    corrected_actions, logits, BudgetDebt, Correction, FeatureShape, GainTrial,
};
use ponder_experiment::PolicyConfig;
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

/// The relative distance to the budget of the held-out half's mean cost that a gain must reach.
pub const GAIN_TOLERANCE: f64 = 0.02;

/// The first step of the bracket's search, doubled until it brackets the budget.
const FIRST_STEP: f64 = 0.125;

/// The largest |β| tried before the budget is declared out of reach.
const LARGEST: f64 = 1024.0;

/// What the calibration chose: the gain with every gain tried on the two halves, and β₀ with
/// every β₀ tried on all the streams.
pub struct Calibration {
    /// The gain kept.
    pub gain: f64,
    /// Each gain: β₀ on the first half and the cost and loss it gave on the second.
    pub gains: Vec<GainTrial>,
    /// The β₀ kept, with its mean cost and loss on all the streams.
    pub kept: Correction,
    /// Every β₀ tried on all the streams, in order.
    pub tried: Vec<Correction>,
}

/// The gate under calibration and what it runs on.
struct Runner<'a> {
    lm: &'a PonderLm,
    net: &'a ActorCritic,
    norm: Option<&'a ObsNorm>,
    cache: &'a StreamCache,
    shape: FeatureShape,
    policy: &'a PolicyConfig,
    seed: u64,
    runs: u64,
}

impl Runner<'_> {
    /// Mean cost and loss over `streams` at β₀ = `beta` and `gain`, the debt from zero; run `i`
    /// draws from `derive_seed(seed, "policy-calibration", i)` where the rule samples.
    fn run(&mut self, streams: &[usize], beta: f64, gain: f64) -> Result<Correction> {
        let mut draws =
            ChaCha8Rng::seed_from_u64(derive_seed(self.seed, "policy-calibration", self.runs));
        self.runs += 1;
        let budget = self.policy.budget;
        let mut debt = BudgetDebt::new(gain, budget);
        let (net, norm, policy) = (self.net, self.norm, self.policy);
        let mut choose = |obs: &[f32]| -> Result<Vec<usize>> {
            let l = match norm {
                Some(n) => logits(net, &n.apply(obs).map_err(policy_err)?),
                None => logits(net, obs),
            }
            .map_err(eval_err)?;
            let correction = (policy.correction_form, beta);
            let d = corrected_actions(&l, correction, policy.inference, &mut debt, &mut draws)
                .map_err(eval_err)?;
            Ok(d.iter()
                .map(|a| ACTIONS.iter().position(|b| b == a).expect("an action"))
                .collect())
        };
        let history = (policy.history_alpha, budget);
        let episodes = run_episodes(
            self.lm,
            self.cache,
            streams,
            self.shape,
            history,
            &mut choose,
        )?;
        let (cost, loss) = means(&episodes.steps);
        Ok(Correction { beta, cost, loss })
    }

    /// The β₀ whose mean cost over `streams` at `gain` is closest to the budget (ties: the
    /// cheaper), and every β₀ tried.
    fn bisect(
        &mut self,
        streams: &[usize],
        gain: f64,
        on_try: &mut dyn FnMut(),
    ) -> Result<(Correction, Vec<Correction>)> {
        let budget = self.policy.budget;
        let mut tried = Vec::new();
        let mut at = |r: &mut Self, beta: f64| -> Result<f64> {
            let c = r.run(streams, beta, gain)?;
            tried.push(c);
            on_try();
            Ok(c.cost)
        };
        let at_zero = at(self, 0.0)?;
        if at_zero != budget {
            // Overspending needs β > 0 (cheaper actions), underspending β < 0.
            let sign = if at_zero > budget { 1.0 } else { -1.0 };
            let over = |cost: f64| (cost - budget) * sign > 0.0;
            let (mut inside, mut outside) = (0.0, FIRST_STEP * sign);
            while over(at(self, outside)?) {
                inside = outside;
                outside *= 2.0;
                if outside.abs() > LARGEST {
                    return Err(Error::Run(format!(
                        "calibration: no correction up to |β| = {LARGEST} brings the mean cost to \
                         the budget {budget} (at β = 0 it is {at_zero})"
                    )));
                }
            }
            for _ in 0..CALIBRATION_BISECTIONS {
                let mid = 0.5 * (inside + outside);
                if over(at(self, mid)?) {
                    inside = mid;
                } else {
                    outside = mid;
                }
            }
        }
        let best = *tried
            .iter()
            .min_by(|a, b| {
                let key = |t: &Correction| ((t.cost - budget).abs(), t.cost);
                key(a).partial_cmp(&key(b)).expect("finite costs")
            })
            .expect("one try at least");
        Ok((best, tried))
    }
}

/// Chooses the gain and β₀ of the gate `net` (with its frozen feature normalization `norm`,
/// where it has one) under `policy` on the validation streams of `cache`; `on_try` is called
/// after each pass over streams.
pub fn calibrate(
    lm: &PonderLm,
    (net, norm): (&ActorCritic, Option<&ObsNorm>),
    cache: &StreamCache,
    shape: FeatureShape,
    (policy, seed): (&PolicyConfig, u64),
    mut on_try: impl FnMut(),
) -> Result<Calibration> {
    let n = cache.streams.len();
    if n < 2 {
        return Err(Error::Config(format!(
            "the budget correction needs at least 2 validation streams, found {n}"
        )));
    }
    let mut runner = Runner {
        lm,
        net,
        norm,
        cache,
        shape,
        policy,
        seed,
        runs: 0,
    };
    let first: Vec<usize> = (0..n).step_by(2).collect();
    let second: Vec<usize> = (1..n).step_by(2).collect();
    let budget = policy.budget;
    let mut gains = Vec::new();
    for &gain in &policy.correction_gains {
        let (on_first, _) = runner.bisect(&first, gain, &mut on_try)?;
        let held_out = runner.run(&second, on_first.beta, gain)?;
        on_try();
        gains.push(GainTrial {
            gain,
            beta: on_first.beta,
            cost: held_out.cost,
            loss: held_out.loss,
        });
    }
    let miss = |g: &GainTrial| (g.cost - budget).abs() / budget;
    let gain = gains
        .iter()
        .find(|g| miss(g) <= GAIN_TOLERANCE)
        .or_else(|| {
            gains
                .iter()
                .min_by(|a, b| miss(a).partial_cmp(&miss(b)).expect("finite costs"))
        })
        .expect("policy.correction_gains is not empty")
        .gain;
    let all: Vec<usize> = (0..n).collect();
    let (kept, tried) = runner.bisect(&all, gain, &mut on_try)?;
    Ok(Calibration {
        gain,
        gains,
        kept,
        tried,
    })
}
