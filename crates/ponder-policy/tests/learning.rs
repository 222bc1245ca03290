//! PPO with the PID Lagrangian learns the budgeted optimum of the toy carry stream (known in
//! closed form), beating the myopic policy at the same cost; without the Lagrangian the same
//! training overspends.

use ponder_policy::toy::{CarryStream, COSTS};
use ponder_policy::{
    Activation, ActorCritic, NetConfig, PidConfig, PidForm, PidLagrangian, Ppo, PpoConfig, Result,
    Rollout,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const ENV: CarryStream = CarryStream {
    steps: 6,
    carry: 0.4,
};
const BUDGET: f64 = 2.0;
const ENVS: usize = 64;
const ITERATIONS: usize = 150;

/// Trains from `seed` (with the Lagrangian where `pid` is given) and returns the trained
/// policy's mean return per episode and mean cost per step over 4,000 sampled episodes.
fn train(seed: u64, pid: Option<PidConfig>) -> Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = ActorCritic::new(
        NetConfig {
            features: ENV.features(),
            hidden: vec![64, 64],
            actions: 2,
            activation: Activation::Tanh,
            dropout: 0.0,
        },
        &mut rng,
        &candle::Device::Cpu,
    )?;
    let mut ppo = Ppo::new(
        net,
        PpoConfig {
            gamma: 1.0,
            lr: 3e-3,
            ..PpoConfig::cleanrl()
        },
    )?;
    let mut lagrangian = pid.map(|c| PidLagrangian::new(c, BUDGET)).transpose()?;
    let mut episodes = ENV.start(ENVS, seed);
    for it in 0..ITERATIONS {
        let lambda = lagrangian.as_ref().map_or(0.0, |l| l.lambda);
        let mut rollout = Rollout {
            envs: ENVS,
            ..Rollout::default()
        };
        let mut cost_sum = 0.0;
        for _ in 0..ENV.steps {
            let obs = episodes.observe();
            let (actions, logp, values) = ppo.act(&obs, &mut rng)?;
            let (rewards, costs, done) = episodes.step(&actions);
            cost_sum += costs.iter().sum::<f64>();
            rollout.obs.extend(obs);
            rollout.actions.extend(actions);
            rollout.logp.extend(logp);
            rollout.values.extend(values);
            rollout
                .rewards
                .extend(rewards.iter().zip(&costs).map(|(r, c)| r - lambda * c));
            rollout.dones.extend(std::iter::repeat_n(done, ENVS));
        }
        rollout.last_values = vec![0.0; ENVS];
        let frac = 1.0 - it as f64 / ITERATIONS as f64;
        ppo.update(&rollout, frac, &mut rng)?;
        if let Some(l) = lagrangian.as_mut() {
            l.update(cost_sum / (ENVS * ENV.steps) as f64)?;
        }
    }
    // Evaluation: the sampling policy over fresh episodes.
    let mut eval = ENV.start(4000, seed + 1000);
    let (mut ret, mut cost) = (0.0, 0.0);
    for _ in 0..ENV.steps {
        let (actions, _, _) = ppo.act(&eval.observe(), &mut rng)?;
        let (r, c, _) = eval.step(&actions);
        ret += r.iter().sum::<f64>();
        cost += c.iter().sum::<f64>();
    }
    Ok((ret / 4000.0, cost / (4000 * ENV.steps) as f64))
}

fn pid() -> PidConfig {
    PidConfig {
        form: PidForm::Stooke,
        kp: 0.5,
        ki: 0.05,
        kd: 0.0,
        lambda_init: 0.0,
        lambda_max: None,
    }
}

#[test]
fn ppo_with_the_lagrangian_reaches_the_budgeted_optimum() -> Result<()> {
    let (best, myopic) = (ENV.optimal_return(BUDGET), ENV.myopic_return());
    for seed in [1, 2, 3] {
        let (ret, cost) = train(seed, Some(pid()))?;
        eprintln!(
            "seed {seed}: return {ret:.3} ({:.1}% of the optimum {best:.3}; myopic {myopic:.3}), cost {cost:.3} (budget {BUDGET})",
            100.0 * ret / best
        );
        assert!(
            ret >= 0.95 * best,
            "seed {seed}: return {ret} < 95% of {best}"
        );
        assert!(
            (cost - BUDGET).abs() <= 0.02 * BUDGET,
            "seed {seed}: cost {cost}"
        );
    }
    Ok(())
}

#[test]
fn without_the_lagrangian_the_same_training_overspends() -> Result<()> {
    // Every update pays (carry > 0), so the unconstrained optimum updates at every step.
    let (_, cost) = train(1, None)?;
    eprintln!(
        "no Lagrangian: cost {cost:.3} (budget {BUDGET}, all updates {})",
        COSTS[1]
    );
    assert!(cost > 1.25 * BUDGET, "cost {cost}");
    Ok(())
}

/// One training iteration on the toy stream with draws seeded by the iteration.
fn iteration(ppo: &mut Ppo, it: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + it);
    let mut episodes = ENV.start(8, it);
    let mut rollout = Rollout {
        envs: 8,
        ..Rollout::default()
    };
    for _ in 0..ENV.steps {
        let obs = episodes.observe();
        let (actions, logp, values) = ppo.act(&obs, &mut rng)?;
        let (rewards, _, done) = episodes.step(&actions);
        rollout.obs.extend(obs);
        rollout.actions.extend(actions);
        rollout.logp.extend(logp);
        rollout.values.extend(values);
        rollout.rewards.extend(rewards);
        rollout.dones.extend(std::iter::repeat_n(done, 8));
    }
    rollout.last_values = vec![0.0; 8];
    ppo.update(&rollout, 1.0, &mut rng)?;
    Ok(())
}

fn learner(seed: u64) -> Result<Ppo> {
    let net = ActorCritic::new(
        NetConfig {
            features: ENV.features(),
            hidden: vec![16, 16],
            actions: 2,
            activation: Activation::Tanh,
            dropout: 0.0,
        },
        &mut ChaCha8Rng::seed_from_u64(seed),
        &candle::Device::Cpu,
    )?;
    Ppo::new(net, PpoConfig::cleanrl())
}

#[test]
fn a_restored_learner_continues_bit_identically() -> Result<()> {
    let mut a = learner(1)?;
    for it in 0..3 {
        iteration(&mut a, it)?;
    }
    let (tensors, steps) = a.state();
    let mut b = learner(2)?; // other weights, overwritten by the state
    b.load_state(&tensors, steps)?;
    for it in 3..5 {
        iteration(&mut a, it)?;
        iteration(&mut b, it)?;
    }
    let obs = ENV.start(4, 9).observe();
    let bits =
        |p: &Ppo| -> Result<Vec<u64>> { Ok(p.values(&obs)?.iter().map(|v| v.to_bits()).collect()) };
    assert_eq!(bits(&a)?, bits(&b)?);
    let mut missing = tensors.clone();
    missing.remove("policy.actor.weight");
    let err = b.load_state(&missing, steps).err().unwrap().to_string();
    assert!(err.contains("lacks policy.actor.weight"), "{err}");
    Ok(())
}
