//! The random gate: UPDATE each chunk independently with probability ρ.
//!
//! The original's "Random Skip" baseline (`docs/original.md` §8.3) draws `Bernoulli(ρ)` with the
//! JAX key `PRNGKey(seed + 1000·batch_idx + c)`, seed 42.
//! We keep the idea (one independent draw per chunk, keyed by the seed and the chunk's place in
//! the stream) but not the bits: the draw for position `i` comes from a [`ChaCha8Rng`] whose key
//! is derived from the seed and whose stream number is `i`.
//! Decision `i` therefore depends only on `(seed, ρ, i)`: it is reproducible, and it does not
//! depend on the order in which chunks are asked about, nor on the signals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::{Decision, Gate, Signals};

/// The seed of the original's Random Skip baseline (`--seed 42`).
pub const ORIGINAL_RANDOM_SEED: u64 = 42;

/// A gate that updates each chunk with probability ρ, independently, from a seeded generator.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomGate {
    budget: Budget,
    seed: u64,
    steps: u32,
}

impl RandomGate {
    /// A random gate that fires with probability `budget.rho()` and updates with one step.
    pub fn new(budget: Budget, seed: u64) -> Self {
        Self {
            budget,
            seed,
            steps: 1,
        }
    }

    /// The same gate, updating with `steps` inner steps when it fires; an error if `steps` = 0.
    pub fn with_steps(mut self, steps: u32) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Config(
                "random gate: steps = 0, expected at least 1".to_string(),
            ));
        }
        self.steps = steps;
        Ok(self)
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The firing probability ρ.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Whether the gate fires at `position`: a pure function of the seed, ρ and the position.
    ///
    /// The generator is `ChaCha8Rng::seed_from_u64(seed)` switched to stream `position`; the
    /// first `f64` it yields, uniform on [0, 1), is compared with ρ (so ρ = 0 never fires and
    /// ρ = 1 always does).
    pub fn fires_at(&self, position: usize) -> bool {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(position as u64);
        rng.random::<f64>() < self.budget.rho()
    }
}

impl Gate for RandomGate {
    fn decide(&mut self, signals: &Signals) -> Decision {
        if self.fires_at(signals.position) {
            Decision::Update(self.steps)
        } else {
            Decision::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(gate: &mut RandomGate, positions: impl Iterator<Item = usize>) -> Vec<Decision> {
        positions
            .map(|position| {
                let sig = Signals {
                    position,
                    recon: 1.0,
                    recon_init: 1.0,
                    skip_loss: None,
                    prev_loss: None,
                    updates_so_far: 0,
                };
                gate.step(&sig)
            })
            .collect()
    }

    #[test]
    fn firing_rate_within_binomial_bound() {
        let n = 10_000usize;
        for rho in [0.05, 0.2, 0.5, 0.8, 0.95] {
            for seed in [0, 42, 7_777] {
                let mut gate = RandomGate::new(Budget::new(rho).unwrap(), seed);
                let fired = decisions(&mut gate, 0..n)
                    .iter()
                    .filter(|d| d.is_update())
                    .count();
                // Binomial(n, ρ): mean nρ, standard deviation sqrt(nρ(1 − ρ)); allow 4 sigma.
                let sigma = (n as f64 * rho * (1.0 - rho)).sqrt();
                let dev = (fired as f64 - n as f64 * rho).abs();
                assert!(
                    dev <= 4.0 * sigma,
                    "ρ = {rho}, seed {seed}: {fired} of {n} fired, {dev} > 4σ = {}",
                    4.0 * sigma
                );
            }
        }
    }

    #[test]
    fn edges_never_and_always() {
        let mut never = RandomGate::new(Budget::new(0.0).unwrap(), 1);
        let mut always = RandomGate::new(Budget::new(1.0).unwrap(), 1)
            .with_steps(2)
            .unwrap();
        assert!(decisions(&mut never, 0..1000)
            .iter()
            .all(|d| *d == Decision::Skip));
        assert!(decisions(&mut always, 0..1000)
            .iter()
            .all(|d| *d == Decision::Update(2)));
    }

    #[test]
    fn zero_steps_is_an_error() {
        let gate = RandomGate::new(Budget::new(0.5).unwrap(), 1);
        assert!(matches!(gate.with_steps(0), Err(Error::Config(_))));
    }

    #[test]
    fn same_seed_same_decisions_in_any_order() {
        let budget = Budget::new(0.5).unwrap();
        let forward = decisions(&mut RandomGate::new(budget, 42), 0..500);
        let again = decisions(&mut RandomGate::new(budget, 42), 0..500);
        assert_eq!(forward, again);
        // Asking in reverse order gives the same decision for each position.
        let mut backward = decisions(&mut RandomGate::new(budget, 42), (0..500).rev());
        backward.reverse();
        assert_eq!(forward, backward);
    }

    #[test]
    fn different_seeds_differ() {
        let budget = Budget::new(0.5).unwrap();
        let a = decisions(&mut RandomGate::new(budget, 42), 0..500);
        let b = decisions(&mut RandomGate::new(budget, 43), 0..500);
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        // Independent fair coins disagree about half the time: 250 ± 11 (1σ).
        assert!(
            (150..=350).contains(&differing),
            "{differing} of 500 differ"
        );
    }

    #[test]
    fn consecutive_positions_are_not_correlated() {
        // Lag-1 agreement of a fair coin sequence is 1/2; a broken stream derivation (e.g. all
        // positions sharing one draw) would give 1.
        let gate = RandomGate::new(Budget::new(0.5).unwrap(), 5);
        let n = 4000;
        let same = (0..n)
            .filter(|&i| gate.fires_at(i) == gate.fires_at(i + 1))
            .count();
        let sigma = (n as f64 * 0.25).sqrt();
        assert!(
            (same as f64 - n as f64 / 2.0).abs() <= 4.0 * sigma,
            "{same}"
        );
    }
}
