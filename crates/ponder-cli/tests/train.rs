//! `ponder train backbone` end to end on a small synthetic corpus: determinism, a kill -9 and
//! `--resume` that continues bit-identically, and clear errors for bad runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{config, corpus, ponder, reached_vocab, train};

#[test]
fn training_is_deterministic_and_resumes_bit_identically_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    corpus(&src, 80);
    let cache = dir.path().join("cache");
    let vocab = reached_vocab(dir.path(), &src, &cache);

    let a = dir.path().join("a");
    let cfg_a = config(dir.path(), &src, &a, &cache, vocab, "");
    let out = train(&cfg_a, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics_a = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert!(metrics_a
        .lines()
        .last()
        .unwrap()
        .contains("\"record\":\"done\""));
    // The run records the manifest of every source it read.
    let recorded = std::fs::read_dir(a.join("data")).unwrap().count();
    assert_eq!(recorded, 1, "one manifest per source in the run folder");

    // The same config again: byte-identical metrics.
    let b = dir.path().join("b");
    let out = train(&config(dir.path(), &src, &b, &cache, vocab, ""), &[]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(b.join("metrics.jsonl")).unwrap(),
        metrics_a
    );

    // Killed with SIGKILL after a checkpoint, then resumed: the same metrics.
    let c = dir.path().join("c");
    let cfg_c = config(dir.path(), &src, &c, &cache, vocab, "");
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
        !partial.contains("\"record\":\"done\""),
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
        let _ = std::fs::remove_dir_all(a.join("fast-ttt_linear-k2-prev"));
        if a.join("fast-ttt_linear-k2").exists() {
            std::fs::rename(
                a.join("fast-ttt_linear-k2"),
                a.join("fast-ttt_linear-k2-prev"),
            )
            .unwrap();
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
    let fast_metrics =
        std::fs::read_to_string(a.join("fast-ttt_linear-k2").join("metrics.jsonl")).unwrap();
    assert_eq!(
        fast_metrics,
        std::fs::read_to_string(a.join("fast-ttt_linear-k2-prev").join("metrics.jsonl")).unwrap()
    );
    assert!(
        fast_metrics.contains("\"val_update_loss\"")
            && fast_metrics.contains("\"ttt_loss_step_1\"")
    );
    assert!(a
        .join("fast-ttt_linear-k2")
        .join("fast_layer")
        .join("fast_layer.safetensors")
        .is_file());

    // Without --resume an existing run folder is refused; with a changed config too. A finished
    // run of the same config is left alone with --skip-finished.
    let out = train(&cfg_c, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --resume"));
    let out = train(&cfg_c, &["--skip-finished"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("finished earlier with this config, skipped")
    );
    // A changed [fast] section leaves the trained backbone fitting (its stage does not read it).
    let out = train(&cfg_c, &["--skip-finished", "--set", "fast.k=4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        "",
    );
    let out = train(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no python files left under"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = train(&cfg, &["--set", "backbone.nope=1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `nope`"), "{stderr}");
}
