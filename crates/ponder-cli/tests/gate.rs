//! `ponder train gate` and the `ppo` method of `ponder compare` end to end on a small trained
//! model: bad `[policy]` input refused before any model work, determinism, a kill -9 and
//! `--resume` that continues bit-identically, the learned gate compared in stream mode at its
//! budget, and clear errors for a gate of another budget, action set or feature width.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{config, corpus, err, ok, ponder, reached_vocab, train};

const STREAM: &str = r#"
[eval]
mode = "stream"
chunk_len = 16
chunks_per_stream = 3
batch_size = 4
max_batches = 10
budget = 0.5
methods = ["none", "skip", "update_1", "random", "ppo"]
seed = 0
bootstrap_resamples = 50
ci_level = 0.95
budget_sweep = []
random_seeds = 2

[policy]
budget = 2.0
chunk_len = 16
chunks_per_stream = 3
train_streams = 60
streams_per_iteration = 8
iterations = 6
reward_scale = 100.0
history_alpha = 0.1
length_norm = 512
normalize_features = true
inference = "argmax"
correction_form = "cost"
correction_gains = [0.0, 0.01, 0.03, 0.1, 0.3]
budget_guard = true
calibration_streams = 20
checkpoint_every = 2

[policy.net]
features = 33
hidden = [16, 16]
actions = 4
activation = "tanh"
dropout = 0.0

[policy.ppo]
gamma = 0.99
gae_lambda = 0.95
epochs = 2
minibatch = { count = 2 }
clip = 0.2
clip_value = true
value_coef = 0.5
entropy_coef = 0.01
max_grad_norm = 0.5
lr = 1e-3
anneal_lr = true
adam_eps = 1e-5
normalize_advantages = true
kl_estimator = "k3"

[policy.pid]
form = "stooke"
kp = 0.5
ki = 0.05
kd = 0.0
lambda_init = 0.0
"#;

fn gate(cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "gate",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ponder(&args)
}

#[test]
fn the_learned_gate_trains_resumes_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    corpus(&src, 160);
    let cache = dir.path().join("cache");
    let vocab = reached_vocab(dir.path(), &src, &cache);
    let run = dir.path().join("run");
    let cfg = config(dir.path(), &src, &run, &cache, vocab, STREAM);
    ok(&train(&cfg, &["--set", "backbone.steps=20"]));
    let c = cfg.to_str().unwrap();
    ok(&ponder(&["train", "fast", "--quiet", "--config", c]));

    // Bad input is refused before any model work.
    let e = err(&gate(&cfg, &["--set", "policy.budget=0.5"]));
    assert!(e.contains("policy.budget = 0.5: no mix of SKIP"), "{e}");
    let e = err(&gate(&cfg, &["--set", "policy.net.features=32"]));
    assert!(e.contains("policy.net.features = 32"), "{e}");
    let e = err(&compare_ppo(&cfg, &[]));
    assert!(e.contains("ponder train gate"), "{e}");

    let policy = run.join("fast-ttt_linear-k2/policy");
    let stdout = ok(&gate(&cfg, &[]));
    assert!(stdout.contains("learned gate: 6 iterations"), "{stdout}");
    let metrics = std::fs::read_to_string(policy.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.matches("\"record\":\"policy_iteration\"").count(),
        6
    );
    for field in [
        "\"lambda\"",
        "\"entropy\"",
        "\"approx_kl\"",
        "\"clip_fraction\"",
    ] {
        assert!(metrics.contains(field), "{field}");
    }
    let weights = policy.join("learned/policy.safetensors");
    let trained = std::fs::read(&weights).unwrap();

    // Killed with SIGKILL after a checkpoint, then resumed: the same metrics and weights.
    std::fs::rename(&policy, dir.path().join("first")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(["train", "gate", "--quiet", "--config", c])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let state = policy.join("checkpoint").join("state.json");
    while !state.is_file() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(policy.join("metrics.jsonl")).unwrap_or_default();
    assert!(
        !partial.contains("\"record\":\"done\""),
        "the run finished before it could be killed"
    );
    ok(&gate(&cfg, &["--resume"]));
    assert_eq!(
        std::fs::read_to_string(policy.join("metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(std::fs::read(&weights).unwrap(), trained);

    // The learned gate in stream mode, at its budget.
    let stdout = ok(&compare_ppo(&cfg, &[]));
    assert!(stdout.contains("ppo"), "{stdout}");
    let summary =
        std::fs::read_to_string(run.join("fast-ttt_linear-k2/stream/python/summary.json")).unwrap();
    assert!(summary.contains("\"ppo\""), "{summary}");
    // Another fast layer's folder: its learned gate would not be this one.
    let e = err(&compare_ppo(
        &cfg,
        &["--fast", "elsewhere/fast_layer", "--out", "w"],
    ));
    assert!(
        e.contains("--fast elsewhere/fast_layer") && e.contains("ppo"),
        "{e}"
    );

    // A gate trained for another budget, another action set or another feature width.
    let e = err(&compare_ppo(
        &cfg,
        &["--set", "eval.budget=0.25", "--out", "x"],
    ));
    assert!(e.contains("trained for a mean cost of 2"), "{e}");
    let meta_path = policy.join("learned/policy.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let edited = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = meta.clone();
        f(&mut m);
        std::fs::write(&meta_path, m.to_string()).unwrap();
    };
    edited(&|m| m["actions"] = serde_json::json!([0, 1, 2, 3]));
    let e = err(&compare_ppo(&cfg, &["--out", "y"]));
    assert!(e.contains("action set [0, 1, 2, 3]"), "{e}");
    edited(&|m| m["net"]["features"] = serde_json::json!(32));
    let e = err(&compare_ppo(&cfg, &["--out", "z"]));
    assert!(e.contains("over 32 features"), "{e}");
}

fn compare_ppo(cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["compare", "--quiet", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    ponder(&args)
}
