//! Helpers shared by the CLI's end-to-end tests: a small synthetic Python corpus, a small
//! config over it, and running the `ponder` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `n` small Python files under `dir`.
pub fn corpus(dir: &Path, n: usize) {
    for i in 0..n {
        let p = dir.join(format!("pkg{}/mod_{i}.py", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = format!(
            "import math\n\n\ndef area_{i}(radius):\n    \"\"\"Area of circle {i}.\"\"\"\n    return math.pi * radius ** {}\n\n\nclass Shape{i}:\n    def __init__(self, size):\n        self.size = size * {i}\n\n    def scaled(self, factor):\n        return Shape{i}(self.size * factor)\n",
            i % 3 + 1
        );
        std::fs::write(p, body).unwrap();
    }
}

/// A small config over `src`, writing into `out`, caching in `cache`, with `extra` TOML
/// (further tables) appended.
pub fn config(
    dir: &Path,
    src: &Path,
    out: &Path,
    cache: &Path,
    vocab: usize,
    extra: &str,
) -> PathBuf {
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
decontaminate = []

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
precision = "f32"

[fast]
layer = "ttt_linear"
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
precision = "f32"

[fast.ttt]
hidden_dim = 48
num_heads = 2
head_dim = 16
mini_batch_size = 8
ttt_base_lr = 1.0
eta_decay_rate = 0.0
rope_theta = 10000.0
conv_width = 4
conv_window = "shifted"
causal_k = 0
eta_form = "per_key"
layer_norm_eps = 1e-5
{extra}"#,
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

/// Runs `ponder` with `args`.
pub fn ponder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(args)
        .output()
        .expect("ponder runs")
}

/// The standard output of a command that must succeed (its standard error otherwise).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard error of a command that must fail cleanly, without a panic.
pub fn err(out: &Output) -> String {
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// Runs `ponder train backbone --quiet --config CONFIG` with `extra` arguments.
pub fn train(config: &Path, extra: &[&str]) -> Output {
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
pub fn reached_vocab(dir: &Path, src: &Path, cache: &Path) -> usize {
    let cfg = config(dir, src, &dir.join("probe"), cache, 320, "");
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
