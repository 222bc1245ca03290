//! `ponder compare`, `ponder report` and `ponder bench` end to end on a small trained model:
//! determinism, a resumed comparison equal to an uninterrupted one, the ablations, the report,
//! and clear errors for bad budgets, methods, short streams and foreign run folders.

mod common;

use std::path::Path;
use std::process::Output;

use common::{config, corpus, err, ok, ponder, reached_vocab, train};

const EVAL: &str = r#"
[eval]
chunk_len = 16
chunks_per_window = 2
batch_size = 2
max_batches = 20
budget = 0.5
methods = ["skip", "update_1", "random", "oracle", "ours", "ours_lh", "pid", "ttt_improvement", "signal_topk", "signal_topk_recon_init"]
seed = 0
bootstrap_resamples = 50
ci_level = 0.95
budget_sweep = [0.25, 0.5, 0.75]
random_seeds = 3

[eval.select]
tolerance = 0.2
recon_alpha = [0.1]
recon_step = [0.1, 0.01]
signals = ["recon", "recon_init"]
quantile_calibration = [1]
quantile_gain = [0.1]
quantile_deadband = [0.0, 2.0]
paced_calibration = [1]
paced_prior = [false]
"#;

fn compare(cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["compare", "--quiet", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    ponder(&args)
}

#[test]
fn compare_report_and_bench_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    corpus(&src, 160);
    let cache = dir.path().join("cache");
    let vocab = reached_vocab(dir.path(), &src, &cache);
    let run = dir.path().join("run");
    let cfg = config(dir.path(), &src, &run, &cache, vocab, EVAL);
    ok(&train(&cfg, &["--set", "backbone.steps=20"]));
    let fast = [
        "train",
        "fast",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
    ];
    ok(&ponder(&fast));

    // Bad input is refused before any model work.
    let e = err(&compare(&cfg, &["--budget", "1.5"]));
    assert!(e.contains("eval.budget = 1.5 is outside [0, 1]"), "{e}");
    let e = err(&compare(&cfg, &["--methods", "skip,magic"]));
    assert!(e.contains("magic") && e.contains("ours"), "{e}");
    let e = err(&compare(&cfg, &["--source", "go-src"]));
    assert!(e.contains("--language"), "{e}");

    // ours_lh needs the choice made on the validation split.
    let e = err(&compare(&cfg, &[]));
    assert!(
        e.contains("selection.json: not found") && e.contains("--split validation"),
        "{e}"
    );
    let e = err(&compare(&cfg, &["--split", "train"]));
    assert!(e.contains("validation") && e.contains("test"), "{e}");
    let stdout = ok(&compare(&cfg, &["--split", "validation"]));
    assert!(stdout.contains("ours_lh = "), "{stdout}");
    let validation = run.join("fast-ttt_linear-k2/validation/python");
    let selection = std::fs::read_to_string(validation.join("selection.json")).unwrap();
    assert!(selection.contains("\"candidates\""), "{selection}");
    let val_summary = std::fs::read_to_string(validation.join("summary.json")).unwrap();
    assert!(
        !val_summary.contains("ours_lh"),
        "not run where it is chosen"
    );

    // A stream shorter than the reconstruction gate's calibration window.
    let short = dir.path().join("short");
    let e = err(&compare(
        &cfg,
        &[
            "--set",
            "eval.max_batches=4",
            "--out",
            short.to_str().unwrap(),
        ],
    ));
    assert!(
        e.contains("8 chunk-batches, fewer than the calibration window of 16 of method ours"),
        "{e}"
    );
    assert!(
        !short.join("records.jsonl").exists(),
        "refused before the model pass"
    );

    let a = dir.path().join("a");
    let stdout = ok(&compare(&cfg, &["--out", a.to_str().unwrap()]));
    assert!(stdout.contains("McNemar ours_lh vs random"), "{stdout}");
    assert!(stdout.contains("random over 3 seeds"), "{stdout}");
    // The test comparison reads the choice and leaves it as it was.
    assert_eq!(
        std::fs::read_to_string(validation.join("selection.json")).unwrap(),
        selection
    );
    assert!(stdout.contains("30 chunk-batches"), "{stdout}");
    assert!(stdout.contains("McNemar ours vs random"), "{stdout}");
    for f in [
        "config.toml",
        "seed",
        "git_rev",
        "records.jsonl",
        "chunks.csv",
        "summary.json",
        "correlation.json",
        "cost.json",
    ] {
        assert!(a.join(f).is_file(), "{f}");
    }
    assert!(a.join("data").is_dir(), "the data manifest");
    let csv = std::fs::read_to_string(a.join("chunks.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31);
    assert!(csv.lines().next().unwrap().contains(
        ",ours,ours_lh,pid,ttt_improvement,signal_topk,signal_topk_recon_init,ours_threshold,ours_lh_threshold"
    ));
    let summary = std::fs::read_to_string(a.join("summary.json")).unwrap();

    // The same config again: byte-identical results.
    let b = dir.path().join("b");
    ok(&compare(&cfg, &["--out", b.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(b.join("summary.json")).unwrap(),
        summary
    );
    assert_eq!(std::fs::read_to_string(b.join("chunks.csv")).unwrap(), csv);

    // Interrupted after 15 records (half a line more): --resume gives the same results.
    let records = std::fs::read_to_string(b.join("records.jsonl")).unwrap();
    let lines: Vec<&str> = records.lines().collect();
    let cut = format!("{}\n{}", lines[..15].join("\n"), &lines[15][..10]);
    std::fs::write(b.join("records.jsonl"), cut).unwrap();
    std::fs::remove_file(b.join("summary.json")).unwrap();
    let e = err(&compare(&cfg, &["--out", b.to_str().unwrap()]));
    assert!(e.contains("pass --resume"), "{e}");
    ok(&compare(&cfg, &["--out", b.to_str().unwrap(), "--resume"]));
    assert_eq!(
        std::fs::read_to_string(b.join("summary.json")).unwrap(),
        summary
    );
    assert_eq!(
        std::fs::read_to_string(b.join("records.jsonl")).unwrap(),
        records
    );

    // Resuming into a folder made by another config.
    let e = err(&compare(
        &cfg,
        &[
            "--out",
            b.to_str().unwrap(),
            "--resume",
            "--set",
            "eval.bootstrap_resamples=60",
        ],
    ));
    assert!(e.contains("different config"), "{e}");
    // Another budget than the one ours_lh was chosen at.
    let e = err(&compare(&cfg, &["--budget", "0.3"]));
    assert!(e.contains("from another [eval.select]"), "{e}");

    // The ablations and the report of the experiment folder.
    ok(&compare(&cfg, &[]));
    ok(&compare(&cfg, &["--shuffle"]));
    ok(&compare(&cfg, &["--causal-k", "-1"]));
    let fast_run = run.join("fast-ttt_linear-k2");
    let shuffled =
        std::fs::read_to_string(fast_run.join("eval/python-shuffled/summary.json")).unwrap();
    assert_ne!(shuffled, summary);
    // A finished comparison of the same config is left alone.
    let stdout = ok(&compare(&cfg, &["--shuffle", "--skip-finished"]));
    assert!(stdout.contains("skipped"), "{stdout}");
    let bench = ["bench", "--config", cfg.to_str().unwrap(), "--reps", "1"];
    let stdout = ok(&ponder(&bench));
    assert!(stdout.contains("UPDATE_1"), "{stdout}");
    assert!(fast_run.join("latency/latency.json").is_file());
    ok(&ponder(&["report", "--config", cfg.to_str().unwrap()]));
    let report = std::fs::read_to_string(fast_run.join("report.md")).unwrap();
    for needle in [
        "## Table 1: in distribution (python, fast layer `fast-ttt_linear-k2`)",
        "| Ours (the original's controller) |",
        "| Ours, long horizon (`ours_lh`) |",
        "| top-k of `recon_init` (hindsight) |",
        "## Choosing the controller",
        "| Random, expectation |",
        "python-shuffled",
        "python-diagonal-1",
        "Latency per chunk",
        "plots/python-signal-vs-advantage.svg",
    ] {
        assert!(report.contains(needle), "{needle} missing from\n{report}");
    }
    assert!(!report.contains("NaN"), "{report}");
    assert!(fast_run.join("plots/python-threshold.svg").is_file());
    assert!(fast_run.join("plots/backbone-loss.svg").is_file());
    assert!(fast_run.join("plots/fast-ttt_linear-k2-loss.svg").is_file());
    assert!(report.contains("tokens/s"), "{report}");
    let e = err(&ponder(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--paper",
        "huge",
    ]));
    assert!(e.contains("small, medium, large or xl"), "{e}");
}
