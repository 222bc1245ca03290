//! `cargo xtask sweep --config configs/sweeps/NAME.toml`: every point of a sweep file run as an
//! experiment of its own, through the `ponder` binary. `ponder sweep plan` checks the file and
//! every point's config and says what to run; the shared phases run once, then the points'
//! phases, `--jobs N` points at a time, each step with `--skip-finished --resume` (a rerun, or
//! a rerun after a kill, does only what is missing); the end is `ponder sweep aggregate`. With
//! `--emit slurm` the same steps become job arrays: one per phase, a task per point.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::reproduce::{build, run_step, steps, Device, Launch, Plan, Preset, Step, PHASES, SIZES};

/// The name of a sweep's last job, which aggregates its points.
pub const AGGREGATE: &str = "aggregate";

/// The arguments of `cargo xtask sweep`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepArgs {
    /// The sweep file.
    pub config: PathBuf,
    /// Points run at once.
    pub jobs: usize,
    /// Where the points run, and whether as Slurm scripts.
    pub launch: Launch,
}

/// Parses the arguments after `sweep`.
pub fn parse(args: &[&str]) -> Result<SweepArgs> {
    let usage = format!(
        "usage: cargo xtask sweep --config FILE [--jobs N] {}",
        Launch::USAGE
    );
    let mut out = SweepArgs {
        config: PathBuf::new(),
        jobs: 1,
        launch: Launch::local(),
    };
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if out.launch.take(a, &mut it)? {
            continue;
        }
        match a {
            "--config" => out.config = it.next().context("--config needs a sweep file")?.into(),
            "--jobs" => {
                let n = it.next().context("--jobs needs a number")?;
                out.jobs = n
                    .parse()
                    .ok()
                    .filter(|&j| j > 0)
                    .with_context(|| format!("--jobs takes a positive number, got {n:?}"))?;
            }
            other => bail!("unknown argument {other:?}; {usage}"),
        }
    }
    if out.config.as_os_str().is_empty() {
        bail!("no sweep file; {usage}");
    }
    out.launch.check()?;
    Ok(out)
}

/// What `ponder sweep plan` prints.
#[derive(Debug, Deserialize)]
struct SweepPlan {
    base: PathBuf,
    shared: Vec<String>,
    shared_overrides: Vec<String>,
    shared_log: PathBuf,
    phases: Vec<String>,
    points: Vec<PlanPoint>,
}

#[derive(Debug, Deserialize)]
struct PlanPoint {
    name: String,
    overrides: Vec<String>,
    log: PathBuf,
}

/// The steps of `phases` for a run of `base` with `overrides`, labelled with `who`.
fn steps_of(
    root: &Path,
    base: &Path,
    phases: &[String],
    overrides: &[String],
    device: Device,
    who: &str,
) -> Result<Vec<Step>> {
    let mut preset = Preset::resolve_file(root, base, overrides)?;
    // The stream-mode layer is trained and validated only for a sweep of the stream phases.
    if !phases.iter().any(|p| p == "gate" || p == "eval-stream") {
        preset.stream = None;
    }
    let plan = Plan {
        size: size_of(base)?,
        phases: phases.to_vec(),
        resume: true,
        launch: Launch {
            device,
            ..Launch::local()
        },
        overrides: overrides.to_vec(),
    };
    Ok(steps(&plan, &preset)
        .into_iter()
        .map(|mut s| {
            s.label = format!("{who}: {}", s.label);
            s
        })
        .collect())
}

/// The size of a base config, for `configs/slurm.toml` and the out-of-distribution cap: the
/// first word of its file name (`tiny` of `configs/tiny-lora.toml`).
fn size_of(base: &Path) -> Result<String> {
    let stem = base.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let size = stem.split('-').next().unwrap_or("");
    if !SIZES.contains(&size) {
        bail!(
            "base config {}: its size is read from its file name, which must start with one of {} (`tiny.toml`, `small-lora.toml`)",
            base.display(),
            SIZES.join(", ")
        );
    }
    Ok(size.to_string())
}

/// The sweep file as `ponder` (run from `root`) finds it: a relative path is taken from the
/// current directory.
fn from_root(root: &Path, config: &Path) -> Result<PathBuf> {
    if config.is_absolute() {
        return Ok(config.to_path_buf());
    }
    let here = std::env::current_dir().context("reading the current directory")?;
    let path = here.join(config);
    Ok(path
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or(path))
}

/// Runs (or emits) the sweep from the workspace `root`.
pub fn run(root: &Path, args: &SweepArgs) -> Result<()> {
    let config = from_root(root, &args.config)?;
    let name = format!(
        "sweep-{}",
        config.file_stem().unwrap_or_default().to_string_lossy()
    );
    if args.launch.submit {
        crate::slurm::require_sbatch(&crate::slurm::default_dir(root, &name))?;
    }
    let device = args.launch.device;
    let ponder = build(root, device)?;
    let out = Command::new(&ponder)
        .current_dir(root)
        .args(["sweep", "plan", "--config"])
        .arg(&config)
        .output()
        .with_context(|| format!("running {}", ponder.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let plan: SweepPlan =
        serde_json::from_slice(&out.stdout).context("reading `ponder sweep plan`'s output")?;
    for phase in plan.shared.iter().chain(&plan.phases) {
        if !PHASES.contains(&phase.as_str()) {
            bail!(
                "{}: unknown phase {phase:?}; the phases are {}",
                config.display(),
                PHASES.join(", ")
            );
        }
    }
    if let Some(p) = plan.phases.iter().find(|p| plan.shared.contains(p)) {
        bail!(
            "{}: phase {p:?} is both shared and per point",
            config.display()
        );
    }
    let shared = steps_of(
        root,
        &plan.base,
        &plan.shared,
        &plan.shared_overrides,
        device,
        "shared",
    )?;
    let mut points = Vec::new();
    for p in &plan.points {
        let s = steps_of(
            root,
            &plan.base,
            &plan.phases,
            &p.overrides,
            device,
            &p.name,
        )?;
        points.push((p, s));
    }
    let aggregate = Step {
        phase: AGGREGATE.into(),
        label: "aggregate over seeds".into(),
        args: vec![
            "sweep".into(),
            "aggregate".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        run_folder: false,
        optional: false,
        on_device: false,
    };
    if args.launch.emit_slurm {
        let per_point: Vec<Step> = points.iter().flat_map(|(_, s)| s.clone()).collect();
        let mut phases = crate::slurm::by_phase(&plan.shared, &shared);
        phases.extend(crate::slurm::by_phase(&plan.phases, &per_point));
        phases.push((AGGREGATE.into(), vec![aggregate]));
        return crate::slurm::emit_plan(root, &name, &size_of(&plan.base)?, &phases, args.launch);
    }
    let start = Instant::now();
    if let Some(parent) = plan.shared_log.parent() {
        std::fs::create_dir_all(root.join(parent))
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    for step in &shared {
        run_step(
            root,
            &ponder,
            step,
            true,
            Some(&root.join(&plan.shared_log)),
        )?;
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(points.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((point, steps)) = points.get(i) else {
                    break;
                };
                let t = Instant::now();
                let log = root.join(&point.log);
                let result = log
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .context("creating the point's folder")
                    .and_then(|()| {
                        steps
                            .iter()
                            .try_for_each(|s| run_step(root, &ponder, s, true, Some(&log)))
                    });
                let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                match result {
                    Ok(()) => println!(
                        "[{k}/{}] point {}: done in {:.0} s",
                        points.len(),
                        point.name,
                        t.elapsed().as_secs_f64()
                    ),
                    Err(e) => {
                        println!("[{k}/{}] point {}: FAILED: {e:#}", points.len(), point.name);
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(point.name.clone());
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    if !failed.is_empty() {
        bail!(
            "{} of {} points failed ({}); rerun the sweep to continue them",
            failed.len(),
            points.len(),
            failed.join("; ")
        );
    }
    run_step(root, &ponder, &aggregate, false, None)?;
    println!(
        "sweep {} ({} points, --jobs {}): finished in {:.1} min",
        config.display(),
        points.len(),
        args.jobs,
        start.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_the_base_file_name() {
        assert_eq!(
            size_of(Path::new("configs/small-lora.toml")).unwrap(),
            "small"
        );
        assert_eq!(size_of(Path::new("configs/tiny.toml")).unwrap(), "tiny");
        let e = size_of(Path::new("configs/mine.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must start with one of tiny, small"), "{e}");
    }

    #[test]
    fn arguments() {
        let a = parse(&["--config", "s.toml", "--jobs", "2"]).unwrap();
        assert_eq!((a.jobs, a.launch), (2, Launch::local()));
        for (args, want) in [
            (&["--jobs", "2"][..], "no sweep file"),
            (
                &["--config", "s.toml", "--jobs", "0"][..],
                "positive number",
            ),
            (
                &["--config", "s.toml", "--submit"][..],
                "--submit goes with --emit slurm",
            ),
            (&["--config", "s.toml", "--fast"][..], "unknown argument"),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
