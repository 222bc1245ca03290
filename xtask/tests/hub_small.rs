//! `cargo xtask reproduce --small` end to end without OpenAI's weights: a random GPT-2 small,
//! saved by `ponder info --save` in transformers' file names, is laid out as a Hugging Face hub
//! cache (`models--openai-community--gpt2/{refs,blobs,snapshots}`), and the reproduction runs
//! offline against it through every phase to the report, with steps, chunks and batches cut by
//! `--set`. The `codegen` phase is left out: its 164 HumanEval problems take too long at this
//! size on a CPU, and `ponder codegen` has its own end-to-end tests.

use std::path::Path;
use std::process::Command;

use xtask::reproduce::{build, parse, run, Device};
use xtask::tidy::workspace_root;

/// Moves `file` of `snapshot` into `blobs/<sha256>` and links it back, as the hub cache does.
fn into_blob(repo: &Path, snapshot: &Path, file: &str) {
    let path = snapshot.join(file);
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let blob = repo.join("blobs").join(&sum);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::rename(&path, &blob).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{sum}"), &path).unwrap();
}

#[test]
fn reproduce_small_runs_offline_from_a_hub_cache() {
    let root = workspace_root();
    let base = root.join("target").join("xtask-tests").join("hub-small");
    let _ = std::fs::remove_dir_all(&base);
    let hub = base.join("hub");
    let repo = hub.join("models--openai-community--gpt2");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(commit);
    let ponder = build(&root, Device::Cpu).unwrap();
    let out = Command::new(&ponder)
        .args(["info", "--model", "random:gpt2", "--seed", "7", "--save"])
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["config.json", "model.safetensors"] {
        into_blob(&repo, &snapshot, file);
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    // The hub cache and nothing else: offline, as on a cluster node without network.
    std::env::set_var("HF_HUB_CACHE", &hub);
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let out_dir = "run.out_dir=\"target/xtask-tests/hub-small/runs\"";
    let mut args = vec![
        "--small",
        "--phases",
        "data,fast,eval-validation,eval-id,eval-ood,latency,ablations,report",
        "--set",
        out_dir,
    ];
    for set in [
        "data.decontaminate=[]",
        "fast.steps=2",
        "fast.batch_size=2",
        "fast.chunk_len=64",
        "fast.eval_every=2",
        "fast.eval_chunks=2",
        "fast.checkpoint_every=2",
        "eval.chunk_len=64",
        "eval.batch_size=2",
        "eval.max_batches=20",
        "eval.bootstrap_resamples=50",
        "eval.random_seeds=3",
    ] {
        args.extend(["--set", set]);
    }
    run(&root, &parse(&args).unwrap()).expect("reproduce --small against the hub cache");
    let fast = root.join("target/xtask-tests/hub-small/runs/fast-ttt_linear-k1");
    let report = std::fs::read_to_string(fast.join("report.md")).unwrap();
    assert!(
        report.contains("Paper (small)"),
        "the report compares with the paper's small row"
    );
    for path in [
        "eval/python/summary.json",
        "validation/python/summary.json",
        "latency/latency.json",
    ] {
        assert!(fast.join(path).is_file(), "{path} missing");
    }
}
