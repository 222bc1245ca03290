//! The budget correction of the learned gate at inference: β shifts the logits before the
//! argmax or the draw ([`Corrected`]), either every action's logit charged with its cost,
//! `ℓ_a − β c_a`, or SKIP's logit raised, `ℓ_SKIP + β`; and β's online part, a debt on the cost
//! spent beyond the budget ([`BudgetDebt`]). Either way a larger β buys cheaper actions: at a
//! fixed feature vector the argmax's cost never rises with β, nor does a draw's expected cost,
//! so a bisection on β finds the correction that holds the realized cost to the budget.

use ponder_experiment::{CorrectionForm, Inference};
use ponder_gate::{Decision, ACTIONS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
}
