//! The budget correction of the learned gate at inference: β shifts the logits before the
//! argmax or the draw ([`Corrected`]), either every action's logit charged with its cost,
//! `ℓ_a − β c_a`, or SKIP's logit raised, `ℓ_SKIP + β`; β's online part, a debt on the cost
//! spent beyond the budget ([`BudgetDebt`]); and the budget guard, which keeps the actions
//! whose cost the rest of the evaluation can still balance. Either way a larger β buys cheaper
//! actions: at a fixed feature vector the argmax's cost never rises with β, nor does a draw's
//! expected cost, so a bisection on β finds the correction that holds the realized cost to the
//! budget.

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
///
/// With a horizon ([`BudgetDebt::guarded`]) it also guards the budget of the whole evaluation,
/// as the paced gate does: an action is allowed only if the decisions still to come can bring
/// the total back to `budget · horizon`, all of them SKIP if it overspends and all UPDATE_4 if
/// it underspends ([`BudgetDebt::allowed`]). So the total never exceeds the budget, and falls
/// short of it by less than the widest gap between two actions' costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetDebt {
    /// The gain.
    pub gain: f64,
    /// The mean cost per decision allowed.
    pub budget: f64,
    /// `Σ (cost − budget)` so far.
    pub debt: f64,
    /// With the guard, the decisions still to come (this one included).
    pub left: Option<usize>,
}

/// Slack of the guard's comparisons, for budgets that are not whole numbers.
const GUARD_SLACK: f64 = 1e-9;

impl BudgetDebt {
    /// No decision made yet, no guard.
    pub fn new(gain: f64, budget: f64) -> Self {
        Self {
            gain,
            budget,
            debt: 0.0,
            left: None,
        }
    }

    /// The same, guarding the budget over `horizon` decisions in all.
    pub fn guarded(self, horizon: usize) -> Self {
        Self {
            left: Some(horizon),
            ..self
        }
    }

    /// `β₀` moved by the debt.
    pub fn beta(&self, base: f64) -> f64 {
        base + self.gain * self.debt
    }

    /// Which of [`ACTIONS`] the guard allows for the next decision (all of them without a
    /// guard). With `r` decisions after this one, action `a` keeps the total within reach of
    /// the budget if `debt + (c_a − B) + r (c_SKIP − B) ≤ 0` (the rest can pay it back) and
    /// `debt + (c_a − B) + r (c_UPDATE_4 − B) ≥ 0` (the rest can still spend what is owed). SKIP
    /// meets the first whenever the decisions before it did; where no action meets both, the
    /// dearest that meets the first is allowed alone.
    pub fn allowed(&self) -> [bool; ACTIONS.len()] {
        let Some(left) = self.left else {
            return [true; ACTIONS.len()];
        };
        let rest = left.saturating_sub(1) as f64;
        let (cheapest, dearest) = (ACTIONS[0].cost(), ACTIONS[ACTIONS.len() - 1].cost());
        let after = |a: &Decision| self.debt + a.cost() - self.budget;
        let pays = ACTIONS.map(|a| after(&a) + rest * (cheapest - self.budget) <= GUARD_SLACK);
        let spends = ACTIONS.map(|a| after(&a) + rest * (dearest - self.budget) >= -GUARD_SLACK);
        let both: [bool; ACTIONS.len()] = std::array::from_fn(|i| pays[i] && spends[i]);
        if both.contains(&true) {
            return both;
        }
        // Owing more than the rest can spend: the dearest the budget still pays for (SKIP
        // where even that is over, after an evaluation ran past its horizon).
        let mut alone = [false; ACTIONS.len()];
        alone[pays.iter().rposition(|&p| p).unwrap_or(0)] = true;
        alone
    }

    /// Adds decisions made.
    pub fn record(&mut self, decisions: &[Decision]) {
        for d in decisions {
            self.debt += d.cost() - self.budget;
            if let Some(left) = &mut self.left {
                *left = left.saturating_sub(1);
            }
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

/// Each row's action, one after another: the argmax of the logits corrected by
/// `β = debt.beta(base)` (ties go to the cheaper action), or a draw from their softmax by `rng`,
/// over the actions `debt`'s guard allows at that row; each decision is added to `debt` before
/// the next row's. β is the same for every row of the call.
pub fn corrected_actions(
    logits: &[Vec<f32>],
    (form, base): (CorrectionForm, f64),
    inference: Inference,
    debt: &mut BudgetDebt,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Decision>> {
    let correction = Corrected {
        form,
        beta: debt.beta(base),
    };
    logits
        .iter()
        .map(|row| {
            let mut z = correction.apply(row)?;
            let allowed = debt.allowed();
            z.iter_mut()
                .zip(allowed)
                .filter(|(_, ok)| !ok)
                .for_each(|(zi, _)| *zi = f64::NEG_INFINITY);
            let argmax = (1..z.len()).fold(0, |b, i| if z[i] > z[b] { i } else { b });
            let pick = match inference {
                Inference::Argmax => argmax,
                Inference::Sample => match ponder_policy::sample_action(&z, rng.random()).0 {
                    // Rounding in the cumulative sum can land past the allowed ones.
                    i if allowed[i] => i,
                    _ => argmax,
                },
            };
            debt.record(&[ACTIONS[pick]]);
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
                (form, beta),
                Inference::Argmax,
                &mut BudgetDebt::new(0.0, 2.0),
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
        let mut debt = BudgetDebt::new(0.0, 2.0);
        let bad = (CorrectionForm::Cost, 0.0);
        let e = corrected_actions(
            &[vec![0.0f32; 3]],
            bad,
            Inference::Argmax,
            &mut debt,
            &mut rng,
        );
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
                let c = (CorrectionForm::SkipLogit, 0.0);
                let d = corrected_actions(&logits, c, Inference::Argmax, &mut debt, rng).unwrap();
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
            let mut debt = BudgetDebt::new(0.0, 2.0);
            corrected_actions(rows, (form, beta), Inference::Sample, &mut debt, rng).unwrap()
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
        let mut debt = BudgetDebt::new(0.0, 2.0);
        let bad = (CorrectionForm::Cost, 0.0);
        let e = corrected_actions(
            &[vec![0.0f32; 5]],
            bad,
            Inference::Sample,
            &mut debt,
            &mut rng,
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("5 logits for 4 actions"));
    }

    #[test]
    fn the_guard_ends_the_evaluation_on_its_budget() {
        // Logits that favour each action in turn, one row at a time, for a gate with no online
        // gain: without the guard they spend what they favour; with it the total is the budget,
        // or short of it by less than the widest gap between two actions' costs (4).
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let widest = ACTIONS
            .windows(2)
            .map(|w| w[1].cost() - w[0].cost())
            .fold(0.0, f64::max);
        for favoured in 0..ACTIONS.len() {
            for (budget, n) in [
                (2.0, 1),
                (2.0, 7),
                (2.0, 200),
                (1.5, 60),
                (4.0, 33),
                (8.5, 10),
            ] {
                for inference in [Inference::Argmax, Inference::Sample] {
                    let mut debt = BudgetDebt::new(0.0, budget).guarded(n);
                    let mut total = 0.0;
                    for _ in 0..n {
                        let mut row = vec![0.0f32; ACTIONS.len()];
                        row[favoured] = 3.0;
                        let c = (CorrectionForm::SkipLogit, 0.0);
                        let d = corrected_actions(&[row], c, inference, &mut debt, &mut rng);
                        total += d.unwrap()[0].cost();
                    }
                    let (target, at) = (budget * n as f64, (favoured, budget, n, inference));
                    assert!(total <= target, "{at:?}: {total} over {target}");
                    assert!(total > target - widest, "{at:?}: {total} short of {target}");
                    assert_eq!(debt.left, Some(0));
                }
            }
        }
        // Unguarded, the favoured action everywhere.
        let mut debt = BudgetDebt::new(0.0, 2.0);
        let row = vec![vec![0.0f32, 0.0, 0.0, 3.0]; 10];
        let d = corrected_actions(
            &row,
            (CorrectionForm::Cost, 0.0),
            Inference::Argmax,
            &mut debt,
            &mut rng,
        );
        assert!(d.unwrap().iter().all(|a| *a == Decision::Update(4)));
    }

    #[test]
    fn the_guard_allows_what_the_rest_can_balance() {
        // Budget 2 over 4 decisions: 8 in all. A first UPDATE_4 (9) could not be paid back by
        // three SKIPs (3 more, 12 > 8) and UPDATE_2 (5 + 3 = 8) can.
        let d = BudgetDebt::new(0.0, 2.0).guarded(4);
        assert_eq!(d.allowed(), [true, true, true, false]);
        // After 1 + 1 + 1, the last decision owes 5: UPDATE_2 alone.
        let mut late = d;
        late.record(&[Decision::Skip; 3]);
        assert_eq!(late.allowed(), [false, false, true, false]);
        // Owing 4 at the last decision: no cost is 4, so the dearest that fits, UPDATE_1.
        let mut short = BudgetDebt::new(0.0, 2.0).guarded(2);
        short.record(&[Decision::Skip]);
        short.debt -= 1.0;
        assert_eq!(short.allowed(), [false, true, false, false]);
        // Past its horizon only SKIP remains; no guard allows everything.
        let mut over = BudgetDebt::new(0.0, 2.0).guarded(1);
        over.record(&[Decision::Update(4)]);
        assert_eq!(over.allowed(), [true, false, false, false]);
        assert_eq!(BudgetDebt::new(0.1, 2.0).allowed(), [true; 4]);
    }
}
