//! `ponder train backbone` end to end on a small synthetic corpus: determinism, a kill -9 and
//! `--resume` that continues bit-identically, and clear errors for bad runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn corpus(dir: &Path) {
    for i in 0..80 {
        let p = dir.join(format!("pkg{}/mod_{i}.py", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = format!(
            "import math\n\n\ndef area_{i}(radius):\n    \"\"\"Area of circle {i}.\"\"\"\n    return math.pi * radius ** {}\n\n\nclass Shape{i}:\n    def __init__(self, size):\n        self.size = size * {i}\n\n    def scaled(self, factor):\n        return Shape{i}(self.size * factor)\n",
            i % 3 + 1
        );
        std::fs::write(p, body).unwrap();
    }
}

/// A small config over `src`, writing into `out`, caching in `cache`.
fn config(dir: &Path, src: &Path, out: &Path, cache: &Path, vocab: usize) -> PathBuf {
    let text = format!(
        r#"
[run]
seed = 5
out_dir = "{out}"
cache_dir = "{cache}"

[data]
sources = ["{src}"]
language = "python"
validation = 0.1
test = 0.1
seq_len = 32
tokenizer = {{ kind = "bpe", vocab_size = {vocab}, min_frequency = 2 }}

[model]
vocab_size = {vocab}
n_positions = 32
n_embd = 48
n_layer = 2
n_head = 2
activation_function = "gelu_new"
layer_norm_epsilon = 1e-5
initializer_range = 0.02
resid_pdrop = 0.1
embd_pdrop = 0.1
attn_pdrop = 0.1
bos_token_id = 0
eos_token_id = 0

[backbone]
steps = 120
batch_size = 4
lr = 3e-3
min_lr = 3e-4
warmup = 10
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
eval_every = 40
eval_windows = 4
checkpoint_every = 10

[fast]
backbone = "{out}/model"
chunk_len = 32
k = 2
steps = 12
batch_size = 4
lr = 1e-3
grad_clip = 1.0
ssl_weight = 0.1
eval_every = 6
eval_chunks = 4
checkpoint_every = 4

[fast.ttt]
hidden_dim = 48
num_heads = 2
head_dim = 16
fast_model = "linear"
mini_batch_size = 8
ttt_base_lr = 1.0
eta_decay_rate = 0.0
rope_theta = 10000.0
conv_width = 4
conv_window = "shifted"
causal_k = 0
eta_form = "per_key"
layer_norm_eps = 1e-5
"#,
        out = out.display(),
        cache = cache.display(),
        src = src.display()
    );
    let path = dir.join(format!(
        "{}.toml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn ponder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(args)
        .output()
        .expect("ponder runs")
}

fn train(config: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "backbone",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ponder(&args)
}

/// The vocabulary the BPE reaches on the corpus (it may stop short of the target).
fn reached_vocab(dir: &Path, src: &Path, cache: &Path) -> usize {
    let cfg = config(dir, src, &dir.join("probe"), cache, 320);
    let out = train(&cfg, &["--set", "backbone.steps=1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return 320;
    }
    let tail = stderr
        .split("the tokenizer has ")
        .nth(1)
        .expect("vocab mismatch message");
    tail.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn training_is_deterministic_and_resumes_bit_identically_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    corpus(&src);
    let cache = dir.path().join("cache");
    let vocab = reached_vocab(dir.path(), &src, &cache);

    let a = dir.path().join("a");
    let cfg_a = config(dir.path(), &src, &a, &cache, vocab);
    let out = train(&cfg_a, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics_a = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert!(metrics_a.lines().last().unwrap().contains("\"done\":true"));
    // The run records the manifest of every source it read.
    let recorded = std::fs::read_dir(a.join("data")).unwrap().count();
    assert_eq!(recorded, 1, "one manifest per source in the run folder");

    // The same config again: byte-identical metrics.
    let b = dir.path().join("b");
    let out = train(&config(dir.path(), &src, &b, &cache, vocab), &[]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(b.join("metrics.jsonl")).unwrap(),
        metrics_a
    );

    // Killed with SIGKILL after a checkpoint, then resumed: the same metrics.
    let c = dir.path().join("c");
    let cfg_c = config(dir.path(), &src, &c, &cache, vocab);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args([
            "train",
            "backbone",
            "--quiet",
            "--config",
            cfg_c.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let state = c.join("checkpoint").join("state.json");
    while !state.is_file() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let partial = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap_or_default();
    assert!(
        !partial.contains("\"done\":true"),
        "the run finished before it could be killed"
    );
    let out = train(&cfg_c, &["--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(c.join("metrics.jsonl")).unwrap(),
        metrics_a
    );
    assert!(c.join("model").join("model.safetensors").is_file());
    assert!(c.join("model").join("tokenizer.json").is_file());

    // The fast layer trains on the frozen backbone, deterministically, with or without the
    // hidden-state cache.
    for cache_mb in ["2048", "0"] {
        let _ = std::fs::remove_dir_all(a.join("fast-k2-prev"));
        if a.join("fast-k2").exists() {
            std::fs::rename(a.join("fast-k2"), a.join("fast-k2-prev")).unwrap();
        }
        let set = format!("fast.hidden_cache_mb={cache_mb}");
        let cfg = cfg_a.to_str().unwrap();
        let out = ponder(&["train", "fast", "--quiet", "--config", cfg, "--set", &set]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fast_metrics = std::fs::read_to_string(a.join("fast-k2").join("metrics.jsonl")).unwrap();
    assert_eq!(
        fast_metrics,
        std::fs::read_to_string(a.join("fast-k2-prev").join("metrics.jsonl")).unwrap()
    );
    assert!(
        fast_metrics.contains("\"val_update_loss\"")
            && fast_metrics.contains("\"ttt_loss_step_1\"")
    );
    assert!(a
        .join("fast-k2")
        .join("fast_layer")
        .join("fast_layer.safetensors")
        .is_file());

    // Without --resume an existing run folder is refused; with a changed config too.
    let out = train(&cfg_c, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --resume"));
    let out = train(&cfg_c, &["--resume", "--set", "backbone.lr=0.01"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("made by a different config"));
}

#[test]
fn an_empty_corpus_and_bad_overrides_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("README.md"), "no code here").unwrap();
    let cfg = config(
        dir.path(),
        &src,
        &dir.path().join("out"),
        &dir.path().join("cache"),
        300,
    );
    let out = train(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no python files left under"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = train(&cfg, &["--set", "backbone.nope=1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no key `backbone.nope`"));
}
