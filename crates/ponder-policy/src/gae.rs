//! Generalized advantage estimation (Schulman et al. 2016) over a rollout stored time-major:
//! step `t` of every environment in row `t`.

use crate::error::{Error, Result};

/// Advantages and returns (`advantage + value`) of a rollout.
///
/// `rewards`, `values` and `dones` hold `steps · envs` entries, step-major (entry `t · envs + e`
/// is environment `e` at step `t`); `dones[t·envs + e]` says that step `t` ended its episode, so
/// nothing after it is bootstrapped into it. `last_values` are the critic's values of the states
/// after the last step (used where that step did not end its episode). The backward recursion is
/// `δ_t = r_t + γ V_{t+1} (1 − done_t) − V_t`, `A_t = δ_t + γ λ (1 − done_t) A_{t+1}`.
///
/// # Shapes
/// - `rewards`, `values`, `dones`: `steps · envs`; `last_values`: `envs`; returns two of
///   `steps · envs`.
pub fn advantages(
    rewards: &[f64],
    values: &[f64],
    dones: &[bool],
    last_values: &[f64],
    gamma: f64,
    lambda: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let envs = last_values.len();
    let n = rewards.len();
    if envs == 0 || n % envs != 0 || values.len() != n || dones.len() != n {
        return Err(Error::Config(format!(
            "gae: rewards {n}, values {}, dones {} must be the same multiple of {envs} environments",
            values.len(),
            dones.len()
        )));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::Numeric(format!(
            "gae: reward {} at step {} of environment {} is not finite",
            rewards[i],
            i / envs,
            i % envs
        )));
    }
    let mut adv = vec![0.0; n];
    let mut next_adv = vec![0.0; envs];
    let mut next_value = last_values.to_vec();
    for t in (0..n / envs).rev() {
        for e in 0..envs {
            let i = t * envs + e;
            let live = if dones[i] { 0.0 } else { 1.0 };
            let delta = rewards[i] + gamma * next_value[e] * live - values[i];
            adv[i] = delta + gamma * lambda * live * next_adv[e];
            next_adv[e] = adv[i];
            next_value[e] = values[i];
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    Ok((adv, returns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition summed directly: `A_t = Σ_l (γλ)^l δ_{t+l}` within the episode.
    fn by_sum(
        rewards: &[f64],
        values: &[f64],
        dones: &[bool],
        last: f64,
        g: f64,
        l: f64,
    ) -> Vec<f64> {
        let n = rewards.len();
        let value_after = |t: usize| if t + 1 < n { values[t + 1] } else { last };
        let delta = |t: usize| {
            let boot = if dones[t] { 0.0 } else { g * value_after(t) };
            rewards[t] + boot - values[t]
        };
        (0..n)
            .map(|t| {
                let mut sum = 0.0;
                let mut w = 1.0;
                for (s, &done) in dones.iter().enumerate().skip(t) {
                    sum += w * delta(s);
                    if done {
                        break;
                    }
                    w *= g * l;
                }
                sum
            })
            .collect()
    }

    #[test]
    fn the_recursion_equals_the_discounted_sum_per_environment() -> Result<()> {
        let (steps, envs) = (7, 2);
        let rewards: Vec<f64> = (0..steps * envs)
            .map(|i| ((i * 37) % 11) as f64 - 5.0)
            .collect();
        let values: Vec<f64> = (0..steps * envs)
            .map(|i| ((i * 13) % 7) as f64 * 0.5)
            .collect();
        let dones: Vec<bool> = (0..steps * envs).map(|i| i == 6 || i == 9).collect();
        let last = [1.5, -2.0];
        let (adv, ret) = advantages(&rewards, &values, &dones, &last, 0.9, 0.8)?;
        for e in 0..envs {
            let col = |x: &[f64]| (0..steps).map(|t| x[t * envs + e]).collect::<Vec<_>>();
            let d: Vec<bool> = (0..steps).map(|t| dones[t * envs + e]).collect();
            let want = by_sum(&col(&rewards), &col(&values), &d, last[e], 0.9, 0.8);
            for (t, w) in want.iter().enumerate() {
                let got = adv[t * envs + e];
                assert!((got - w).abs() < 1e-12, "env {e} step {t}: {got} vs {w}");
                assert!((ret[t * envs + e] - (w + values[t * envs + e])).abs() < 1e-12);
            }
        }
        Ok(())
    }

    #[test]
    fn a_nan_reward_names_its_step_and_environment() {
        let err = advantages(
            &[0.0, 0.0, f64::NAN, 0.0],
            &[0.0; 4],
            &[false; 4],
            &[0.0; 2],
            0.99,
            0.95,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("step 1 of environment 0"), "{err}");
    }
}
