//! Tests of the experiment config: the presets load, overrides apply and are checked against the
//! types, and bad input is an error naming the key.

use super::*;
use crate::StateMode;
use ponder_model::FastLayerKind;

fn preset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../configs/{name}.toml"))
}

fn tiny_text() -> String {
    std::fs::read_to_string(preset("tiny")).unwrap()
}

fn err(text: &str, overrides: &[&str]) -> String {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ExperimentConfig::from_toml(text, &overrides)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_gpt2_presets_load_and_mirror_the_original() {
    for (name, d, heads, decay) in [
        ("small", 768, 12, 0.0),
        ("medium", 1024, 16, 0.3),
        ("large", 1280, 20, 0.3),
        ("xl", 1600, 25, 0.3),
    ] {
        let c =
            ExperimentConfig::load(&preset(name), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = c.fast.as_ref().unwrap();
        assert_eq!((c.model.n_embd, c.model.n_head), (d, heads), "{name}");
        assert_eq!(f.layer, FastLayerKind::TttLinear);
        let ttt = f.ttt.as_ref().unwrap();
        assert_eq!(ttt, &ponder_model::TttConfig::for_gpt2(d, heads), "{name}");
        assert_eq!(ttt.eta_decay_rate, decay);
        // Batch 16 × 512-token chunks, 160,000 sample-chunks = 10,000 steps, lr 3e-4, clip 1, β 0.1
        // (docs/original.md §5.3).
        assert_eq!(
            (f.batch_size, f.chunk_len, f.steps),
            (16, 512, 10_000),
            "{name}"
        );
        assert_eq!(
            (f.lr, f.grad_clip, f.ssl_weight, f.k),
            (3e-4, 1.0, 0.1, 1),
            "{name}"
        );
        assert!(c.backbone.is_none());
    }
}

#[test]
fn the_tiny_presets_load_and_overrides_apply() {
    let c = ExperimentConfig::load(
        &preset("tiny"),
        &[
            "backbone.steps=7".into(),
            "run.out_dir=/tmp/x".into(),
            "fast.k=2".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.backbone.as_ref().unwrap().steps, 7);
    assert_eq!(c.run.out_dir, PathBuf::from("/tmp/x"));
    assert_eq!(c.fast().unwrap().k, 2);
    let again: ExperimentConfig = toml::from_str(&c.to_toml()).unwrap();
    assert_eq!(again, c);
    let lora = ExperimentConfig::load(&preset("tiny-lora"), &[]).unwrap();
    assert_eq!(lora.fast().unwrap().layer, FastLayerKind::Lora);
    // The LoRA variant shares the tiny backbone: same backbone stage, different fast stage.
    let tiny = ExperimentConfig::load(&preset("tiny"), &[]).unwrap();
    assert_eq!(
        lora.stage_toml(Stage::Backbone),
        tiny.stage_toml(Stage::Backbone)
    );
    assert_ne!(lora.stage_toml(Stage::Fast), tiny.stage_toml(Stage::Fast));
}

#[test]
fn stages_read_only_their_sections() {
    let a = ExperimentConfig::from_toml(&tiny_text(), &[]).unwrap();
    let b = ExperimentConfig::from_toml(&tiny_text(), &["eval.budget=0.3".into()]).unwrap();
    let c = ExperimentConfig::from_toml(&tiny_text(), &["fast.k=4".into()]).unwrap();
    assert_eq!(a.stage_toml(Stage::Fast), b.stage_toml(Stage::Fast));
    assert_ne!(a.stage_toml(Stage::Eval), b.stage_toml(Stage::Eval));
    assert_eq!(a.stage_toml(Stage::Backbone), c.stage_toml(Stage::Backbone));
    assert_ne!(a.stage_toml(Stage::Fast), c.stage_toml(Stage::Fast));
    assert!(!a.stage_toml(Stage::Backbone).contains("[fast"));
}

#[test]
fn unknown_keys_and_bad_overrides_are_errors() {
    let e = err(&tiny_text(), &["backbone.stepz=7"]);
    assert!(
        e.contains("unknown field `stepz`") && e.contains("--set added backbone.stepz"),
        "{e}"
    );
    let e = err(&tiny_text(), &["eval.no_such_key=1"]);
    assert!(e.contains("unknown field `no_such_key`"), "{e}");
    let e = err(&tiny_text(), &["nowhere.key=1"]);
    assert!(e.contains("there is no table `nowhere`"), "{e}");
    let e = err(&tiny_text(), &["backbone.steps"]);
    assert!(e.contains("expected key=value"), "{e}");
    let e = err(&tiny_text(), &["backbone.steps=\"many\""]);
    assert!(e.contains("invalid type"), "{e}");
    let e = err(
        &tiny_text().replace("[backbone]", "[backbone]\nmomentum = 0.9"),
        &[],
    );
    assert!(e.contains("unknown field `momentum`"), "{e}");
    // The Random method's seed is part of its name (`random_seed7`); the old key is gone.
    let e = err(
        &tiny_text().replace("[eval]", "[eval]\nrandom_seed = 42"),
        &[],
    );
    assert!(e.contains("unknown field `random_seed`"), "{e}");
}

#[test]
fn bad_methods_are_errors_naming_them() {
    let e = err(&tiny_text(), &["eval.methods=[\"skip\", \"psychic\"]"]);
    assert!(e.contains("unknown method \"psychic\""), "{e}");
    for k in [0, 3, 8] {
        let e = err(&tiny_text(), &[&format!("eval.methods=[\"update_{k}\"]")]);
        assert!(
            e.contains(&format!("update_{k}")) && e.contains("expected 1, 2 or 4"),
            "{e}"
        );
    }
    let e = err(&tiny_text(), &["fast.k=3"]);
    assert!(e.contains("fast.k = 3, expected 1, 2 or 4"), "{e}");
}

#[test]
fn fast_layer_sections_must_match_the_layer() {
    let e = err(&tiny_text(), &["fast.layer=transformer"]);
    assert!(
        e.contains("unknown variant `transformer`") && e.contains("ttt_mlp"),
        "{e}"
    );
    // TTT-MLP reads the same [fast.ttt] section.
    let mlp = ExperimentConfig::from_toml(&tiny_text(), &["fast.layer=ttt_mlp".into()]).unwrap();
    assert_eq!(mlp.fast().unwrap().layer, FastLayerKind::TttMlp);
    let e = err(&tiny_text(), &["fast.layer=lora"]);
    assert!(e.contains("needs a [fast.lora] section"), "{e}");
    let lora = std::fs::read_to_string(preset("tiny-lora")).unwrap();
    let (_, lora_section) = lora.split_once("[fast.lora]").unwrap();
    let (lora_section, _) = lora_section.split_once("[eval]").unwrap();
    let (tiny_head, tiny_eval) = tiny_text()
        .split_once("[eval]")
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let both = format!("{tiny_head}\n[fast.lora]{lora_section}\n[eval]{tiny_eval}");
    let e = err(&both, &[]);
    assert!(
        e.contains("fast.layer = \"ttt_linear\" takes a [fast.ttt] section")
            && e.contains("remove [fast.lora]"),
        "{e}"
    );
    let e = err(&tiny_text(), &["fast.ttt.hidden_dim=64"]);
    assert!(
        e.contains("fast.ttt.hidden_dim = 64, expected the backbone width"),
        "{e}"
    );
    let e = err(
        &tiny_text().replace("[fast.ttt]", "[fast.ttt]\nfast_model = \"mlp\""),
        &[],
    );
    assert!(e.contains("unknown field `fast_model`"), "{e}");
}

#[test]
fn precision_is_required_in_both_sections_and_overridable() {
    let text = tiny_text();
    assert_eq!(text.matches("\nprecision = \"f32\"\n").count(), 2);
    for (section, next) in [("[backbone]", "[fast]"), ("[fast]", "[fast.ttt]")] {
        // Drop the key from one section only.
        let (head, tail) = text.split_once(section).unwrap();
        let (body, rest) = tail.split_once(next).unwrap();
        let body = body.replace("precision = \"f32\"\n", "");
        let e = err(&format!("{head}{section}{body}{next}{rest}"), &[]);
        assert!(e.contains("missing field `precision`"), "{section}: {e}");
    }
    let c = ExperimentConfig::from_toml(
        &text,
        &[
            "backbone.precision=bf16".into(),
            "fast.precision=\"bf16\"".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.backbone.unwrap().precision, ponder_nn::Precision::Bf16);
    assert_eq!(c.fast.unwrap().precision, ponder_nn::Precision::Bf16);
    let e = err(&text, &["fast.precision=f16"]);
    assert!(e.contains("unknown variant `f16`"), "{e}");
}

#[test]
fn eval_values_are_checked_against_the_model() {
    let e = err(&tiny_text(), &["eval.budget=1.5"]);
    assert!(e.contains("eval.budget = 1.5"), "{e}");
    let e = err(&tiny_text(), &["eval.chunk_len=1000"]);
    assert!(e.contains("eval.chunk_len = 1000"), "{e}");
    let e = err(&tiny_text(), &["data.seq_len=1000"]);
    assert!(e.contains("data.seq_len = 1000"), "{e}");
}

#[test]
fn stream_mode_settings_are_checked() {
    let stream = std::fs::read_to_string(preset("tiny-stream")).unwrap();
    let config = ExperimentConfig::from_toml(&stream, &[]).unwrap();
    let eval = config.eval().unwrap();
    assert_eq!(eval.mode, StateMode::Stream);
    assert_eq!(eval.cost_budget().unwrap(), 2.0);
    // The stream preset shares every section but [eval] with tiny.toml, so the fast layer too.
    let tiny = ExperimentConfig::from_toml(&tiny_text(), &[]).unwrap();
    assert_eq!(config.fast, tiny.fast);
    // A reset-mode key in stream mode, and stream-mode keys in reset mode.
    let mut with_window = stream.clone();
    with_window = with_window.replacen(
        "chunks_per_stream = 8",
        "chunks_per_stream = 8\nchunks_per_window = 2",
        1,
    );
    let e = err(&with_window, &[]);
    assert!(
        e.contains("eval.chunks_per_window = 2 belongs to reset mode"),
        "{e}"
    );
    let e = err(&tiny_text(), &["eval.mode=\"stream\""]);
    assert!(e.contains("belongs to reset mode"), "{e}");
    let e = err(&stream, &["eval.mode=\"reset\""]);
    assert!(
        e.contains("eval.chunks_per_window is required in reset mode"),
        "{e}"
    );
    // A budget outside the actions' costs, or one that disagrees with eval.budget.
    let with_cost = stream.replace("budget = 0.5\n", "budget = 0.5\nbudget_cost = 2.0\n");
    ExperimentConfig::from_toml(&with_cost, &[]).unwrap();
    for (cost, needle) in [
        ("0.5", "outside [1, 9]"),
        ("9.5", "outside [1, 9]"),
        ("2.5", "set eval.budget = 0.75"),
    ] {
        let e = err(&with_cost, &[&format!("eval.budget_cost={cost}")]);
        assert!(e.contains(needle), "{cost}: {e}");
    }
    // Methods that rank a recorded stream, or none/greedy_oracle in reset mode.
    let e = err(&stream, &["eval.methods=[\"oracle\"]"]);
    assert!(e.contains("use greedy_oracle"), "{e}");
    let e = err(&tiny_text(), &["eval.methods=[\"none\"]"]);
    assert!(e.contains("a method of stream mode"), "{e}");
    let e = err(&stream, &["eval.methods=[\"update_3\"]"]);
    assert!(e.contains("expected 1, 2 or 4"), "{e}");
    let e = err(&stream, &["eval.methods=[\"skip\"]"]);
    assert!(e.contains("eval.greedy_oracle_batches is set"), "{e}");
    let e = err(&stream, &["eval.greedy_oracle_batches=0"]);
    assert!(
        e.contains("eval.greedy_oracle_batches to the (positive)"),
        "{e}"
    );
}

#[test]
fn the_policy_section_is_checked() {
    let stream = std::fs::read_to_string(preset("tiny-stream")).unwrap();
    let config = ExperimentConfig::from_toml(&stream, &[]).unwrap();
    let policy = config.policy().unwrap();
    assert_eq!(policy.budget, config.eval().unwrap().cost_budget().unwrap());
    // CleanRL's settings but the learning rate, which was chosen on validation.
    assert_eq!(
        policy.ppo,
        ponder_policy::PpoConfig {
            lr: 1e-3,
            ..ponder_policy::PpoConfig::cleanrl()
        }
    );
    // The policy's stage reads [policy] but not [eval]; no stage before it reads [policy].
    let other = ExperimentConfig::from_toml(&stream, &["policy.iterations=3".into()]).unwrap();
    assert_ne!(
        config.stage_toml(Stage::Policy),
        other.stage_toml(Stage::Policy)
    );
    assert_eq!(
        config.stage_toml(Stage::Fast),
        other.stage_toml(Stage::Fast)
    );
    let budget = ExperimentConfig::from_toml(&stream, &["eval.budget=0.25".into()]).unwrap();
    assert_eq!(
        config.stage_toml(Stage::Policy),
        budget.stage_toml(Stage::Policy)
    );
    assert!(!tiny_text().contains("[policy"));
    let e = ExperimentConfig::from_toml(&tiny_text(), &[])
        .unwrap()
        .policy()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no [policy] section"), "{e}");
    // A budget no mix of actions leaves a choice at, a feature vector or action set of another
    // width, and bad PPO or controller settings.
    for (set, needle) in [
        ("policy.budget=0.5", "policy.budget = 0.5: no mix of SKIP"),
        ("policy.budget=9.0", "policy.budget = 9: no mix of SKIP"),
        ("policy.net.features=32", "policy.net.features = 32"),
        ("policy.net.actions=2", "stream mode has 4 actions"),
        (
            "policy.streams_per_iteration=2000",
            "exceeds policy.train_streams",
        ),
        ("policy.reward_scale=0.0", "policy.reward_scale must be"),
        ("policy.ppo.lr=-1.0", "policy.ppo.lr must be > 0"),
        ("policy.pid.kp=-1.0", "policy.pid.kp must be"),
        (
            "policy.net.dropout=1.0",
            "policy.net.dropout must be in [0, 1)",
        ),
        (
            "policy.iterations=0",
            "policy.iterations must be at least 1",
        ),
        ("policy.ppo.nope=1", "unknown field `nope`"),
    ] {
        let e = err(&stream, &[set]);
        assert!(e.contains(needle), "{set}: {e}");
    }
}
