//! `cargo xtask sweep` end to end on a micro sweep (the tiny preset cut to seconds per phase,
//! two seeds): a sweep killed while its points run resumes and finishes with an aggregate
//! byte-identical to that of an uninterrupted sweep; a sweep whose base config changed since
//! its points ran is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xtask::tidy::workspace_root;

/// The micro sweep writing to `out` (relative to the checkout), from `base`.
fn sweep_file(dir: &Path, out: &str, base: &str) -> PathBuf {
    let text = format!(
        r#"base = "{base}"
out_dir = "{out}"
set = ["backbone.steps=20", "backbone.eval_every=10", "backbone.checkpoint_every=10", "fast.steps=30", "fast.eval_every=10", "fast.checkpoint_every=10", "eval.max_batches=10", "eval.select.tolerance=0.5", "eval.bootstrap_resamples=100"]
shared = ["data", "backbone"]
phases = ["fast", "eval-validation", "eval-id"]
combine = "grid"

[[axes]]
key = "run.seed"
values = [0, 1]
"#
    );
    let path = dir.join("sweep.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn xtask(root: &Path, sweep: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(root)
        .args(["sweep", "--config"])
        .arg(sweep)
        .args(["--jobs", "2"]);
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_killed_sweep_resumes_to_the_same_aggregate() {
    let root = workspace_root();
    let base = root.join("target").join("xtask-tests").join("sweep");
    let _ = std::fs::remove_dir_all(&base);
    let whole = "target/xtask-tests/sweep/whole";
    let killed = "target/xtask-tests/sweep/killed";
    let stdout = ok(xtask(
        &root,
        &sweep_file(&base.join("a"), whole, "configs/tiny.toml"),
    ));
    assert!(stdout.contains("[2/2] point"), "{stdout}");

    // Kill the second sweep once a point's fast layer has written a checkpoint.
    let file = sweep_file(&base.join("b"), killed, "configs/tiny.toml");
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut c = xtask(&root, &file);
        c.process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.spawn().unwrap()
    };
    let started = Instant::now();
    let point = root.join(killed).join("points").join("run.seed=0");
    while !std::fs::read_dir(&point)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("checkpoint").is_dir())
    {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-9", "--", &group])
        .status()
        .unwrap();
    let _ = child.wait();
    let stdout = ok(xtask(&root, &file));
    assert!(
        stdout.contains("sweep") && stdout.contains("finished"),
        "{stdout}"
    );
    let a = std::fs::read(root.join(whole).join("aggregate.csv")).unwrap();
    let b = std::fs::read(root.join(killed).join("aggregate.csv")).unwrap();
    assert!(a == b, "the resumed sweep's aggregate differs");
    assert!(String::from_utf8_lossy(&a).contains("ours_lh,recovery,2,"));

    // The base config changes: the sweep's folder refuses it before running anything.
    let changed = base.join("tiny-changed.toml");
    let text = std::fs::read_to_string(root.join("configs/tiny.toml")).unwrap();
    std::fs::write(&changed, text.replace("lr = 1e-3", "lr = 2e-3")).unwrap();
    let refused = sweep_file(&base.join("b"), killed, &changed.display().to_string());
    let out = xtask(&root, &refused).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was made by a different sweep file or base config"),
        "{stderr}"
    );
}

#[test]
fn bad_sweep_files_are_clear_errors() {
    let root = workspace_root();
    let dir = root.join("target").join("xtask-tests").join("sweep-bad");
    let file = sweep_file(
        &dir,
        "target/xtask-tests/sweep-bad/out",
        "configs/tiny.toml",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    for (from, to, want) in [
        ("key = \"run.seed\"", "key = \"eval.budjet\"", "eval.budjet"),
        (
            "values = [0, 1]",
            "values = []",
            "axis `run.seed` has no values",
        ),
        (
            "phases = [\"fast\", \"eval-validation\", \"eval-id\"]",
            "phases = [\"fast\", \"evaluate\"]",
            "unknown phase \"evaluate\"",
        ),
    ] {
        std::fs::write(&file, text.replace(from, to)).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("out"));
        let out = xtask(&root, &file).output().unwrap();
        assert!(!out.status.success(), "{want}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}
