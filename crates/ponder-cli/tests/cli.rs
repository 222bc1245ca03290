//! End-to-end tests of the `ponder` binary: the commands work offline, and bad input gets a
//! one-line error and a non-zero exit, never a panic.

use std::path::Path;
use std::process::{Command, Output};

fn ponder(args: &[&str], hf_home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(args)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("ponder runs")
}

fn assert_clean_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn info_on_tiny_random() {
    let home = tempfile::tempdir().unwrap();
    let out = ponder(&["info", "--model", "tiny-random"], home.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("parameters    3332928"), "{stdout}");
    assert!(stdout.contains("device        Cpu"), "{stdout}");
    // Saved in transformers' file names, it loads back as a local model of the same size.
    let dir = home.path().join("saved");
    let dir_arg = dir.display().to_string();
    let out = ponder(
        &["info", "--model", "tiny-random", "--save", &dir_arg],
        home.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file());
    let out = ponder(&["info", "--model", &dir_arg], home.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("source        local"), "{stdout}");
    assert!(stdout.contains("parameters    3332928"), "{stdout}");
}

#[test]
fn score_reports_per_file_and_total() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.py");
    let b = dir.path().join("b.py");
    std::fs::write(&a, "def add(x, y):\n    return x + y\n".repeat(40)).unwrap();
    std::fs::write(&b, "import os\nprint(os.getcwd())\n").unwrap();
    let out = ponder(
        &[
            "score",
            "--model",
            "tiny-random",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[1].contains("a.py")
            && lines[2].contains("b.py")
            && lines[3].starts_with("total (2 files)")
    );
    // A random model is near-uniform: perplexity within a factor of 2 of the vocabulary size.
    let nll: f64 = lines[3]
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((nll - 50257f64.ln()).abs() < 0.7, "{stdout}");
}

#[test]
fn score_refuses_empty_binary_and_missing_files() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.py");
    std::fs::write(&empty, "").unwrap();
    let binary = dir.path().join("blob.bin");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1]).unwrap();
    let one = dir.path().join("one.py");
    std::fs::write(&one, "x").unwrap();
    let score = |p: &Path| {
        ponder(
            &["score", "--model", "tiny-random", p.to_str().unwrap()],
            home.path(),
        )
    };
    assert_clean_failure(&score(&empty), "empty.py: the file is empty");
    assert_clean_failure(&score(&binary), "blob.bin: the file holds NUL bytes");
    assert_clean_failure(&score(&one), "need at least 2 to score");
    assert_clean_failure(&score(&dir.path().join("nope.py")), "nope.py");
}

#[test]
fn unknown_hub_id_offline_is_a_clean_error() {
    let home = tempfile::tempdir().unwrap();
    let out = ponder(
        &["info", "--model", "no-such-org/no-such-model"],
        home.path(),
    );
    assert_clean_failure(
        &out,
        "no-such-org/no-such-model: config.json is not in the Hugging Face cache",
    );
    let out = ponder(&["--offline", "info", "--model", "gpt2"], home.path());
    assert_clean_failure(
        &out,
        "openai-community/gpt2: config.json is not in the Hugging Face cache",
    );
    // How to get OpenAI's weights, not how to train a backbone.
    assert_clean_failure(
        &out,
        "`ponder info --model gpt2` downloads it into the cache",
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!e.contains("ponder train backbone"), "{e}");
    // A missing local folder is named as such, with how to make one.
    let out = ponder(
        &["--offline", "info", "--model", "runs/nowhere/model"],
        home.path(),
    );
    assert_clean_failure(&out, "there is no model folder at runs/nowhere/model");
    assert_clean_failure(&out, "`ponder train backbone --config C`");
}

#[test]
fn corrupt_checkpoint_is_a_clean_error() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ponder-gpt2/tests/fixtures/gpt2_tiny");
    std::fs::copy(fixture.join("config.json"), dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let out = ponder(
        &["info", "--model", dir.path().to_str().unwrap()],
        home.path(),
    );
    assert_clean_failure(&out, "not a valid safetensors file");
}

#[test]
fn cuda_without_the_feature_is_a_clean_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = ponder(
        &["--device", "cuda", "info", "--model", "tiny-random"],
        home.path(),
    );
    assert_clean_failure(&out, "--device cuda");
}
