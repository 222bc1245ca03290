//! A stream environment with a known optimal budgeted policy, for testing the learner: each
//! step shows a difficulty `d ∈ {0, 1}` (a fair coin); UPDATE (cost 3) earns `d` now and, being
//! irreversible, `carry` at every later step of the episode; SKIP costs 1. An update at step `t`
//! of `T` is therefore worth `d + carry · (T − 1 − t)`, and under an average-cost budget the
//! best policy updates the (step, difficulty) cells of highest worth: early easy steps before late
//! hard ones, where a myopic policy (update iff the step is hard) spends the same budget worse.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The action costs: SKIP, UPDATE.
pub const COSTS: [f64; 2] = [1.0, 3.0];

/// The environment's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CarryStream {
    /// Steps per episode `T`.
    pub steps: usize,
    /// What an update adds to every later step's reward.
    pub carry: f64,
}

/// `envs` episodes stepped side by side.
pub struct Episodes {
    env: CarryStream,
    t: usize,
    updates: Vec<usize>,
    hard: Vec<bool>,
    rng: ChaCha8Rng,
}

impl CarryStream {
    /// Width of the feature vector: the difficulty, a one-hot step, updates so far / T, 1.
    pub fn features(&self) -> usize {
        self.steps + 3
    }

    /// `envs` fresh episodes drawn from `seed`.
    pub fn start(&self, envs: usize, seed: u64) -> Episodes {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let hard = (0..envs).map(|_| rng.random::<bool>()).collect();
        Episodes {
            env: *self,
            t: 0,
            updates: vec![0; envs],
            hard,
            rng,
        }
    }

    /// The worth of updating at step `t` with difficulty `hard`.
    fn worth(&self, t: usize, hard: bool) -> f64 {
        f64::from(u8::from(hard)) + self.carry * (self.steps - 1 - t) as f64
    }

    /// The best expected return per episode at an average cost per step of `budget`: the
    /// cells `(t, d)`, each of probability 1/2, taken in order of worth until the expected
    /// number of updates `T (budget − 1) / 2` is spent (the last one in part).
    pub fn optimal_return(&self, budget: f64) -> f64 {
        let mut cells: Vec<f64> = (0..self.steps)
            .flat_map(|t| [self.worth(t, false), self.worth(t, true)])
            .collect();
        cells.sort_by(|a, b| b.total_cmp(a));
        let mut left = self.steps as f64 * (budget - COSTS[0]) / (COSTS[1] - COSTS[0]);
        let mut total = 0.0;
        for w in cells {
            let take = left.clamp(0.0, 0.5);
            total += take * w;
            left -= take;
        }
        total
    }

    /// The expected return per episode of the myopic policy (update iff the step is hard),
    /// whose average cost per step is 2.
    pub fn myopic_return(&self) -> f64 {
        (0..self.steps).map(|t| 0.5 * self.worth(t, true)).sum()
    }
}

impl Episodes {
    /// Feature vectors of every episode's current step, `envs · features` values.
    pub fn observe(&self) -> Vec<f32> {
        let e = &self.env;
        let mut out = Vec::with_capacity(self.hard.len() * e.features());
        for (i, &hard) in self.hard.iter().enumerate() {
            out.push(f32::from(u8::from(hard)));
            out.extend((0..e.steps).map(|t| f32::from(u8::from(t == self.t))));
            out.push(self.updates[i] as f32 / e.steps as f32);
            out.push(1.0);
        }
        out
    }

    /// Takes one action per episode (0 SKIP, 1 UPDATE): the rewards, the costs and whether the
    /// episodes ended (they all end together, and restart with new draws).
    pub fn step(&mut self, actions: &[u32]) -> (Vec<f64>, Vec<f64>, bool) {
        let e = self.env;
        let mut rewards = Vec::with_capacity(actions.len());
        let mut costs = Vec::with_capacity(actions.len());
        for (i, &a) in actions.iter().enumerate() {
            let update = a == 1;
            let earned = if update && self.hard[i] { 1.0 } else { 0.0 };
            rewards.push(earned + e.carry * self.updates[i] as f64);
            costs.push(COSTS[usize::from(update)]);
            self.updates[i] += usize::from(update);
        }
        self.t += 1;
        let done = self.t == e.steps;
        if done {
            self.t = 0;
            self.updates.iter_mut().for_each(|u| *u = 0);
        }
        for h in self.hard.iter_mut() {
            *h = self.rng.random();
        }
        (rewards, costs, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimum_and_myopic_by_hand() {
        let env = CarryStream {
            steps: 6,
            carry: 0.4,
        };
        // Worth: hard 3.0 2.6 2.2 1.8 1.4 1.0, easy 2.0 1.6 1.2 0.8 0.4 0; at cost 2 three
        // updates: the six best cells at 1/2 each.
        let best = 0.5 * (3.0 + 2.6 + 2.2 + 2.0 + 1.8 + 1.6);
        assert!((env.optimal_return(2.0) - best).abs() < 1e-12);
        let myopic = 0.5 * (3.0 + 2.6 + 2.2 + 1.8 + 1.4 + 1.0);
        assert!((env.myopic_return() - myopic).abs() < 1e-12);
    }

    #[test]
    fn an_update_pays_at_every_later_step() {
        let env = CarryStream {
            steps: 3,
            carry: 0.5,
        };
        let mut eps = env.start(1, 0);
        let hard0 = eps.hard[0];
        let (r0, c0, _) = eps.step(&[1]);
        assert_eq!((r0[0], c0[0]), (if hard0 { 1.0 } else { 0.0 }, 3.0));
        let (r1, _, _) = eps.step(&[0]);
        let (r2, _, done) = eps.step(&[0]);
        assert_eq!((r1[0], r2[0], done), (0.5, 0.5, true));
        assert_eq!(eps.observe()[1], 1.0, "a new episode starts at step 0");
    }
}
