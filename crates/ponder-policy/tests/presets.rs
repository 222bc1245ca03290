//! The two PPO presets: their TOML spelling survives a round trip, and the `original` preset's
//! dropout makes the update's probability ratio differ from 1 before its first step (the flaw
//! written down in `docs/design/policy.md`).

use candle::Device;
use ponder_policy::{
    ActorCritic, KlEstimator, Minibatch, NetConfig, PidConfig, Ppo, PpoConfig, Result, Rollout,
    UpdateStats,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A policy section as an experiment file holds it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    net: NetConfig,
    ppo: PpoConfig,
    pid: PidConfig,
}

#[test]
fn both_presets_survive_a_toml_round_trip() -> anyhow::Result<()> {
    for (name, section) in [
        (
            "original",
            Section {
                net: NetConfig::original(32),
                ppo: PpoConfig::original(),
                pid: PidConfig::original(),
            },
        ),
        (
            "cleanrl",
            Section {
                net: NetConfig::cleanrl(32),
                ppo: PpoConfig::cleanrl(),
                pid: PidConfig::original(),
            },
        ),
    ] {
        let text = toml::to_string(&section)?;
        eprintln!("# {name}\n{text}");
        assert_eq!(toml::from_str::<Section>(&text)?, section, "{name}");
    }
    Ok(())
}

#[test]
fn the_original_preset_reads_from_its_documented_spelling() -> anyhow::Result<()> {
    let text = r#"
        gamma = 0.99
        gae_lambda = 0.95
        epochs = 4
        minibatch = { size = 32 }
        clip = 0.2
        clip_value = true
        value_coef = 0.2
        entropy_coef = 0.05
        max_grad_norm = 1.0
        lr = 5e-5
        anneal_lr = false
        adam_eps = 1e-8
        normalize_advantages = false
        target_kl = 0.05
        kl_estimator = "log_ratio"
    "#;
    assert_eq!(toml::from_str::<PpoConfig>(text)?, PpoConfig::original());
    let cleanrl = text
        .replace("{ size = 32 }", "{ count = 4 }")
        .replace("\"log_ratio\"", "\"k3\"");
    let parsed: PpoConfig = toml::from_str(&cleanrl)?;
    assert_eq!(
        (parsed.minibatch, parsed.kl_estimator),
        (Minibatch::Count(4), KlEstimator::K3)
    );
    let err = toml::from_str::<PpoConfig>(&text.replace("epochs", "passes"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("passes"), "{err}");
    Ok(())
}

/// One update of the `original` preset, cut to a single pass over a single minibatch of 32 and
/// reporting k3, on a rollout sampled from a fresh network with `dropout` and its policy head's
/// weights scaled by `head_scale`: the update's statistics are those of its first forward,
/// before any step.
fn first_minibatch(dropout: f64, head_scale: f64) -> Result<UpdateStats> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net = ActorCritic::new(
        NetConfig {
            dropout,
            ..NetConfig::original(32)
        },
        &mut rng,
        &Device::Cpu,
    )?;
    for (name, var) in net.vars() {
        if name == "actor.weight" {
            var.set(&(var.as_tensor() * head_scale)?)?;
        }
    }
    let config = PpoConfig {
        epochs: 1,
        target_kl: None,
        kl_estimator: KlEstimator::K3,
        ..PpoConfig::original()
    };
    let mut ppo = Ppo::new(net, config)?;
    let (envs, steps) = (4, 8);
    let mut rollout = Rollout {
        envs,
        ..Rollout::default()
    };
    for t in 0..steps {
        let obs: Vec<f32> = (0..envs * 32)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let (actions, logp, values) = ppo.act(&obs, &mut rng)?;
        rollout.obs.extend(obs);
        rollout.actions.extend(actions);
        rollout.logp.extend(logp);
        rollout.values.extend(values);
        rollout
            .rewards
            .extend((0..envs).map(|_| rng.random::<f64>()));
        rollout
            .dones
            .extend(std::iter::repeat_n(t + 1 == steps, envs));
    }
    rollout.last_values = vec![0.0; envs];
    ppo.update(&rollout, 1.0, &mut rng)
}

#[test]
fn dropout_moves_the_ratio_before_the_first_step() -> Result<()> {
    // At initialization (policy head of gain 0.01, near-uniform logits) and with logits of
    // order 1, as after training (the head scaled by 100).
    for (head_scale, min_kl) in [(1.0, 1e-9), (100.0, 1e-3)] {
        let full = first_minibatch(0.0, head_scale)?;
        let dropped = first_minibatch(0.1, head_scale)?;
        eprintln!(
            "policy head x{head_scale}: without dropout k3 {:.3e}, clip fraction {}; \
             with dropout 0.1 k3 {:.3e}, clip fraction {}",
            full.approx_kl, full.clip_fraction, dropped.approx_kl, dropped.clip_fraction
        );
        // Without dropout the update's forward is the rollout's bit for bit; what is left is the
        // rounding between the rollout's f64 log-probabilities and the update's f32 ones.
        assert!(full.approx_kl < 1e-12, "{full:?}");
        assert_eq!(full.clip_fraction, 0.0);
        // With dropout the ratio is not 1 before any step.
        assert!(dropped.approx_kl > min_kl, "{dropped:?}");
    }
    // Once the logits are of order 1, some ratios already lie outside 1 ± ε.
    assert!(first_minibatch(0.1, 100.0)?.clip_fraction > 0.0);
    Ok(())
}
