//! The emitted Slurm scripts on a real Slurm: a one-node cluster started on this machine
//! (`xtask/scripts/slurm-one-node.sh`) runs a micro reproduction from the scripts
//! `reproduce --emit slurm --submit` writes, and its results must be byte-identical to the same
//! reproduction run locally; a second submission finds every run finished; a micro sweep from
//! its emitted arrays gives the same aggregate as run locally. It needs root and Debian's
//! `slurm-wlm` and `munge`, so it runs only with `PONDER_SLURM_TEST=1` (and says so when it
//! does not): `.ci/run` installs the packages and sets it, and there it fails, never skips, when
//! Slurm does not run the jobs. A submission without `sbatch` is a clear error (always run).

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xtask::reproduce::{parse, run, Launch, Plan};
use xtask::slurm::{default_dir, submit, wait};
use xtask::sweep::{self, SweepArgs};
use xtask::tidy::workspace_root;

/// The cuts that make the tiny preset a micro one: seconds per phase.
const MICRO: &[&str] = &[
    "backbone.steps=20",
    "backbone.eval_every=10",
    "backbone.checkpoint_every=10",
    "fast.steps=10",
    "fast.eval_every=5",
    "fast.checkpoint_every=5",
    "eval.max_batches=10",
    "eval.select.tolerance=0.5",
    "eval.bootstrap_resamples=100",
];

/// The micro reproduction: the tiny preset cut to seconds per phase, writing to `out`.
fn micro(out: &str, extra: &[&str]) -> Plan {
    let out_dir = format!("run.out_dir=\"{out}\"");
    let backbone = format!("fast.backbone=\"{out}/model\"");
    let mut args = vec![
        "--tiny",
        "--phases",
        "data,backbone,fast,eval-validation,eval-id",
        "--set",
        &out_dir,
        "--set",
        &backbone,
    ];
    for set in MICRO {
        args.extend(["--set", set]);
    }
    args.extend(extra);
    parse(&args).expect("the micro plan parses")
}

/// The one-node cluster, stopped on drop.
struct Cluster(PathBuf);

impl Cluster {
    fn start(root: &Path, dir: &Path) -> Self {
        let script = root.join("xtask/scripts/slurm-one-node.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir)
            .output()
            .expect("running slurm-one-node.sh");
        assert!(
            out.status.success(),
            "the one-node Slurm did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let conf = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("the script prints SLURM_CONF");
        // The only test of this binary that runs Slurm's tools: they read the cluster from here.
        std::env::set_var("SLURM_CONF", conf.trim());
        Self(dir.to_path_buf())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let root = workspace_root();
        let _ = Command::new("bash")
            .arg(root.join("xtask/scripts/slurm-one-node.sh"))
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

/// Every result file under `dir` (summaries, records, per-chunk tables, correlations, the
/// selection), relative to `dir`, sorted.
fn results(dir: &Path) -> Vec<PathBuf> {
    let names = [
        "summary.json",
        "records.jsonl",
        "chunks.csv",
        "correlation.json",
        "selection.json",
    ];
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if names.iter().any(|n| path.file_name().unwrap() == *n) {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The variable that asks for the test against a real Slurm.
const ASK: &str = "PONDER_SLURM_TEST";

#[test]
fn micro_reproduction_on_slurm_matches_the_local_run() {
    if std::env::var(ASK).as_deref() != Ok("1") {
        println!(
            "not run: set {ASK}=1 (needs root and Debian's slurm-wlm and munge; .ci/run does both)"
        );
        return;
    }
    let root = workspace_root();
    let base = root.join("target").join("slurm-check");
    let _ = std::fs::remove_dir_all(&base);
    let cluster = Cluster::start(&root, &base.join("cluster"));

    let local = "target/slurm-check/local";
    let t = Instant::now();
    run(&root, &micro(local, &[])).expect("the local micro reproduction");
    println!("local run: {:.0} s", t.elapsed().as_secs_f64());

    let remote = "target/slurm-check/slurm";
    let plan = micro(remote, &["--emit", "slurm"]);
    let dir = default_dir(&root, &plan.size);
    let mut ran = 0;
    for round in ["first", "second"] {
        let t = Instant::now();
        run(&root, &plan).expect("emitting the scripts");
        let jobs = submit(&root, &dir).expect("submitting");
        let tasks = wait(&jobs, Duration::from_secs(1200), &dir.join("logs"))
            .expect("the Slurm jobs completed");
        println!(
            "{round} submission: Slurm ran {} jobs with {tasks} array tasks, all COMPLETED, in {:.0} s",
            jobs.len(),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(jobs.len(), 5, "one job per phase");
        ran += tasks;

        let files = results(&root.join(local));
        assert!(
            files.iter().filter(|f| f.ends_with("summary.json")).count() >= 3,
            "{files:?}"
        );
        assert_eq!(files, results(&root.join(remote)), "the same result files");
        for f in &files {
            let a = std::fs::read(root.join(local).join(f)).unwrap();
            let b = std::fs::read(root.join(remote).join(f)).unwrap();
            assert!(
                a == b,
                "{} differs between the local and the Slurm run",
                f.display()
            );
        }
        println!("{} result files byte-identical", files.len());
    }
    // A micro sweep (two seeds on a shared backbone) from its emitted arrays, against the same
    // sweep run locally: the same aggregate.
    let sweep_file = |name: &str, out: &str| {
        let text = format!(
            "base = \"configs/tiny.toml\"\nout_dir = \"{out}\"\nset = [{}]\nshared = [\"data\", \"backbone\"]\nphases = [\"fast\", \"eval-validation\", \"eval-id\"]\ncombine = \"grid\"\n[[axes]]\nkey = \"run.seed\"\nvalues = [0, 1]\n",
            MICRO.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
        );
        let path = base.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let local = sweep_file("local.toml", "target/slurm-check/sweep-local");
    let args = |config: PathBuf, emit: bool| SweepArgs {
        config,
        jobs: 1,
        launch: Launch {
            emit_slurm: emit,
            ..Launch::local()
        },
    };
    sweep::run(&root, &args(local, false)).expect("the local micro sweep");
    let remote = sweep_file("micro.toml", "target/slurm-check/sweep-slurm");
    sweep::run(&root, &args(remote, true)).expect("emitting the sweep");
    let dir = default_dir(&root, "sweep-micro");
    let jobs = submit(&root, &dir).expect("submitting the sweep");
    let tasks = wait(&jobs, Duration::from_secs(1200), &dir.join("logs"))
        .expect("the sweep's Slurm jobs completed");
    println!(
        "sweep: Slurm ran {} jobs with {tasks} array tasks, all COMPLETED",
        jobs.len()
    );
    ran += tasks;
    let a = std::fs::read(root.join("target/slurm-check/sweep-local/aggregate.csv")).unwrap();
    let b = std::fs::read(root.join("target/slurm-check/sweep-slurm/aggregate.csv")).unwrap();
    assert!(
        a == b,
        "the sweep's aggregate differs between the local and the Slurm run"
    );
    println!("sweep aggregate byte-identical");
    println!("Slurm ran {ran} array tasks in all");
    drop(cluster);
}

#[test]
fn submitting_without_sbatch_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace_root())
        .args([
            "reproduce",
            "--tiny",
            "--phases",
            "fast",
            "--emit",
            "slurm",
            "--submit",
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot submit: `sbatch` is not available"),
        "{stderr}"
    );
}
